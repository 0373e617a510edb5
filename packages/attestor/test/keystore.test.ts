import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, truncateSync, utimesSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { AttestorError } from '../src/errors.js';
import { KeyStore, namespaceDir } from '../src/keystore.js';
import type { NewKeyRecord } from '../src/keystore.js';
import { tempDir } from './helpers.js';

const record = (over: Partial<NewKeyRecord> = {}): NewKeyRecord => ({
  keyType: 'rsa',
  parent: 'srk-rsa',
  public: new Uint8Array([0, 4, 1, 2, 3, 4]),
  private: new Uint8Array([0, 3, 9, 9, 9]),
  ...over,
});

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AttestorError, String(e));
    return e.code;
  }
  return 'OK';
}

describe('attestor key store', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  it('creates the state directory with mode 0700 and tightens a too-open one', async () => {
    const dir = join(tmp.dir, 'state');
    const store = await KeyStore.open(dir);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.deepEqual(store.warnings, []);
    chmodSync(dir, 0o755);
    const again = await KeyStore.open(dir);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.match(again.warnings[0] ?? '', /mode was 755/);
  });

  it('stores and reads back AK and key records (0600 files, TPM blobs, evidence, PCR policy)', async () => {
    const store = await KeyStore.open(tmp.dir);
    const created = new Date('2024-01-02T03:04:05.000Z');
    const evidence = { createData: new Uint8Array([1]), createAttestation: new Uint8Array([2]), createSignature: null };
    await store.create({ identity: '', uid: 'pod-a' }, record({ evidence, created }));
    await store.create({ identity: '', uid: 'pod-a', kid: 'k.1' }, record({ keyType: 'ecc', parent: 'ek-ecc', pcrPolicy: { hash: 11, pcrs: [0, 7] } }));
    const ak = await store.get({ identity: '', uid: 'pod-a' });
    assert.deepEqual(ak, { identity: '', uid: 'pod-a', ...record(), evidence, created });
    const key = await store.get({ identity: '', uid: 'pod-a', kid: 'k.1' });
    assert.equal(key.kid, 'k.1');
    assert.equal(key.keyType, 'ecc');
    assert.deepEqual(key.pcrPolicy, { hash: 11, pcrs: [0, 7] });
    assert.equal(statSync(join(tmp.dir, 'ak/pod-a.json')).mode & 0o777, 0o600);
    assert.equal(statSync(join(tmp.dir, 'keys/pod-a/k.1.json')).mode & 0o777, 0o600);
    assert.deepEqual(await store.listKeys('', 'pod-a'), ['k.1']);
    assert.equal(await store.has({ identity: '', uid: 'pod-a' }), true);
    assert.equal(await store.has({ identity: '', uid: 'pod-b' }), false);
    // A new instance (an attestor restart) reads the same records.
    assert.deepEqual(await (await KeyStore.open(tmp.dir)).get({ identity: '', uid: 'pod-a' }), ak);
  });

  it('keeps each caller identity in its own namespace: same uid/kid, separate records; the empty identity is the pre-identity layout', async () => {
    const store = await KeyStore.open(tmp.dir);
    const a = 'system:serviceaccount:team-a:signer';
    const b = 'spiffe://example.org/ns/team-b/sa/signer';
    await store.create({ identity: '', uid: 'u', kid: 'k' }, record({ parent: 'legacy' }));
    await store.create({ identity: a, uid: 'u', kid: 'k' }, record({ parent: 'pa' }));
    await store.create({ identity: b, uid: 'u', kid: 'k' }, record({ parent: 'pb' }));
    assert.equal((await store.get({ identity: '', uid: 'u', kid: 'k' })).parent, 'legacy');
    assert.equal((await store.get({ identity: a, uid: 'u', kid: 'k' })).parent, 'pa');
    assert.equal((await store.get({ identity: b, uid: 'u', kid: 'k' })).parent, 'pb');
    assert.equal(await code(store.get({ identity: 'system:serviceaccount:team-c:x', uid: 'u', kid: 'k' })), 'NOT_FOUND');
    assert.deepEqual(await store.listKeys(a, 'u'), ['k']);
    assert.deepEqual(await store.listKeys('someone-else', 'u'), []);
    // the pre-identity layout is untouched; identities live under ids/<readable>-<hash>
    assert.ok(statSync(join(tmp.dir, 'keys/u/k.json')).isFile());
    assert.match(namespaceDir(a), /^ids\/system_serviceaccount_team-a_signer-[0-9a-f]{32}$/);
    assert.ok(statSync(join(tmp.dir, namespaceDir(a), 'keys/u/k.json')).isFile());
    assert.equal(JSON.parse(readFileSync(join(tmp.dir, namespaceDir(b), 'keys/u/k.json'), 'utf8')).identity, b);
    // collision-free even where the readable prefixes agree; never a hidden or escaping folder name
    assert.notEqual(namespaceDir('ns:a/b'), namespaceDir('ns:a_b'));
    for (const id of ['..', '../../etc', '.hidden', '/', 'x'.repeat(500)]) {
      const dir = namespaceDir(id);
      assert.match(dir, /^ids\/[A-Za-z0-9_-][A-Za-z0-9._-]{0,39}-[0-9a-f]{32}$/, id);
    }
  });

  it('a record moved into another identity\'s folder is DATA_LOSS, never served to that identity', async () => {
    const store = await KeyStore.open(tmp.dir);
    await store.create({ identity: 'alice', uid: 'u' }, record());
    await store.create({ identity: 'mallory', uid: 'x' }, record());
    const from = join(tmp.dir, namespaceDir('alice'), 'ak/u.json');
    writeFileSync(join(tmp.dir, namespaceDir('mallory'), 'ak/u.json'), readFileSync(from));
    assert.equal(await code(store.get({ identity: 'mallory', uid: 'u' })), 'DATA_LOSS');
  });

  it('create never overwrites (ALREADY_EXISTS); get/delete of a missing record is NOT_FOUND', async () => {
    const store = await KeyStore.open(tmp.dir);
    await store.create({ identity: '', uid: 'u' }, record());
    assert.equal(await code(store.create({ identity: '', uid: 'u' }, record({ parent: 'other' }))), 'ALREADY_EXISTS');
    assert.equal((await store.get({ identity: '', uid: 'u' })).parent, 'srk-rsa');
    assert.equal(await code(store.get({ identity: '', uid: 'v' })), 'NOT_FOUND');
    assert.equal(await code(store.get({ identity: '', uid: 'u', kid: 'k' })), 'NOT_FOUND');
    assert.equal(await code(store.delete({ identity: '', uid: 'v' })), 'NOT_FOUND');
    await store.delete({ identity: '', uid: 'u' });
    assert.equal(await code(store.get({ identity: '', uid: 'u' })), 'NOT_FOUND');
  });

  it('of many concurrent creates of one record exactly one wins, and no temp file is left', async () => {
    const a = await KeyStore.open(tmp.dir);
    const b = await KeyStore.open(tmp.dir);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => code((i % 2 ? a : b).create({ identity: '', uid: 'race', kid: 'k' }, record({ parent: `p${i}` })))),
    );
    assert.equal(results.filter((r) => r === 'OK').length, 1);
    assert.equal(results.filter((r) => r === 'ALREADY_EXISTS').length, 19);
    const winner = results.indexOf('OK');
    assert.equal((await a.get({ identity: '', uid: 'race', kid: 'k' })).parent, `p${winner}`);
    assert.deepEqual(readdirSync(join(tmp.dir, 'keys/race')), ['k.json']);
  });

  it('rejects ids that could escape the store (INVALID_ARGUMENT) before touching the disk', async () => {
    const store = await KeyStore.open(tmp.dir);
    for (const ref of [{ identity: '', uid: '../x' }, { identity: '', uid: '..' }, { identity: '', uid: 'a/b' }, { identity: '', uid: '' }, { identity: '', uid: 'ok', kid: '../../etc/passwd' }, { identity: '', uid: 'ok', kid: '.tmp-1' }]) {
      assert.equal(await code(store.create(ref, record())), 'INVALID_ARGUMENT', JSON.stringify(ref));
      assert.equal(await code(store.get(ref)), 'INVALID_ARGUMENT', JSON.stringify(ref));
    }
    assert.deepEqual(readdirSync(tmp.dir).sort(), ['ak', 'keys']);
  });

  describe('crash safety', () => {
    it('a leftover temp file is never read as a key and is removed at the next open (at once unless another running process writes it)', async () => {
      const store = await KeyStore.open(tmp.dir);
      const tmpFile = join(tmp.dir, 'ak', '.tmp-999-abcdef');
      writeFileSync(tmpFile, '{"format":"tpmds.key/v1","uid":"ghost"');
      const old = new Date(Date.now() - 3600_000);
      utimesSync(tmpFile, old, old);
      assert.equal(await code(store.get({ identity: '', uid: 'ghost' })), 'NOT_FOUND');
      // Recent temp files: of a running writer (our parent process stands in for one), of a
      // writer that is gone (a killed attestor) and of our own process id (a restarted container).
      const gone = spawnSync(process.execPath, ['-e', '0']).pid;
      const live = `.tmp-${process.ppid}-012345`;
      for (const n of [live, `.tmp-${gone}-012345`, `.tmp-${process.pid}-012345`]) writeFileSync(join(tmp.dir, 'ak', n), 'partial');
      writeFileSync(join(tmp.dir, `.tmp-${gone}-probe-0123`), '');
      const reopened = await KeyStore.open(tmp.dir);
      assert.match(reopened.warnings.join(';'), /removed 4 leftover temp file/);
      assert.deepEqual(readdirSync(join(tmp.dir, 'ak')), [live], 'only a recent temp file of another running writer is kept');
      assert.deepEqual(readdirSync(tmp.dir).sort(), ['ak', 'keys']);
      await KeyStore.open(tmp.dir, { tempMaxAgeMs: 0 });
      assert.deepEqual(readdirSync(join(tmp.dir, 'ak')), []);
    });

    it('a truncated, empty or foreign record is DATA_LOSS with a clear message, not a crash', async () => {
      const store = await KeyStore.open(tmp.dir);
      await store.create({ identity: '', uid: 'cut' }, record());
      const file = join(tmp.dir, 'ak/cut.json');
      const full = readFileSync(file, 'utf8');
      truncateSync(file, Math.floor(full.length / 2));
      await assert.rejects(store.get({ identity: '', uid: 'cut' }), (e: unknown) => {
        assert.ok(e instanceof AttestorError);
        assert.equal(e.code, 'DATA_LOSS');
        assert.match(e.message, /key record ak\/cut\.json .* unreadable \(truncated or not JSON\).*remove the file/);
        return true;
      });
      truncateSync(file, 0);
      assert.equal(await code(store.get({ identity: '', uid: 'cut' })), 'DATA_LOSS');
      writeFileSync(file, full.replace('"uid":"cut"', '"uid":"other"'));
      assert.equal(await code(store.get({ identity: '', uid: 'cut' })), 'DATA_LOSS');
      writeFileSync(file, full.replace(/"private":"[^"]*"/, '"private":"!!"'));
      assert.equal(await code(store.get({ identity: '', uid: 'cut' })), 'DATA_LOSS');
      writeFileSync(file, JSON.stringify({ hello: 1 }));
      assert.equal(await code(store.get({ identity: '', uid: 'cut' })), 'DATA_LOSS');
      // still exists: a create does not silently replace it
      assert.equal(await code(store.create({ identity: '', uid: 'cut' }, record())), 'ALREADY_EXISTS');
    });

    it('a symlink or directory in place of a record is refused', async () => {
      const store = await KeyStore.open(tmp.dir);
      writeFileSync(join(tmp.dir, 'elsewhere.json'), '{}');
      symlinkSync(join(tmp.dir, 'elsewhere.json'), join(tmp.dir, 'ak/link.json'));
      assert.equal(await code(store.get({ identity: '', uid: 'link' })), 'DATA_LOSS');
      mkdirSync(join(tmp.dir, 'ak/dir.json'));
      assert.equal(await code(store.get({ identity: '', uid: 'dir' })), 'DATA_LOSS');
    });
  });
});
