// Issue 12, the key pool: keys and AKs made ahead of need, refilled after NewKey/GetAK, kept on
// disk across restarts; --key-pool parsing.
import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TPM_CC, publicToSpkiDer } from '@tpmds/tpm2-wire';
import { startSwtpm, type SwtpmInstance } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { ConfigError } from '../src/errors.js';
import { KeyPool, parseKeyPool } from '../src/key-pool.js';
import { KeyStore } from '../src/keystore.js';
import { TpmBackend } from '../src/tpm-backend.js';
import { AttestorTpm } from '../src/tpm/attestor-tpm.js';
import { parseArgs } from '../src/config.js';
import { tempDir } from './helpers.js';

describe('--key-pool', () => {
  it('parses rsa=N,ecc=M (either may be left out; 0 disables) and names the flag otherwise', () => {
    assert.deepEqual(parseKeyPool('--key-pool', 'rsa=2,ecc=4'), { rsa: 2, ecc: 4 });
    assert.deepEqual(parseKeyPool('--key-pool', 'ecc=1'), { rsa: 0, ecc: 1 });
    assert.deepEqual(parseKeyPool('--key-pool', '0'), { rsa: 0, ecc: 0 });
    for (const bad of ['rsa=x', 'dsa=1', 'rsa=1,rsa=2', 'rsa=65', 'rsa=1;ecc=2']) {
      assert.throws(() => parseKeyPool('--key-pool', bad), (e: unknown) => e instanceof ConfigError && e.flag === '--key-pool', bad);
    }
    const r = parseArgs(['--insecure', '--key-pool', 'rsa=1,ecc=3'], {}, '0');
    assert.equal(r.kind === 'run' && r.config.keyPool, 'rsa=1,ecc=3');
    assert.throws(() => parseArgs(['--insecure'], { TPMDS_KEY_POOL: 'rsa=many' }, '0'), /--key-pool|TPMDS_KEY_POOL/);
  });
});

