// Per-identity limits (ARCHITECTURE.md "packages/attestor", attestor README "Limits"):
//  - a key quota: at most --max-keys-per-identity AKs + keys per caller identity (each is a file
//    in --state-dir and TPM work to create), answered RESOURCE_EXHAUSTED;
//  - a signing rate: a token bucket per identity (--sign-rate, off by default) that every RPC
//    answering with a TPM signature over caller-chosen data passes through ONE hook,
//    SignRateLimiter.take(). Timing attacks on ECDSA in TPMs (TPM-FAIL, CVE-2019-11090 and
//    CVE-2019-16863) recovered keys after about 1,300 timed signatures; a rate limit makes
//    collecting them slow where the TPM is not known to be fixed.
import { AttestorError, ConfigError } from './errors.js';

/** Default --max-keys-per-identity. */
export const DEFAULT_MAX_KEYS_PER_IDENTITY = 64;

/** A token bucket's rate: `perSecond` tokens are added each second, up to `burst`. */
export interface SignRate {
  perSecond: number;
  burst: number;
}

/**
 * Parses --sign-rate: "" / "0" / "off" (no limit), "R" (R signatures per second, burst R) or
 * "R:B" (R per second, bursts of up to B). R may be a fraction ("0.5": one every two seconds).
 */
export function parseSignRate(value: string, flag = '--sign-rate'): SignRate | null {
  const v = value.trim().toLowerCase();
  if (v === '' || v === '0' || v === 'off') return null;
  const m = /^(\d{1,6}(?:\.\d{1,6})?)(?::(\d{1,6}))?$/.exec(v);
  if (m === null) throw new ConfigError(flag, `expected RATE or RATE:BURST (signatures per second, e.g. 10 or 10:50), or off; got ${JSON.stringify(value)}`);
  const perSecond = Number(m[1]);
  if (!(perSecond > 0)) throw new ConfigError(flag, 'the rate must be above 0 (or "off")');
  const burst = m[2] === undefined ? Math.max(1, Math.ceil(perSecond)) : Number(m[2]);
  if (burst < 1) throw new ConfigError(flag, 'the burst must be 1 or more');
  return { perSecond, burst };
}

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date (ms, monotonic). */
  at: number;
}

/** Most identities tracked before full buckets (idle callers) are forgotten. */
const MAX_TRACKED = 10_000;

/**
 * The per-identity signing rate limit. `take(identity, method)` is the one hook every RPC that
 * makes the TPM sign caller-chosen data calls before it queues for the TPM (Sign, Quote, and any
 * signing RPC added later): it spends a token or throws RESOURCE_EXHAUSTED saying when to retry.
 */
export class SignRateLimiter {
  readonly #buckets = new Map<string, Bucket>();

  constructor(
    readonly rate: SignRate | null,
    private readonly now: () => number = () => performance.now(),
  ) {}

  take(identity: string, method: string): void {
    const rate = this.rate;
    if (rate === null) return;
    const now = this.now();
    let b = this.#buckets.get(identity);
    if (b === undefined) {
      if (this.#buckets.size >= MAX_TRACKED) this.#forgetIdle(now);
      b = { tokens: rate.burst, at: now };
      this.#buckets.set(identity, b);
    } else {
      b.tokens = Math.min(rate.burst, b.tokens + ((now - b.at) / 1000) * rate.perSecond);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return;
    }
    const waitMs = Math.ceil(((1 - b.tokens) / rate.perSecond) * 1000);
    throw new AttestorError(
      'RESOURCE_EXHAUSTED',
      `${method}: this caller's signing rate limit (--sign-rate ${rate.perSecond}/s, burst ${rate.burst}) is used up; retry in ${waitMs} ms`,
    );
  }

  /** Drops the buckets that are full again (their callers were idle long enough): same answers, less memory. */
  #forgetIdle(now: number): void {
    const rate = this.rate as SignRate;
    for (const [id, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) / 1000) * rate.perSecond >= rate.burst) this.#buckets.delete(id);
    }
  }
}

/**
 * The per-identity key quota: at most `max` records (AKs + keys) per identity, 0 for no limit.
 * The store counts an identity's records on disk once (`count`), then keeps the count; creations
 * in flight are reserved so that racing calls cannot overshoot.
 */
export class KeyQuota {
  readonly #counts = new Map<string, Promise<{ stored: number; pending: number }>>();

  constructor(
    readonly max: number,
    private readonly count: (identity: string) => Promise<number>,
  ) {}

  /** Throws RESOURCE_EXHAUSTED when `identity` has no room for one more record (a check before TPM work). */
  async checkRoom(identity: string): Promise<void> {
    if (this.max === 0) return;
    const c = await this.#state(identity);
    if (c.stored + c.pending >= this.max) throw this.#full();
  }

  /**
   * Reserves room for one record of `identity` (RESOURCE_EXHAUSTED when there is none); call the
   * returned function with whether the record was written.
   */
  async reserve(identity: string): Promise<(written: boolean) => void> {
    if (this.max === 0) return () => undefined;
    const c = await this.#state(identity);
    if (c.stored + c.pending >= this.max) throw this.#full();
    c.pending++;
    let done = false;
    return (written) => {
      if (done) return;
      done = true;
      c.pending--;
      if (written) c.stored++;
    };
  }

  /**
   * A record of `identity` was removed (after its file was). A count not loaded yet is left
   * alone: loading it now would read the disk without that file and count the removal twice.
   */
  async released(identity: string): Promise<void> {
    const p = this.#counts.get(identity);
    if (this.max === 0 || p === undefined) return;
    const c = await p;
    c.stored = Math.max(0, c.stored - 1);
  }

  #state(identity: string): Promise<{ stored: number; pending: number }> {
    let p = this.#counts.get(identity);
    if (p === undefined) {
      p = this.count(identity).then((stored) => ({ stored, pending: 0 }));
      this.#counts.set(identity, p);
      p.catch(() => this.#counts.delete(identity));
    }
    return p;
  }

  #full(): AttestorError {
    return new AttestorError(
      'RESOURCE_EXHAUSTED',
      `this caller already has ${this.max} AKs and keys, the most one caller may have (--max-keys-per-identity)`,
    );
  }
}
