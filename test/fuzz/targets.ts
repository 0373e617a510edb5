// The decoders fuzzed by scripts/fuzz.ts (long runs) and packages/verifier/test/fuzz.test.ts
// (short fixed-seed runs): everything that reads bytes a TPM, a file, an attestor or a caller
// hands us. Each target names the only errors it may throw; seeds are the real test data in
// testdata/ (see testdata/README.md) and encoder output.
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  EventLogError,
  TPM2,
  TPM2B_ATTEST,
  TPM2B_CREATION_DATA,
  TPM2B_ENCRYPTED_SECRET,
  TPM2B_ID_OBJECT,
  TPM2B_NV_PUBLIC,
  TPM2B_PUBLIC,
  TPML_PCR_SELECTION,
  TPMS_ATTEST,
  TPMS_ECC_POINT,
  TPMT_PUBLIC,
  TPMT_SIGNATURE,
  TPM_ALG,
  TPM_ST,
  TpmCryptoError,
  TpmDecodeError,
  TpmError,
  UserspaceLogError,
  Reader,
  certificateMatchesPublic,
  ekTemplateEccP256,
  ekTemplateRsa2048,
  execute,
  marshal,
  parseCertificate,
  parseEventLog,
  parseUserspaceLog,
  buildUserspaceLog,
  phaseRecord,
  pemToDers,
  unmarshalExact,
  type AnyCommandSpec,
  type Codec,
} from '@tpmds/tpm2-wire';
import {
  FormatError,
  decodeAttestationParameters,
  decodeCertificationParameters,
  decodeEncryptedCredential,
  decodeImportBlob,
  decodePlatformParameters,
  encodeAttestationParameters,
  encodeCertificationParameters,
  encodeEncryptedCredential,
  encodeImportBlob,
  encodePlatformParameters,
} from '@tpmds/protocol/formats';
import { MalformedRequest, verifierServiceDefinition } from '@tpmds/protocol/proto';
import { GCE_INSTANCE_INFO_OID, GceInstanceInfoError, decodeGceInstanceInfo, verifyEk } from '@tpmds/verifier';
import { CannedTransport, responseCode, successResponse, withPasswordAuths } from '../../packages/tpm2-wire/test/fixtures/canned-responses.js';
import type { FuzzTarget } from './engine.js';

const TESTDATA = fileURLToPath(new URL('../../testdata/', import.meta.url));
const read = (path: string): Uint8Array => new Uint8Array(readFileSync(`${TESTDATA}${path}`));
const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** `body` with its big-endian u16 size in front (a TPM2B). */
function sized(body: Uint8Array): Uint8Array {
  return Buffer.concat([Uint8Array.of(body.length >> 8, body.length & 0xff), body]);
}

const isDecode = (e: unknown): boolean => e instanceof TpmDecodeError;

/** go-attestation's dump of a real Windows GCE Shielded VM: an AK and a quote. */
function windowsVm(): { ak: Record<string, string | boolean | null>; quote: Uint8Array; signature: Uint8Array } {
  const j = JSON.parse(new TextDecoder().decode(read('go-attestation/windows_gcp_shielded_vm.json'))) as {
    AK: Record<string, string | boolean | null>;
    Quote: { Quote: string; Signature: string };
  };
  return { ak: j.AK, quote: b64(j.Quote.Quote), signature: b64(j.Quote.Signature) };
}

function akPublicArea(): Uint8Array {
  return b64(windowsVm().ak['Public'] as string);
}

function publicSeeds(): Uint8Array[] {
  return [akPublicArea(), marshal(TPMT_PUBLIC, ekTemplateRsa2048()), marshal(TPMT_PUBLIC, ekTemplateEccP256()), read('tpm2-tools/ek-template-default.bin')];
}

const RSA_SIGNATURE = marshal(TPMT_SIGNATURE, { sigAlg: TPM_ALG.RSASSA, hash: TPM_ALG.SHA256, sig: new Uint8Array(256).fill(0x5a) } as never);
const ECC_SIGNATURE = marshal(TPMT_SIGNATURE, { sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, signatureR: new Uint8Array(32).fill(1), signatureS: new Uint8Array(32).fill(2) } as never);

/** A tpm2-wire structure decoder: unmarshalExact must return or throw TpmDecodeError. */
function structure<T extends object>(codec: Codec<T>, seeds: () => Uint8Array[]): FuzzTarget {
  return { name: `tpm2-wire ${codec.name}`, seeds, run: (b) => unmarshalExact(codec, b), typed: isDecode, maxLength: 8192 };
}

