/**
 * Replay of a parsed event log into PCR values, per bank, and comparison with quoted PCRs.
 *
 * PCR_Extend semantics (TPM 2.0 Part 1, 17.2): new = H(old || digest). EV_NO_ACTION events
 * are never extended (PFP 10.4.1). PCR0's starting value (PFP 10.4.5.3, "StartupLocality"):
 * zero, except that a TCG_EfiStartupLocalityEvent (EV_NO_ACTION "StartupLocality") sets its
 * last byte to the locality TPM2_Startup came from (0 or 3), and an H-CRTM measurement
 * (EV_EFI_HCRTM_EVENT, _TPM_Hash_Start at locality 4) starts it at 4 when no StartupLocality
 * event says otherwise.
 */
import { createHash, getHashes } from 'node:crypto';
import { bytesEqual, toHex } from '../bytes/hex.js';
import { TPM_ALG } from '../types/constants.js';
import { nodeHashName } from '../crypto/hash.js';
import { EFI_ACTION, EV, bankName } from './constants.js';
import { eventDigest, startupLocalityOf } from './parse.js';
import type { EventLog, TcgEvent } from './parse.js';

/** PCR values of one bank: PCR index -> value. */
export type PcrMap = ReadonlyMap<number, Uint8Array>;
/** PCR values of several banks: hash algorithm (TPM_ALG_ID) -> PCR index -> value. */
export type PcrBanks = ReadonlyMap<number, PcrMap>;

const nodeNames = new Map<number, string | undefined>();

/** Node's name for a bank's hash, or undefined when this runtime cannot compute it. */
function nodeName(alg: number): string | undefined {
  if (nodeNames.has(alg)) return nodeNames.get(alg);
  let name: string | undefined;
  try {
    name = nodeHashName(alg);
  } catch {
    name = alg === TPM_ALG.SM3_256 && getHashes().includes('sm3') ? 'sm3' : undefined;
  }
  nodeNames.set(alg, name);
  return name;
}

/**
 * The value PCR `pcr` holds after TPM2_Startup(CLEAR), before any extend: all ones for the
 * DRTM PCRs 17-22 (PC Client PTP; swtpm's too, checked in eventlog-swtpm.test.ts), zeros for the
 * others, except PCR 0, whose last byte is the startup locality when the log has a
 * StartupLocality event (PFP 10.4.5.3). Both the firmware log's replay and the userspace log's
 * start from it.
 */
export function initialPcrValue(pcr: number, size: number, startupLocality = 0): Uint8Array {
  const v = new Uint8Array(size).fill(pcr >= 17 && pcr <= 22 ? 0xff : 0);
  if (pcr === 0) v[size - 1] = startupLocality;
  return v;
}

