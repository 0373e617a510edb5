/**
 * Layer 7 (crypto): verification of real TPM attestations: the Windows GCP Shielded VM quote and
 * CertifyCreation (go-attestation, RSASSA-SHA1 AK), all three quotes (SHA-1/256/384 banks) of both
 * GCE COS-85 go-tpm-tools attestations, keylime's checkquote vector and the tpm2-tools emulator quote.
 * Every one verifies, and a flipped byte (attestation, signature, nonce, PCR value) makes each fail
 * with the right check named. Plus software-made Certify/CertifyCreation attestations for RSA-PSS
 * and ECDSA signers.
 */
import assert from 'node:assert/strict';
import { type KeyObject, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  AttestationError, Reader, TPMA_OBJECT, TPMS_ATTEST, TPMS_CREATION_DATA, TPMT_PUBLIC, TPMT_SIGNATURE, TPM_ALG, TPM_GENERATED_VALUE,
  TPM_ST, TPM2B_PUBLIC, akTemplate, concatBytes, fromHex, hash, keyObjectToPublic, marshal, objectName, pcrSelection, publicToPem,
  signingKeyTemplate, unmarshal, utf8, verifyCertify, verifyCertifyCreation, verifyQuote, verifySignature, type AttestationCheck,
  type PcrValues,
} from '../src/index.js';
import { TESTDATA } from './fixtures/testdata.js';

const b64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const flip = (b: Uint8Array, at: number) => {
  const c = b.slice();
  c[at < 0 ? c.length + at : at]! ^= 0x01;
  return c;
};
function fails(check: AttestationCheck, fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AttestationError, `expected AttestationError, got ${String(e)}`);
    assert.equal(e.check, check, e.message);
    return true;
  });
}

// ---- a minimal protobuf wire-format reader (varint and length-delimited fields only) ----------
type PbField = { field: number; varint?: bigint; bytes?: Uint8Array };
function readPb(buf: Uint8Array): PbField[] {
  const out: PbField[] = [];
  let i = 0;
  const varint = (): bigint => {
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const b = buf[i++];
      if (b === undefined) throw new Error('truncated varint');
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const field = key >> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ field, varint: varint() });
    else if (wire === 2) {
      const n = Number(varint());
      out.push({ field, bytes: buf.subarray(i, i + n) });
      i += n;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  return out;
}
/** go-tpm-tools `PCRs { HashAlgo hash = 1; map<uint32, bytes> pcrs = 2; }` (HashAlgo values are TPM_ALG_IDs). */
function readPcrs(buf: Uint8Array): PcrValues {
  let hashAlg = 0;
  const values = new Map<number, Uint8Array>();
  for (const f of readPb(buf)) {
    if (f.field === 1) hashAlg = Number(f.varint);
    if (f.field === 2) {
      let k = 0; // proto3 map entries omit default (zero) keys and values
      let v = new Uint8Array(0);
      for (const e of readPb(f.bytes!)) {
        if (e.field === 1) k = Number(e.varint);
        if (e.field === 2) v = e.bytes!.slice();
      }
      values.set(k, v);
    }
  }
  return { hashAlg, values };
}
interface GceQuote { quote: Uint8Array; sig: Uint8Array; pcrs: PcrValues }
function readAttestation(file: string): { akPub: Uint8Array; quotes: GceQuote[]; akCert: Uint8Array } {
  const fields = readPb(new Uint8Array(readFileSync(`${TESTDATA}go-tpm-tools/attestations/${file}`)));
  const quotes = fields.filter((f) => f.field === 2).map((f) => {
    const q = readPb(f.bytes!);
    return { quote: q.find((x) => x.field === 1)!.bytes!, sig: q.find((x) => x.field === 2)!.bytes!, pcrs: readPcrs(q.find((x) => x.field === 3)!.bytes!) };
  });
  return { akPub: fields.find((f) => f.field === 1)!.bytes!, quotes, akCert: fields.find((f) => f.field === 6)!.bytes! };
}