// ---- execute(): the response of every command ----------------------------------------------

/** Known-good encodings of the types a buffer of zeros does not decode as. */
function goodEncodings(): Record<string, Uint8Array> {
  const nvPublic = { nvIndex: 0x01c00002, nameAlg: TPM_ALG.SHA256, attributes: 0x62072001, authPolicy: new Uint8Array(0), dataSize: 1024 };
  return {
    TPMT_SIG_SCHEME: Uint8Array.of(0x00, 0x10),
    TPMT_SYM_DEF_OBJECT: Uint8Array.of(0x00, 0x10),
    TPMT_SYM_DEF: Uint8Array.of(0x00, 0x10),
    TPM2B_SENSITIVE_CREATE: Uint8Array.of(0, 4, 0, 0, 0, 0),
    TPM2B_PUBLIC: marshal(TPM2B_PUBLIC, ekTemplateRsa2048()),
    TPM2B_NV_PUBLIC: marshal(TPM2B_NV_PUBLIC, nvPublic as never),
    TPMT_SIGNATURE: RSA_SIGNATURE,
    TPM2B_CREATION_DATA: sized(b64(windowsVm().ak['CreateData'] as string)),
    TPM2B_ATTEST: marshal(TPM2B_ATTEST, unmarshalExact(TPMS_ATTEST, windowsVm().quote)),
  };
}

/** A value of `codec` (a struct's field): decoded from zeros, or from a known-good encoding. */
function fieldBytes(codec: Codec<unknown>, good: Record<string, Uint8Array>): Uint8Array {
  const known = good[codec.name];
  if (known !== undefined) return known;
  const zeros = new Uint8Array(4096);
  const r = new Reader(zeros);
  codec.decode(r);
  return zeros.subarray(0, r.offset);
}

function structBytes(fields: Record<string, Codec<unknown>>, good: Record<string, Uint8Array>): Uint8Array {
  return Buffer.concat(Object.values(fields).map((c) => fieldBytes(c, good)));
}

/** Every command of tpm2-wire with the parameters and handles to call it with. */
export function commandSpecs(): AnyCommandSpec[] {
  return (Object.values(TPM2) as unknown[]).filter((s): s is AnyCommandSpec => typeof s === 'object' && s !== null && 'code' in s && 'response' in s);
}

/**
 * execute() of `spec` on a transport that answers with the fuzzed bytes: success, TpmDecodeError,
 * or TpmError with the response's own non-zero code. Seeds: a valid success response (response
 * handles, parameters with sessions framing where the command has authorizations).
 */
export function executeTarget(spec: AnyCommandSpec): FuzzTarget {
  const good = goodEncodings();
  const params = spec.params.decode(new Reader(structBytes(spec.params.fields as Record<string, Codec<unknown>>, good)));
  // Permanent handles are their own Names: no ReadPublic is needed to call anything.
  const handles = Object.fromEntries(spec.handles.map((h) => [h.name, 0x40000001]));
  const withSessions = spec.handles.some((h) => h.auth);
  const transport = new CannedTransport();
  const seeds = (): Uint8Array[] => {
    const handleBytes = new Uint8Array(4 * spec.responseHandles.length).fill(0x80);
    const rparams = structBytes(spec.response.fields as Record<string, Codec<unknown>>, good);
    if (!withSessions) return [successResponse(TPM_ST.NO_SESSIONS, Buffer.concat([handleBytes, rparams])), successResponse(TPM_ST.NO_SESSIONS, new Uint8Array(0))];
    const authCount = spec.handles.filter((h) => h.auth).length;
    return [successResponse(TPM_ST.SESSIONS, Buffer.concat([handleBytes, withPasswordAuths(rparams, authCount)]))];
  };
  return {
    name: `tpm2-wire execute ${spec.name}`,
    seeds,
    maxLength: 8192,
    run: async (b) => {
      transport.response = b;
      try {
        await execute(transport, spec, handles as never, params as never);
      } catch (e) {
        if (e instanceof TpmError && e.rc !== 0 && e.rc === responseCode(b)) return;
        throw e;
      }
    },
    typed: isDecode,
  };
}

// ---- the other decoders ----------------------------------------------------------------------

