// Hardening of the request checks (issue "Hardening"): caller-supplied sizes that the TPM cannot
// take, strings that are not UTF-8, per-identity key quotas and the Sign rate limit. Fake backend:
// everything here is decided before the TPM is reached (the swtpm side is in hardening-e2e).
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { encodeImportBlob, type ImportBlob } from '@tpmds/protocol/formats';
import { MAX_IMPORT_BLOB_FIELDS_BYTES } from '../src/validate.js';
import { rejection, startFake, type Started } from './helpers.js';

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
