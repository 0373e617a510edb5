/**
 * Parser for TCG PC Client firmware event logs (`binary_bios_measurements`).
 *
 * Two formats (TCG PC Client Platform Firmware Profile, PFP 1.05, section 10):
 * - SHA1 format: a sequence of TCG_PCR_EVENT (PFP 10.2.1), one SHA-1 digest each.
 * - crypto agile: the first event is a SHA1-format EV_NO_ACTION whose data is a
 *   TCG_EfiSpecIdEvent ("Spec ID Event03", PFP 10.4.5.1) listing the algorithms and
 *   their digest sizes; every later event is a TCG_PCR_EVENT2 (PFP 10.2.2) with a
 *   TPML_DIGEST_VALUES. Digest sizes come from the Spec ID event, so banks this code
 *   does not know by name still parse.
 *
 * All integers are little-endian. Every size and count is checked against the bytes
 * that remain before anything is allocated or looped over.
 */
import { Reader } from '../bytes/reader.js';
import { concatBytes } from '../bytes/hex.js';
import { HASH_SIZE, TPM_ALG } from '../types/constants.js';
import { EV, SPEC_ID_EVENT03_SIGNATURE, STARTUP_LOCALITY_SIGNATURE, bankName } from './constants.js';
import { EventLogError, decoding } from './errors.js';

/** One digest of an event: the bank's algorithm (TPM_ALG_ID) and the digest bytes. */
export interface EventDigest {
  readonly alg: number;
  readonly digest: Uint8Array;
}

/** One event of the log (TCG_PCR_EVENT or TCG_PCR_EVENT2). */
export interface TcgEvent {
  /** Position in the log, from 0 (the Spec ID event of a crypto-agile log is event 0). */
  readonly seq: number;
  /** Byte offset of the event in the log. */
  readonly offset: number;
  /** Byte offset of the event data in the log. */
  readonly dataOffset: number;
  /** PCRIndex. */
  readonly pcr: number;
  /** EventType (see `EV`, `eventTypeName`). */
  readonly type: number;
  /** Digests in log order: one SHA-1 digest in a SHA1-format event, TPML_DIGEST_VALUES in TCG_PCR_EVENT2. */
  readonly digests: readonly EventDigest[];
  /** The event data (Event[EventSize]). */
  readonly data: Uint8Array;
}

/** An algorithm of the Spec ID event (TCG_EfiSpecIdEventAlgorithmSize). */
export interface SpecIdAlgorithm {
  readonly alg: number;
  readonly digestSize: number;
}

/** TCG_EfiSpecIdEvent (PFP 10.4.5.1). */
export interface SpecIdEvent {
  readonly signature: string;
  readonly platformClass: number;
  readonly specVersionMinor: number;
  readonly specVersionMajor: number;
  readonly specErrata: number;
  /** Size of UINTN: 1 means 32-bit, 2 means 64-bit. */
  readonly uintnSize: number;
  readonly algorithms: readonly SpecIdAlgorithm[];
  readonly vendorInfo: Uint8Array;
}

/** A parsed event log. */
export interface EventLog {
  readonly format: 'sha1' | 'crypto-agile';
  /** The Spec ID event of a crypto-agile log. */
  readonly specId?: SpecIdEvent;
  /** Hash algorithms of the log's banks, in the order of the Spec ID event ([SHA1] for a SHA1-format log). */
  readonly banks: readonly number[];
  /** All events, including the Spec ID event and other EV_NO_ACTION events. */
  readonly events: readonly TcgEvent[];
  /** Zero bytes after the last event (some firmware pads the log buffer); 0 when none. */
  readonly trailingZeroBytes: number;
  /** Irregularities the parser accepted, in words (empty for a clean log). */
  readonly notes: readonly string[];
}

export interface ParseEventLogOptions {
  /** Refuse logs with more events than this (default 100000; real firmware logs have a few hundred). */
  readonly maxEvents?: number;
}

/** Default cap on the number of events of one log. */
export const MAX_EVENTS = 100_000;

const SPEC_ID_SIG = new TextEncoder().encode(`${SPEC_ID_EVENT03_SIGNATURE}\0`);
const STARTUP_LOCALITY_SIG = new TextEncoder().encode(`${STARTUP_LOCALITY_SIGNATURE}\0`);

