/**
 * Layer 7 (crypto): TPMT_PUBLIC <-> Node KeyObject / PKIX SPKI / PEM, sensitive areas <-> private
 * keys, and TPMT_SIGNATURE -> DER / raw signatures. Real public areas from tpm2-tools (keylime
 * emulator files) must give the same PEM tpm2-tools wrote.
 */
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  TPM2B_PUBLIC, TPMT_PUBLIC, TPM_ALG, TPM_ECC, TpmCryptoError, akTemplate, ekTemplateRsa2048, fromHex, keyObjectToPublic,
  objectName, privateKeyFromSensitive, publicToKeyObject, publicToPem, publicToSpkiDer, sensitiveFromPrivateKey, signatureToDer,
  signatureToRaw, srkTemplateRsa2048, toHex, unmarshal, type TPMT_SIGNATURE,
} from '../src/index.js';
import { TESTDATA } from './fixtures/testdata.js';

const emu = (f: string) => readFileSync(`${TESTDATA}keylime/emulator-files/${f}`);

describe('crypto: public areas <-> KeyObject / SPKI / PEM', () => {
  it('gives the PEM tpm2-tools wrote for a real RSA EK and AK, and comes back to the same name', () => {
    for (const [pubFile, pemFile] of [['ek.pub', 'ekpub.pem'], ['ak.pub', 'akpub.pem']] as const) {
      const pub = unmarshal(TPM2B_PUBLIC, new Uint8Array(emu(pubFile)));
      assert.equal(publicToPem(pub).trim(), emu(pemFile).toString().trim(), pubFile);
      const der = publicToSpkiDer(pub);
      assert.deepEqual(der, new Uint8Array(createPublicKey(emu(pemFile)).export({ type: 'spki', format: 'der' })));
      // KeyObject -> TPMT_PUBLIC with the original as template reproduces the public area, hence the name
      const again = keyObjectToPublic(publicToKeyObject(pub), pub);
      assert.deepEqual(objectName(again), objectName(pub), pubFile);
    }
  });

  it('converts NIST P-256/384/521 and RSA keys both ways; 65537 is written as exponent 0', () => {
    for (const [crv, id, size] of [['P-256', TPM_ECC.NIST_P256, 32], ['P-384', TPM_ECC.NIST_P384, 48], ['P-521', TPM_ECC.NIST_P521, 66]] as const) {
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: crv });
      const pub = keyObjectToPublic(publicKey);
      assert.equal(pub.type, TPM_ALG.ECC);
      if (pub.type !== TPM_ALG.ECC) return;
      assert.equal(pub.parameters.curveID, id);
      assert.equal(pub.unique.x.length, size);
      assert.deepEqual(pub.parameters.scheme, { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 });
      assert.ok(publicToKeyObject(pub).equals(publicKey));
    }
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pub = keyObjectToPublic(rsa.privateKey, ekTemplateRsa2048());
    assert.equal(pub.type, TPM_ALG.RSA);
    if (pub.type !== TPM_ALG.RSA) return;
    assert.equal(pub.parameters.exponent, 0);
    assert.equal(pub.unique.length, 256);
    assert.equal(pub.nameAlg, TPM_ALG.SHA256);
    assert.ok(publicToKeyObject(pub).equals(rsa.publicKey));
    const e3 = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 });
    const p3 = keyObjectToPublic(e3.publicKey);
    assert.equal(p3.type === TPM_ALG.RSA && p3.parameters.exponent, 3);
    assert.ok(publicToKeyObject(p3).equals(e3.publicKey));
  });

  it('rejects templates that do not fit and public areas without a key', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    assert.throws(() => keyObjectToPublic(publicKey, akTemplate('ecc')), /template is for curve/);
    assert.throws(() => keyObjectToPublic(publicKey, akTemplate('rsa')), /not an ECC template/);
    assert.throws(() => publicToKeyObject(srkTemplateRsa2048()), /no modulus/);
    const keyed: TPMT_PUBLIC = { type: TPM_ALG.KEYEDHASH, nameAlg: TPM_ALG.SHA256, objectAttributes: 0, authPolicy: new Uint8Array(0), parameters: { scheme: { scheme: TPM_ALG.NULL } }, unique: new Uint8Array(32) };
    assert.throws(() => publicToKeyObject(keyed), (e: unknown) => e instanceof TpmCryptoError && e.reason === 'unsupported');
    const { publicKey: ed } = generateKeyPairSync('ed25519');
    assert.throws(() => keyObjectToPublic(ed), /not supported/);
  });
});

