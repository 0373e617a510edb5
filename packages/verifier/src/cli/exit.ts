/**
 * How `tpmds-verifier` ends: its exit codes, and the error for a mistake on the command line.
 * A module of its own so that the flag parser and the command interface both stand on it.
 */

/** A mistake on the command line (unknown flag, missing value, wrong arguments): exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Exit codes of `tpmds-verifier`. */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2 } as const;
