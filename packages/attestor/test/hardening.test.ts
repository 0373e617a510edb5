// Hardening of the request checks (issue "Hardening"): caller-supplied sizes that the TPM cannot
// take, strings that are not UTF-8, per-identity key quotas and the Sign rate limit. Fake backend:
// everything here is decided before the TPM is reached (the swtpm side is in hardening-e2e).
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { encodeImportBlob, type ImportBlob } from '@tpmds/protocol/formats';
import { AttestorError } from '../src/errors.js';
import { KeyStore, type NewKeyRecord } from '../src/keystore.js';
import { SignRateLimiter, parseSignRate } from '../src/limits.js';
import { MAX_IMPORT_BLOB_FIELDS_BYTES } from '../src/validate.js';
import { rejection, startFake, tempDir, type Started } from './helpers.js';

const S = grpc.status;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const blob = (over: Partial<ImportBlob> = {}): Uint8Array =>
  encodeImportBlob({ duplicate: enc('sealed-bytes'), encryptedSeed: new Uint8Array(256).fill(7), publicArea: new Uint8Array([0, 8, 0, 11]), ...over });

/** Sends `bytes` as the request message of `method`, bypassing the client's serializer. */
function rawCall(t: Started, method: string, bytes: Uint8Array): Promise<unknown> {
  const raw = new grpc.Client(t.running.address, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) =>
    raw.makeUnaryRequest(`/verifier.Verifier/${method}`, (b: Buffer) => b, (b: Buffer) => b, Buffer.from(bytes), (err, v) => {
      raw.close();
      if (err) reject(err);
      else resolve(v);
    }),
  );
}

