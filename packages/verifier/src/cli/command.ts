/**
 * What a `tpmds-verifier` subcommand is: a name, a one-line summary, its usage and flags, and
 * `run`. Subcommands live one per file under `commands/` and are listed in `registry.ts`.
 */
import type { Args, FlagSpecs } from './flags.js';

/** Where a command writes. Tests pass their own; `main.ts` passes process stdout/stderr. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** A subcommand of `tpmds-verifier`. */
export interface Command {
  /** The word after `tpmds-verifier` ("eventlog"). */
  readonly name: string;
  /** One line for the tool's help. */
  readonly summary: string;
  /** The synopsis after the command name, e.g. "FILE [--json]". */
  readonly usage: string;
  /** Longer help text (paragraphs), printed by `tpmds-verifier CMD --help`. */
  readonly description?: string;
  readonly flags: FlagSpecs;
  /** Positional arguments: exact count or a range. */
  readonly positionals: { readonly min: number; readonly max: number; readonly names: string };
  /** Runs the command; resolves to the process exit code (0 success, 1 failure; 2 is for usage errors). */
  run(args: Args, io: CliIo): Promise<number>;
}
