// Key records under --state-dir: TPM-wrapped blobs only (TPM2B_PUBLIC + TPM2B_PRIVATE, which the
// TPM alone can load), never plaintext keys. One file per AK (ak/<uid>.json) and per key
// (keys/<uid>/<kid>.json), inside the caller identity's namespace: the store root for the empty
// identity of --auth none (the layout of stores written before caller identity existed, read as
// they are), else ids/<readable prefix>-<sha256 of the identity, 32 hex>/ (see namespaceDir). Writes are atomic and exclusive: the record goes to a temp file in the
// same directory (fsync), is hard-linked to its name (fails if the name exists, so two creators
// cannot both win), and the directory is fsynced. Temp names start with "." and can never be a
// record name (ids start with a letter or digit).
import { constants as fsc } from 'node:fs';
import { chmod, link, lstat, mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { AttestorError } from './errors.js';
import { KeyQuota } from './limits.js';
import type { KeyType } from './validate.js';
import { checkId } from './validate.js';

/** A record's name: the AK of `uid`, or the key `kid` of `uid`, of caller `identity`. */
export interface KeyRef {
  /** The caller identity whose namespace holds the record ('' for --auth none). */
  identity: string;
  uid: string;
  kid?: string;
}

/** A map key for a record's name: distinct for every identity/uid/kid triple. */
export function refKey(identity: string, uid: string, kid?: string): string {
  return JSON.stringify([identity, uid, kid ?? null]);
}

/**
 * The folder (relative to the store) of an identity's records: '' for the empty identity; else
 * `ids/<prefix>-<hash>` where the hash (SHA-256, 128 bits in hex) makes it collision-free and
 * the prefix (the identity's first 40 characters of [A-Za-z0-9._-], others as "_") readable.
 */
export function namespaceDir(identity: string): string {
  if (identity === '') return '';
  const hash = createHash('sha256').update(identity, 'utf8').digest('hex').slice(0, 32);
  const prefix = identity.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 40).replace(/^\.+/, '_');
  return join('ids', `${prefix}-${hash}`);
}

/** Public creation/certification evidence kept with a key (no secrets). */
export interface KeyEvidence {
  /** TPMS_CREATION_DATA, or null. */
  createData: Uint8Array | null;
  /** TPMS_ATTEST from TPM2_CertifyCreation / TPM2_Certify. */
  createAttestation: Uint8Array | null;
  /** TPMT_SIGNATURE over createAttestation. */
  createSignature: Uint8Array | null;
}

/** What is stored for one key. */
export interface KeyRecord {
  /** The caller identity that owns the key ('' for --auth none). */
  identity: string;
  uid: string;
  /** Absent for an AK. */
  kid?: string;
  keyType: KeyType;
  /** Which parent the private blob is wrapped to, e.g. "srk-rsa" or "ek-ecc". */
  parent: string;
  /** TPM2B_PUBLIC, with its size prefix. */
  public: Uint8Array;
  /** TPM2B_PRIVATE, with its size prefix (sealed to the parent: useless without this TPM). */
  private: Uint8Array;
  /** When the record was created. */
  created: Date;
  evidence?: KeyEvidence;
  /** The PCR policy an imported key is bound to (its bank and PCR indices). */
  pcrPolicy?: { hash: number; pcrs: number[] };
}

/** The input of {@link KeyStore.create}: uid/kid come from the ref, `created` defaults to now. */
export type NewKeyRecord = Omit<KeyRecord, 'identity' | 'uid' | 'kid' | 'created'> & { created?: Date };

const FORMAT = 'tpmds.key/v1';
const TEMP_PREFIX = '.tmp-';
const MAX_RECORD_BYTES = 1 << 20;

/** Options of {@link KeyStore.open}. */
export interface KeyStoreOptions {
  /**
   * At open, leftover temp files of interrupted writes are removed: those of this process id or
   * of processes that are gone at once, those of another running process once older than this
   * (default 60 s).
   */
  tempMaxAgeMs?: number;
  /** Most records (AKs + keys) one identity may have; 0 (default) for no limit (--max-keys-per-identity). */
  maxRecordsPerIdentity?: number;
}

