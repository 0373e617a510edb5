/**
 * Layer 2 (types): the Part 2 structures. Round trips of the main structures with hand-checked
 * encodings, and known vectors from other implementations and real TPMs:
 * - tpm2-tools' default EK template (a TPMT_PUBLIC) equals our TCG L-1 template;
 * - keylime's emulator files (tpm2-tools output): TPM2B_PUBLIC of an EK and an AK, the AK's Name,
 *   a quote (TPMS_ATTEST) and its TPMT_SIGNATURE, which verifies with the AK's PEM;
 * - keylime's inline check-quote vector and MakeCredential EKs (RSA and ECC TPM2B_PUBLIC);
 * - go-attestation's Windows GCP Shielded VM dump: AK TPMT_PUBLIC, TPMS_CREATION_DATA,
 *   TPMS_ATTEST (creation and quote) and TPMT_SIGNATURE from a real TPM.
 */
import assert from 'node:assert/strict';
import { createHash, createPublicKey, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  fromHex, toHex, marshal, unmarshal, rawBytes, objectName, ekTemplateRsa2048, ekTemplateEccP256, srkTemplateRsa2048, srkTemplateEccP256,
  akTemplate, signingKeyTemplate, TPM_ALG, TPM_ECC, TPM_ST, TPM_CAP, TPM_CC, TPM_PT, TPM_GENERATED_VALUE, TPMA_OBJECT,
  TPMT_PUBLIC, TPM2B_PUBLIC, TPMS_ATTEST, TPM2B_ATTEST, TPMT_SIGNATURE, TPML_PCR_SELECTION, TPMS_CAPABILITY_DATA, TPMS_CREATION_DATA,
  TPM2B_CREATION_DATA, TPMT_SENSITIVE, TPM2B_SENSITIVE, TPMS_NV_PUBLIC, TPM2B_NV_PUBLIC, TPMS_CONTEXT, TPMT_HA, TPML_DIGEST_VALUES,
  TPMT_SYM_DEF, TPMS_AUTH_COMMAND, TPMT_TK_CREATION, nvName,
  type Codec, type TPMT_PUBLIC as TPMT_PUBLIC_T, type TPMS_ATTEST as TPMS_ATTEST_T, type TPMT_SIGNATURE as TPMT_SIGNATURE_T,
  type TPMS_CAPABILITY_DATA as TPMS_CAPABILITY_DATA_T, type TPMT_SENSITIVE as TPMT_SENSITIVE_T,
} from '../src/index.js';
import { TESTDATA_URL as TESTDATA } from './fixtures/testdata.js';
import { jwkOf, keyObjectOf } from './support/keys.js';

const data = (p: string) => new Uint8Array(readFileSync(new URL(p, TESTDATA)));
const b64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);

/** encode -> expected hex (when given) -> decode -> equal, and re-encode gives the same bytes. */
function roundTrip<T>(codec: Codec<T>, value: T, hex?: string): Uint8Array {
  const enc = marshal(codec, value);
  if (hex !== undefined) assert.equal(toHex(enc), hex.replace(/\s+/g, ''));
  const dec = unmarshal(codec, enc);
  assert.deepStrictEqual(dec, value);
  assert.deepStrictEqual(marshal(codec, dec), enc);
  return enc;
}

const clockInfo = { clock: 0x0000000100000002n, resetCount: 3, restartCount: 4, safe: true };
const attestCommon = { magic: TPM_GENERATED_VALUE, qualifiedSigner: fromHex('000b' + '11'.repeat(32)), extraData: fromHex('cafe'), clockInfo, firmwareVersion: 0x2019102300163636n };

