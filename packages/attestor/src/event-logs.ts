// The event logs Quote ships: the firmware log (--event-log) and systemd's userspace measurement
// log (--userspace-log). Each file is re-read only when its stat identity (device, inode, size,
// mtime, ctime) changed, so a Quote costs one (synchronous) stat per log; a replaced copy (the
// device plugin renames a new one into place) or an appended record changes it. What is wrong with
// a log (missing, unreadable, empty) is logged at start and when it changes, counted in a metric
// and sent in each QuoteResponse, never logged per call. The firmware log's JSON (base64) is
// encoded once per change too ({@link encodedEventLog}).
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { EncodedGoBytes } from '@tpmds/protocol/formats';
import type { Logger } from './log.js';

/** Which log. */
export type EventLogKind = 'firmware' | 'userspace';

/** What a log is now: read (`ok`, possibly of 0 records), or why its bytes are not sent. */
export type EventLogStatus = 'ok' | 'empty' | 'missing' | 'unreadable' | 'absent';

/** Every status, for the metric. */
export const EVENT_LOG_STATUSES: readonly EventLogStatus[] = ['ok', 'empty', 'missing', 'unreadable', 'absent'];

/** One log as the last read saw it. */
export interface EventLogState {
  readonly kind: EventLogKind;
  readonly path: string;
  readonly status: EventLogStatus;
  /** The bytes sent with quotes (empty unless `ok`). */
  readonly bytes: Uint8Array;
  /** SHA-256 of `bytes`, lowercase hex (when `ok`). */
  readonly sha256?: string;
  /** Why nothing is sent, in words naming the file ("" when `ok`, or `absent` for the optional userspace log). */
  readonly problem: string;
}

const encoded = new WeakMap<EventLogState, EncodedGoBytes>();

/**
 * A log's bytes as PlatformParameters' EventLog value (base64 JSON), encoded once per state, i.e.
 * once per change of the file (a state is never modified; a read that finds a change makes a new
 * one). Encoding a 50 KB log for every Quote took about 0.2 ms.
 */
export function encodedEventLog(state: EventLogState): EncodedGoBytes {
  let e = encoded.get(state);
  if (e === undefined) encoded.set(state, (e = new EncodedGoBytes(state.bytes)));
  return e;
}

/** Where an {@link EventLogs} reports. */
export interface EventLogMetrics {
  setEventLog(kind: EventLogKind, status: EventLogStatus, bytes: number): void;
}

function uid(): string {
  return typeof process.getuid === 'function' ? ` (the attestor runs as uid ${process.getuid()})` : '';
}

/** One file, re-read only when its stat identity changed. */
export class EventLogFile {
  #identity: string | undefined;
  #state: EventLogState;
  /** The read under way, and the stat identity it was started for. */
  #reading: { identity: string; state: Promise<EventLogState> } | undefined;
  /** How many times the file's bytes were read (for tests: quotes do not re-read an unchanged log). */
  reads = 0;

  constructor(
    readonly kind: EventLogKind,
    readonly path: string,
  ) {
    this.#state = { kind, path, status: 'missing', bytes: new Uint8Array(0), problem: `${path}: not read yet` };
  }

  /** The state as of the last read. */
  get state(): EventLogState {
    return this.#state;
  }