/** The on-disk key store. */
export class KeyStore {
  /** Problems found and fixed at open (e.g. a too-open directory mode), for the log. */
  readonly warnings: string[] = [];

  /** The per-identity record quota (RESOURCE_EXHAUSTED when full). */
  readonly quota: KeyQuota;

  private constructor(
    readonly dir: string,
    maxRecordsPerIdentity: number,
  ) {
    this.quota = new KeyQuota(maxRecordsPerIdentity, (identity) => this.countRecords(identity));
  }

  /** Opens (creating with mode 0700) the store at `stateDir` and removes stale temp files. */
  static async open(stateDir: string, options: KeyStoreOptions = {}): Promise<KeyStore> {
    const store = new KeyStore(resolve(stateDir), options.maxRecordsPerIdentity ?? 0);
    await mkdir(store.dir, { recursive: true, mode: 0o700 });
    const st = await stat(store.dir);
    if (!st.isDirectory()) throw new AttestorError('FAILED_PRECONDITION', `state directory ${store.dir} is not a directory`);
    if ((st.mode & 0o077) !== 0) {
      await chmod(store.dir, 0o700);
      store.warnings.push(`state directory mode was ${(st.mode & 0o777).toString(8)}, set to 700`);
    }
    await mkdir(join(store.dir, 'ak'), { recursive: true, mode: 0o700 });
    await mkdir(join(store.dir, 'keys'), { recursive: true, mode: 0o700 });
    const removed = await store.#cleanTemp(options.tempMaxAgeMs ?? 60_000);
    if (removed > 0) store.warnings.push(`removed ${removed} leftover temp file(s) of interrupted writes`);
    return store;
  }

  /**
   * Creates a record; ALREADY_EXISTS when one exists (never overwrites), RESOURCE_EXHAUSTED when
   * the identity's quota is used up.
   */
  async create(ref: KeyRef, record: NewKeyRecord): Promise<KeyRecord> {
    const release = await this.quota.reserve(ref.identity);
    let written = false;
    try {
      const r = await this.#create(ref, record);
      written = true;
      return r;
    } catch (e) {
      throw storageError(e, `cannot write ${describe(ref)}`);
    } finally {
      release(written);
    }
  }

