/**
 * systemd's userspace measurement log, `/run/log/systemd/tpm2-measure.log` (systemd >= 254;
 * systemd.io "TPM2 PCR Measurements Made by systemd", systemd PR #29004): every PCR extend that
 * systemd-pcrextend, systemd-pcrphase and systemd-cryptsetup make after the firmware hands over.
 *
 * Format: a JSON text sequence (RFC 7464: each record is 0x1E, one JSON text, 0x0A) of TCG
 * CEL-JSON records without `recnum` (a reader numbers them):
 *
 *   {"pcr":11,"digests":[{"hashAlg":"sha256","digest":"<hex>"},...],
 *    "content_type":"systemd","content":{"string":"enter-initrd","eventType":"phase"}}
 *
 * `hashAlg` is sha1, sha256, sha384 or sha512; `content.eventType` one of phase, filesystem,
 * volume-key, machine-id, product-id, keyslot, ... (absent in older systemd). A boot phase
 * (`eventType` "phase") measures its UTF-8 string itself, so each of its digests must be the
 * hash of `content.string`; other events may measure data that is not in the log (a volume
 * key's HMAC), so only their digests count.
 *
 * Replay: the records extend PCRs on top of whatever the firmware log left in them (PCR 11
 * holds systemd-stub's measurements of the UKI before the phases, for example), so
 * {@link replayUserspaceLog} takes the firmware replay's values as its starting point.
 */
import { bytesEqual, fromHex, toHex } from '../bytes/hex.js';
import { HASH_SIZE, TPM_ALG, algName } from '../types/constants.js';
import { bankName } from './constants.js';
import { bankHash, initialPcrValue, type PcrBanks } from './replay.js';

/** A userspace log that does not parse, or a record that is not a measurement this library can replay. */
export class UserspaceLogError extends Error {
  override readonly name = 'UserspaceLogError';
  constructor(
    readonly reason: string,
    /** 1-based number of the record at fault (0: the log as a whole). */
    readonly record: number,
    /** Byte offset of that record's 0x1E in the log. */
    readonly offset: number,
  ) {
    super(`userspace log: ${record > 0 ? `record ${record}: ` : ''}${reason} (at byte offset ${offset})`);
  }
}

/** One measurement of the userspace log. */
export interface UserspaceRecord {
  /** 1-based position in the log (systemd writes no `recnum`; CEL's would be kept in `recnum`). */
  readonly seq: number;
  /** `recnum` when the record carries one. */
  readonly recnum?: number;
  readonly pcr: number;
  /** Bank (TPM_ALG_ID) -> digest extended into `pcr`. */
  readonly digests: ReadonlyMap<number, Uint8Array>;
  /** `content_type` ("systemd" for systemd's records). */
  readonly contentType: string;
  /** `content.string`: what was measured, in words (the phase name for a boot phase). */
  readonly string?: string;
  /** `content.eventType` ("phase", "machine-id", "filesystem", "volume-key", ...). */
  readonly eventType?: string;
  /** Byte offset of the record's 0x1E in the log. */
  readonly offset: number;
}

export interface UserspaceLog {
  readonly records: readonly UserspaceRecord[];
}

const RS = 0x1e;
const LF = 0x0a;

/** The hash algorithms systemd writes (tpm2_hash_alg_to_string), by their names, compared case-insensitively as systemd does. */
const HASH_ALGS: ReadonlyMap<string, { alg: number; size: number }> = new Map(
  [TPM_ALG.SHA1, TPM_ALG.SHA256, TPM_ALG.SHA384, TPM_ALG.SHA512].map((alg) => [algName(alg), { alg, size: HASH_SIZE[alg] as number }]),
);