/** tpm2-tools' PCR output file (`tpm2_quote -o`): TPML_PCR_SELECTION as a raw little-endian C struct, then TPML_DIGESTs. */
function readToolsPcrFile(buf: Uint8Array): PcrValues {
  const r = new Reader(buf);
  const count = r.u32le();
  const banks: { hash: number; bits: number[] }[] = [];
  for (let i = 0; i < 16; i++) {
    const hashAlg = r.u16le();
    const size = r.u8();
    const select = r.bytesN(4);
    r.bytesN(1); // padding
    if (i < count) {
      const bits: number[] = [];
      for (let b = 0; b < size * 8; b++) if (select[b >> 3]! & (1 << (b & 7))) bits.push(b);
      banks.push({ hash: hashAlg, bits });
    }
  }
  const digests: Uint8Array[] = [];
  const lists = r.u32le();
  for (let l = 0; l < lists; l++) {
    const n = r.u32le();
    for (let d = 0; d < 8; d++) {
      const size = r.u16le();
      const v = r.bytesN(64);
      if (d < n) digests.push(v.slice(0, size));
    }
  }
  r.done();
  assert.equal(banks.length, 1, 'one bank in this file');
  return { hashAlg: banks[0]!.hash, values: new Map(banks[0]!.bits.map((b, i) => [b, digests[i]!])) };
}