  async #create(ref: KeyRef, record: NewKeyRecord): Promise<KeyRecord> {
    const full: KeyRecord = { ...record, identity: ref.identity, uid: ref.uid, created: record.created ?? new Date() };
    if (ref.kid !== undefined) full.kid = ref.kid;
    const { dir, file } = this.#paths(ref);
    // The first record of a uid (or of an identity) makes its directories: their names must reach
    // the disk too (fsync of each parent), which happens while the record is written.
    const made = await mkdir(dir, { recursive: true, mode: 0o700 });
    const data = new TextEncoder().encode(JSON.stringify(serialize(full)) + '\n');
    try {
      await Promise.all([writeNewFile(dir, file, data), made === undefined ? undefined : fsyncParents(dir, made)]);
    } catch (e) {
      if (errno(e) === 'EEXIST') throw new AttestorError('ALREADY_EXISTS', `${describe(ref)} already exists`);
      throw e;
    }
    return full;
  }

  /** Reads a record: NOT_FOUND when absent, DATA_LOSS when the file is not a valid record. */
  async get(ref: KeyRef): Promise<KeyRecord> {
    const { file, name } = this.#paths(ref);
    let text: string;
    try {
      const fh = await open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
      try {
        const st = await fh.stat();
        if (!st.isFile()) throw corrupt(name, 'not a regular file');
        if (st.size > MAX_RECORD_BYTES) throw corrupt(name, `${st.size} bytes, larger than any key record`);
        text = await fh.readFile('utf8');
      } finally {
        await fh.close();
      }
    } catch (e) {
      if (e instanceof AttestorError) throw e;
      const code = errno(e);
      if (code === 'ENOENT') throw new AttestorError('NOT_FOUND', `${describe(ref)} does not exist`);
      if (code === 'ELOOP') throw corrupt(name, 'is a symbolic link');
      if (code === 'EISDIR') throw corrupt(name, 'not a regular file');
      throw e;
    }
    return parseRecord(text, ref, name);
  }

  /** Whether a record exists (a corrupt one counts as existing). */
  async has(ref: KeyRef): Promise<boolean> {
    const { file } = this.#paths(ref);
    try {
      await lstat(file);
      return true;
    } catch (e) {
      if (errno(e) === 'ENOENT') return false;
      throw e;
    }
  }

  /** Removes a record; NOT_FOUND when absent. */
  async delete(ref: KeyRef): Promise<void> {
    const { dir, file } = this.#paths(ref);
    try {
      await unlink(file);
    } catch (e) {
      if (errno(e) === 'ENOENT') throw new AttestorError('NOT_FOUND', `${describe(ref)} does not exist`);
      throw e;
    }
    await this.quota.released(ref.identity);
    await fsyncDir(dir);
  }

  /**
   * Why records cannot be written now (the state directory is read-only, full, or gone), or null:
   * writes and removes a probe file the size of a record. For the readiness check.
   */
  async writeProblem(): Promise<string | null> {
    const tmp = join(this.dir, `${TEMP_PREFIX}${process.pid}-probe-${randomBytes(4).toString('hex')}`);
    try {
      const fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
      try {
        await fh.writeFile(new Uint8Array(PROBE_BYTES));
      } finally {
        await fh.close();
      }
      return null;
    } catch (e) {
      const mapped = storageError(e, `state directory ${this.dir}`);
      return mapped instanceof AttestorError ? mapped.message : `state directory ${this.dir}: ${(e as Error).message}`;
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }

  /** How many records (AKs + keys) `identity` has. */
  async countRecords(identity: string): Promise<number> {
    const root = join(this.dir, namespaceDir(identity));
    const records = (names: string[]): number => names.filter((n) => !n.startsWith('.') && n.endsWith('.json')).length;
    let n = records(await readdir(join(root, 'ak')).catch(() => [] as string[]));
    for (const uid of await readdir(join(root, 'keys')).catch(() => [] as string[])) {
      if (!uid.startsWith('.')) n += records(await readdir(join(root, 'keys', uid)).catch(() => [] as string[]));
    }
    return n;
  }

  /** The kids of uid's keys in `identity`'s namespace, sorted. */
  async listKeys(identity: string, uid: string): Promise<string[]> {
    checkId('uid', uid);
    const dir = this.#contained(join(this.dir, namespaceDir(identity), 'keys', uid));
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (e) {
      if (errno(e) === 'ENOENT') return [];
      throw e;
    }
    return names
      .filter((n) => !n.startsWith('.') && n.endsWith('.json'))
      .map((n) => n.slice(0, -'.json'.length))
      .sort();
  }

  #paths(ref: KeyRef): { dir: string; file: string; name: string } {
    checkId('uid', ref.uid);
    const ns = namespaceDir(ref.identity);
    if (ref.kid === undefined) {
      const name = join(ns, `ak/${ref.uid}.json`);
      return { dir: this.#contained(join(this.dir, ns, 'ak')), file: this.#contained(join(this.dir, name)), name };
    }
    checkId('kid', ref.kid);
    const name = join(ns, `keys/${ref.uid}/${ref.kid}.json`);
    return { dir: this.#contained(join(this.dir, ns, 'keys', ref.uid)), file: this.#contained(join(this.dir, name)), name };
  }

  /** Defence in depth behind the id checks: a path must stay inside the store. */
  #contained(path: string): string {
    const full = resolve(path);
    const rel = relative(this.dir, full);
    if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
      throw new AttestorError('INVALID_ARGUMENT', 'uid/kid resolves outside the key store');
    }
    return full;
  }

  async #cleanTemp(maxAgeMs: number): Promise<number> {
    const roots = [this.dir];
    for (const ns of await readdir(join(this.dir, 'ids')).catch(() => [] as string[])) {
      if (!ns.startsWith('.')) roots.push(join(this.dir, 'ids', ns));
    }
    const dirs: string[] = [this.dir];
    for (const root of roots) {
      dirs.push(join(root, 'ak'), join(root, 'keys'));
      for (const uid of await readdir(join(root, 'keys')).catch(() => [] as string[])) {
        if (!uid.startsWith('.')) dirs.push(join(root, 'keys', uid));
      }
    }
    let removed = 0;
    const now = Date.now();
    for (const dir of dirs) {
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        if (!name.startsWith(TEMP_PREFIX)) continue;
        const path = join(dir, name);
        const st = await lstat(path).catch(() => null);
        if (st === null || !st.isFile()) continue;
        // A temp file of a live writer other than us is left alone until it is old (another
        // process on the same directory); ours cannot exist yet, and a dead writer's is garbage.
        if (now - st.mtimeMs < maxAgeMs && writerAlive(name)) continue;
        await unlink(path).then(
          () => removed++,
          () => undefined,
        );
      }
    }
    return removed;
  }
}

