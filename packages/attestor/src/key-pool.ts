// The key pool (--key-pool rsa=N,ecc=M): signing keys and AKs of each type created ahead of need,
// in the background, at the lowest priority of the TPM queue (one TPM2_Create per flow, so a
// caller's flow never waits behind more than one), and kept as TPM-wrapped blobs in
// <state-dir>/pool/ so the pool survives restarts. NewKey and a first GetAK take one and certify
// it; an empty pool falls back to creating the key on the request path.
//
// No key is ever handed out twice, even across a crash: a take claims the key in memory at once
// and removes its file (unlink, then fsync of the pool directory) while the TPM certifies it; the
// caller writes the key's record only once that removal is durable (see TakenKey). A crash before
// then leaves the key in the pool and no record of it; after, the record and no pool file.
import { mkdir, readFile, readdir, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { TPM2B_PRIVATE, TPM2B_PUBLIC, TPMT_TK_CREATION, marshal, unmarshal } from '@tpmds/tpm2-wire';
import { ConfigError } from './errors.js';
import { fsyncDir, isLeftoverTemp, writeNewFile } from './keystore.js';
import { BACKGROUND, type AttestorTpm, type UncertifiedKey } from './tpm/attestor-tpm.js';
import type { KeyType } from './validate.js';

/** How many keys of each type the pool keeps ready (each: that many signing keys and that many AKs). */
export interface KeyPoolSize {
  rsa: number;
  ecc: number;
}

/** Most keys of one kind and type the pool may keep. */
export const MAX_POOL_KEYS = 64;

/** Parses `rsa=N,ecc=M` (either may be left out: 0); ConfigError naming `flag` otherwise. */
export function parseKeyPool(flag: string, value: string): KeyPoolSize {
  const size: KeyPoolSize = { rsa: 0, ecc: 0 };
  if (value.trim() === '' || value.trim() === '0') return size;
  const seen = new Set<string>();
  for (const part of value.split(',')) {
    const m = /^\s*(rsa|ecc)\s*=\s*(\d{1,4})\s*$/.exec(part);
    if (m === null) throw new ConfigError(flag, `expected rsa=N,ecc=M (e.g. rsa=2,ecc=4; 0 disables), got ${JSON.stringify(value)}`);
    const type = m[1] as KeyType;
    if (seen.has(type)) throw new ConfigError(flag, `${type} is given twice in ${JSON.stringify(value)}`);
    seen.add(type);
    const n = Number(m[2]);
    if (n > MAX_POOL_KEYS) throw new ConfigError(flag, `${type}=${n} is more than ${MAX_POOL_KEYS}`);
    size[type] = n;
  }
  return size;
}

const FORMAT = 'tpmds.pool/v1';
const KINDS = ['ak', 'key'] as const;
const TYPES = ['rsa', 'ecc'] as const;

export interface KeyPoolOptions {
  /** A refill failed (the TPM unreachable, a full disk): said once per distinct message until one succeeds. */
  warn?: (message: string) => void;
  /** How long to wait after a failed refill before the next try (default 5 s). */
  retryMs?: number;
  /** How long after a key was taken its replacement is started (default 250 ms). */
  refillDelayMs?: number;
}

interface Pooled {
  file: string;
  key: UncertifiedKey;
}

/** A key taken from the pool (no other take gets it). */
export interface TakenKey {
  key: UncertifiedKey;
  /**
   * Resolves once the key's pool file is removed for good (the pool directory fsynced): only then
   * may the key be handed out (its record written). Rejects when the file could not be removed,
   * or was already gone (another process took it): the key must then not be used.
   */
  removed: Promise<void>;
}

export class KeyPool {
  readonly #ready = new Map<string, Pooled[]>();
  #refilling: Promise<void> | undefined;
  #closed = false;
  /** The next refill start (after a key was taken, or a failure). */
  #retry: NodeJS.Timeout | undefined;
  /** Resolves when the refill scheduled by a take has started (or the pool closed). */
  #scheduled: Promise<void> | undefined;
  #startScheduled: (() => void) | undefined;
  #lastWarning: string | undefined;

  private constructor(
    private readonly tpm: AttestorTpm,
    readonly dir: string,
    readonly size: KeyPoolSize,
    private readonly opts: KeyPoolOptions,
  ) {}

  /**
   * Opens the pool in `dir` (created 0700): the keys kept there by an earlier run are ready at
   * once; unreadable files and leftovers of interrupted writes are removed. Call `start()` to refill.
   */
  static async open(tpm: AttestorTpm, dir: string, size: KeyPoolSize, opts: KeyPoolOptions = {}): Promise<KeyPool> {
    const pool = new KeyPool(tpm, dir, size, opts);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    for (const name of (await readdir(dir)).sort()) {
      const file = join(dir, name);
      if (isLeftoverTemp(name)) {
        await unlink(file).catch(() => undefined);
        continue;
      }
      if (!name.endsWith('.json')) continue;
      let key: UncertifiedKey;
      try {
        key = decode(await readFile(file, 'utf8'));
      } catch (e) {
        opts.warn?.(`key pool: removed ${name}, which is not a pooled key (${(e as Error).message})`);
        await unlink(file).catch(() => undefined);
        continue;
      }
      pool.#list(key.kind, key.key.keyType).push({ file, key });
    }
    return pool;
  }

  /** Keys of `kind` and `keyType` ready now. */
  count(kind: 'ak' | 'key', keyType: KeyType): number {
    return this.#list(kind, keyType).length;
  }

  /** Start refilling in the background (no-op when nothing is missing). */
  start(): void {
    if (this.#closed || this.#refilling !== undefined) return;
    this.#refilling = this.#refill().then((ok) => {
      this.#refilling = undefined;
      // A key taken after the last check: go on (after a failure the retry timer does).
      if (ok && !this.#closed && this.#missing() !== undefined) this.start();
    });
  }

  /**
   * A pooled key of `kind` and `keyType`, or undefined when there is none. The key is claimed at
   * once; its file's removal runs in the background (see TakenKey.removed), so the caller's TPM
   * work does not wait for the disk.
   */
  take(kind: 'ak' | 'key', keyType: KeyType): TakenKey | undefined {
    const got = this.#list(kind, keyType).shift();
    // Refill a little later: the caller's flow is queued first (it never waits behind the Create
    // that replaces its key), and its key-store write and response do not compete for the CPU and
    // the disk with key generation (seconds of CPU for RSA on swtpm).
    if (this.#scheduled === undefined && !this.#closed) {
      clearTimeout(this.#retry); // a failure's retry: this one comes sooner
      this.#scheduled = new Promise<void>((resolve) => {
        this.#startScheduled = () => {
          clearTimeout(this.#retry);
          this.#scheduled = undefined;
          this.#startScheduled = undefined;
          this.start();
          resolve();
        };
        this.#retry = setTimeout(this.#startScheduled, this.opts.refillDelayMs ?? 250);
        this.#retry.unref();
      });
    }
    if (got === undefined) return undefined;
    const removed = (async () => {
      try {
        await unlink(got.file);
      } catch (e) {
        const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'it was removed by someone else' : (e as Error).message;
        throw new Error(`key pool: cannot remove ${got.file} (${why}): that key is not handed out`, { cause: e });
      }
      await fsyncDir(this.dir);
    })();
    removed.catch(() => undefined); // the caller awaits it; never an unhandled rejection meanwhile
    return { key: got.key, removed };
  }

  /** Stops refilling (a Create in flight finishes; the keys on disk stay for the next run). */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#startScheduled?.(); // start() is a no-op now; releases filled()
    await this.#refilling?.catch(() => undefined);
  }

  /** Resolves when the pool is full (tests, the benchmark) or refilling stopped on an error. */
  async filled(): Promise<void> {
    while (this.#scheduled !== undefined || this.#refilling !== undefined) await (this.#scheduled ?? this.#refilling);
  }

  #list(kind: 'ak' | 'key', keyType: KeyType): Pooled[] {
    const id = `${kind}-${keyType}`;
    let l = this.#ready.get(id);
    if (!l) this.#ready.set(id, (l = []));
    return l;
  }

  /** The kind and type with the fewest keys ready below its target, or undefined when the pool is full. */
  #missing(): { kind: 'ak' | 'key'; keyType: KeyType } | undefined {
    let best: { kind: 'ak' | 'key'; keyType: KeyType; have: number } | undefined;
    for (const keyType of TYPES) {
      for (const kind of KINDS) {
        const have = this.count(kind, keyType);
        if (have < this.size[keyType] && (best === undefined || have < best.have)) best = { kind, keyType, have };
      }
    }
    return best;
  }

  /** Creates keys until the pool is full (true) or one failed (false: a retry is scheduled). */
  async #refill(): Promise<boolean> {
    for (let m = this.#missing(); m !== undefined && !this.#closed; m = this.#missing()) {
      try {
        const key = await this.tpm.createUncertified(m.kind, m.keyType, { identity: BACKGROUND, method: 'KeyPool' });
        const file = join(this.dir, `${m.kind}-${m.keyType}-${randomBytes(8).toString('hex')}.json`);
        await writeNewFile(this.dir, file, encode(key));
        this.#list(m.kind, m.keyType).push({ file, key });
        this.#lastWarning = undefined;
      } catch (e) {
        if (this.#closed) return false;
        const message = `key pool: creating an ${m.keyType.toUpperCase()} ${m.kind === 'ak' ? 'AK' : 'signing key'} ahead of need failed: ${(e as Error).message}; retrying`;
        if (message !== this.#lastWarning) this.opts.warn?.(message);
        this.#lastWarning = message;
        // Try again later (not in a loop against a TPM that is down).
        this.#retry = setTimeout(() => this.start(), this.opts.retryMs ?? 5000);
        this.#retry.unref();
        return false;
      }
    }
    return true;
  }
}