function eventLogSeeds(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const name of readdirSync(`${TESTDATA}tpm2-tools`)) if (name.startsWith('event') && name.endsWith('.bin')) out.push(read(`tpm2-tools/${name}`));
  for (const name of ['short_no_action_eventlog', 'ebs_event_missing_eventlog', 'crypto_agile_eventlog']) out.push(read(`go-attestation/${name}`));
  out.push(read('go-tpm-tools/eventlogs/debian-10.bin'), read('keylime/binary_bios_measurements'));
  // Long logs: their first 16 KiB (a cut log is an input too) keep each case well under 100 ms.
  return out.map((b) => b.subarray(0, 16384));
}

function certificateSeeds(): Uint8Array[] {
  return ['gcp_ek_ak_ca_root.crt', 'tpm_ek_intermediate_2.crt', 'tpm_ek_intermediate_3.crt', 'tpm_ek_root_1.cer'].map((n) => {
    const raw = read(`go-tpm-tools/ca-certs/${n}`);
    return raw[0] === 0x30 ? raw : (pemToDers(raw)[0] as Uint8Array);
  });
}

function pemText(der: Uint8Array): Uint8Array {
  const lines = Buffer.from(der).toString('base64').match(/.{1,64}/g) ?? [];
  return utf8(`-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`);
}

function goAttestationSeeds(): { ak: Uint8Array; platform: Uint8Array; certification: Uint8Array; credential: Uint8Array } {
  const vm = windowsVm();
  const akJson = utf8(JSON.stringify(vm.ak));
  const ak = decodeAttestationParameters(akJson);
  return {
    ak: encodeAttestationParameters(ak),
    platform: encodePlatformParameters({
      tpmVersion: 2,
      public: ak.public,
      quotes: [{ version: 2, quote: vm.quote, signature: vm.signature }],
      pcrs: [{ index: 0, digest: new Uint8Array(20).fill(1), digestAlg: 3 }, { index: 7, digest: new Uint8Array(32).fill(2), digestAlg: 5 }],
      eventLog: read('tpm2-tools/event-uefivar.bin'),
    }),
    certification: encodeCertificationParameters({ public: ak.public, createData: null, createAttestation: vm.quote, createSignature: vm.signature }),
    credential: encodeEncryptedCredential({ credential: Uint8Array.of(0, 4, 1, 2, 3, 4), secret: marshal(TPM2B_ENCRYPTED_SECRET, new Uint8Array(256).fill(9)) }),
  };
}

function importBlobSeeds(): Uint8Array[] {
  const base = { duplicate: new Uint8Array(200).fill(3), encryptedSeed: new Uint8Array(256).fill(4), publicArea: akPublicArea() };
  return [
    encodeImportBlob(base),
    encodeImportBlob({ ...base, pcrs: { hash: 11, pcrs: new Map([[0, new Uint8Array(32)], [7, new Uint8Array(32).fill(7)], [23, new Uint8Array(32).fill(23)]]) } }),
  ];
}

const isFormat = (e: unknown): boolean => e instanceof FormatError;

/** Every request deserializer answered MalformedRequest (what the server turns into INVALID_ARGUMENT). */
class AllMalformed extends Error {}