/**
 * Writes `data` to the new file `file` in `dir`, durably and all at once: a temp file
 * (`.tmp-<pid>-...`), fsynced, hard-linked to its name (EEXIST when that exists: never
 * overwrites), the directory fsynced. A crash leaves the whole file or none, and at most a temp
 * file that the next start removes. The key store's records and the key pool's keys are written so.
 */
export async function writeNewFile(dir: string, file: string, data: Uint8Array | string): Promise<void> {
  const tmp = join(dir, `${TEMP_PREFIX}${process.pid}-${randomBytes(8).toString('hex')}`);
  try {
    const fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await link(tmp, file);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  await fsyncDir(dir);
}

/** Whether `name` is a temp file of {@link writeNewFile} left by an interrupted write (its writer is gone, or is this process). */
export function isLeftoverTemp(name: string): boolean {
  return name.startsWith(TEMP_PREFIX) && !writerAlive(name);
}

/** Whether the process named in a temp file's name (`.tmp-<pid>-...`) is running and is not this one. */
function writerAlive(name: string): boolean {
  const pid = Number(/^\.tmp-(\d+)-/.exec(name)?.[1]);
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errno(e) === 'EPERM'; // alive, another user's
  }
}

/** A record file is about 1-3 KiB: the readiness probe writes this much. */
const PROBE_BYTES = 4096;

/**
 * A file-system error as the caller's status: a read-only or unwritable state directory is
 * FAILED_PRECONDITION, a full one RESOURCE_EXHAUSTED (the operator must act; nothing existing is
 * touched). Other errors pass unchanged.
 */
function storageError(e: unknown, what: string): unknown {
  switch (errno(e)) {
    case 'EROFS':
      return new AttestorError('FAILED_PRECONDITION', `${what}: the state directory is on a read-only file system`, { cause: e });
    case 'EACCES':
    case 'EPERM':
      return new AttestorError('FAILED_PRECONDITION', `${what}: the state directory is not writable by the attestor`, { cause: e });
    case 'ENOSPC':
    case 'EDQUOT':
      return new AttestorError('RESOURCE_EXHAUSTED', `${what}: the state directory's file system is full`, { cause: e });
    default:
      return e;
  }
}

// The caller's own view: never names the identity (a caller only ever sees its own namespace).
function describe(ref: KeyRef): string {
  return ref.kid === undefined ? `the AK of uid "${ref.uid}"` : `key "${ref.kid}" of uid "${ref.uid}"`;
}

function corrupt(name: string, problem: string): AttestorError {
  return new AttestorError(
    'DATA_LOSS',
    `key record ${name} in the state directory is unreadable (${problem}); the key is lost: remove the file and create the key again`,
  );
}

function errno(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}

