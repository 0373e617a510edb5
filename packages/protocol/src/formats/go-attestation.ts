// go-attestation v0.5.1 JSON payloads (FORMATS.md). Field order and names are Go's struct order,
// so our output is byte-identical to Go's json.Encoder for the same values.
import { FormatError } from './errors.js';
import type { JsonObject } from './go-json.js';
import { bytesValue, parseJsonObject, readArray, readBool, readBytes, readInt, serializeJson } from './go-json.js';

/** Go `crypto.Hash` numbers as they appear in `PCR.DigestAlg`. */
export const GoCryptoHash = { SHA1: 3, SHA256: 5, SHA384: 6, SHA512: 7 } as const;

/** `attest.TPMVersion` of a TPM 2.0 (`Quote.Version`, `PlatformParameters.TPMVersion`). */
export const TPM_VERSION_20 = 2;

/** A `[]byte` field: `null` stands for Go's nil slice (encoded as JSON null). */
export type GoBytes = Uint8Array | null;

/** go-attestation `AttestationParameters` (GetAKResponse.ak); blobs carry no TPM2B size prefix. */
export interface AttestationParameters {
  /** TPMT_PUBLIC of the AK. */
  public: GoBytes;
  useTCSDActivationFormat: boolean;
  /** TPMS_CREATION_DATA. */
  createData: GoBytes;
  /** TPMS_ATTEST (TPM_ST_ATTEST_CREATION) from TPM2_CertifyCreation. */
  createAttestation: GoBytes;
  /** TPMT_SIGNATURE over createAttestation by the AK. */
  createSignature: GoBytes;
}

/** go-attestation `EncryptedCredential` (AttestRequest.encryptedCredentials); both keep their u16 size prefix. */
export interface EncryptedCredential {
  /** TPM2B_ID_OBJECT, with its size prefix. */
  credential: GoBytes;
  /** TPM2B_ENCRYPTED_SECRET, with its size prefix. */
  secret: GoBytes;
}

/** go-attestation `Quote`: one TPM2_Quote. */
export interface Quote {
  /** `attest.TPMVersion`, 2 for TPM 2.0 (dropped by go-attestation 0.6, still emitted). */
  version: number;
  /** TPMS_ATTEST (TPM_ST_ATTEST_QUOTE). */
  quote: GoBytes;
  /** TPMT_SIGNATURE. */
  signature: GoBytes;
}

/** go-attestation `PCR`: one PCR value of one bank. */
export interface PCR {
  index: number;
  digest: GoBytes;
  /** Go `crypto.Hash` (see {@link GoCryptoHash}). */
  digestAlg: number;
}

/** go-attestation `PlatformParameters` (QuoteResponse.platformAttestation). */
export interface PlatformParameters {
  /** `attest.TPMVersion`, 2 (dropped by go-attestation 0.6, still emitted). */
  tpmVersion: number;
  /** TPMT_PUBLIC of the AK that signed the quotes. */
  public: GoBytes;
  quotes: Quote[] | null;
  pcrs: PCR[] | null;
  /** The raw firmware event log. */
  eventLog: GoBytes;
}

/** go-attestation `CertificationParameters` (NewKeyResponse.keyCertification). */
export interface CertificationParameters {
  /** TPMT_PUBLIC of the certified key. */
  public: GoBytes;
  /** TPMS_CREATION_DATA; nil for keys certified with TPM2_Certify. */
  createData: GoBytes;
  /** TPMS_ATTEST (TPM_ST_ATTEST_CERTIFY) from TPM2_Certify by the AK. */
  createAttestation: GoBytes;
  /** TPMT_SIGNATURE over createAttestation by the AK. */
  createSignature: GoBytes;
}

const U8_MAX = 0xff;
const INT_MAX = Number.MAX_SAFE_INTEGER;

/** Encodes AttestationParameters as go-attestation JSON (with Go's trailing newline). */
export function encodeAttestationParameters(p: AttestationParameters): Uint8Array {
  return serializeJson({
    Public: bytesValue(p.public),
    UseTCSDActivationFormat: p.useTCSDActivationFormat,
    CreateData: bytesValue(p.createData),
    CreateAttestation: bytesValue(p.createAttestation),
    CreateSignature: bytesValue(p.createSignature),
  });
}

/** Decodes go-attestation AttestationParameters JSON; throws FormatError. */
export function decodeAttestationParameters(input: Uint8Array | string): AttestationParameters {
  const path = 'AttestationParameters';
  return attestationParametersFromJson(parseJsonObject(input, path), path);
}

/** Reads AttestationParameters from an already parsed JSON object (e.g. a field of a larger document). */
export function attestationParametersFromJson(obj: JsonObject, path = 'AttestationParameters'): AttestationParameters {
  return {
    public: readBytes(obj, 'Public', path),
    useTCSDActivationFormat: readBool(obj, 'UseTCSDActivationFormat', path),
    createData: readBytes(obj, 'CreateData', path),
    createAttestation: readBytes(obj, 'CreateAttestation', path),
    createSignature: readBytes(obj, 'CreateSignature', path),
  };
}

/** Encodes an EncryptedCredential as go-attestation JSON. */
export function encodeEncryptedCredential(c: EncryptedCredential): Uint8Array {
  return serializeJson({ Credential: bytesValue(c.credential), Secret: bytesValue(c.secret) });
}

