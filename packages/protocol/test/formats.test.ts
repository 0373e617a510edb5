import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  FormatError,
  GoCryptoHash,
  attestationParametersFromJson,
  decodeAttestationParameters,
  decodeCertificationParameters,
  decodeEncryptedCredential,
  decodePlatformParameters,
  decodePublicKeyPem,
  encodeAttestationParameters,
  encodeCertificationParameters,
  encodeEncryptedCredential,
  EncodedGoBytes,
  encodePlatformParameters,
  encodePublicKeyPem,
  pcrFromJson,
} from '../src/formats/index.js';
import type { JsonObject, PlatformParameters } from '../src/formats/index.js';

const TESTDATA = resolve(dirname(fileURLToPath(import.meta.url)), '../../../testdata');
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const bytes = (...v: number[]): Uint8Array => new Uint8Array(v);
const u16 = (b: Uint8Array, off: number): number => (b[off]! << 8) | b[off + 1]!;
const u32 = (b: Uint8Array, off: number): number => ((b[off]! << 24) >>> 0) + (b[off + 1]! << 16) + (b[off + 2]! << 8) + b[off + 3]!;

function expectFormatError(fn: () => unknown, field: string): FormatError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
    assert.equal(e.field, field);
    assert.ok(e.message.startsWith(`${field}: `), e.message);
    return e;
  }
  assert.fail(`expected a FormatError naming ${field}`);
}

