// A small deterministic mutation fuzzer: seeded from real inputs (test data, encoder output),
// each case applies 1-4 mutations (byte flips, hostile size fields, truncation, insertion,
// deletion, duplication, splicing with another seed, or fresh random bytes) and runs the target.
// A case fails when the target throws anything but its typed errors, or takes longer than the
// per-input limit. Same seed, same cases: a failure is reproduced by its seed and case number.

import { concatBytes as concat } from '@tpmds/tpm2-wire';

/** One decoder under test. */
export interface FuzzTarget {
  /** Short name for reports, e.g. "tpm2-wire TPMT_PUBLIC". */
  name: string;
  /** Real or encoder-made valid inputs the mutations start from (at least one). */
  seeds: () => Uint8Array[] | Promise<Uint8Array[]>;
  /** Decodes/checks one input; may throw only errors for which `typed` is true. */
  run: (input: Uint8Array) => unknown;
  /** Whether an error thrown by `run` is one of the library's typed errors. */
  typed: (e: unknown) => boolean;
  /** Longest input generated (default 64 KiB). */
  maxLength?: number;
}

/** The result of fuzzing one target. */
export interface FuzzResult {
  name: string;
  seed: number;
  cases: number;
  /** Cases whose target returned without an error / with a typed error. */
  accepted: number;
  rejected: number;
  /** Cases that threw an untyped error or ran over `maxInputMs`: each with its case number and input. */
  failures: { case: number; problem: string; inputHex: string }[];
  /** Slowest single input, ms. */
  slowestMs: number;
  elapsedMs: number;
  /** Largest heap use seen (sampled every 10,000 cases), bytes. */
  peakHeapBytes: number;
}

export interface FuzzOptions {
  cases: number;
  seed: number;
  /** An input slower than this fails the case (default 100 ms). */
  maxInputMs?: number;
  /** Failures kept (default 10); fuzzing goes on after them. */
  keepFailures?: number;
  /** Progress callback every `progressEvery` cases. */
  onProgress?: (done: number) => void;
  progressEvery?: number;
}

/** sfc32: a small, fast, seedable PRNG (32-bit state words). */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  constructor(seed: number) {
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = 0xb7e15162;
    this.#d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.u32();
  }
  u32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }
  /** 0 <= n < max. */
  int(max: number): number {
    return max <= 1 ? 0 : this.u32() % max;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
}

/** Size-field values that break decoders: zero, one, off-by-ones, sign bits, maxima. */
const HOSTILE = [0, 1, 2, 3, 4, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xfffe, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];


/** One mutation of `input` (a new array; `input` is not changed). */
export function mutate(input: Uint8Array, rng: Rng, seeds: readonly Uint8Array[], maxLength: number): Uint8Array {
  const b = Uint8Array.prototype.slice.call(input); // a copy even for a Buffer
  const at = (): number => rng.int(b.length + 1);
  switch (rng.int(10)) {
    case 0:
    case 1: {
      // flip or set a few bytes
      if (b.length === 0) return rng.bytes(1 + rng.int(8));
      for (let k = 1 + rng.int(4); k > 0; k--) {
        const i = rng.int(b.length);
        b[i] = rng.int(2) === 0 ? (b[i] as number) ^ (1 << rng.int(8)) : rng.int(256);
      }
      return b;
    }
    case 2: {
      // a hostile big-endian u16 or u32 (TPM sizes, counts, selectors)
      const width = rng.int(2) === 0 ? 2 : 4;
      if (b.length < width) return concat(b, rng.bytes(width));
      const i = rng.int(b.length - width + 1);
      const v = rng.pick(HOSTILE);
      if (width === 2) {
        b[i] = (v >>> 8) & 0xff;
        b[i + 1] = v & 0xff;
      } else {
        new DataView(b.buffer).setUint32(i, v >>> 0);
      }
      return b;
    }
    case 3: {
      // a hostile little-endian u32 (event-log sizes and counts)
      if (b.length < 4) return concat(b, rng.bytes(4));
      new DataView(b.buffer).setUint32(rng.int(b.length - 3), rng.pick(HOSTILE) >>> 0, true);
      return b;
    }
    case 4:
      return b.subarray(0, at()); // truncate
    case 5: {
      const i = at();
      return concat(b.subarray(0, i), rng.bytes(1 + rng.int(16)), b.subarray(i)).subarray(0, maxLength);
    }
    case 6: {
      const i = at();
      return concat(b.subarray(0, i), b.subarray(Math.min(b.length, i + 1 + rng.int(32))));
    }
    case 7: {
      // duplicate a range (repeated structures, long lists)
      const i = at();
      const j = Math.min(b.length, i + 1 + rng.int(64));
      return concat(b.subarray(0, j), b.subarray(i, j), b.subarray(j)).subarray(0, maxLength);
    }
    case 8: {
      // splice: our head, another seed's tail
      const other = rng.pick(seeds);
      return concat(b.subarray(0, at()), other.subarray(rng.int(other.length + 1))).subarray(0, maxLength);
    }
    default:
      // printable/ASCII-ish or binary noise in place of a range (JSON/PEM text inputs)
      if (b.length === 0) return rng.bytes(rng.int(64));
      {
        const i = rng.int(b.length);
        const n = Math.min(b.length - i, 1 + rng.int(8));
        const noise = rng.int(2) === 0 ? rng.bytes(n) : Uint8Array.from({ length: n }, () => rng.pick(TEXTY));
        b.set(noise, i);
        return b;
      }
  }
}