/** The CEL-JSON hashAlg name of a bank, for writing. */
function hashAlgName(alg: number): string {
  if (![...HASH_ALGS.values()].some((h) => h.alg === alg)) throw new UserspaceLogError(`bank ${bankName(alg)} has no CEL-JSON hashAlg name`, 0, 0);
  return algName(alg);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses a userspace measurement log. An empty file is a log without records. Throws
 * {@link UserspaceLogError} naming the record for bytes outside a record, a truncated record
 * (no newline at its end: systemd was interrupted, or the copy was cut), a record that is not
 * JSON, a missing or malformed `pcr` or `digests`, an unknown `hashAlg`, a digest of the wrong
 * size or a bank given twice.
 */
export function parseUserspaceLog(bytes: Uint8Array): UserspaceLog {
  const records: UserspaceRecord[] = [];
  let pos = 0;
  // Whitespace before the first RS is tolerated; anything else is not a JSON text sequence.
  while (pos < bytes.length && bytes[pos] !== RS) {
    if (![0x20, 0x09, 0x0a, 0x0d].includes(bytes[pos]!)) {
      throw new UserspaceLogError('not a JSON text sequence (RFC 7464): the log does not start with 0x1E', 0, pos);
    }
    pos++;
  }
  const decoder = new TextDecoder('utf-8', { fatal: true });
  while (pos < bytes.length) {
    const start = pos;
    let end = bytes.indexOf(RS, pos + 1);
    if (end === -1) end = bytes.length;
    pos = end;
    const body = bytes.subarray(start + 1, end);
    if (body.every((b) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d)) continue; // RS RS: an empty element, skipped (RFC 7464, 2.1)
    const seq = records.length + 1;
    if (body[body.length - 1] !== LF) throw new UserspaceLogError('truncated: the record does not end with a newline', seq, start);
    let value: unknown;
    try {
      value = JSON.parse(decoder.decode(body));
    } catch (e) {
      throw new UserspaceLogError(`not JSON: ${(e as Error).message}`, seq, start);
    }
    records.push(parseRecord(value, seq, start));
  }
  return { records };
}

function parseRecord(value: unknown, seq: number, offset: number): UserspaceRecord {
  const fail = (reason: string): never => {
    throw new UserspaceLogError(reason, seq, offset);
  };
  if (!isObject(value)) return fail('not a JSON object');
  const pcr = value['pcr'];
  if (pcr === undefined) return fail('no "pcr" (a record for an NV index or of another kind, which this library does not replay)');
  if (typeof pcr !== 'number' || !Number.isInteger(pcr) || pcr < 0 || pcr > 23) return fail(`"pcr" ${JSON.stringify(pcr)} is not a PCR index 0-23`);
  const recnum = value['recnum'];
  if (recnum !== undefined && (typeof recnum !== 'number' || !Number.isInteger(recnum) || recnum < 0)) return fail(`"recnum" ${JSON.stringify(recnum)} is not a record number`);
  const list = value['digests'];
  if (!Array.isArray(list) || list.length === 0) return fail('"digests" is not a non-empty array');
  const digests = new Map<number, Uint8Array>();
  for (const [i, d] of list.entries()) {
    if (!isObject(d) || typeof d['hashAlg'] !== 'string' || typeof d['digest'] !== 'string') {
      return fail(`digests[${i}] is not {"hashAlg": string, "digest": hex string}`);
    }
    const hash = HASH_ALGS.get(d['hashAlg'].toLowerCase());
    if (hash === undefined) return fail(`digests[${i}]: unknown hashAlg ${JSON.stringify(d['hashAlg'])} (sha1, sha256, sha384 or sha512 expected)`);
    const hex = d['digest'];
    if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length !== hash.size * 2) {
      return fail(`digests[${i}]: a ${d['hashAlg']} digest is ${hash.size * 2} hex digits, got ${JSON.stringify(hex.length > 140 ? `${hex.slice(0, 140)}...` : hex)}`);
    }
    if (digests.has(hash.alg)) return fail(`digests[${i}]: a second ${d['hashAlg']} digest`);
    digests.set(hash.alg, fromHex(hex));
  }
  const contentType = value['content_type'];
  if (contentType !== undefined && typeof contentType !== 'string') return fail('"content_type" is not a string');
  const content = value['content'];
  if (content !== undefined && !isObject(content)) return fail('"content" is not an object');
  const str = content?.['string'];
  const eventType = content?.['eventType'];
  if (str !== undefined && typeof str !== 'string') return fail('"content.string" is not a string');
  if (eventType !== undefined && typeof eventType !== 'string') return fail('"content.eventType" is not a string');
  return {
    seq, pcr, digests, contentType: contentType ?? '', offset,
    ...(recnum !== undefined ? { recnum } : {}),
    ...(str !== undefined ? { string: str } : {}),
    ...(eventType !== undefined ? { eventType } : {}),
  };
}