/** Decodes go-attestation EncryptedCredential JSON; throws FormatError. */
export function decodeEncryptedCredential(input: Uint8Array | string): EncryptedCredential {
  const path = 'EncryptedCredential';
  const obj = parseJsonObject(input, path);
  return { credential: readBytes(obj, 'Credential', path), secret: readBytes(obj, 'Secret', path) };
}

function quoteJson(q: Quote): JsonObject {
  return { Version: q.version, Quote: bytesValue(q.quote), Signature: bytesValue(q.signature) };
}

function pcrJson(p: PCR): JsonObject {
  return { Index: p.index, Digest: bytesValue(p.digest), DigestAlg: p.digestAlg };
}

/** Reads one go-attestation Quote from parsed JSON. */
export function quoteFromJson(obj: JsonObject, path = 'Quote'): Quote {
  return {
    version: readInt(obj, 'Version', path, 0, U8_MAX),
    quote: readBytes(obj, 'Quote', path),
    signature: readBytes(obj, 'Signature', path),
  };
}

/** Reads one go-attestation PCR from parsed JSON. */
export function pcrFromJson(obj: JsonObject, path = 'PCR'): PCR {
  return {
    index: readInt(obj, 'Index', path, -INT_MAX, INT_MAX),
    digest: readBytes(obj, 'Digest', path),
    digestAlg: readInt(obj, 'DigestAlg', path, 0, INT_MAX),
  };
}

/**
 * A `[]byte` value's JSON (base64 in quotes, or null) encoded once, for bytes sent in many
 * documents: the attestor sends the same firmware event log (tens of KB) with every quote.
 */
export class EncodedGoBytes {
  readonly json: Uint8Array;
  constructor(bytes: GoBytes) {
    this.json = new TextEncoder().encode(JSON.stringify(bytesValue(bytes)));
  }
}

/** The end of PlatformParameters' JSON with a null EventLog, the last field in Go's order. */
const NULL_EVENT_LOG_END = '"EventLog":null}\n';

/**
 * Encodes PlatformParameters as go-attestation JSON. `eventLog` may be encoded ahead
 * ({@link EncodedGoBytes}): the output is the same bytes, without encoding the log again.
 */
export function encodePlatformParameters(p: Omit<PlatformParameters, 'eventLog'> & { eventLog: GoBytes | EncodedGoBytes }): Uint8Array {
  const eventLog = p.eventLog instanceof EncodedGoBytes ? p.eventLog : undefined;
  const out = serializeJson({
    TPMVersion: p.tpmVersion,
    Public: bytesValue(p.public),
    Quotes: p.quotes === null ? null : p.quotes.map(quoteJson),
    PCRs: p.pcrs === null ? null : p.pcrs.map(pcrJson),
    EventLog: eventLog ? null : bytesValue(p.eventLog as GoBytes),
  });
  if (!eventLog) return out;
  // Put the encoded log in place of that null, where serializeJson wrote it.
  const end = new TextEncoder().encode(NULL_EVENT_LOG_END);
  if (out.length < end.length || end.some((b, i) => out[out.length - end.length + i] !== b)) {
    throw new Error(`PlatformParameters JSON does not end with ${JSON.stringify(NULL_EVENT_LOG_END)}: serializeJson's format changed, update encodePlatformParameters`);
  }
  const head = out.length - NULL_EVENT_LOG_END.length + '"EventLog":'.length;
  const tail = out.subarray(out.length - 2); // "}\n"
  const joined = new Uint8Array(head + eventLog.json.length + tail.length);
  joined.set(out.subarray(0, head));
  joined.set(eventLog.json, head);
  joined.set(tail, head + eventLog.json.length);
  return joined;
}

/** Decodes go-attestation PlatformParameters JSON; throws FormatError. */
export function decodePlatformParameters(input: Uint8Array | string): PlatformParameters {
  const path = 'PlatformParameters';
  const obj = parseJsonObject(input, path);
  return {
    tpmVersion: readInt(obj, 'TPMVersion', path, 0, U8_MAX),
    public: readBytes(obj, 'Public', path),
    quotes: readArray(obj, 'Quotes', path, quoteFromJson),
    pcrs: readArray(obj, 'PCRs', path, pcrFromJson),
    eventLog: readBytes(obj, 'EventLog', path),
  };
}

/** Encodes CertificationParameters as go-attestation JSON. */
export function encodeCertificationParameters(p: CertificationParameters): Uint8Array {
  return serializeJson({
    Public: bytesValue(p.public),
    CreateData: bytesValue(p.createData),
    CreateAttestation: bytesValue(p.createAttestation),
    CreateSignature: bytesValue(p.createSignature),
  });
}

/** Decodes go-attestation CertificationParameters JSON; throws FormatError. */
export function decodeCertificationParameters(input: Uint8Array | string): CertificationParameters {
  const path = 'CertificationParameters';
  const obj = parseJsonObject(input, path);
  return {
    public: readBytes(obj, 'Public', path),
    createData: readBytes(obj, 'CreateData', path),
    createAttestation: readBytes(obj, 'CreateAttestation', path),
    createSignature: readBytes(obj, 'CreateSignature', path),
  };
}

/**
 * Returns `value` when it is a non-empty byte string, else throws FormatError naming `field`:
 * for callers that need a field go-attestation leaves optional.
 */
export function requireBytes(value: GoBytes | undefined, field: string): Uint8Array {
  if (value == null) throw new FormatError(field, 'missing (null)');
  if (value.length === 0) throw new FormatError(field, 'empty');
  return value;
}
