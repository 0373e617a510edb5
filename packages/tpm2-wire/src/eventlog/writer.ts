/**
 * Writer of crypto-agile event logs (PFP 10.2.2, 10.4.5.1): a SHA1-format EV_NO_ACTION
 * "Spec ID Event03" header listing the banks, then one TCG_PCR_EVENT2 per event. Used by
 * tests and the demo: extend the same digests into a TPM's PCRs and a real quote matches
 * a real log.
 */
import { Writer } from '../bytes/writer.js';
import { TpmEncodeError } from '../bytes/errors.js';
import { HASH_SIZE, TPM_ALG } from '../types/constants.js';
import { EV, SPEC_ID_EVENT03_SIGNATURE, STARTUP_LOCALITY_SIGNATURE, bankName } from './constants.js';
import { parseGuid } from './efi.js';
import { bankHash } from './replay.js';

/** One event to write. */
export interface EventSpec {
  readonly pcr: number;
  readonly type: number;
  /** Event data (empty when omitted). */
  readonly data?: Uint8Array;
  /**
   * Digests by bank (TPM_ALG_ID -> digest). A bank without one gets H_bank(data), except
   * EV_NO_ACTION events, whose digests are all zero (PFP 10.4.5).
   */
  readonly digests?: ReadonlyMap<number, Uint8Array>;
}

export interface BuildEventLogOptions {
  /** TCG_EfiSpecIdEvent.platformClass (0: client, the default). */
  readonly platformClass?: number;
  /** TCG_EfiSpecIdEvent.uintnSize (2: 64-bit UINTN, the default). */
  readonly uintnSize?: number;
  /** TCG_EfiSpecIdEvent.vendorInfo (at most 255 bytes; none by default). */
  readonly vendorInfo?: Uint8Array;
}

/** TCG_EfiStartupLocalityEvent data (PFP 10.4.5.3): write it as an EV_NO_ACTION event in PCR 0. */
export function startupLocalityEventData(locality: number): Uint8Array {
  if (!Number.isInteger(locality) || locality < 0 || locality > 4) throw new TpmEncodeError(`invalid locality ${locality}`);
  const sig = new TextEncoder().encode(`${STARTUP_LOCALITY_SIGNATURE}\0`);
  const out = new Uint8Array(sig.length + 1);
  out.set(sig);
  out[sig.length] = locality;
  return out;
}

/**
 * UEFI_VARIABLE_DATA (PFP 10.4.6), the data of EV_EFI_VARIABLE_* events: the vendor GUID
 * ("8be4df61-..."), the UCS-2 name's length in characters, the value's length, the name, the
 * value. The inverse of parseUefiVariableData, e.g. SecureBoot = 1:
 * `uefiVariableData(EFI_GLOBAL_VARIABLE_GUID, 'SecureBoot', Uint8Array.of(1))`.
 */
export function uefiVariableData(guid: string, name: string, value: Uint8Array): Uint8Array {
  const w = new Writer(32 + 2 * name.length + value.length);
  w.bytes(parseGuid(guid)).u64le(BigInt(name.length)).u64le(BigInt(value.length));
  for (let i = 0; i < name.length; i++) w.u16le(name.charCodeAt(i));
  return w.bytes(value).finish();
}

/** The TCG_EfiSpecIdEvent structure for `banks` (PFP 10.4.5.1). */
export function specIdEventData(banks: readonly number[], options: BuildEventLogOptions = {}): Uint8Array {
  const vendorInfo = options.vendorInfo ?? new Uint8Array(0);
  if (vendorInfo.length > 255) throw new TpmEncodeError(`vendorInfo is ${vendorInfo.length} bytes; at most 255`);
  const w = new Writer();
  const sig = new Uint8Array(16);
  sig.set(new TextEncoder().encode(SPEC_ID_EVENT03_SIGNATURE));
  w.bytes(sig);
  w.u32le(options.platformClass ?? 0);
  w.u8(0).u8(2).u8(0); // specVersionMinor 0, specVersionMajor 2, specErrata 0
  w.u8(options.uintnSize ?? 2);
  w.u32le(banks.length);
  for (const alg of banks) w.u16le(alg).u16le(digestSizeOf(alg));
  w.u8(vendorInfo.length).bytes(vendorInfo);
  return w.finish();
}

function digestSizeOf(alg: number): number {
  const size = HASH_SIZE[alg];
  if (size === undefined) throw new TpmEncodeError(`unknown hash algorithm ${bankName(alg)}`);
  return size;
}

/**
 * Builds a crypto-agile event log: the Spec ID header for `banks`, then `events` as
 * TCG_PCR_EVENT2 with one digest per bank (given, or computed from the data).
 */
export function buildEventLog(events: readonly EventSpec[], banks: readonly number[], options: BuildEventLogOptions = {}): Uint8Array {
  if (banks.length === 0) throw new TpmEncodeError('an event log needs at least one bank');
  if (new Set(banks).size !== banks.length) throw new TpmEncodeError('a bank is listed twice');
  const w = new Writer(4096);
  const spec = specIdEventData(banks, options);
  w.u32le(0).u32le(EV.EV_NO_ACTION).bytes(new Uint8Array(20)).u32le(spec.length).bytes(spec);
  for (const [i, e] of events.entries()) {
    const data = e.data ?? new Uint8Array(0);
    w.u32le(e.pcr).u32le(e.type).u32le(banks.length);
    for (const alg of banks) {
      const size = digestSizeOf(alg);
      let digest = e.digests?.get(alg);
      if (digest === undefined) {
        digest = e.type === EV.EV_NO_ACTION ? new Uint8Array(size) : bankHash(alg, data);
        if (digest === undefined) throw new TpmEncodeError(`event ${i}: cannot compute a ${bankName(alg)} digest here; give it explicitly`);
      }
      if (digest.length !== size) throw new TpmEncodeError(`event ${i}: ${bankName(alg)} digest is ${digest.length} bytes, not ${size}`);
      w.u16le(alg).bytes(digest);
    }
    w.u32le(data.length).bytes(data);
  }
  return w.finish();
}

/** The banks buildEventLog writes when none are named: SHA-1 and SHA-256. */
export const DEFAULT_BANKS: readonly number[] = [TPM_ALG.SHA1, TPM_ALG.SHA256];
