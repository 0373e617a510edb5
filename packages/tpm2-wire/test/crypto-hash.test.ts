/**
 * Layer 7 (crypto): hash() and hmac() take one-shot fast paths for small inputs (what a session
 * hashes per command); they must give what Node's Hash and Hmac objects give for every algorithm,
 * key length (empty, up to a block, longer than a block), number of parts and input size.
 */
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { TPM_ALG, hash, hmac } from '../src/index.js';

const ALGS: [number, string][] = [
  [TPM_ALG.SHA1, 'sha1'], [TPM_ALG.SHA256, 'sha256'], [TPM_ALG.SHA384, 'sha384'], [TPM_ALG.SHA512, 'sha512'], [TPM_ALG.SHA3_256, 'sha3-256'],
];
const bytes = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

describe('crypto: hash and hmac (one-shot and streamed paths)', () => {
  const partSets: Uint8Array[][] = [[], [bytes(0)], [bytes(32)], [bytes(4096)], [bytes(4097)], [bytes(10), bytes(0), bytes(33), Uint8Array.of(1)], [bytes(4000), bytes(200)], [bytes(1 << 16)]];
  it('hash(alg, ...parts) is H(parts joined)', () => {
    for (const [alg, name] of ALGS) {
      for (const parts of partSets) {
        const h = createHash(name);
        for (const p of parts) h.update(p);
        assert.deepEqual(hash(alg, ...parts), new Uint8Array(h.digest()), `${name}, parts of ${parts.map((p) => p.length)}`);
      }
    }
  });
  it('hmac(alg, key, ...parts) is HMAC(key, parts joined) for keys shorter than, as long as and longer than a block', () => {
    for (const [alg, name] of ALGS) {
      for (const keyLength of [0, 1, 20, 32, 63, 64, 65, 128, 129, 300]) {
        const key = bytes(keyLength);
        for (const parts of partSets) {
          const h = createHmac(name, key);
          for (const p of parts) h.update(p);
          const out = hmac(alg, key, ...parts);
          assert.ok(out instanceof Uint8Array);
          assert.deepEqual(out, new Uint8Array(h.digest()), `${name}, key of ${keyLength}, parts of ${parts.map((p) => p.length)}`);
        }
      }
    }
  });
});

describe('sessions: nonceCaller from the pooled CSPRNG block', () => {
  it('gives distinct nonces of the asked size, each its own copy, across refills of the pool', async () => {
    const { randomNonce } = await import('../src/sessions/auth-session.js');
    const seen = new Set<string>();
    for (let i = 0; i < 400; i++) {
      const size = i % 3 === 0 ? 20 : i % 3 === 1 ? 32 : 64;
      const n = randomNonce(size);
      assert.equal(n.length, size);
      assert.equal(n.buffer.byteLength, size, 'a copy, not a view of the pool');
      seen.add(Buffer.from(n).toString('hex'));
    }
    assert.equal(seen.size, 400);
    assert.equal(randomNonce(5000).length, 5000, 'larger than the pool');
  });
});