/** fsync of the parents of the directories mkdir just made: `first` (the topmost made) down to `dir`. */
async function fsyncParents(dir: string, first: string): Promise<void> {
  for (let d = dirname(dir); ; d = dirname(d)) {
    await fsyncDir(d);
    if (d === dirname(first) || d === dirname(d)) return;
  }
}

/** fsync of a directory: its entries (names created, linked or removed in it) are on disk. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

const b64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
const b64OrNull = (b: Uint8Array | null): string | null => (b === null ? null : b64(b));

function serialize(r: KeyRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {
    format: FORMAT,
    ...(r.identity === '' ? {} : { identity: r.identity }),
    uid: r.uid,
    ...(r.kid === undefined ? {} : { kid: r.kid }),
    keyType: r.keyType,
    parent: r.parent,
    created: r.created.toISOString(),
    public: b64(r.public),
    private: b64(r.private),
  };
  if (r.evidence !== undefined) {
    out['evidence'] = {
      createData: b64OrNull(r.evidence.createData),
      createAttestation: b64OrNull(r.evidence.createAttestation),
      createSignature: b64OrNull(r.evidence.createSignature),
    };
  }
  if (r.pcrPolicy !== undefined) out['pcrPolicy'] = { hash: r.pcrPolicy.hash, pcrs: [...r.pcrPolicy.pcrs] };
  return out;
}

function parseRecord(text: string, ref: KeyRef, name: string): KeyRecord {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw corrupt(name, text.length === 0 ? 'empty file' : 'truncated or not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw corrupt(name, 'not a JSON object');
  const o = v as Record<string, unknown>;
  if (o['format'] !== FORMAT) throw corrupt(name, `format is not ${FORMAT}`);
  if (o['uid'] !== ref.uid || o['kid'] !== ref.kid) throw corrupt(name, 'uid/kid inside do not match the file name');
  if ((o['identity'] ?? '') !== ref.identity) throw corrupt(name, 'the identity inside does not match its folder');
  const keyType = o['keyType'];
  if (keyType !== 'rsa' && keyType !== 'ecc') throw corrupt(name, 'bad keyType');
  const parent = o['parent'];
  if (typeof parent !== 'string' || parent === '') throw corrupt(name, 'bad parent');
  const created = new Date(typeof o['created'] === 'string' ? o['created'] : NaN);
  if (Number.isNaN(created.getTime())) throw corrupt(name, 'bad created time');
  const bytes = (value: unknown, field: string, nullable: boolean): Uint8Array | null => {
    if (value === null && nullable) return null;
    if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) {
      throw corrupt(name, `bad ${field}`);
    }
    return new Uint8Array(Buffer.from(value, 'base64'));
  };
  const pub = bytes(o['public'], 'public', false) as Uint8Array;
  const priv = bytes(o['private'], 'private', false) as Uint8Array;
  if (pub.length === 0 || priv.length === 0) throw corrupt(name, 'empty key blob');
  const record: KeyRecord = { identity: ref.identity, uid: ref.uid, keyType, parent, public: pub, private: priv, created };
  if (ref.kid !== undefined) record.kid = ref.kid;
  const ev = o['evidence'];
  if (ev !== undefined) {
    if (typeof ev !== 'object' || ev === null) throw corrupt(name, 'bad evidence');
    const e = ev as Record<string, unknown>;
    record.evidence = {
      createData: bytes(e['createData'], 'evidence.createData', true),
      createAttestation: bytes(e['createAttestation'], 'evidence.createAttestation', true),
      createSignature: bytes(e['createSignature'], 'evidence.createSignature', true),
    };
  }
  const pp = o['pcrPolicy'];
  if (pp !== undefined) {
    const p = pp as Record<string, unknown> | null;
    const hash = p?.['hash'];
    const pcrs = p?.['pcrs'];
    if (typeof hash !== 'number' || !Array.isArray(pcrs) || !pcrs.every((i) => Number.isInteger(i) && i >= 0 && i < 24)) {
      throw corrupt(name, 'bad pcrPolicy');
    }
    record.pcrPolicy = { hash, pcrs: pcrs as number[] };
  }
  return record;
}