/** A protobuf message of LEN fields (field number -> bytes). */
function message(fields: [number, Uint8Array][]): Uint8Array {
  const parts: number[] = [];
  for (const [field, value] of fields) {
    parts.push((field << 3) | 2);
    let n = value.length;
    while (n >= 0x80) {
      parts.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    parts.push(n, ...value);
  }
  return new Uint8Array(parts);
}

describe('hardening: request checks before the TPM (fake backend)', function () {
  this.timeout(20_000);
  let t: Started;
  before(async () => {
    t = await startFake();
  });
  after(async () => {
    await t.stop();
  });

  it('a 1 MiB ImportBlob.duplicate (ImportBlob and ImportSigningKey) is INVALID_ARGUMENT naming the field, logged at info, not error', async () => {
    const huge = new Uint8Array(1 << 20).fill(0x42);
    const cases: [string, () => Promise<unknown>, RegExp][] = [
      ['ImportBlob', () => t.client.importBlob({ uid: 'pod-a', encryptedKey: blob({ duplicate: huge }) }), /^encryptedKey: ImportBlob\.duplicate is 1048576 bytes; a TPM2B_PRIVATE holds at most 4096$/],
      ['ImportSigningKey', () => t.client.importSigningKey({ uid: 'pod-a', kid: 'k', encryptedSigningKey: blob({ duplicate: huge }) }), /^encryptedSigningKey: ImportBlob\.duplicate is 1048576 bytes/],
      ['ImportBlob', () => t.client.importBlob({ uid: 'pod-a', encryptedKey: blob({ encryptedSeed: new Uint8Array(513) }) }), /ImportBlob\.encrypted_seed is 513 bytes; a TPM2B_ENCRYPTED_SECRET holds at most 512/],
      ['ImportBlob', () => t.client.importBlob({ uid: 'pod-a', encryptedKey: blob({ publicArea: new Uint8Array(1025) }) }), /ImportBlob\.public_area is 1025 bytes; a TPMT_PUBLIC holds at most 1024/],
      [
        'ImportSigningKey',
        () => t.client.importSigningKey({ uid: 'pod-a', kid: 'k', encryptedSigningKey: blob({ duplicate: new Uint8Array(MAX_IMPORT_BLOB_FIELDS_BYTES) }) }),
        /duplicate, encrypted_seed and public_area are \d+ bytes together; one TPM command of at most 4096 bytes holds at most 3712/,
      ],
    ];
    for (const [method, call, re] of cases) {
      const e = await rejection(call());
      assert.equal(e.code, S.INVALID_ARGUMENT, `${method}: ${e.details}`);
      assert.match(e.details, re);
    }
    const rpcLines = t.log.lines.filter((l) => l['msg'] === 'rpc' && (l['method'] === 'ImportBlob' || l['method'] === 'ImportSigningKey'));
    assert.equal(rpcLines.length, cases.length);
    for (const l of rpcLines) {
      assert.equal(l['level'], 'info');
      assert.equal(l['code'], 'INVALID_ARGUMENT');
    }
    // Just inside every limit, the blob reaches the backend (the fake unseals anything).
    const inside = blob({ duplicate: new Uint8Array(MAX_IMPORT_BLOB_FIELDS_BYTES - 256 - 4).fill(1) });
    assert.ok((await t.client.importBlob({ uid: 'pod-a', encryptedKey: inside })).decryptedKey.length > 0);
  });

  it('uid, kid and keyType that are not UTF-8 are INVALID_ARGUMENT saying so (not "uid is empty")', async () => {
    const bad = new Uint8Array([0xff, 0xfe]);
    const cases: [string, Uint8Array, RegExp][] = [
      ['GetAK', message([[1, bad]]), /^verifier\.GetAKRequest\.uid: not valid UTF-8/],
      ['GetAK', message([[1, enc('pod')], [2, new Uint8Array([0x72, 0xc3])]]), /^verifier\.GetAKRequest\.keyType: not valid UTF-8/],
      ['Sign', message([[1, enc('pod')], [2, new Uint8Array([0x6b, 0xed, 0xa0, 0x80])], [3, bad]]), /^verifier\.SignRequest\.kid: not valid UTF-8/],
      ['Quote', message([[1, new Uint8Array([0x41, 0x80])], [2, bad]]), /^verifier\.QuoteRequest\.uid: not valid UTF-8/],
      ['GetEKCert', message([[1, bad]]), /^verifier\.GetEKCertRequest\.keyType: not valid UTF-8/],
    ];
    for (const [method, bytes, re] of cases) {
      const e = await rejection(rawCall(t, method, bytes));
      assert.equal(e.code, S.INVALID_ARGUMENT, `${method}: ${e.details}`);
      assert.match(e.details, re);
      assert.doesNotMatch(e.details, /empty/);
    }
    // bytes fields may hold anything: a Sign of invalid UTF-8 data reaches the backend (NOT_FOUND here).
    const e = await rejection(rawCall(t, 'Sign', message([[1, enc('pod')], [2, enc('k')], [3, bad]])));
    assert.equal(e.code, S.NOT_FOUND);
  });
});

const record = (): NewKeyRecord => ({ keyType: 'rsa', parent: 'srk', public: new Uint8Array([0, 2, 1, 2]), private: new Uint8Array([0, 2, 3, 4]) });

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (e) {
    if (e instanceof AttestorError) return e.code;
    throw e;
  }
}