describe('formats: go-attestation JSON', () => {
  describe('AttestationParameters', () => {
    it('encodes exactly like Go json.Encoder (field order, base64, null for nil, trailing newline)', () => {
      const out = encodeAttestationParameters({
        public: bytes(0, 1, 0, 0xb),
        useTCSDActivationFormat: false,
        createData: null,
        createAttestation: bytes(),
        createSignature: bytes(0xff, 0xfe),
      });
      assert.equal(
        text(out),
        '{"Public":"AAEACw==","UseTCSDActivationFormat":false,"CreateData":null,"CreateAttestation":"","CreateSignature":"//4="}\n',
      );
    });

    it('round-trips, keeping nil (null) apart from empty', () => {
      const p = {
        public: bytes(1, 2, 3),
        useTCSDActivationFormat: true,
        createData: null,
        createAttestation: bytes(),
        createSignature: bytes(9),
      };
      assert.deepEqual(decodeAttestationParameters(encodeAttestationParameters(p)), p);
    });

    it("decodes the real AK of windows_gcp_shielded_vm.json and re-encodes it byte for byte", () => {
      const doc = JSON.parse(readFileSync(resolve(TESTDATA, 'go-attestation/windows_gcp_shielded_vm.json'), 'utf8')) as {
        AK: JsonObject;
        Log: { PCRs: JsonObject[] };
      };
      const akJson = JSON.stringify(doc.AK);
      const ak = decodeAttestationParameters(akJson);
      assert.deepEqual(attestationParametersFromJson(doc.AK), ak);
      const pub = ak.public!;
      assert.equal(u16(pub, 0), 0x0001, 'TPMT_PUBLIC.type = TPM_ALG_RSA');
      assert.equal(u16(pub, 2), 0x000b, 'nameAlg = SHA-256');
      assert.equal(u32(pub, 4), 0x00050472, 'objectAttributes of a go-attestation AK');
      assert.equal(ak.useTCSDActivationFormat, false);
      const att = ak.createAttestation!;
      assert.equal(u32(att, 0), 0xff544347, 'TPM_GENERATED_VALUE');
      assert.equal(u16(att, 4), 0x801a, 'TPM_ST_ATTEST_CREATION');
      const sig = ak.createSignature!;
      assert.equal(u16(sig, 0), 0x0014, 'TPM_ALG_RSASSA');
      assert.equal(u16(sig, 2), 0x0004, 'SHA-1 (this 2019 AK signs with SHA-1)');
      assert.equal(u16(sig, 4), 256, 'RSA-2048 signature size');
      assert.ok(ak.createData!.length > 0);
      // Go field order is the file's order, so our encoder reproduces the document exactly.
      assert.equal(text(encodeAttestationParameters(ak)), akJson + '\n');

      const pcrs = doc.Log.PCRs.map((p, i) => pcrFromJson(p, `Log.PCRs[${i}]`));
      assert.equal(pcrs.length, 24);
      assert.deepEqual(
        pcrs.map((p) => p.index).sort((a, b) => a - b),
        Array.from({ length: 24 }, (_, i) => i),
      );
      for (const p of pcrs) {
        assert.equal(p.digestAlg, GoCryptoHash.SHA1);
        assert.equal(p.digest!.length, 20);
      }
    });

    it('matches field names case-insensitively, last match winning, and ignores unknown fields', () => {
      const p = decodeAttestationParameters(
        '{"public":"AQ==","PUBLIC":"Ag==","usetcsdactivationformat":true,"CREATEDATA":null,"Extra":{"x":[1,2]},"createAttestation":"Aw=="}\n',
      );
      assert.deepEqual(p, {
        public: bytes(2),
        useTCSDActivationFormat: true,
        createData: null,
        createAttestation: bytes(3),
        createSignature: null,
      });
    });

    it('accepts a trailing newline and whitespace, and base64 broken by CR/LF like Go', () => {
      const p = decodeAttestationParameters(new TextEncoder().encode('  {"Public":"AQI\\r\\nD"}\n\n'));
      assert.deepEqual(p.public, bytes(1, 2, 3));
    });

    it('rejects bad input with a FormatError naming the field and no payload bytes', () => {
      const e = expectFormatError(
        () => decodeAttestationParameters('{"Public":"AQ==","CreateSignature":"secret-ish!!"}'),
        'AttestationParameters.CreateSignature',
      );
      assert.ok(!e.message.includes('secret-ish'));
      expectFormatError(() => decodeAttestationParameters('{"Public":"AQ"}'), 'AttestationParameters.Public');
      expectFormatError(() => decodeAttestationParameters('{"Public":"A=QQ"}'), 'AttestationParameters.Public');
      expectFormatError(() => decodeAttestationParameters('{"Public":123}'), 'AttestationParameters.Public');
      expectFormatError(
        () => decodeAttestationParameters('{"UseTCSDActivationFormat":"yes"}'),
        'AttestationParameters.UseTCSDActivationFormat',
      );
      expectFormatError(() => decodeAttestationParameters('{"Public":'), 'AttestationParameters');
      expectFormatError(() => decodeAttestationParameters('[1]'), 'AttestationParameters');
      expectFormatError(() => decodeAttestationParameters('null'), 'AttestationParameters');
      expectFormatError(() => decodeAttestationParameters(bytes(0x7b, 0xff, 0x7d)), 'AttestationParameters');
    });
  });

  describe('EncryptedCredential', () => {
    it('round-trips with the TPM2B prefixes kept', () => {
      const c = { credential: bytes(0, 2, 0xaa, 0xbb), secret: bytes(0, 1, 7) };
      const out = encodeEncryptedCredential(c);
      assert.equal(text(out), '{"Credential":"AAKquw==","Secret":"AAEH"}\n');
      assert.deepEqual(decodeEncryptedCredential(out), c);
      assert.deepEqual(decodeEncryptedCredential('{}'), { credential: null, secret: null });
      expectFormatError(() => decodeEncryptedCredential('{"Secret":[1]}'), 'EncryptedCredential.Secret');
    });
  });

  describe('PlatformParameters', () => {
    const sample: PlatformParameters = {
      tpmVersion: 2,
      public: bytes(0, 1),
      quotes: [
        { version: 2, quote: bytes(0xff, 0x54, 0x43, 0x47), signature: bytes(0, 0x14) },
        { version: 2, quote: bytes(1), signature: null },
      ],
      pcrs: [
        { index: 0, digest: new Uint8Array(32), digestAlg: GoCryptoHash.SHA256 },
        { index: 23, digest: new Uint8Array(20).fill(0xff), digestAlg: GoCryptoHash.SHA1 },
      ],
      eventLog: bytes(),
    };

    it('encodes Go field names, Version/TPMVersion included, and round-trips', () => {
      const out = encodePlatformParameters(sample);
      const s = text(out);
      assert.ok(s.startsWith('{"TPMVersion":2,"Public":"AAE=","Quotes":[{"Version":2,"Quote":"/1RDRw==","Signature":"ABQ="},'));
      assert.ok(s.includes('{"Index":23,"Digest":"//////////////////////////8=","DigestAlg":3}'));
      assert.ok(s.endsWith('"EventLog":""}\n'));
      assert.deepEqual(decodePlatformParameters(out), sample);
    });

    it('encodes nil slices as null and decodes them back', () => {
      const p: PlatformParameters = { tpmVersion: 2, public: null, quotes: null, pcrs: null, eventLog: null };
      const out = encodePlatformParameters(p);
      assert.equal(text(out), '{"TPMVersion":2,"Public":null,"Quotes":null,"PCRs":null,"EventLog":null}\n');
      assert.deepEqual(decodePlatformParameters(out), p);
    });

    it('an event log encoded ahead (EncodedGoBytes) gives the same bytes', () => {
      for (const eventLog of [null, bytes(), bytes(0, 1, 2, 0xff), new Uint8Array(50_000).map((_, i) => i * 7)]) {
        const p = { ...sample, eventLog };
        assert.deepEqual(encodePlatformParameters({ ...p, eventLog: new EncodedGoBytes(eventLog) }), encodePlatformParameters(p));
        assert.deepEqual(encodePlatformParameters({ ...p, quotes: null, pcrs: [], eventLog: new EncodedGoBytes(eventLog) }), encodePlatformParameters({ ...p, quotes: null, pcrs: [] }));
      }
    });

    it('names the failing element of a list', () => {
      const bad = '{"TPMVersion":2,"Quotes":[{"Quote":"AA=="},{"Quote":"AA==","Signature":"***"}]}';
      expectFormatError(() => decodePlatformParameters(bad), 'PlatformParameters.Quotes[1].Signature');
      expectFormatError(
        () => decodePlatformParameters('{"PCRs":[{"Index":1.5}]}'),
        'PlatformParameters.PCRs[0].Index',
      );
      expectFormatError(() => decodePlatformParameters('{"PCRs":[7]}'), 'PlatformParameters.PCRs[0]');
      expectFormatError(() => decodePlatformParameters('{"Quotes":{}}'), 'PlatformParameters.Quotes');
      expectFormatError(() => decodePlatformParameters('{"TPMVersion":256}'), 'PlatformParameters.TPMVersion');
    });
  });

  describe('CertificationParameters', () => {
    it('round-trips with CreateData null (TPM2_Certify)', () => {
      const c = { public: bytes(0, 0x23), createData: null, createAttestation: bytes(0xff), createSignature: bytes(0, 0x18) };
      const out = encodeCertificationParameters(c);
      assert.equal(text(out), '{"Public":"ACM=","CreateData":null,"CreateAttestation":"/w==","CreateSignature":"ABg="}\n');
      assert.deepEqual(decodeCertificationParameters(out), c);
    });
  });

  describe('PEM public keys', () => {
    it('writes "PUBLIC KEY" and reads it and the seed\'s "RSA PUBLIC KEY" label', () => {
      const der = new Uint8Array(100).map((_, i) => i);
      const pem = text(encodePublicKeyPem(der));
      assert.match(pem, /^-----BEGIN PUBLIC KEY-----\n(?:[A-Za-z0-9+/]{64}\n)+[A-Za-z0-9+/=]{1,64}\n-----END PUBLIC KEY-----\n$/);
      assert.deepEqual(decodePublicKeyPem(pem), der);
      assert.deepEqual(decodePublicKeyPem(pem.replace(/PUBLIC KEY/g, 'RSA PUBLIC KEY')), der);
      expectFormatError(() => decodePublicKeyPem('nothing here'), 'public');
    });
  });
});