/** What systemd writes for one measurement (used by tests and tools to make logs). */
export interface UserspaceRecordSpec {
  pcr: number;
  /** The measured bytes (hashed with each bank), or digests given directly. */
  data?: Uint8Array;
  digests?: ReadonlyMap<number, Uint8Array>;
  string?: string;
  eventType?: string;
}

/** A boot phase as systemd-pcrphase measures it: `word` (UTF-8) into PCR 11. */
export function phaseRecord(word: string): UserspaceRecordSpec {
  return { pcr: 11, data: new TextEncoder().encode(word), string: word, eventType: 'phase' };
}

/** Writes a userspace log in systemd's format: one RS-prefixed, LF-terminated record per spec, a digest per bank. */
export function buildUserspaceLog(specs: readonly UserspaceRecordSpec[], banks: readonly number[] = [TPM_ALG.SHA256]): Uint8Array {
  const out: string[] = [];
  for (const s of specs) {
    const digests = banks.map((alg) => {
      const d = s.digests?.get(alg) ?? (s.data !== undefined ? bankHash(alg, s.data) : undefined);
      if (d === undefined) throw new UserspaceLogError(`no ${bankName(alg)} digest for a record of PCR ${s.pcr}`, 0, 0);
      return { hashAlg: hashAlgName(alg), digest: toHex(d) };
    });
    const content: Record<string, string> = {};
    if (s.string !== undefined) content['string'] = s.string;
    if (s.eventType !== undefined) content['eventType'] = s.eventType;
    out.push(`\x1e${JSON.stringify({ pcr: s.pcr, digests, content_type: 'systemd', content })}\n`);
  }
  return new TextEncoder().encode(out.join(''));
}

/** One PCR of one bank after the userspace log's records were extended into it. */
export interface UserspacePcr {
  readonly pcr: number;
  readonly bank: number;
  /** The value before the first userspace record (the firmware replay's, or the PCR's initial value). */
  readonly start: Uint8Array;
  readonly startFrom: 'firmware log' | 'initial value';
  readonly replayed: Uint8Array;
  /** The records that extended it, in order. */
  readonly records: readonly UserspaceRecord[];
}

/** A record whose content contradicts its digests (a phase whose digest is not the hash of its name). */
export interface UserspaceRecordProblem {
  readonly record: UserspaceRecord;
  readonly problem: string;
}

export interface UserspaceReplay {
  /** Every (bank, PCR) the log extends, in banks `options.banks` that every record has a digest for. */
  readonly pcrs: readonly UserspacePcr[];
  readonly problems: readonly UserspaceRecordProblem[];
}

/**
 * Replays `log` bank by bank on top of `start` (bank -> PCR -> value: the firmware log's replay;
 * a PCR it does not hold starts at its initial value). Only `options.banks` are replayed (default:
 * every bank of `start`); a record without a digest of one of them is a UserspaceLogError naming
 * the record and the bank, since that PCR could not be replayed.
 */