const TEXTY = [...'{}[]":,0123456789-+.eEtrufalsn \n\\/=ABCDEFabcdef-----BEGIN END'].map((c) => c.charCodeAt(0));

/** Runs `options.cases` mutated inputs through `target`. */
export async function fuzz(target: FuzzTarget, options: FuzzOptions): Promise<FuzzResult> {
  // Plain copies: a Buffer's slice() is a view, and a mutation must never reach a seed.
  const seeds: Uint8Array[] = (await target.seeds()).map((s) => new Uint8Array(s));
  if (seeds.length === 0) throw new Error(`${target.name}: no seeds`);
  const maxLength = target.maxLength ?? 65536;
  const maxInputMs = options.maxInputMs ?? 100;
  const keep = options.keepFailures ?? 10;
  const every = options.progressEvery ?? 100_000;
  const rng = new Rng(options.seed);
  const result: FuzzResult = {
    name: target.name, seed: options.seed, cases: 0, accepted: 0, rejected: 0, failures: [], slowestMs: 0, elapsedMs: 0, peakHeapBytes: 0,
  };
  const started = performance.now();
  let failed = 0;
  for (let i = 0; i < options.cases; i++) {
    // Every 16th case is a seed itself (or a seed with one mutation), the rest 1-4 mutations deep.
    let input: Uint8Array = rng.pick(seeds);
    const depth = i % 16 === 0 ? rng.int(2) : 1 + rng.int(4);
    for (let d = 0; d < depth; d++) input = mutate(input, rng, seeds, maxLength);
    const t0 = performance.now();
    let problem: string | undefined;
    try {
      const r = target.run(input);
      if (r instanceof Promise) await r;
      result.accepted++;
    } catch (e) {
      if (target.typed(e)) result.rejected++;
      else problem = `untyped error: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`.slice(0, 500);
    }
    let ms = performance.now() - t0;
    // A slow case is timed again (up to 3 times, the fastest counts): on a loaded machine the
    // process may simply not have been scheduled; a decoder that is slow on an input stays slow.
    for (let again = 0; again < 3 && problem === undefined && ms > maxInputMs; again++) {
      const t1 = performance.now();
      try {
        const r = target.run(input);
        if (r instanceof Promise) await r;
      } catch {
        // the same outcome as the first run
      }
      ms = Math.min(ms, performance.now() - t1);
    }
    if (ms > result.slowestMs) result.slowestMs = ms;
    if (problem === undefined && ms > maxInputMs) problem = `took ${ms.toFixed(1)} ms (limit ${maxInputMs} ms) for ${input.length} bytes`;
    if (problem !== undefined) {
      failed++;
      if (result.failures.length < keep) result.failures.push({ case: i, problem, inputHex: Buffer.from(input.subarray(0, 4096)).toString('hex') });
    }
    result.cases++;
    if ((i + 1) % 10_000 === 0) {
      const heap = process.memoryUsage().heapUsed;
      if (heap > result.peakHeapBytes) result.peakHeapBytes = heap;
    }
    if ((i + 1) % every === 0) options.onProgress?.(i + 1);
  }
  result.elapsedMs = performance.now() - started;
  if (failed > result.failures.length) result.failures.push({ case: -1, problem: `${failed - result.failures.length} more failures not kept`, inputHex: '' });
  return result;
}