function startsWith(data: Uint8Array, prefix: Uint8Array): boolean {
  if (data.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (data[i] !== prefix[i]) return false;
  return true;
}

/** True when `data` is a TCG_EfiSpecIdEvent ("Spec ID Event03\0" signature). */
export function isSpecIdEventData(data: Uint8Array): boolean {
  return startsWith(data, SPEC_ID_SIG);
}

/**
 * The locality of a TCG_EfiStartupLocalityEvent (PFP 10.4.5.3: "StartupLocality\0"
 * followed by one byte), or undefined when `data` is not one.
 */
export function startupLocalityOf(data: Uint8Array): number | undefined {
  if (data.length !== STARTUP_LOCALITY_SIG.length + 1 || !startsWith(data, STARTUP_LOCALITY_SIG)) return undefined;
  return data[STARTUP_LOCALITY_SIG.length];
}

/**
 * How many bytes a TCG_EfiSpecIdEvent needs beyond `data` (its vendorInfo running past
 * EventSize), or 0 when it fits or its header is too broken to tell (the strict parse reports that).
 */
function specIdOverrun(data: Uint8Array): number {
  if (data.length < 28) return 0;
  const n = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(24, true);
  if (n === 0 || n > 64 || data.length < 29 + 4 * n) return 0;
  const natural = 29 + 4 * n + data[28 + 4 * n]!;
  return Math.max(0, natural - data.length);
}


/** Reads the EventSize field and the event data; the size is checked against what remains first. */
function readEventData(r: Reader): { data: Uint8Array; dataOffset: number } {
  const sizeAt = r.base + r.offset;
  const size = r.u32le('EventSize');
  if (size > r.remaining) {
    throw new EventLogError(`event data size ${size} exceeds the ${r.remaining} byte(s) left in the log`, sizeAt, 'EventSize');
  }
  const dataOffset = r.base + r.offset;
  return { data: r.bytesN(size, 'Event'), dataOffset };
}

/** PFP 10.2.1 TCG_PCR_EVENT: PCRIndex, EventType, SHA-1 digest, EventSize, Event. */
function readPcrEvent(r: Reader, seq: number): TcgEvent {
  const offset = r.base + r.offset;
  const pcr = r.u32le('PCRIndex');
  const type = r.u32le('EventType');
  const digest = r.bytesN(20, 'SHA-1 digest');
  const { data, dataOffset } = readEventData(r);
  return { seq, offset, dataOffset, pcr, type, digests: [{ alg: TPM_ALG.SHA1, digest }], data };
}

/** PFP 10.2.2 TCG_PCR_EVENT2: PCRIndex, EventType, TPML_DIGEST_VALUES, EventSize, Event. */
function readPcrEvent2(r: Reader, seq: number, sizes: ReadonlyMap<number, number>): TcgEvent {
  const offset = r.base + r.offset;
  const pcr = r.u32le('PCRIndex');
  const type = r.u32le('EventType');
  const countAt = r.base + r.offset;
  const count = r.u32le('TPML_DIGEST_VALUES.count');
  if (count > sizes.size) {
    throw new EventLogError(
      `event has ${count} digests but the Spec ID event lists ${sizes.size} algorithm(s)`,
      countAt,
      'TPML_DIGEST_VALUES.count',
    );
  }
  const digests: EventDigest[] = [];
  for (let i = 0; i < count; i++) {
    const algAt = r.base + r.offset;
    const alg = r.u16le('TPMT_HA.hashAlg');
    const size = sizes.get(alg);
    if (size === undefined) {
      throw new EventLogError(`digest algorithm ${bankName(alg)} is not listed in the Spec ID event`, algAt, 'TPMT_HA.hashAlg');
    }
    if (digests.some((d) => d.alg === alg)) {
      throw new EventLogError(`duplicate ${bankName(alg)} digest in one event`, algAt, 'TPMT_HA.hashAlg');
    }
    digests.push({ alg, digest: r.bytesN(size, `${bankName(alg)} digest`) });
  }
  const { data, dataOffset } = readEventData(r);
  return { seq, offset, dataOffset, pcr, type, digests, data };
}

/**
 * Parses a TCG_EfiSpecIdEvent (PFP 10.4.5.1). `base` is the absolute offset of `data`
 * in the log (for error offsets).
 */
export function parseSpecIdEvent(data: Uint8Array, base = 0): SpecIdEvent {
  return decoding(() => {
    const r = new Reader(data, base);
    const sig = r.bytesN(16, 'signature');
    if (!startsWith(sig, SPEC_ID_SIG)) throw new EventLogError('not a "Spec ID Event03" event', base, 'signature');
    const platformClass = r.u32le('platformClass');
    const specVersionMinor = r.u8('specVersionMinor');
    const specVersionMajor = r.u8('specVersionMajor');
    const specErrata = r.u8('specErrata');
    const uintnSize = r.u8('uintnSize');
    const countAt = r.base + r.offset;
    const count = r.u32le('numberOfAlgorithms');
    // Each TCG_EfiSpecIdEventAlgorithmSize is 4 bytes, and vendorInfoSize follows.
    if (count === 0 || count > Math.floor((r.remaining - 1) / 4)) {
      throw new EventLogError(
        `numberOfAlgorithms ${count} does not fit the ${r.remaining} byte(s) left in the Spec ID event`,
        countAt,
        'numberOfAlgorithms',
      );
    }
    const algorithms: SpecIdAlgorithm[] = [];
    for (let i = 0; i < count; i++) {
      const at = r.base + r.offset;
      const alg = r.u16le('algorithmId');
      const digestSize = r.u16le('digestSize');
      if (algorithms.some((a) => a.alg === alg)) {
        throw new EventLogError(`algorithm ${bankName(alg)} listed twice`, at, 'algorithmId');
      }
      const known = HASH_SIZE[alg];
      if (digestSize === 0 || (known !== undefined && known !== digestSize)) {
        throw new EventLogError(`digest size ${digestSize} is wrong for ${bankName(alg)}`, at + 2, 'digestSize');
      }
      algorithms.push({ alg, digestSize });
    }
    const vendorInfoSize = r.u8('vendorInfoSize');
    const vendorInfo = r.bytesN(vendorInfoSize, 'vendorInfo');
    r.done('TCG_EfiSpecIdEvent');
    return {
      signature: SPEC_ID_EVENT03_SIGNATURE,
      platformClass,
      specVersionMinor,
      specVersionMajor,
      specErrata,
      uintnSize,
      algorithms,
      vendorInfo,
    };
  });
}

/**
 * Parses a TCG PC Client firmware event log, SHA1 format or crypto agile (PFP 10.2, 10.4.5.1).
 * The log is crypto agile when its first event is an EV_NO_ACTION carrying a "Spec ID Event03"
 * structure; any other first event (including a short EV_NO_ACTION such as StartupLocality)
 * means a SHA1-format log. Zero padding after the last event is tolerated and reported.
 * Throws EventLogError (with the byte offset) for anything malformed.
 */
export function parseEventLog(log: Uint8Array, options: ParseEventLogOptions = {}): EventLog {
  const maxEvents = options.maxEvents ?? MAX_EVENTS;
  return decoding(() => {
    const r = new Reader(log);
    if (log.length === 0) throw new EventLogError('empty event log', 0, 'TCG_PCR_EVENT');
    // The byte after which only zeros follow: the end of the log proper.
    let end = log.length;
    while (end > 0 && log[end - 1] === 0) end--;

    const first = readPcrEvent(r, 0);
    const events: TcgEvent[] = [first];
    let specId: SpecIdEvent | undefined;
    let sizes: Map<number, number> | undefined;
    const notes: string[] = [];
    if (first.type === EV.EV_NO_ACTION && isSpecIdEventData(first.data)) {
      let specData = first.data;
      const overrun = specIdOverrun(first.data);
      if (overrun > 0 && overrun <= r.remaining) {
        // tpm2-tools walks past vendorInfo whatever EventSize says, and its fixture
        // specid-vendordata.bin relies on that; accept it, and say so.
        specData = concatBytes(first.data, r.bytesN(overrun, 'vendorInfo'));
        notes.push(`Spec ID event: vendorInfo extends ${overrun} byte(s) past EventSize ${first.data.length}`);
      }
      specId = parseSpecIdEvent(specData, first.dataOffset);
      sizes = new Map(specId.algorithms.map((a) => [a.alg, a.digestSize]));
    }
    while (r.remaining > 0) {
      if (r.offset >= end) break; // only zero padding is left
      if (events.length >= maxEvents) {
        throw new EventLogError(`more than ${maxEvents} events`, r.offset, 'event');
      }
      events.push(sizes ? readPcrEvent2(r, events.length, sizes) : readPcrEvent(r, events.length));
    }
    return {
      format: specId ? 'crypto-agile' : 'sha1',
      ...(specId ? { specId } : {}),
      banks: specId ? specId.algorithms.map((a) => a.alg) : [TPM_ALG.SHA1],
      events,
      trailingZeroBytes: r.remaining,
      notes,
    };
  });
}

/** The digest of `event` in bank `alg`, or undefined when the event has none. */
export function eventDigest(event: TcgEvent, alg: number): Uint8Array | undefined {
  return event.digests.find((d) => d.alg === alg)?.digest;
}
