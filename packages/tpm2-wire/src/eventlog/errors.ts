import { TpmDecodeError } from '../bytes/errors.js';

/**
 * A TCG event log (or a structure inside an event's data) that does not parse:
 * truncated, a size or count that does not fit, an unknown digest algorithm.
 * `offset` is the absolute byte offset in the log where parsing failed;
 * `expected` names the field being read.
 */
export class EventLogError extends Error {
  override readonly name = 'EventLogError';
  constructor(
    readonly reason: string,
    readonly offset: number,
    readonly expected?: string,
  ) {
    super(`event log: ${reason} (at byte offset ${offset})`);
  }
}

/** Runs `f`, turning the Reader's TpmDecodeError into an EventLogError at the same offset (internal). */
export function decoding<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof TpmDecodeError) {
      throw new EventLogError(e.message.replace(/ \(at byte offset \d+\)$/, ''), e.offset, e.expected);
    }
    throw e;
  }
}