/** Every fuzz target, in report order. */
export function allTargets(): FuzzTarget[] {
  const ga = goAttestationSeeds();
  const certs = certificateSeeds();
  const requestDeserializers = verifierServiceDefinition('server') as unknown as Record<string, { requestDeserialize: (b: Buffer) => unknown }>;
  const ekSpki = parseCertificate(certs[0] as Uint8Array).spki;
  return [
    ...commandSpecs().map(executeTarget),
    structure(TPMT_PUBLIC, publicSeeds),
    structure(TPM2B_PUBLIC, () => publicSeeds().map((p) => marshal(TPM2B_PUBLIC, unmarshalExact(TPMT_PUBLIC, p)))),
    structure(TPMS_ATTEST, () => [windowsVm().quote, b64(windowsVm().ak['CreateAttestation'] as string)]),
    structure(TPMT_SIGNATURE, () => [windowsVm().signature, RSA_SIGNATURE, ECC_SIGNATURE]),
    structure(TPM2B_CREATION_DATA, () => [sized(b64(windowsVm().ak['CreateData'] as string))]),
    structure(TPM2B_ID_OBJECT, () => [Uint8Array.of(0, 6, 0, 2, 1, 2, 3, 4)]),
    structure(TPMS_ECC_POINT, () => [marshal(TPMS_ECC_POINT, { x: new Uint8Array(32).fill(1), y: new Uint8Array(32).fill(2) })]),
    structure(TPML_PCR_SELECTION, () => [marshal(TPML_PCR_SELECTION, [{ hash: TPM_ALG.SHA256, pcrSelect: Uint8Array.of(0xff, 0xff, 0xff) }, { hash: TPM_ALG.SHA1, pcrSelect: Uint8Array.of(1, 0, 0x80) }])]),
    { name: 'tpm2-wire parseEventLog', seeds: eventLogSeeds, run: (b) => parseEventLog(b), typed: (e) => e instanceof EventLogError, maxLength: 32768 },
    {
      name: 'tpm2-wire parseUserspaceLog',
      seeds: () => [
        buildUserspaceLog(['enter-initrd', 'leave-initrd', 'sysinit', 'ready'].map(phaseRecord), [TPM_ALG.SHA1, TPM_ALG.SHA256]),
        buildUserspaceLog([{ pcr: 15, data: utf8('machine-id:0123'), string: 'machine-id:0123', eventType: 'machine-id' }], [TPM_ALG.SHA256, TPM_ALG.SHA384]),
      ],
      run: (b) => parseUserspaceLog(b),
      typed: (e) => e instanceof UserspaceLogError,
    },
    {
      name: 'verifier decodeGceInstanceInfo (GCE instance-identity extension)',
      seeds: () =>
        ['pca_tpm_rsa_enc_cert.pem', 'uca_tpm_ecc_sign_cert.pem'].flatMap((f) => {
          const cert = parseCertificate(pemToDers(read(`go-tpm-tools/certificates/${f}`))[0]!);
          const ext = cert.pkijs.extensions?.find((x) => x.extnID === GCE_INSTANCE_INFO_OID);
          return ext ? [new Uint8Array(ext.extnValue.valueBlock.valueHexView)] : [];
        }),
      run: (b) => decodeGceInstanceInfo(b),
      typed: (e) => e instanceof GceInstanceInfoError,
    },
    { name: 'protocol decodeAttestationParameters (JSON)', seeds: () => [ga.ak], run: (b) => decodeAttestationParameters(b), typed: isFormat },
    { name: 'protocol decodePlatformParameters (JSON)', seeds: () => [ga.platform], run: (b) => decodePlatformParameters(b), typed: isFormat },
    { name: 'protocol decodeCertificationParameters (JSON)', seeds: () => [ga.certification], run: (b) => decodeCertificationParameters(b), typed: isFormat },
    { name: 'protocol decodeEncryptedCredential (JSON)', seeds: () => [ga.credential], run: (b) => decodeEncryptedCredential(b), typed: isFormat },
    { name: 'protocol decodeImportBlob (protobuf)', seeds: importBlobSeeds, run: (b) => decodeImportBlob(b), typed: isFormat },
    {
      name: 'attestor request deserializers (protobuf)',
      seeds: () => importBlobSeeds().map((blob) => Buffer.concat([Uint8Array.of(0x0a, 3), utf8('pod'), Uint8Array.of(0x12, 1), utf8('k'), Uint8Array.of(0x1a, blob.length & 0x7f | 0x80, blob.length >> 7), blob])),
      // What grpc-js calls on every request: it must never throw (a MalformedRequest is answered INVALID_ARGUMENT).
      run: (b) => {
        let malformed = 0;
        for (const m of ['ImportSigningKey', 'Sign', 'NewKey', 'ImportBlob', 'Quote']) {
          const r = requestDeserializers[m]!.requestDeserialize(Buffer.from(b));
          if (r === undefined || r === null) throw new Error(`${m}: deserialized to ${String(r)}`);
          if (r instanceof MalformedRequest) malformed++;
        }
        // A typed rejection when every deserializer found it malformed (answered INVALID_ARGUMENT).
        if (malformed === 5) throw new AllMalformed();
      },
      typed: (e) => e instanceof AllMalformed,
    },
    { name: 'verifier PEM certificate files (pemToDers + parseCertificate)', seeds: () => certs.map(pemText), run: (b) => pemToDers(b).map(parseCertificate), typed: (e) => e instanceof TpmCryptoError },
    {
      name: 'verifier X.509 (parseCertificate + certificateMatchesPublic)',
      seeds: () => certs,
      run: (b) => certificateMatchesPublic(b, ekTemplateRsa2048()),
      typed: (e) => e instanceof TpmCryptoError,
    },
    {
      name: 'verifier GetEKCert response (verifyEk)',
      seeds: () => certs,
      // The verifier's EK step turns every problem into a failed check: it never throws.
      run: (b) => verifyEk({ ekPub: ekSpki, ekCert: b }, { keyType: 'rsa', roots: [], intermediates: [] } as never),
      typed: () => false,
    },
  ];
}