describe('structures: round trips', () => {
  it('TPMT_PUBLIC RSA (the TCG EK template L-1), byte for byte', () => {
    roundTrip(TPMT_PUBLIC, ekTemplateRsa2048(),
      '0001 000b 000300b2 0020 837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa' +
      '0006 0080 0043 0010 0800 00000000 0100' + '00'.repeat(256));
  });

  it('TPMT_PUBLIC ECC (the TCG EK template L-2), byte for byte', () => {
    roundTrip(TPMT_PUBLIC, ekTemplateEccP256(),
      '0023 000b 000300b2 0020 837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa' +
      '0006 0080 0043 0010 0003 0010 0020' + '00'.repeat(32) + '0020' + '00'.repeat(32));
  });

  it('TPMT_PUBLIC KEYEDHASH (sealed data, HMAC key) and SYMCIPHER', () => {
    const sealed: TPMT_PUBLIC_T = {
      type: TPM_ALG.KEYEDHASH, nameAlg: TPM_ALG.SHA256, objectAttributes: TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.userWithAuth,
      authPolicy: bytes(32, 0x77), parameters: { scheme: { scheme: TPM_ALG.NULL } }, unique: bytes(32, 0x01),
    };
    roundTrip(TPMT_PUBLIC, sealed, '0008 000b 00000052 0020' + '77'.repeat(32) + '0010 0020' + '01'.repeat(32));
    const hmacKey: TPMT_PUBLIC_T = { ...sealed, parameters: { scheme: { scheme: TPM_ALG.HMAC, hashAlg: TPM_ALG.SHA384 } }, unique: new Uint8Array(0) };
    roundTrip(TPMT_PUBLIC, hmacKey, '0008 000b 00000052 0020' + '77'.repeat(32) + '0005 000c 0000');
    const xorKey: TPMT_PUBLIC_T = { ...sealed, parameters: { scheme: { scheme: TPM_ALG.XOR, hashAlg: TPM_ALG.SHA256, kdf: TPM_ALG.KDF1_SP800_108 } } };
    roundTrip(TPMT_PUBLIC, xorKey);
    const aes: TPMT_PUBLIC_T = {
      type: TPM_ALG.SYMCIPHER, nameAlg: TPM_ALG.SHA256, objectAttributes: TPMA_OBJECT.decrypt | TPMA_OBJECT.sign,
      authPolicy: new Uint8Array(0), parameters: { sym: { algorithm: TPM_ALG.AES, keyBits: 256, mode: TPM_ALG.CFB } }, unique: new Uint8Array(0),
    };
    roundTrip(TPMT_PUBLIC, aes, '0025 000b 00060000 0000 0006 0100 0043 0000');
  });

  it('all standard templates round trip and sized TPM2B_PUBLIC wraps them', () => {
    for (const t of [ekTemplateRsa2048(), ekTemplateEccP256(), srkTemplateRsa2048(), srkTemplateEccP256(), akTemplate('rsa'), akTemplate('ecc'), signingKeyTemplate('rsa'), signingKeyTemplate('ecc')]) {
      const inner = roundTrip(TPMT_PUBLIC, t);
      const outer = marshal(TPM2B_PUBLIC, t);
      assert.equal(toHex(outer), toHex(Uint8Array.of(inner.length >> 8, inner.length & 0xff)) + toHex(inner));
      assert.deepEqual(rawBytes(unmarshal(TPM2B_PUBLIC, outer)), inner);
    }
  });

  const attests: [string, TPMS_ATTEST_T, string][] = [
    ['certify', { ...attestCommon, type: TPM_ST.ATTEST_CERTIFY, attested: { name: fromHex('000b' + 'aa'.repeat(32)), qualifiedName: fromHex('000b' + 'bb'.repeat(32)) } }, '8017'],
    ['quote', { ...attestCommon, type: TPM_ST.ATTEST_QUOTE, attested: { pcrSelect: [{ hash: TPM_ALG.SHA256, pcrSelect: fromHex('ff0000') }], pcrDigest: bytes(32, 0x42) } }, '8018'],
    ['creation', { ...attestCommon, type: TPM_ST.ATTEST_CREATION, attested: { objectName: fromHex('000b' + 'cc'.repeat(32)), creationHash: bytes(32, 9) } }, '801a'],
    ['time', { ...attestCommon, type: TPM_ST.ATTEST_TIME, attested: { time: { time: 123456789n, clockInfo }, firmwareVersion: 7n } }, '8019'],
    ['nv', { ...attestCommon, type: TPM_ST.ATTEST_NV, attested: { indexName: fromHex('000b' + 'dd'.repeat(32)), offset: 16, nvContents: bytes(100, 3) } }, '8014'],
    ['command audit', { ...attestCommon, type: TPM_ST.ATTEST_COMMAND_AUDIT, attested: { auditCounter: 2n ** 63n, digestAlg: TPM_ALG.SHA1, auditDigest: bytes(20, 1), commandDigest: bytes(20, 2) } }, '8015'],
    ['session audit', { ...attestCommon, type: TPM_ST.ATTEST_SESSION_AUDIT, attested: { exclusiveSession: true, sessionDigest: bytes(48, 5) } }, '8016'],
  ];
  for (const [what, value, tag] of attests) {
    it(`TPMS_ATTEST ${what}`, () => {
      const enc = roundTrip(TPMS_ATTEST, value);
      assert.equal(toHex(enc.subarray(0, 6)), `ff544347${tag}`);
      assert.equal(toHex(enc.subarray(6, 8)), '0022', 'qualifiedSigner is a TPM2B_NAME');
      roundTrip(TPM2B_ATTEST, value);
    });
  }

  it('TPMS_ATTEST quote, byte for byte', () => {
    roundTrip(TPMS_ATTEST, attests[1]![1],
      'ff544347 8018 0022 000b' + '11'.repeat(32) + '0002 cafe' + '0000000100000002 00000003 00000004 01' + '2019102300163636' +
      '00000001 000b 03 ff0000 0020' + '42'.repeat(32));
  });

  const sigs: [string, TPMT_SIGNATURE_T, string][] = [
    ['RSASSA', { sigAlg: TPM_ALG.RSASSA, hash: TPM_ALG.SHA256, sig: fromHex('0102') }, '0014 000b 0002 0102'],
    ['RSAPSS', { sigAlg: TPM_ALG.RSAPSS, hash: TPM_ALG.SHA384, sig: fromHex('03') }, '0016 000c 0001 03'],
    ['ECDSA', { sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, signatureR: fromHex('0a0b'), signatureS: fromHex('0c') }, '0018 000b 0002 0a0b 0001 0c'],
    ['ECSCHNORR', { sigAlg: TPM_ALG.ECSCHNORR, hash: TPM_ALG.SHA256, signatureR: fromHex('01'), signatureS: fromHex('02') }, '001c 000b 0001 01 0001 02'],
    ['HMAC', { sigAlg: TPM_ALG.HMAC, hmac: { hashAlg: TPM_ALG.SHA1, digest: bytes(20, 0xee) } }, '0005 0004' + 'ee'.repeat(20)],
    ['NULL', { sigAlg: TPM_ALG.NULL }, '0010'],
  ];
  for (const [what, value, hex] of sigs) {
    it(`TPMT_SIGNATURE ${what}`, () => roundTrip(TPMT_SIGNATURE, value, hex));
  }

  it('TPMT_HA: the digest size follows the hash algorithm', () => {
    roundTrip(TPMT_HA as Codec<{ hashAlg: number; digest: Uint8Array }>, { hashAlg: TPM_ALG.SHA256, digest: bytes(32, 1) }, '000b' + '01'.repeat(32));
    assert.throws(() => marshal(TPMT_HA as Codec<{ hashAlg: number; digest: Uint8Array }>, { hashAlg: TPM_ALG.SHA256, digest: bytes(20, 1) }), /must be 32 bytes/);
    roundTrip(TPML_DIGEST_VALUES, [{ hashAlg: TPM_ALG.SHA1, digest: bytes(20, 2) }, { hashAlg: TPM_ALG.SHA256, digest: bytes(32, 3) }]);
  });

  it('TPML_PCR_SELECTION', () => {
    roundTrip(TPML_PCR_SELECTION, [], '00000000');
    roundTrip(TPML_PCR_SELECTION, [{ hash: TPM_ALG.SHA1, pcrSelect: fromHex('ffffff') }, { hash: TPM_ALG.SHA256, pcrSelect: fromHex('010080') }],
      '00000002 0004 03 ffffff 000b 03 010080');
  });

  const caps: [string, TPMS_CAPABILITY_DATA_T, string][] = [
    ['algorithms', { capability: TPM_CAP.ALGS, algorithms: [{ alg: TPM_ALG.RSA, algProperties: 9 }] }, '00000000 00000001 0001 00000009'],
    ['handles', { capability: TPM_CAP.HANDLES, handles: [0x81000001, 0x81010001] }, '00000001 00000002 81000001 81010001'],
    ['commands', { capability: TPM_CAP.COMMANDS, command: [0x0201017b] }, '00000002 00000001 0201017b'],
    ['pp commands', { capability: TPM_CAP.PP_COMMANDS, ppCommands: [TPM_CC.Clear] }, '00000003 00000001 00000126'],
    ['audit commands', { capability: TPM_CAP.AUDIT_COMMANDS, auditCommands: [] }, '00000004 00000000'],
    ['PCRs', { capability: TPM_CAP.PCRS, assignedPCR: [{ hash: TPM_ALG.SHA256, pcrSelect: fromHex('ffffff') }] }, '00000005 00000001 000b 03 ffffff'],
    ['properties', { capability: TPM_CAP.TPM_PROPERTIES, tpmProperties: [{ property: TPM_PT.FAMILY_INDICATOR, value: 0x322e3000 }] }, '00000006 00000001 00000100 322e3000'],
    ['PCR properties', { capability: TPM_CAP.PCR_PROPERTIES, pcrProperties: [{ tag: 0, pcrSelect: fromHex('ff') }] }, '00000007 00000001 00000000 01 ff'],
    ['ECC curves', { capability: TPM_CAP.ECC_CURVES, eccCurves: [TPM_ECC.NIST_P256, TPM_ECC.NIST_P384] }, '00000008 00000002 0003 0004'],
  ];
  for (const [what, value, hex] of caps) {
    it(`TPMS_CAPABILITY_DATA ${what}`, () => roundTrip(TPMS_CAPABILITY_DATA, value, hex));
  }

  it('TPMS_CREATION_DATA (and TPM2B_CREATION_DATA)', () => {
    const cd = {
      pcrSelect: [{ hash: TPM_ALG.SHA256, pcrSelect: fromHex('000000') }], pcrDigest: bytes(32, 0xe3), locality: 1, parentNameAlg: TPM_ALG.SHA256,
      parentName: fromHex('000b' + '44'.repeat(32)), parentQualifiedName: fromHex('000b' + '55'.repeat(32)), outsideInfo: fromHex('0102'),
    };
    roundTrip(TPMS_CREATION_DATA, cd,
      '00000001 000b 03 000000 0020' + 'e3'.repeat(32) + '01 000b 0022 000b' + '44'.repeat(32) + '0022 000b' + '55'.repeat(32) + '0002 0102');
    roundTrip(TPM2B_CREATION_DATA, cd);
  });

  const sensitives: [string, TPMT_SENSITIVE_T, string][] = [
    ['RSA', { sensitiveType: TPM_ALG.RSA, authValue: fromHex('7061'), seedValue: new Uint8Array(0), sensitive: bytes(128, 0x99) }, '0001 0002 7061 0000 0080' + '99'.repeat(128)],
    ['ECC', { sensitiveType: TPM_ALG.ECC, authValue: new Uint8Array(0), seedValue: new Uint8Array(0), sensitive: bytes(32, 0x12) }, '0023 0000 0000 0020' + '12'.repeat(32)],
    ['KEYEDHASH', { sensitiveType: TPM_ALG.KEYEDHASH, authValue: new Uint8Array(0), seedValue: bytes(32, 5), sensitive: fromHex('736563726574') }, '0008 0000 0020' + '05'.repeat(32) + '0006 736563726574'],
    ['SYMCIPHER', { sensitiveType: TPM_ALG.SYMCIPHER, authValue: new Uint8Array(0), seedValue: bytes(32, 6), sensitive: bytes(16, 7) }, '0025 0000 0020' + '06'.repeat(32) + '0010' + '07'.repeat(16)],
  ];
  for (const [what, value, hex] of sensitives) {
    it(`TPMT_SENSITIVE ${what}`, () => {
      roundTrip(TPMT_SENSITIVE, value, hex);
      roundTrip(TPM2B_SENSITIVE, value);
    });
  }
  it('TPM2B_SENSITIVE may be empty (LoadExternal of a public key)', () => {
    roundTrip(TPM2B_SENSITIVE, null, '0000');
  });

  it('TPMS_NV_PUBLIC, TPMS_CONTEXT, TPMT_SYM_DEF, TPMS_AUTH_COMMAND, tickets', () => {
    const nv = { nvIndex: 0x01c00002, nameAlg: TPM_ALG.SHA256, attributes: 0x620f0001, authPolicy: new Uint8Array(0), dataSize: 1403 };
    roundTrip(TPMS_NV_PUBLIC, nv, '01c00002 000b 620f0001 0000 057b');
    roundTrip(TPM2B_NV_PUBLIC, nv);
    assert.equal(toHex(nvName(nv)).slice(0, 4), '000b');
    roundTrip(TPMS_CONTEXT, { sequence: 0x1234n, savedHandle: 0x80000000, hierarchy: 0x40000001, contextBlob: bytes(50, 1) });
    roundTrip(TPMT_SYM_DEF, { algorithm: TPM_ALG.XOR, keyBits: TPM_ALG.SHA256 }, '000a 000b');
    roundTrip(TPMT_SYM_DEF, { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB }, '0006 0080 0043');
    roundTrip(TPMS_AUTH_COMMAND, { sessionHandle: 0x40000009, nonce: new Uint8Array(0), sessionAttributes: 1, hmac: new Uint8Array(0) }, '40000009 0000 01 0000');
    roundTrip(TPMT_TK_CREATION, { tag: TPM_ST.CREATION, hierarchy: 0x40000007, digest: new Uint8Array(0) }, '8021 40000007 0000');
  });
});