describe('hardening: per-identity limits', function () {
  this.timeout(20_000);

  it('--max-keys-per-identity: the store refuses the record after the quota (RESOURCE_EXHAUSTED), per identity, counting what is on disk at open, racing creations never overshoot', async () => {
    const tmp = tempDir();
    try {
      const store = await KeyStore.open(tmp.dir, { maxRecordsPerIdentity: 3 });
      await store.create({ identity: 'alice', uid: 'pod' }, record());
      await store.create({ identity: 'alice', uid: 'pod', kid: 'k1' }, record());
      await store.create({ identity: 'alice', uid: 'other', kid: 'k1' }, record());
      await store.quota.checkRoom('bob');
      await assert.rejects(store.quota.checkRoom('alice'), (e: AttestorError) => e.code === 'RESOURCE_EXHAUSTED' && /already has 3 AKs and keys.*--max-keys-per-identity/.test(e.message));
      assert.equal(await code(store.create({ identity: 'alice', uid: 'pod', kid: 'k2' }, record())), 'RESOURCE_EXHAUSTED');
      assert.equal(await store.has({ identity: 'alice', uid: 'pod', kid: 'k2' }), false, 'nothing is written over the quota');
      // Another identity has its own quota; ten racing creations of bob's make exactly three records.
      const raced = await Promise.all(Array.from({ length: 10 }, (_, i) => code(store.create({ identity: 'bob', uid: 'pod', kid: `k${i}` }, record()))));
      assert.deepEqual([raced.filter((c) => c === 'OK').length, raced.filter((c) => c === 'RESOURCE_EXHAUSTED').length], [3, 7]);
      // A removed record makes room; a store opened later counts what is on disk.
      await store.delete({ identity: 'alice', uid: 'pod', kid: 'k1' });
      await store.create({ identity: 'alice', uid: 'pod', kid: 'k2' }, record());
      const reopened = await KeyStore.open(tmp.dir, { maxRecordsPerIdentity: 3 });
      assert.equal(await reopened.countRecords('alice'), 3);
      assert.equal(await code(reopened.create({ identity: 'alice', uid: 'pod', kid: 'k3' }, record())), 'RESOURCE_EXHAUSTED');
      // A removal that is the first quota action of a freshly opened store is counted once, not twice.
      const fresh = await KeyStore.open(tmp.dir, { maxRecordsPerIdentity: 3 });
      await fresh.delete({ identity: 'alice', uid: 'pod', kid: 'k2' });
      assert.equal(await code(fresh.create({ identity: 'alice', uid: 'pod', kid: 'k4' }, record())), 'OK');
      assert.equal(await code(fresh.create({ identity: 'alice', uid: 'pod', kid: 'k5' }, record())), 'RESOURCE_EXHAUSTED', 'back at 3, no more');
      assert.equal(await code((await KeyStore.open(tmp.dir, { maxRecordsPerIdentity: 0 })).create({ identity: 'alice', uid: 'pod', kid: 'k6' }, record())), 'OK', '0 is no limit');
    } finally {
      tmp.cleanup();
    }
  });

  it('--sign-rate: parsing, and a token bucket per identity (fake clock)', () => {
    assert.equal(parseSignRate('off'), null);
    assert.equal(parseSignRate(''), null);
    assert.equal(parseSignRate('0'), null);
    assert.deepEqual(parseSignRate('10'), { perSecond: 10, burst: 10 });
    assert.deepEqual(parseSignRate('0.5'), { perSecond: 0.5, burst: 1 });
    assert.deepEqual(parseSignRate('2:50'), { perSecond: 2, burst: 50 });
    let now = 0;
    const limiter = new SignRateLimiter({ perSecond: 2, burst: 3 }, () => now);
    for (let i = 0; i < 3; i++) limiter.take('alice', 'Sign');
    assert.throws(() => limiter.take('alice', 'Sign'), (e: AttestorError) => e.code === 'RESOURCE_EXHAUSTED' && /--sign-rate 2\/s, burst 3.*retry in 500 ms/.test(e.message));
    limiter.take('bob', 'Quote'); // bob has his own bucket
    now += 499;
    assert.throws(() => limiter.take('alice', 'Sign'));
    now += 2;
    limiter.take('alice', 'Sign');
    now += 10_000; // refills only up to the burst
    for (let i = 0; i < 3; i++) limiter.take('alice', 'Sign');
    assert.throws(() => limiter.take('alice', 'Sign'));
    const off = new SignRateLimiter(null);
    for (let i = 0; i < 10_000; i++) off.take('alice', 'Sign');
  });

  it('--sign-rate through gRPC: Sign and Quote share the caller\'s bucket; the refusal is RESOURCE_EXHAUSTED saying when to retry', async () => {
    const t = await startFake({ config: { signRate: '0.1:3' } });
    try {
      await t.client.getAK({ uid: 'pod' });
      await t.client.newKey({ uid: 'pod', kid: 'k' });
      await t.client.sign({ uid: 'pod', kid: 'k', data: enc('1') });
      await t.client.quote({ uid: 'pod', nonce: new Uint8Array(8) });
      await t.client.sign({ uid: 'pod', kid: 'k', data: enc('3') });
      for (const call of [() => t.client.sign({ uid: 'pod', kid: 'k', data: enc('4') }), () => t.client.quote({ uid: 'pod', nonce: new Uint8Array(8) })]) {
        const e = await rejection(call());
        assert.equal(e.code, S.RESOURCE_EXHAUSTED, e.details);
        assert.match(e.details, /signing rate limit.*retry in \d+ ms/);
      }
      // Calls that do not sign are not limited.
      await t.client.getAK({ uid: 'pod' });
    } finally {
      await t.stop();
    }
  });
});
