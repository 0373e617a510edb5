/**
 * A small command-line flag parser: `--name value`, `--name=value`, boolean `--name`,
 * repeatable flags (`--ek-roots a.pem --ek-roots b.pem`), and `--` to end the flags.
 * Anything it does not know is a UsageError that names the flag.
 */
import { UsageError } from './exit.js';

/** One flag a command accepts. */
export interface FlagSpec {
  /** 'boolean' flags take no value; 'string' flags take exactly one. */
  readonly type: 'boolean' | 'string';
  /** May be given several times (values collected in order). Only for string flags. */
  readonly repeatable?: boolean;
  /** Name of the value in help ("FILE", "HOST:PORT"). */
  readonly valueName?: string;
  /** One line for help. */
  readonly description: string;
}

/** Flags by name (without the leading `--`). */
export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

/** Parsed command-line arguments. */
export class Args {
  constructor(
    private readonly values: ReadonlyMap<string, string | true | string[]>,
    /** Arguments that are not flags, in order. */
    readonly positionals: readonly string[],
  ) {}

  /** Whether a boolean flag was given. */
  bool(name: string): boolean {
    return this.values.get(name) === true;
  }
  /** The value of a single-valued string flag, or undefined. */
  string(name: string): string | undefined {
    const v = this.values.get(name);
    return typeof v === 'string' ? v : undefined;
  }
  /** All values of a repeatable flag (empty when absent). */
  strings(name: string): readonly string[] {
    const v = this.values.get(name);
    return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
  }
  /** Whether the flag was given at all. */
  has(name: string): boolean {
    return this.values.has(name);
  }
}

/** `--help` / `-h`, accepted by every command. */
export const HELP_FLAGS = new Set(['--help', '-h']);

/** Parses `argv` (the words after the command name) against `specs`. */
export function parseFlags(argv: readonly string[], specs: FlagSpecs): Args {
  const values = new Map<string, string | true | string[]>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!word.startsWith('-') || word === '-') {
      positionals.push(word);
      continue;
    }
    if (!word.startsWith('--')) throw new UsageError(`unknown flag ${word}`);
    const eq = word.indexOf('=');
    const name = word.slice(2, eq < 0 ? undefined : eq);
    const spec = Object.hasOwn(specs, name) ? specs[name] : undefined;
    if (!spec) throw new UsageError(`unknown flag --${name}`);
    if (spec.type === 'boolean') {
      if (eq >= 0) throw new UsageError(`flag --${name} takes no value`);
      values.set(name, true);
      continue;
    }
    let value: string;
    if (eq >= 0) {
      value = word.slice(eq + 1);
    } else {
      if (i + 1 >= argv.length) throw new UsageError(`flag --${name} needs a value${spec.valueName ? ` (${spec.valueName})` : ''}`);
      value = argv[++i]!;
    }
    const prev = values.get(name);
    if (spec.repeatable) {
      values.set(name, [...(Array.isArray(prev) ? prev : []), value]);
    } else {
      if (prev !== undefined) throw new UsageError(`flag --${name} given more than once`);
      values.set(name, value);
    }
  }
  return new Args(values, positionals);
}

/** Help lines for `specs`, aligned. */
export function formatFlags(specs: FlagSpecs): string {
  const rows = Object.entries(specs).map(([name, s]) => {
    const left = `--${name}${s.type === 'string' ? ` ${s.valueName ?? 'VALUE'}` : ''}`;
    return [left, `${s.description}${s.repeatable ? ' (repeatable)' : ''}`] as const;
  });
  rows.push(['--help', 'show this help']);
  const width = Math.max(...rows.map(([l]) => l.length));
  return rows.map(([l, r]) => `  ${l.padEnd(width)}  ${r}`).join('\n');
}