describe('structures: known vectors', () => {
  it('tpm2-tools ek-template-default.bin is a TPMT_PUBLIC equal to our TCG L-1 EK template', () => {
    const file = data('tpm2-tools/ek-template-default.bin');
    const pub = unmarshal(TPMT_PUBLIC, file);
    assert.deepStrictEqual(pub, ekTemplateRsa2048());
    assert.deepStrictEqual(marshal(TPMT_PUBLIC, ekTemplateRsa2048()), file);
  });

  it('keylime ek.pub: a TPM2B_PUBLIC made from the L-1 template, whose key equals ekpub.pem', () => {
    const file = data('keylime/emulator-files/ek.pub');
    const ek = unmarshal(TPM2B_PUBLIC, file);
    assert.ok(ek.type === TPM_ALG.RSA);
    assert.deepStrictEqual({ ...ek, unique: new Uint8Array(256) }, ekTemplateRsa2048());
    assert.deepStrictEqual(rawBytes(ek), file.subarray(2));
    assert.deepStrictEqual(marshal(TPM2B_PUBLIC, ek), file);
    const pem = createPublicKey(readFileSync(new URL('keylime/emulator-files/ekpub.pem', TESTDATA)));
    assert.deepEqual(pem.export({ format: 'jwk' }), jwkOf(ek));
  });

  it('keylime ak.pub: a TPM2B_PUBLIC whose Name equals ak.name and whose key equals akpub.pem', () => {
    const file = data('keylime/emulator-files/ak.pub');
    const ak = unmarshal(TPM2B_PUBLIC, file);
    assert.ok(ak.type === TPM_ALG.RSA);
    assert.equal(ak.objectAttributes, 0x00050072);
    assert.deepStrictEqual(ak.parameters.scheme, { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 });
    assert.equal(toHex(objectName(ak)), toHex(data('keylime/emulator-files/ak.name')));
    assert.deepStrictEqual(marshal(TPM2B_PUBLIC, ak), file);
    const pem = createPublicKey(readFileSync(new URL('keylime/emulator-files/akpub.pem', TESTDATA)));
    assert.deepEqual(pem.export({ format: 'jwk' }), jwkOf(ak));
  });

  it('keylime quote.out is a TPMS_ATTEST quote and quotesig.out its TPMT_SIGNATURE, verified with akpub.pem', () => {
    const quoteBytes = data('keylime/emulator-files/quote.out');
    const quote = unmarshal(TPMS_ATTEST, quoteBytes);
    assert.equal(quote.magic, TPM_GENERATED_VALUE);
    assert.ok(quote.type === TPM_ST.ATTEST_QUOTE);
    assert.equal(quote.qualifiedSigner.length, 34);
    assert.equal(quote.extraData.length, 20);
    assert.equal(quote.clockInfo.clock, 5994n);
    assert.equal(quote.clockInfo.safe, true);
    assert.deepStrictEqual(quote.attested.pcrSelect, [{ hash: TPM_ALG.SHA256, pcrSelect: fromHex('008041') }]);
    assert.equal(quote.attested.pcrDigest.length, 32);
    assert.deepStrictEqual(marshal(TPMS_ATTEST, quote), quoteBytes);

    const sigBytes = data('keylime/emulator-files/quotesig.out');
    const sig = unmarshal(TPMT_SIGNATURE, sigBytes);
    assert.ok(sig.sigAlg === TPM_ALG.RSASSA);
    assert.equal(sig.hash, TPM_ALG.SHA256);
    assert.equal(sig.sig.length, 256);
    assert.deepStrictEqual(marshal(TPMT_SIGNATURE, sig), sigBytes);
    const akPem = createPublicKey(readFileSync(new URL('keylime/emulator-files/akpub.pem', TESTDATA)));
    assert.ok(verify('sha256', quoteBytes, akPem, sig.sig), 'the quote verifies with the decoded signature');
    const tampered = quoteBytes.slice();
    tampered[tampered.length - 1]! ^= 1;
    assert.ok(!verify('sha256', tampered, akPem, sig.sig));
  });

  it('keylime check-quote vector: TPMS_ATTEST + TPMT_SIGNATURE, nonce in extraData', () => {
    const v = JSON.parse(readFileSync(new URL('keylime/keylime_inline_vectors.json', TESTDATA), 'utf8')).checkquote;
    const quoteBytes = b64(v.quote_b64_TPMS_ATTEST);
    const quote = unmarshal(TPMS_ATTEST, quoteBytes);
    assert.ok(quote.type === TPM_ST.ATTEST_QUOTE);
    assert.equal(Buffer.from(quote.extraData).toString('ascii'), v.nonce_ascii);
    const sig = unmarshal(TPMT_SIGNATURE, b64(v.signature_b64_TPMT_SIGNATURE));
    assert.ok(sig.sigAlg === TPM_ALG.RSASSA && sig.hash === TPM_ALG.SHA256);
    assert.ok(verify('sha256', quoteBytes, createPublicKey(v.ak_public_pem), sig.sig));
  });

  it('keylime MakeCredential EKs: RSA and ECC TPM2B_PUBLIC from the TCG L-1/L-2 templates', () => {
    const v = JSON.parse(readFileSync(new URL('keylime/keylime_inline_vectors.json', TESTDATA), 'utf8'));
    const ecc = unmarshal(TPM2B_PUBLIC, fromHex(v.makecredential_ecc_deterministic.ek_tpm2b_public_hex));
    assert.ok(ecc.type === TPM_ALG.ECC);
    assert.deepStrictEqual({ ...ecc, unique: { x: new Uint8Array(32), y: new Uint8Array(32) } }, ekTemplateEccP256());
    keyObjectOf(ecc); // a valid P-256 point
    const rsa = unmarshal(TPM2B_PUBLIC, fromHex(v.makecredential_rsa_prefix.ek_tpm2b_public_hex));
    assert.ok(rsa.type === TPM_ALG.RSA);
    assert.deepStrictEqual({ ...rsa, unique: new Uint8Array(256) }, ekTemplateRsa2048());
  });

  it('go-attestation Windows GCP dump: AK, creation data, CertifyCreation and quote from a real TPM', () => {
    const j = JSON.parse(readFileSync(new URL('go-attestation/windows_gcp_shielded_vm.json', TESTDATA), 'utf8'));
    const akBytes = b64(j.AK.Public);
    const ak = unmarshal(TPMT_PUBLIC, akBytes);
    assert.ok(ak.type === TPM_ALG.RSA);
    assert.equal(ak.objectAttributes, 0x00050472);
    assert.deepStrictEqual(ak.parameters.scheme, { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA1 });
    assert.deepStrictEqual(marshal(TPMT_PUBLIC, ak), akBytes);
    const akKey = keyObjectOf(ak);

    const createData = b64(j.AK.CreateData);
    const cd = unmarshal(TPMS_CREATION_DATA, createData);
    assert.deepStrictEqual(marshal(TPMS_CREATION_DATA, cd), createData);
    assert.equal(cd.parentNameAlg, TPM_ALG.SHA256);

    const attBytes = b64(j.AK.CreateAttestation);
    const att = unmarshal(TPMS_ATTEST, attBytes);
    assert.ok(att.type === TPM_ST.ATTEST_CREATION);
    assert.deepStrictEqual(att.attested.objectName, objectName(ak), 'the certified Name is the Name we compute for the AK');
    assert.equal(toHex(att.attested.creationHash), createHash('sha256').update(createData).digest('hex'), 'creationHash = H(creation data)');
    const attSig = unmarshal(TPMT_SIGNATURE, b64(j.AK.CreateSignature));
    assert.ok(attSig.sigAlg === TPM_ALG.RSASSA && attSig.hash === TPM_ALG.SHA1);
    assert.ok(verify('sha1', attBytes, akKey, attSig.sig));

    const quoteBytes = b64(j.Quote.Quote);
    const quote = unmarshal(TPMS_ATTEST, quoteBytes);
    assert.ok(quote.type === TPM_ST.ATTEST_QUOTE);
    assert.deepStrictEqual(quote.attested.pcrSelect, [{ hash: TPM_ALG.SHA1, pcrSelect: fromHex('ffffff') }]);
    assert.deepStrictEqual(marshal(TPMS_ATTEST, quote), quoteBytes);
    const qSig = unmarshal(TPMT_SIGNATURE, b64(j.Quote.Signature));
    assert.ok(qSig.sigAlg === TPM_ALG.RSASSA);
    assert.ok(verify('sha1', quoteBytes, akKey, qSig.sig));
  });
});
