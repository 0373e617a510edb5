/**
 * The subcommands of `tpmds-verifier`, in the order `--help` lists them. To add one, write
 * `commands/<name>.ts` exporting a `Command` and add it here.
 */
import type { Command } from './command.js';
import { akCommand } from './commands/ak.js';
import { attestCommand } from './commands/attest.js';
import { earCommand } from './commands/ear.js';
import { ekCommand } from './commands/ek.js';
import { eventlogCommand } from './commands/eventlog.js';
import { gceAkCommand } from './commands/gce-ak.js';
import { importBlobCommand } from './commands/import-blob.js';
import { importSigningKeyCommand } from './commands/import-signing-key.js';
import { newKeyCommand } from './commands/new-key.js';
import { quoteCommand } from './commands/quote.js';
import { runCommand } from './commands/run.js';
import { signCommand } from './commands/sign.js';

export const COMMANDS: readonly Command[] = [
  runCommand,
  ekCommand,
  akCommand,
  attestCommand,
  quoteCommand,
  importBlobCommand,
  importSigningKeyCommand,
  newKeyCommand,
  signCommand,
  gceAkCommand,
  eventlogCommand,
  earCommand,
];

/** The command named `name`, or undefined. */
export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name);
}