describe('crypto: sensitive areas <-> private keys', () => {
  it('RSA: the sensitive area is the prime p, from which the whole private key is rebuilt', () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pub = keyObjectToPublic(publicKey);
    const s = sensitiveFromPrivateKey(privateKey);
    assert.equal(s.sensitiveType, TPM_ALG.RSA);
    assert.equal(s.sensitive.length, 128);
    const again = privateKeyFromSensitive(pub, s);
    assert.ok(verify('sha256', Buffer.from('m'), publicKey, sign('sha256', Buffer.from('m'), again)));
    const wrong = { ...s, sensitive: s.sensitive.map((b, i) => (i === 127 ? b ^ 2 : b)) };
    assert.throws(() => privateKeyFromSensitive(pub, wrong), (e: unknown) => e instanceof TpmCryptoError && e.reason === 'integrity');
  });

  it('ECC: the sensitive area is the scalar padded to the curve size', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-521' });
    const s = sensitiveFromPrivateKey(privateKey, { authValue: Uint8Array.of(1, 2) });
    assert.equal(s.sensitive.length, 66);
    assert.deepEqual(s.authValue, Uint8Array.of(1, 2));
    const k = privateKeyFromSensitive(keyObjectToPublic(publicKey), s);
    assert.deepEqual(k.export({ format: 'jwk' }), privateKey.export({ format: 'jwk' }));
    assert.throws(() => sensitiveFromPrivateKey(publicKey), /private key is required/);
  });
});

describe('crypto: signatures to DER / raw', () => {
  it('ECDSA: DER SEQUENCE{r, s} with sign padding and minimal lengths, raw r || s padded; both verify with Node', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    for (let i = 0; i < 40; i++) {
      const msg = Buffer.from(`message ${i}`);
      const raw = new Uint8Array(sign('sha256', msg, { key: privateKey, dsaEncoding: 'ieee-p1363' }));
      const strip = (b: Uint8Array) => (b[0] === 0 ? b.subarray(1) : b); // TPMs may drop leading zero bytes
      const sig: TPMT_SIGNATURE = { sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, signatureR: strip(raw.slice(0, 32)), signatureS: strip(raw.slice(32)) };
      const der = signatureToDer(sig);
      assert.ok(verify('sha256', msg, publicKey, der), `DER ${toHex(der)}`);
      assert.deepEqual(signatureToRaw(sig), raw);
      assert.ok(verify('sha256', msg, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signatureToRaw(sig, 32)));
    }
    const high: TPMT_SIGNATURE = { sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, signatureR: fromHex('80' + '00'.repeat(31)), signatureS: fromHex('01') };
    assert.equal(toHex(signatureToDer(high)), '3026' + '022100' + '80' + '00'.repeat(31) + '020101');
    assert.equal(signatureToRaw(high).length, 64);
  });

  it('RSA: the signature bytes as they are; unsupported schemes throw', () => {
    const sig: TPMT_SIGNATURE = { sigAlg: TPM_ALG.RSASSA, hash: TPM_ALG.SHA256, sig: Uint8Array.of(1, 2, 3) };
    assert.deepEqual(signatureToDer(sig), Uint8Array.of(1, 2, 3));
    assert.deepEqual(signatureToRaw(sig), Uint8Array.of(1, 2, 3));
    assert.throws(() => signatureToDer({ sigAlg: TPM_ALG.NULL }), /not supported/);
  });
});