/** H_alg(parts...) for a bank, or undefined when the bank's hash is not available here. */
export function bankHash(alg: number, ...parts: Uint8Array[]): Uint8Array | undefined {
  const name = nodeName(alg);
  if (name === undefined) return undefined;
  const h = createHash(name);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** How PCR0's starting value was chosen. */
export interface Pcr0Start {
  /** The locality in PCR0's last byte before the first extend (0, 3 or 4). */
  readonly locality: number;
  /** Why: no marker, a StartupLocality event, or an H-CRTM event. */
  readonly source: 'default' | 'StartupLocality' | 'H-CRTM';
}

/** The result of replaying a log. */
export interface ReplayResult {
  /** Replayed values of every PCR that the log extends (or whose start a StartupLocality event sets), per bank. */
  readonly banks: PcrBanks;
  /** How PCR0 started. */
  readonly pcr0: Pcr0Start;
  /** Banks of the log that could not be replayed because this runtime lacks their hash. */
  readonly unsupportedBanks: readonly number[];
  /** Problems met while replaying (an event without a digest for a bank), in words. */
  readonly warnings: readonly string[];
}

/** Where PCR0 starts for this log (see the module comment). */
export function pcr0Start(events: readonly TcgEvent[]): Pcr0Start {
  let hcrtm = false;
  for (const e of events) {
    if (e.pcr !== 0) continue;
    if (e.type === EV.EV_NO_ACTION) {
      const locality = startupLocalityOf(e.data);
      if (locality !== undefined) return { locality, source: 'StartupLocality' };
    } else if (e.type === EV.EV_EFI_HCRTM_EVENT) {
      hcrtm = true;
    }
  }
  return hcrtm ? { locality: 4, source: 'H-CRTM' } : { locality: 0, source: 'default' };
}

/**
 * Replays every bank of `log` (only `options.banks` when given). PCRs that the log never
 * extends are absent from the result, except PCR0 when a StartupLocality event sets it.
 */
export function replayEventLog(log: EventLog, options: { banks?: readonly number[] } = {}): ReplayResult {
  const start = pcr0Start(log.events);
  const banks = new Map<number, Map<number, Uint8Array>>();
  const unsupportedBanks: number[] = [];
  const warnings: string[] = [];
  for (const alg of options.banks ?? log.banks) {
    const size = log.specId ? log.specId.algorithms.find((a) => a.alg === alg)?.digestSize : alg === TPM_ALG.SHA1 ? 20 : undefined;
    if (size === undefined || nodeName(alg) === undefined) {
      unsupportedBanks.push(alg);
      continue;
    }
    const initial = (pcr: number): Uint8Array => initialPcrValue(pcr, size, start.locality);
    const pcrs = new Map<number, Uint8Array>();
    if (start.source === 'StartupLocality') pcrs.set(0, initial(0));
    for (const e of log.events) {
      if (e.type === EV.EV_NO_ACTION) continue;
      const d = eventDigest(e, alg);
      if (d === undefined) {
        warnings.push(`event ${e.seq} (PCR ${e.pcr}) has no ${bankName(alg)} digest; not extended in that bank`);
        continue;
      }
      pcrs.set(e.pcr, bankHash(alg, pcrs.get(e.pcr) ?? initial(e.pcr), d)!);
    }
    banks.set(alg, new Map([...pcrs].sort((a, b) => a[0] - b[0])));
  }
  return { banks, pcr0: start, unsupportedBanks, warnings };
}

/** One PCR of one bank. */
export interface PcrRef {
  readonly pcr: number;
  /** Hash algorithm of the bank (TPM_ALG_ID). */
  readonly bank: number;
}

/** A PCR whose replayed value differs from the quoted one. */
export interface PcrMismatch extends PcrRef {
  readonly replayed: Uint8Array;
  readonly quoted: Uint8Array;
}

/** A PCR that matched only after a known firmware quirk was worked around. */
export interface PcrWorkaround extends PcrRef {
  readonly workaround: string;
}

/** The outcome of checking a log against quoted PCR values. */
export interface PcrComparison {
  /** True when at least one PCR was compared and none mismatched. */
  readonly ok: boolean;
  /** PCRs whose replayed value equals the quoted one (including those listed in `workarounds`). */
  readonly matched: readonly PcrRef[];
  readonly mismatched: readonly PcrMismatch[];
  /** PCRs the log extends in a bank the quote covers, but which the quote does not contain. */
  readonly notQuoted: readonly PcrRef[];
  /** Matches that needed a firmware-quirk workaround. */
  readonly workarounds: readonly PcrWorkaround[];
  /** The replay the comparison used. */
  readonly replay: ReplayResult;
}

export interface ComparePcrsOptions {
  /**
   * Apply go-attestation's workaround for firmware that extends the ExitBootServices
   * EV_EFI_ACTION events into PCR5 without logging them (default true; go-attestation PR #153).
   */
  readonly workarounds?: boolean;
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Whether the log records an "Exit Boot Services Invocation" action in PCR5. */
function logsExitBootServices(log: EventLog): boolean {
  const want = utf8(EFI_ACTION.EXIT_BOOT_SERVICES_INVOCATION);
  return log.events.some((e) => e.pcr === 5 && e.type === EV.EV_EFI_ACTION && bytesEqual(e.data, want));
}

/**
 * Replays `log` and compares every PCR it extends with `quoted` (bank -> PCR -> value), bank by
 * bank. Only banks and PCRs present on both sides are compared; PCRs the log does not touch
 * are not judged here (their values are not explained by the firmware log).
 */
export function comparePcrs(log: EventLog, quoted: PcrBanks, options: ComparePcrsOptions = {}): PcrComparison {
  const replay = replayEventLog(log);
  const matched: PcrRef[] = [];
  const mismatched: PcrMismatch[] = [];
  const notQuoted: PcrRef[] = [];
  const workarounds: PcrWorkaround[] = [];
  const tryEbs = (options.workarounds ?? true) && !logsExitBootServices(log);
  for (const [bank, pcrs] of replay.banks) {
    const q = quoted.get(bank);
    if (!q) continue;
    for (const [pcr, value] of pcrs) {
      const want = q.get(pcr);
      if (want === undefined) {
        notQuoted.push({ pcr, bank });
      } else if (bytesEqual(value, want)) {
        matched.push({ pcr, bank });
      } else {
        const fix = pcr === 5 && tryEbs ? exitBootServicesWorkaround(bank, value, want) : undefined;
        if (fix) {
          matched.push({ pcr, bank });
          workarounds.push({ pcr, bank, workaround: fix });
        } else {
          mismatched.push({ pcr, bank, replayed: value, quoted: want });
        }
      }
    }
  }
  return { ok: matched.length > 0 && mismatched.length === 0, matched, mismatched, notQuoted, workarounds, replay };
}

/**
 * Some firmware extends the ExitBootServices actions into PCR5 but leaves them out of the
 * log it hands over (go-attestation PR #153). Returns a description when appending one of
 * the possible action sequences to the replayed PCR5 gives the quoted value.
 */
function exitBootServicesWorkaround(bank: number, replayed: Uint8Array, quoted: Uint8Array): string | undefined {
  const A = EFI_ACTION;
  const sequences = [
    [A.EXIT_BOOT_SERVICES_INVOCATION, A.EXIT_BOOT_SERVICES_SUCCESS],
    [A.EXIT_BOOT_SERVICES_INVOCATION, A.EXIT_BOOT_SERVICES_FAILURE],
    [A.EXIT_BOOT_SERVICES_INVOCATION, A.EXIT_BOOT_SERVICES_FAILURE, A.EXIT_BOOT_SERVICES_SUCCESS],
  ];
  for (const seq of sequences) {
    let v: Uint8Array | undefined = replayed;
    for (const action of seq) v = v && bankHash(bank, v, bankHash(bank, utf8(action))!);
    if (v && bytesEqual(v, quoted)) {
      return `ExitBootServices events missing from the log: PCR5 matches after appending ${seq.map((s) => JSON.stringify(s)).join(', ')}`;
    }
  }
  return undefined;
}

/** A readable one-line description of a mismatch. */
export function describeMismatch(m: PcrMismatch): string {
  return `PCR ${m.pcr} (${bankName(m.bank)}): log replays to ${toHex(m.replayed)}, quoted ${toHex(m.quoted)}`;
}
