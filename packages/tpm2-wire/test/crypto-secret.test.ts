/**
 * Layer 7 (crypto): labeled secret sharing (Part 1, 11.4.10.4; Annex B.10.3 and C.6.1) against every
 * case of the go-tpm RSA-OAEP and ECDH labeled-encapsulation vectors (validated against the TCG
 * reference implementation via TPM2_ActivateCredential, TPM2_Import and TPM2_StartAuthSession), in
 * both directions, plus random round trips.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  TPMT_PUBLIC, TPMT_SENSITIVE, TPM_ALG, TpmCryptoError, createSeed, ekTemplateEccP256, ekTemplateRsa2048, fromHex,
  keyObjectToPublic, privateKeyFromSensitive, recoverSeed, srkTemplateEccP256, toHex, unmarshal, type SecretLabel,
} from '../src/index.js';
import { TESTDATA } from './fixtures/testdata.js';

type Vector = Record<string, string>;
const vectors = (name: string) => JSON.parse(readFileSync(`${TESTDATA}go-tpm-testvectors/${name}`, 'utf8')) as Vector[];

describe('crypto: RSA labeled encapsulation (OAEP)', () => {
  const cases = vectors('rsa_labeled_encaps.json');

  it(`encrypts all ${cases.length} go-tpm vectors byte-exact with the fixed OAEP seed (RSA-2048/3072/4096)`, () => {
    assert.equal(cases.length, 100);
    for (const v of cases) {
      const pub = unmarshal(TPMT_PUBLIC, fromHex(v.PublicKey!));
      const r = createSeed(pub, v.Label as SecretLabel, { seed: fromHex(v.Secret!), oaepSeed: fromHex(v.OAEPSalt!) });
      assert.equal(toHex(r.encryptedSecret), v.Ciphertext, v.Name);
      assert.equal(toHex(r.seed), v.Secret, v.Name);
    }
  });

  it('recovers the secret of every vector with the private key (p from TPMT_SENSITIVE)', () => {
    for (const v of cases) {
      const pub = unmarshal(TPMT_PUBLIC, fromHex(v.PublicKey!));
      const key = privateKeyFromSensitive(pub, unmarshal(TPMT_SENSITIVE, fromHex(v.PrivateKey!)));
      assert.equal(toHex(recoverSeed(key, pub, v.Label as SecretLabel, fromHex(v.Ciphertext!))), v.Secret, v.Name);
    }
  });

  it('uses a random seed of the OAEP digest size by default and rejects the wrong label', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pub = keyObjectToPublic(publicKey, ekTemplateRsa2048());
    const a = createSeed(pub, 'SECRET');
    const b = createSeed(pub, 'SECRET');
    assert.equal(a.seed.length, 32);
    assert.equal(a.encryptedSecret.length, 256);
    assert.notEqual(toHex(a.seed), toHex(b.seed));
    assert.deepEqual(recoverSeed(privateKey, pub, 'SECRET', a.encryptedSecret), a.seed);
    assert.throws(() => recoverSeed(privateKey, pub, 'IDENTITY', a.encryptedSecret), (e: unknown) => e instanceof TpmCryptoError && e.reason === 'integrity');
    assert.equal(createSeed(pub, 'DUPLICATE', { seedLength: 16 }).seed.length, 16);
    assert.throws(() => createSeed(pub, 'DUPLICATE', { seedLength: 33 }), TpmCryptoError);
  });
});

describe('crypto: ECC labeled encapsulation (ECDH + KDFe)', () => {
  const cases = vectors('ecc_labeled_encaps.json');

  it(`derives seed and ciphertext of all ${cases.length} go-tpm vectors from the fixed ephemeral key (P-256/384/521)`, () => {
    assert.equal(cases.length, 100);
    for (const v of cases) {
      const pub = unmarshal(TPMT_PUBLIC, fromHex(v.PublicKey!));
      const r = createSeed(pub, v.Label as SecretLabel, { ephemeralPrivateKey: fromHex(v.EphemeralPrivate!) });
      assert.equal(toHex(r.seed), v.Secret, v.Name);
      assert.equal(toHex(r.encryptedSecret), v.Ciphertext, v.Name);
    }
  });

  it('recovers the seed of every vector with the private scalar', () => {
    for (const v of cases) {
      const pub = unmarshal(TPMT_PUBLIC, fromHex(v.PublicKey!));
      const key = privateKeyFromSensitive(pub, unmarshal(TPMT_SENSITIVE, fromHex(v.PrivateKey!)));
      assert.equal(toHex(recoverSeed(key, pub, v.Label as SecretLabel, fromHex(v.Ciphertext!))), v.Secret, v.Name);
    }
  });

  it('round-trips with a random ephemeral key and rejects a point off the curve', () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pub = keyObjectToPublic(publicKey, ekTemplateEccP256());
    const r = createSeed(pub, 'IDENTITY');
    assert.equal(r.seed.length, 32);
    assert.equal(r.encryptedSecret.length, 2 + 32 + 2 + 32);
    assert.deepEqual(recoverSeed(privateKey, pub, 'IDENTITY', r.encryptedSecret), r.seed);
    assert.notDeepEqual(recoverSeed(privateKey, pub, 'DUPLICATE', r.encryptedSecret), r.seed);
    const bad = r.encryptedSecret.slice();
    bad[bad.length - 1]! ^= 1;
    assert.throws(() => recoverSeed(privateKey, pub, 'IDENTITY', bad), TpmCryptoError);
    assert.throws(() => recoverSeed(privateKey, pub, 'IDENTITY', r.encryptedSecret.subarray(1)), /not a TPMS_ECC_POINT/);
  });

  it('refuses keys it cannot share a secret with', () => {
    assert.throws(() => createSeed(srkTemplateEccP256(), 'IDENTITY'), /no point/);
    assert.throws(() => createSeed(ekTemplateEccP256(), 'IDENTITY'), /not valid/); // the template's all-zero point
    const p256 = ekTemplateEccP256();
    assert.equal(p256.type, TPM_ALG.ECC);
    const p224 = p256.type === TPM_ALG.ECC ? { ...p256, parameters: { ...p256.parameters, curveID: 0x0002 } } : p256;
    assert.throws(() => createSeed(p224, 'IDENTITY'), (e: unknown) => e instanceof TpmCryptoError && e.reason === 'unsupported');
  });
});