export function replayUserspaceLog(log: UserspaceLog, start: PcrBanks, options: { banks?: readonly number[] } = {}): UserspaceReplay {
  const pcrs: UserspacePcr[] = [];
  const problems: UserspaceRecordProblem[] = [];
  for (const r of log.records) {
    if (r.eventType !== 'phase' || r.string === undefined) continue;
    const word = new TextEncoder().encode(r.string);
    for (const [alg, digest] of r.digests) {
      const want = bankHash(alg, word);
      if (want !== undefined && !bytesEqual(want, digest)) {
        problems.push({ record: r, problem: `its ${bankName(alg)} digest ${toHex(digest)} is not ${bankName(alg)}(${JSON.stringify(r.string)}) = ${toHex(want)}` });
      }
    }
  }
  for (const bank of options.banks ?? [...start.keys()]) {
    const byPcr = new Map<number, UserspaceRecord[]>();
    for (const r of log.records) {
      if (!r.digests.has(bank)) throw new UserspaceLogError(`no ${bankName(bank)} digest, so ${bankName(bank)} PCR ${r.pcr} cannot be replayed`, r.seq, r.offset);
      const list = byPcr.get(r.pcr);
      if (list) list.push(r);
      else byPcr.set(r.pcr, [r]);
    }
    for (const [pcr, records] of [...byPcr].sort((a, b) => a[0] - b[0])) {
      const fromFirmware = start.get(bank)?.get(pcr);
      const first = fromFirmware ?? initialPcrValue(pcr, records[0]!.digests.get(bank)!.length);
      let value = first;
      for (const r of records) {
        const next = bankHash(bank, value, r.digests.get(bank)!);
        if (next === undefined) throw new UserspaceLogError(`this runtime cannot compute ${bankName(bank)}`, r.seq, r.offset);
        value = next;
      }
      pcrs.push({ pcr, bank, start: first, startFrom: fromFirmware ? 'firmware log' : 'initial value', replayed: value, records });
    }
  }
  return { pcrs, problems };
}

/** The banks of `candidates` that every record of `log` has a digest for: those it can be replayed in. */
export function userspaceLogBanks(log: UserspaceLog, candidates: Iterable<number>): number[] {
  return [...candidates].filter((bank) => log.records.every((r) => r.digests.has(bank)));
}

/** The boot phases `log` records (`enter-initrd`, `leave-initrd`, `sysinit`, `ready`, ...), in order. */
export function userspacePhases(log: UserspaceLog): string[] {
  return log.records.flatMap((r) => (r.eventType === 'phase' && r.string !== undefined ? [r.string] : []));
}

/** A readable name of a record: `#3 phase "sysinit"`, `#5 machine-id "machine-id:…"`, `#2 (PCR 15)`. */
export function describeUserspaceRecord(r: UserspaceRecord): string {
  const what = [r.eventType, r.string !== undefined ? JSON.stringify(r.string) : undefined].filter((x) => x !== undefined).join(' ');
  return `#${r.seq} ${what === '' ? `(PCR ${r.pcr})` : what}`;
}

/**
 * Why `replayed` is not `quoted`, as far as the records tell: when the quoted value is reached
 * after the first k records, the log has records the TPM never saw (named); otherwise a record
 * was changed or one is missing.
 */
export function explainUserspaceMismatch(p: UserspacePcr, quoted: Uint8Array): string {
  let value = p.start;
  if (bytesEqual(value, quoted) && p.records.length > 0) {
    return `the quoted value is the PCR's value before any userspace record: ${p.records.map(describeUserspaceRecord).join(', ')} were never extended`;
  }
  for (const [i, r] of p.records.entries()) {
    value = bankHash(p.bank, value, r.digests.get(p.bank)!)!;
    if (bytesEqual(value, quoted) && i < p.records.length - 1) {
      return `the quoted value is reached after ${describeUserspaceRecord(r)}: the log has records the TPM never saw (${p.records.slice(i + 1).map(describeUserspaceRecord).join(', ')})`;
    }
  }
  return `no prefix of its ${p.records.length} record(s) gives the quoted value: a record was changed or removed, or one is missing from the log`;
}
