// test/support/keygen-guard.mjs (loaded by .mocharc.json) replaces generateKeyPairSync in every
// test process, so a test cannot hit Node 20's deadlock when it exports a freshly generated key.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';

describe('test harness: the key-generation guard', () => {
  it('generateKeyPairSync as tests import it generates to DER and reads the keys back; asked-for encodings pass through', () => {
    assert.match(generateKeyPairSync.toString(), /privateKeyEncoding: \{ type: 'pkcs8', format: 'der' \}/, 'the guard of test/support/keygen-guard.mjs is not loaded');
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    assert.equal(publicKey.type, 'public');
    assert.equal(privateKey.type, 'private');
    assert.equal(privateKey.export({ format: 'jwk' }).crv, 'P-256');
    const pem = generateKeyPairSync('ed25519', { publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
    assert.match(pem.publicKey, /BEGIN PUBLIC KEY/);
  });
});