const b64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
const unb64 = (v: unknown, field: string): Uint8Array => {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) throw new Error(`bad ${field}`);
  return new Uint8Array(Buffer.from(v, 'base64'));
};

function encode(k: UncertifiedKey): string {
  return (
    JSON.stringify({
      format: FORMAT,
      kind: k.kind,
      keyType: k.key.keyType,
      parent: k.key.parent,
      public: b64(marshal(TPM2B_PUBLIC, k.key.public)),
      private: b64(marshal(TPM2B_PRIVATE, k.key.private)),
      creationData: b64(k.creationData),
      creationHash: b64(k.creationHash),
      creationTicket: b64(marshal(TPMT_TK_CREATION, k.creationTicket)),
    }) + '\n'
  );
}

function decode(text: string): UncertifiedKey {
  const o = JSON.parse(text) as Record<string, unknown>;
  if (o['format'] !== FORMAT) throw new Error(`format is not ${FORMAT}`);
  const kind = o['kind'];
  const keyType = o['keyType'];
  if (kind !== 'ak' && kind !== 'key') throw new Error('bad kind');
  if (keyType !== 'rsa' && keyType !== 'ecc') throw new Error('bad keyType');
  if (o['parent'] !== 'srk') throw new Error('bad parent');
  return {
    kind,
    key: { keyType, parent: 'srk', public: unmarshal(TPM2B_PUBLIC, unb64(o['public'], 'public')), private: unmarshal(TPM2B_PRIVATE, unb64(o['private'], 'private')) },
    creationData: unb64(o['creationData'], 'creationData'),
    creationHash: unb64(o['creationHash'], 'creationHash'),
    creationTicket: unmarshal(TPMT_TK_CREATION, unb64(o['creationTicket'], 'creationTicket')),
  };
}
