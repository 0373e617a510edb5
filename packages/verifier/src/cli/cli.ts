/**
 * The `tpmds-verifier` dispatcher: picks the subcommand, parses its flags, prints help, and
 * turns errors into messages on stderr and exit codes (2 for usage mistakes, 1 for failures).
 */
import { EXIT, UsageError } from './exit.js';
import type { CliIo, Command } from './command.js';
import { HELP_FLAGS, formatFlags, parseFlags } from './flags.js';
import { COMMANDS } from './registry.js';
import { verifierVersion } from './files.js';

export const TOOL = 'tpmds-verifier';

function toolHelp(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    `usage: ${TOOL} <command> [flags]`,
    '',
    'Drives and checks a tpmds attestor, and inspects TPM artefacts offline.',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    `Run '${TOOL} <command> --help' for a command's flags. '${TOOL} --version' prints the version.`,
    '',
  ].join('\n');
}

function commandUsage(c: Command): string {
  return `usage: ${TOOL} ${c.name} ${c.usage}`;
}

function commandHelp(c: Command): string {
  return [commandUsage(c), '', c.summary, ...(c.description ? ['', c.description] : []), '', 'Flags:', formatFlags(c.flags), ''].join('\n');
}


/** Whether `--help`/`-h` appears among the flags (before a `--`). */
function wantsHelp(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).some((a) => HELP_FLAGS.has(a));
}

/** Runs `tpmds-verifier` with `argv` (the words after the program name); resolves to the exit code. */
export async function runCli(argv: readonly string[], io: CliIo, commands: readonly Command[] = COMMANDS): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    io.stderr(toolHelp(commands));
    return EXIT.USAGE;
  }
  if (HELP_FLAGS.has(first) || first === 'help') {
    const topic = first === 'help' ? rest[0] : undefined;
    if (topic === undefined) {
      io.stdout(toolHelp(commands));
      return EXIT.OK;
    }
    const c = commands.find((x) => x.name === topic);
    if (!c) {
      io.stderr(`${TOOL}: unknown command "${topic}"; run '${TOOL} --help' for the list\n`);
      return EXIT.USAGE;
    }
    io.stdout(commandHelp(c));
    return EXIT.OK;
  }
  if (first === '--version') {
    io.stdout(`${verifierVersion()}\n`);
    return EXIT.OK;
  }
  if (first.startsWith('-')) {
    io.stderr(`${TOOL}: unknown flag ${first}; flags go after the command (run '${TOOL} --help')\n`);
    return EXIT.USAGE;
  }
  const command = commands.find((c) => c.name === first);
  if (!command) {
    io.stderr(`${TOOL}: unknown command "${first}"; run '${TOOL} --help' for the list\n`);
    return EXIT.USAGE;
  }
  if (wantsHelp(rest)) {
    io.stdout(commandHelp(command));
    return EXIT.OK;
  }
  try {
    const args = parseFlags(rest, command.flags);
    const n = args.positionals.length;
    const { min, max, names } = command.positionals;
    if (n < min) throw new UsageError(`missing ${names}`);
    if (n > max) throw new UsageError(`unexpected argument ${JSON.stringify(args.positionals[max])}`);
    return await command.run(args, io);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (e instanceof UsageError) {
      io.stderr(`${TOOL} ${command.name}: ${message}\n${commandUsage(command)}\n`);
      return EXIT.USAGE;
    }
    io.stderr(`${TOOL} ${command.name}: ${message}\n`);
    return EXIT.FAILED;
  }
}