describe('crypto: verifyQuote on real quotes', () => {
  it('verifies the Windows GCP Shielded VM quote (RSASSA-SHA1 AK, SHA-1 bank, 24 PCRs, empty nonce)', () => {
    const d = JSON.parse(readFileSync(`${TESTDATA}go-attestation/windows_gcp_shielded_vm.json`, 'utf8'));
    const ak = unmarshal(TPMT_PUBLIC, b64(d.AK.Public));
    const quote = b64(d.Quote.Quote);
    const sig = unmarshal(TPMT_SIGNATURE, b64(d.Quote.Signature));
    const pcrs: PcrValues = { hashAlg: TPM_ALG.SHA1, values: new Map(d.Log.PCRs.map((p: { Index: number; Digest: string }) => [p.Index, b64(p.Digest)])) };
    assert.equal(sig.sigAlg, TPM_ALG.RSASSA);
    const att = verifyQuote(ak, quote, sig, { nonce: new Uint8Array(0), pcrs });
    assert.equal(att.attested.pcrSelect[0]!.hash, TPM_ALG.SHA1);

    fails('signature', () => verifyQuote(ak, flip(quote, 40), sig, { nonce: new Uint8Array(0), pcrs }));
    fails('signature', () => verifyQuote(ak, quote, unmarshal(TPMT_SIGNATURE, flip(b64(d.Quote.Signature), -1)), { pcrs }));
    fails('nonce', () => verifyQuote(ak, quote, sig, { nonce: Uint8Array.of(0), pcrs }));
    const bad = new Map(pcrs.values);
    bad.set(7, flip(bad.get(7)!, 0));
    fails('pcrDigest', () => verifyQuote(ak, quote, sig, { pcrs: { ...pcrs, values: bad } }));
    const fewer = new Map(pcrs.values);
    fewer.delete(23);
    fails('pcrSelection', () => verifyQuote(ak, quote, sig, { pcrs: { ...pcrs, values: fewer } }));
    fails('pcrSelection', () => verifyQuote(ak, quote, sig, { pcrs: { hashAlg: TPM_ALG.SHA256, values: pcrs.values } }));
  });

  it('verifies the Windows AK CertifyCreation with go-attestation\'s checks', () => {
    const d = JSON.parse(readFileSync(`${TESTDATA}go-attestation/windows_gcp_shielded_vm.json`, 'utf8'));
    const ak = unmarshal(TPMT_PUBLIC, b64(d.AK.Public));
    const createData = b64(d.AK.CreateData);
    const attest = b64(d.AK.CreateAttestation);
    const sig = unmarshal(TPMT_SIGNATURE, b64(d.AK.CreateSignature));
    const att = verifyCertifyCreation(ak, createData, attest, sig);
    assert.deepEqual(att.attested.objectName, objectName(ak));

    fails('signature', () => verifyCertifyCreation(ak, createData, flip(attest, attest.length - 3), sig));
    fails('creationHash', () => verifyCertifyCreation(ak, flip(createData, 10), attest, sig));
    fails('decode', () => verifyCertifyCreation(ak, createData.subarray(0, 10), attest, sig));
    fails('signature', () => verifyCertifyCreation(ak, createData, attest, unmarshal(TPMT_SIGNATURE, flip(b64(d.AK.CreateSignature), 20))));
    fails('attributes', () => verifyCertifyCreation(ak, createData, attest, sig, { restricted: false }));
    // the same key without fixedTPM (its name differs too; the attribute check comes first)
    fails('attributes', () => verifyCertifyCreation({ ...ak, objectAttributes: ak.objectAttributes & ~TPMA_OBJECT.fixedTPM }, createData, attest, sig));
  });

  for (const file of ['gce-cos-85-nonce9009.pb', 'gce-cos-85-no-nonce.pb']) {
    it(`verifies all three quotes of ${file} (SHA-1, SHA-256, SHA-384 banks; RSASSA-SHA256 AK)`, () => {
      const a = readAttestation(file);
      const ak = unmarshal(TPMT_PUBLIC, a.akPub);
      const nonce = file.includes('9009') ? Uint8Array.of(0x90, 0x09) : new Uint8Array(0);
      assert.equal(a.quotes.length, 3);
      assert.deepEqual(a.quotes.map((q) => q.pcrs.hashAlg), [TPM_ALG.SHA1, TPM_ALG.SHA256, TPM_ALG.SHA384]);
      for (const q of a.quotes) {
        assert.equal(q.pcrs.values.size, 24);
        const sig = unmarshal(TPMT_SIGNATURE, q.sig);
        verifyQuote(ak, q.quote, sig, { nonce, pcrs: q.pcrs });
        fails('signature', () => verifyQuote(ak, flip(q.quote, 20), sig, { nonce, pcrs: q.pcrs }));
        fails('signature', () => verifyQuote(ak, q.quote, unmarshal(TPMT_SIGNATURE, flip(q.sig, 100)), { nonce, pcrs: q.pcrs }));
        fails('nonce', () => verifyQuote(ak, q.quote, sig, { nonce: Uint8Array.of(0x90, 0x08), pcrs: q.pcrs }));
        const bad = new Map(q.pcrs.values);
        bad.set(0, flip(bad.get(0)!, 3));
        fails('pcrDigest', () => verifyQuote(ak, q.quote, sig, { nonce, pcrs: { ...q.pcrs, values: bad } }));
      }
    });
  }

  it('verifies keylime\'s checkquote vector (PEM AK, RSASSA-SHA256, SHA-256 PCR 16, tpm2-tools PCR file)', () => {
    const v = JSON.parse(readFileSync(`${TESTDATA}keylime/keylime_inline_vectors.json`, 'utf8')).checkquote;
    const ak = keyObjectToPublic(createPublicKey(v.ak_public_pem), akTemplate('rsa'));
    const quote = b64(v.quote_b64_TPMS_ATTEST);
    const sigBytes = b64(v.signature_b64_TPMT_SIGNATURE);
    const sig = unmarshal(TPMT_SIGNATURE, sigBytes);
    const pcrs = readToolsPcrFile(b64(v.pcrs_b64_tpm2tools_pcr_output));
    const nonce = utf8(v.nonce_ascii);
    assert.deepEqual([...pcrs.values.keys()], [16]);
    verifyQuote(ak, quote, sig, { nonce, pcrs });
    fails('signature', () => verifyQuote(ak, flip(quote, 5), sig, { nonce, pcrs }));
    fails('nonce', () => verifyQuote(ak, quote, sig, { nonce: flip(nonce, 0), pcrs }));
    fails('pcrDigest', () => verifyQuote(ak, quote, sig, { nonce, pcrs: readToolsPcrFile(flip(b64(v.pcrs_b64_tpm2tools_pcr_output), 150)) }));
    fails('signature', () => verifyQuote(ak, quote, unmarshal(TPMT_SIGNATURE, flip(sigBytes, 6)), { nonce, pcrs }));
  });

  it('verifies the tpm2-tools emulator quote (ak.pub, quote.out, quotesig.out, quotepcr.out)', () => {
    const dir = `${TESTDATA}keylime/emulator-files/`;
    const ak = unmarshal(TPM2B_PUBLIC, new Uint8Array(readFileSync(dir + 'ak.pub')));
    assert.equal(publicToPem(ak).trim(), readFileSync(dir + 'akpub.pem', 'utf8').trim());
    assert.deepEqual(objectName(ak), new Uint8Array(readFileSync(dir + 'ak.name')));
    const quote = new Uint8Array(readFileSync(dir + 'quote.out'));
    const sig = unmarshal(TPMT_SIGNATURE, new Uint8Array(readFileSync(dir + 'quotesig.out')));
    const pcrs = readToolsPcrFile(new Uint8Array(readFileSync(dir + 'quotepcr.out')));
    assert.deepEqual([...pcrs.values.keys()], [15, 16, 22]);
    const att = verifyQuote(ak, quote, sig, { pcrs });
    verifyQuote(ak, quote, sig, { nonce: att.extraData, pcrs });
    fails('signature', () => verifyQuote(ak, flip(quote, 60), sig, { pcrs }));
    fails('nonce', () => verifyQuote(ak, quote, sig, { nonce: flip(att.extraData, 1) }));
    const bad = new Map(pcrs.values);
    bad.set(22, flip(bad.get(22)!, 31));
    fails('pcrDigest', () => verifyQuote(ak, quote, sig, { pcrs: { ...pcrs, values: bad } }));
  });
});