describe('key pool @swtpm', function () {
  this.timeout(240_000);
  let swtpm: SwtpmInstance;
  let state: ReturnType<typeof tempDir>;

  before(async () => {
    swtpm = await startSwtpm({ transport: 'unix' });
    state = tempDir();
  });
  after(async () => {
    await swtpm?.stop();
    state?.cleanup();
  });

  it('fills in the background, NewKey and a first GetAK take a pooled key, the pool refills, and it survives a restart', async () => {
    const poolDir = join(state.dir, 'pool');
    const files = (): string[] => readdirSync(poolDir).filter((n) => n.endsWith('.json')).sort();
    const privateOf = (name: string): string => (JSON.parse(readFileSync(join(poolDir, name), 'utf8')) as { private: string }).private;
    const store = await KeyStore.open(state.dir);
    const commands: number[] = [];
    let tpm = new AttestorTpm(swtpm.address, { onCommand: (cc) => commands.push(cc) });
    let pool = await KeyPool.open(tpm, poolDir, { rsa: 1, ecc: 1 });
    try {
      pool.start();
      await pool.filled();
      assert.deepEqual(files().map((n) => n.replace(/-[0-9a-f]{16}\.json$/, '')), ['ak-ecc', 'ak-rsa', 'key-ecc', 'key-rsa']);
      // Each refill flow is one TPM2_Create (plus the SRK's CreatePrimary the first time).
      assert.equal(commands.filter((c) => c === TPM_CC.Create).length, 4);

      const backend = new TpmBackend(tpm, store, { pool });
      const before = new Map(files().map((n) => [n, privateOf(n)]));
      await backend.getAK('', 'u', 'ecc');
      await backend.newKey('', 'u', 'k', 'rsa');
      const taken = [...before.keys()].filter((n) => !files().includes(n));
      assert.deepEqual(taken.map((n) => n.slice(0, 7)).sort(), ['ak-ecc-', 'key-rsa']);
      const akRecord = await store.get({ identity: '', uid: 'u' });
      const keyRecord = await store.get({ identity: '', uid: 'u', kid: 'k' });
      const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
      assert.equal(b64(akRecord.private), before.get(taken.find((n) => n.startsWith('ak-')) as string), 'the AK is the pooled one');
      assert.equal(b64(keyRecord.private), before.get(taken.find((n) => n.startsWith('key-')) as string), 'the key is the pooled one');
      const sig = await backend.sign('', 'u', 'k', new Uint8Array([1, 2, 3]));
      const spki = (await backend.newKey('', 'u', 'k2', 'rsa')).publicKey;
      assert.ok(spki.length > 0);
      const pub = createPublicKey({ key: Buffer.from(publicToSpkiDer((await import('@tpmds/tpm2-wire')).unmarshal((await import('@tpmds/tpm2-wire')).TPM2B_PUBLIC, keyRecord.public))), format: 'der', type: 'spki' });
      assert.ok(verify('sha256', new Uint8Array([1, 2, 3]), pub, Buffer.from(sig)), 'the pooled key signs');
      // Refilled in the background.
      await pool.filled(); // including the refill a take scheduled
      assert.equal(files().length, 4);
    } finally {
      await pool.close();
      await tpm.close();
    }

    // A restart: the keys on disk are ready before any refill, and they load on the new TPM connection.
    const kept = files();
    writeFileSync(join(poolDir, 'key-ecc-garbage.json'), '{"format":"nope"}');
    const warnings: string[] = [];
    tpm = new AttestorTpm(swtpm.address);
    pool = await KeyPool.open(tpm, poolDir, { rsa: 1, ecc: 1 }, { warn: (m) => warnings.push(m) });
    try {
      assert.deepEqual(files(), kept, 'the unreadable file was removed');
      assert.match(warnings.join('\n'), /removed key-ecc-garbage\.json, which is not a pooled key/);
      for (const kind of ['ak', 'key'] as const) for (const t of ['rsa', 'ecc'] as const) assert.equal(pool.count(kind, t), 1);
      const backend = new TpmBackend(tpm, store, { pool });
      await backend.getAK('', 'v', 'rsa');
      await backend.newKey('', 'v', 'k', 'ecc');
      await backend.sign('', 'v', 'k', new Uint8Array([4]));
      await pool.filled(); // including the refill a take scheduled
      assert.equal(files().length, 4, 'taking a key starts the refill');
    } finally {
      await pool.close();
      await tpm.close();
    }
  });

  it('a pooled NewKey or first GetAK runs no TPM2_Create or CreatePrimary, and writes its record only after the pool file is gone', async () => {
    const dir = tempDir();
    try {
      const poolDir = join(dir.dir, 'pool');
      const files = (): string[] => readdirSync(poolDir).filter((n) => n.endsWith('.json'));
      const store = await KeyStore.open(dir.dir);
      const commands: number[] = [];
      const tpm = new AttestorTpm(swtpm.address, { onCommand: (cc) => commands.push(cc) });
      // The refill a take schedules is put off far beyond the test: every command below is the calls'.
      const pool = await KeyPool.open(tpm, poolDir, { rsa: 1, ecc: 1 }, { refillDelayMs: 3_600_000 });
      try {
        pool.start();
        await pool.filled(); // makes the SRK too
        // When a record is written, the pool file of its key must be gone already (a crash then
        // leaves the key in the store only, never in both).
        const poolFileOf = new Map(files().map((n) => [(JSON.parse(readFileSync(join(poolDir, n), 'utf8')) as { private: string }).private, n]));
        const written: string[] = [];
        const create = store.create.bind(store);
        store.create = async (ref, record) => {
          const file = poolFileOf.get(Buffer.from(record.private).toString('base64'));
          assert.ok(file !== undefined, 'the record holds a pooled key');
          assert.ok(!files().includes(file), `${file} is still in the pool when the record of ${ref.uid}/${ref.kid ?? 'AK'} is written`);
          written.push(file);
          return create(ref, record);
        };
        const backend = new TpmBackend(tpm, store, { pool });
        commands.length = 0;
        await backend.getAK('', 'u', 'rsa');
        await backend.newKey('', 'u', 'k', 'ecc');
        await backend.getAK('', 'v', 'ecc');
        await backend.newKey('', 'v', 'k', 'rsa');
        assert.equal(written.length, 4);
        assert.equal(commands.filter((c) => c === TPM_CC.Create || c === TPM_CC.CreatePrimary).length, 0, 'no key created on the request path');
        assert.deepEqual(files(), [], 'every pooled key taken');
        // The pool is empty now (its refill is far off): the next NewKey creates its key.
        store.create = create;
        await backend.newKey('', 'u', 'k2', 'ecc');
        assert.equal(commands.filter((c) => c === TPM_CC.Create).length, 1);
      } finally {
        await pool.close();
        await tpm.close();
      }
    } finally {
      dir.cleanup();
    }
  });

  it('a pooled key whose file someone else removed is not handed out: the key is created instead', async () => {
    const dir = tempDir();
    try {
      const poolDir = join(dir.dir, 'pool');
      const store = await KeyStore.open(dir.dir);
      const tpm = new AttestorTpm(swtpm.address);
      const pool = await KeyPool.open(tpm, poolDir, { rsa: 0, ecc: 1 }, { refillDelayMs: 3_600_000 });
      const warnings: string[] = [];
      try {
        pool.start();
        await pool.filled();
        const [name] = readdirSync(poolDir).filter((n) => n.startsWith('key-ecc-'));
        const pooledPrivate = (JSON.parse(readFileSync(join(poolDir, name as string), 'utf8')) as { private: string }).private;
        unlinkSync(join(poolDir, name as string)); // another process (sharing the state directory) took it
        const backend = new TpmBackend(tpm, store, { pool, warn: (m) => warnings.push(m) });
        await backend.getAK('', 'u', 'ecc');
        await backend.newKey('', 'u', 'k', 'ecc');
        const record = await store.get({ identity: '', uid: 'u', kid: 'k' });
        assert.notEqual(Buffer.from(record.private).toString('base64'), pooledPrivate, 'not the key another process may have handed out');
        assert.match(warnings.join('\n'), /a pooled ECC signing key cannot be handed out: .*removed by someone else.*creating one now/);
      } finally {
        await pool.close();
        await tpm.close();
      }
    } finally {
      dir.cleanup();
    }
  });

  it('an empty pool falls back to creating the key; a pooled key that no longer loads is dropped and the key created', async () => {
    const dir = tempDir();
    try {
      const store = await KeyStore.open(dir.dir);
      const tpm = new AttestorTpm(swtpm.address);
      const pool = await KeyPool.open(tpm, join(dir.dir, 'pool'), { rsa: 0, ecc: 1 });
      const warnings: string[] = [];
      const backend = new TpmBackend(tpm, store, { pool, warn: (m) => warnings.push(m) });
      try {
        await backend.getAK('', 'u', 'ecc'); // empty pool: created on the request path
        await backend.newKey('', 'u', 'k', 'rsa');
        pool.start();
        await pool.filled();
        // Corrupt the pooled key's private blob on disk, then re-open: it no longer loads under the SRK.
        await pool.close();
        const poolDir = join(dir.dir, 'pool');
        for (const n of readdirSync(poolDir).filter((x) => x.startsWith('key-ecc'))) {
          const o = JSON.parse(readFileSync(join(poolDir, n), 'utf8')) as { private: string };
          const bytes = Buffer.from(o.private, 'base64');
          bytes[bytes.length - 1] ^= 1;
          o.private = bytes.toString('base64');
          writeFileSync(join(poolDir, n), JSON.stringify(o));
        }
        const reopened = await KeyPool.open(tpm, poolDir, { rsa: 0, ecc: 1 });
        const b2 = new TpmBackend(tpm, store, { pool: reopened, warn: (m) => warnings.push(m) });
        await b2.newKey('', 'u', 'k2', 'ecc');
        await b2.sign('', 'u', 'k2', new Uint8Array([1]));
        assert.match(warnings.join('\n'), /a pooled ECC signing key no longer loads/);
        await reopened.close();
      } finally {
        await pool.close();
        await tpm.close();
      }
    } finally {
      dir.cleanup();
    }
  });
});
