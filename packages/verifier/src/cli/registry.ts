/**
 * The subcommands of `tpmds-verifier`, in the order `--help` lists them. To add one, write
 * `commands/<name>.ts` exporting a `Command` and add it here.
 */
import type { Command } from './command.js';
import { eventlogCommand } from './commands/eventlog.js';

export const COMMANDS: readonly Command[] = [eventlogCommand];

/** The command named `name`, or undefined. */
export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name);
}