  /**
   * Stats the file and reads it again when it changed; never throws. The stat is synchronous: a
   * local file's stat takes about a microsecond, where a trip through libuv's thread pool took
   * 30 us on an idle machine and more on a busy one, on every Quote (the read stays asynchronous).
   */
  async read(): Promise<EventLogState> {
    let identity: string;
    try {
      const s = statSync(this.path, { bigint: true, throwIfNoEntry: false });
      if (s === undefined) identity = 'ENOENT';
      else if (s.isDirectory()) identity = 'dir';
      else identity = `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
    } catch (e) {
      identity = `error:${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
      if (identity !== this.#identity) return this.#set(identity, this.#failure(e));
    }
    if (identity === this.#identity) return this.#state;
    if (identity === 'ENOENT') return this.#set(identity, this.#failure({ code: 'ENOENT' }));
    if (identity === 'dir') return this.#set(identity, { status: 'unreadable', problem: `${this.path} is a directory, not an event log` });
    // Calls that find the same change meanwhile (a Quote and the readiness poll) share one read.
    if (this.#reading?.identity === identity) return this.#reading.state;
    const reading = { identity, state: this.#load(identity) };
    this.#reading = reading;
    try {
      return await reading.state;
    } finally {
      if (this.#reading === reading) this.#reading = undefined;
    }
  }

  async #load(identity: string): Promise<EventLogState> {
    try {
      this.reads++;
      const bytes = new Uint8Array(await readFile(this.path));
      if (bytes.length === 0) return this.#set(identity, this.kind === 'userspace' ? { status: 'ok', bytes } : { status: 'empty', problem: `${this.path} is empty` });
      return this.#set(identity, { status: 'ok', bytes, sha256: createHash('sha256').update(bytes).digest('hex') });
    } catch (e) {
      return this.#set(identity, this.#failure(e));
    }
  }

  #failure(e: unknown): Pick<EventLogState, 'status' | 'problem'> {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      // systemd writes no userspace log on systems that measure nothing after the firmware: that is no problem.
      if (this.kind === 'userspace') return { status: 'absent', problem: '' };
      return { status: 'missing', problem: `${this.path}: no such file (no firmware event log on this node, or it is not handed to this container)` };
    }
    if (code === 'EACCES' || code === 'EPERM') {
      return { status: 'unreadable', problem: `${this.path}: permission denied (${code})${uid()}; it is root-only on the host: hand the attestor a copy (manifests/README.md, "The firmware event log")` };
    }
    return { status: 'unreadable', problem: `${this.path}: ${(e as Error).message}` };
  }

  #set(identity: string, s: Partial<EventLogState> & Pick<EventLogState, 'status'>): EventLogState {
    this.#identity = identity;
    this.#state = { kind: this.kind, path: this.path, bytes: new Uint8Array(0), problem: '', ...s };
    return this.#state;
  }
}

/** Both logs, with their start-up report, change log lines and metrics. */
export class EventLogs {
  readonly firmware: EventLogFile;
  readonly userspace: EventLogFile;
  readonly #logger: Logger;
  readonly #metrics: EventLogMetrics | undefined;
  /** The status + problem last reported per log, so a change is logged once. */
  readonly #reported = new Map<EventLogKind, string>();

  constructor(paths: { eventLog: string; userspaceLog: string }, logger: Logger, metrics?: EventLogMetrics) {
    this.firmware = new EventLogFile('firmware', paths.eventLog);
    this.userspace = new EventLogFile('userspace', paths.userspaceLog);
    this.#logger = logger;
    this.#metrics = metrics;
  }

  /** Reads both logs (each only if it changed), reporting any change of state. */
  async read(): Promise<{ firmware: EventLogState; userspace: EventLogState }> {
    const [firmware, userspace] = await Promise.all([this.firmware.read(), this.userspace.read()]);
    this.#report(firmware);
    this.#report(userspace);
    return { firmware, userspace };
  }

  /** What readiness says besides "ready": each log that cannot be sent, with why. */
  notes(): string[] {
    return [this.firmware.state, this.userspace.state]
      .filter((s) => s.problem !== '')
      .map((s) => `${s.kind} event log ${s.status}: ${s.problem}; quotes carry no ${s.kind} log`);
  }

  #report(s: EventLogState): void {
    const key = `${s.status}|${s.problem}|${s.sha256 ?? ''}`;
    if (this.#reported.get(s.kind) === key) return;
    const first = !this.#reported.has(s.kind);
    this.#reported.set(s.kind, key);
    this.#metrics?.setEventLog(s.kind, s.status, s.bytes.length);
    const fields = { log: s.kind, path: s.path, status: s.status };
    if (s.status === 'ok') {
      this.#logger.info(first ? 'event log' : 'event log changed', { ...fields, bytes: s.bytes.length, sha256: s.sha256 ?? '' });
    } else if (s.status === 'absent') {
      this.#logger.info('no userspace event log on this node (systemd measured nothing after the firmware): quotes carry none', fields);
    } else {
      this.#logger.warn(`${s.kind} event log not sent with quotes: ${s.problem}`, fields);
    }
  }
}