// ---- software-made attestations: what an attestor's TPM would produce ----------------------------

function signAttest(key: KeyObject, pub: TPMT_PUBLIC, body: Uint8Array, scheme: 'rsassa' | 'rsapss' | 'ecdsa'): TPMT_SIGNATURE {
  if (scheme === 'ecdsa') {
    const raw = new Uint8Array(sign('sha256', body, { key, dsaEncoding: 'ieee-p1363' }));
    return { sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, signatureR: raw.slice(0, 32), signatureS: raw.slice(32) };
  }
  assert.equal(pub.type, TPM_ALG.RSA);
  const padding = scheme === 'rsassa' ? 1 : 6; // RSA_PKCS1_PADDING, RSA_PKCS1_PSS_PADDING
  const sig = new Uint8Array(sign('sha256', body, { key, padding, saltLength: 32 }));
  return { sigAlg: scheme === 'rsassa' ? TPM_ALG.RSASSA : TPM_ALG.RSAPSS, hash: TPM_ALG.SHA256, sig };
}

const header = (type: number, extraData: Uint8Array) => ({
  magic: TPM_GENERATED_VALUE, qualifiedSigner: new Uint8Array(34), extraData,
  clockInfo: { clock: 123456n, resetCount: 1, restartCount: 0, safe: true }, firmwareVersion: 0x2019102300000000n, type,
});

