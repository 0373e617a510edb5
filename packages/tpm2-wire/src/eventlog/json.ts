/**
 * The JSON form of a parsed and replayed log (the `tpmds-verifier eventlog --json` contract,
 * ARCHITECTURE.md): `{"events":[{"pcr":0,"type":"EV_S_CRTM_VERSION","digests":{"sha256":"<hex>"},...}],
 * "pcrs":{"sha256":{"0":"<hex>",...}}}` — lowercase bank names (hex `0x….` for banks without
 * a name), decimal PCR keys, lowercase hex.
 */
import { fromHex, toHex } from '../bytes/hex.js';
import { HASH_SIZE, algName } from '../types/constants.js';
import { bankName, eventTypeName } from './constants.js';
import { describeEvent } from './facts.js';
import type { EventLog, TcgEvent } from './parse.js';
import type { PcrBanks } from './replay.js';

/** One event in JSON form. */
export interface EventJson {
  readonly pcr: number;
  /** Spec name, or `0x` + 8 hex digits for an unknown type. */
  readonly type: string;
  /** Bank name -> lowercase hex digest. */
  readonly digests: Readonly<Record<string, string>>;
  /** Event data, lowercase hex. */
  readonly data: string;
  /** A short readable description of the data, when there is one. */
  readonly description?: string;
  /** Position in the log (0 is the first event). */
  readonly seq: number;
  /** Byte offset of the event in the log. */
  readonly offset: number;
}

/** A bank from its name ("sha256", "SHA-256", "sm3", "0x000b"); undefined when unknown. */
export function bankFromName(name: string): number | undefined {
  const n = name.trim().toLowerCase();
  if (/^0x[0-9a-f]{1,4}$/.test(n)) return parseInt(n.slice(2), 16);
  const norm = n.replace(/-/g, '').replace(/_/g, '');
  for (const key of Object.keys(HASH_SIZE)) {
    const alg = Number(key);
    const a = algName(alg).replace(/_/g, '');
    if (a === norm || (norm === 'sm3' && a === 'sm3256')) return alg;
  }
  return undefined;
}

/** One event in JSON form (see `EventJson`). */
export function eventToJson(e: TcgEvent, uintnSize = 2): EventJson {
  const digests: Record<string, string> = {};
  for (const d of e.digests) digests[bankName(d.alg)] = toHex(d.digest);
  const description = describeEvent(e, uintnSize);
  return {
    pcr: e.pcr,
    type: eventTypeName(e.type),
    digests,
    data: toHex(e.data),
    ...(description !== undefined ? { description } : {}),
    seq: e.seq,
    offset: e.offset,
  };
}

/** PCR banks in JSON form: bank name -> decimal PCR index -> lowercase hex. */
export function pcrBanksToJson(banks: PcrBanks): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [alg, pcrs] of banks) {
    const b: Record<string, string> = {};
    for (const [pcr, v] of [...pcrs].sort((x, y) => x[0] - y[0])) b[String(pcr)] = toHex(v);
    out[bankName(alg)] = b;
  }
  return out;
}

/** PCR banks from JSON form (the inverse of `pcrBanksToJson`); throws on unknown banks or bad hex. */
export function pcrBanksFromJson(json: Readonly<Record<string, Readonly<Record<string, string>>>>): PcrBanks {
  const out = new Map<number, Map<number, Uint8Array>>();
  for (const [name, pcrs] of Object.entries(json)) {
    const alg = bankFromName(name);
    if (alg === undefined) throw new Error(`unknown PCR bank ${JSON.stringify(name)}`);
    const m = new Map<number, Uint8Array>();
    for (const [idx, hex] of Object.entries(pcrs)) {
      if (!/^\d{1,2}$/.test(idx)) throw new Error(`bad PCR index ${JSON.stringify(idx)} in bank ${name}`);
      m.set(Number(idx), fromHex(hex));
    }
    out.set(alg, m);
  }
  return out;
}

/** The JSON document of a log and its replay: `{ events, pcrs }`. */
export function eventLogToJson(log: EventLog, replayed: PcrBanks): { events: EventJson[]; pcrs: Record<string, Record<string, string>> } {
  const uintnSize = log.specId?.uintnSize ?? 2;
  return { events: log.events.map((e) => eventToJson(e, uintnSize)), pcrs: pcrBanksToJson(replayed) };
}