describe('crypto: verifyCertify / verifyCertifyCreation / verifySignature with software signers', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const akRsa = keyObjectToPublic(rsa.publicKey, akTemplate('rsa'));
  const akEcc = keyObjectToPublic(ec.publicKey, akTemplate('ecc'));
  const signer = { rsassa: [rsa.privateKey, akRsa], rsapss: [rsa.privateKey, akRsa], ecdsa: [ec.privateKey, akEcc] } as const;
  const keyPub = keyObjectToPublic(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey, signingKeyTemplate('ecc'));

  for (const scheme of ['rsassa', 'rsapss', 'ecdsa'] as const) {
    it(`verifies a Certify signed with ${scheme.toUpperCase()} and names each failed check`, () => {
      const [key, ak] = signer[scheme];
      const nonce = utf8('qualifying data');
      const body = marshal(TPMS_ATTEST, { ...header(TPM_ST.ATTEST_CERTIFY, nonce), attested: { name: objectName(keyPub), qualifiedName: new Uint8Array(34) } } as TPMS_ATTEST);
      const sig = signAttest(key, ak, body, scheme);
      const want = { set: TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.sign, clear: TPMA_OBJECT.restricted };
      verifyCertify(ak, body, sig, keyPub, { nonce, attributes: want });
      assert.ok(verifySignature(ak, body, sig));
      assert.ok(!verifySignature(ak, flip(body, 10), sig));
      fails('signature', () => verifyCertify(ak, flip(body, 50), sig, keyPub));
      fails('nonce', () => verifyCertify(ak, body, sig, keyPub, { nonce: utf8('other') }));
      fails('name', () => verifyCertify(ak, body, sig, akEcc));
      fails('attributes', () => verifyCertify(ak, body, sig, keyPub, { attributes: { set: TPMA_OBJECT.restricted } }));
      fails('type', () => verifyQuote(ak, body, sig));
      const wrongMagic = marshal(TPMS_ATTEST, { ...header(TPM_ST.ATTEST_CERTIFY, nonce), magic: 0x12345678, attested: { name: objectName(keyPub), qualifiedName: new Uint8Array(34) } } as TPMS_ATTEST);
      fails('magic', () => verifyCertify(ak, wrongMagic, signAttest(key, ak, wrongMagic, scheme), keyPub));
      fails('decode', () => verifyCertify(ak, body.subarray(0, 20), signAttest(key, ak, body.subarray(0, 20), scheme), keyPub));
    });
  }

  it('verifies a CertifyCreation of an ECC AK and of a non-restricted key certified by an RSA AK', () => {
    const createData = marshal(TPMS_CREATION_DATA, {
      pcrSelect: pcrSelection(TPM_ALG.SHA256, []), pcrDigest: hash(TPM_ALG.SHA256), locality: 1, parentNameAlg: TPM_ALG.SHA256,
      parentName: fromHex('000b' + '11'.repeat(32)), parentQualifiedName: fromHex('000b' + '22'.repeat(32)), outsideInfo: new Uint8Array(0),
    });
    const creation = (pub: TPMT_PUBLIC) =>
      marshal(TPMS_ATTEST, { ...header(TPM_ST.ATTEST_CREATION, new Uint8Array(0)), attested: { objectName: objectName(pub), creationHash: hash(TPM_ALG.SHA256, createData) } } as TPMS_ATTEST);
    const own = creation(akEcc);
    verifyCertifyCreation(akEcc, createData, own, signAttest(ec.privateKey, akEcc, own, 'ecdsa'));
    const other = creation(keyPub);
    const sig = signAttest(rsa.privateKey, akRsa, other, 'rsassa');
    verifyCertifyCreation(akRsa, createData, other, sig, { certifiedPub: keyPub, restricted: false });
    fails('attributes', () => verifyCertifyCreation(akRsa, createData, other, sig, { certifiedPub: keyPub }));
    fails('name', () => verifyCertifyCreation(akRsa, createData, other, sig));
    const weak = { ...akRsa, parameters: { ...akRsa.parameters, keyBits: 1024 } } as TPMT_PUBLIC;
    fails('keyStrength', () => verifyCertifyCreation(weak, createData, other, sig, { certifiedPub: weak }));
  });

  it('verifySignature: false for a scheme that does not fit the key, an error for unsupported schemes', () => {
    const body = utf8('hello');
    const ecdsa = signAttest(ec.privateKey, akEcc, body, 'ecdsa');
    assert.ok(verifySignature(akEcc, body, ecdsa));
    assert.ok(!verifySignature(akRsa, body, ecdsa));
    assert.ok(!verifySignature(akEcc, body, signAttest(rsa.privateKey, akRsa, body, 'rsassa')));
    assert.ok(!verifySignature(akEcc, body, { sigAlg: TPM_ALG.NULL }));
    assert.throws(() => verifySignature(akEcc, body, { sigAlg: TPM_ALG.HMAC, hmac: { hashAlg: TPM_ALG.SHA256, digest: new Uint8Array(32) } }), /not supported/);
    // ECDSA with r, s left-padded or stripped of leading zeros verifies the same
    assert.equal(ecdsa.sigAlg, TPM_ALG.ECDSA);
    if (ecdsa.sigAlg === TPM_ALG.ECDSA) {
      const r = ecdsa.signatureR;
      assert.ok(verifySignature(akEcc, body, { ...ecdsa, signatureR: r[0] === 0 ? r.subarray(1) : r }));
      assert.ok(verifySignature(akEcc, body, { ...ecdsa, signatureR: concatBytes(new Uint8Array(2), r) }));
    }
  });
});
