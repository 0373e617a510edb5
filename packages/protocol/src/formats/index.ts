// Payload formats carried inside the gRPC messages (FORMATS.md): go-attestation v0.5.1 JSON and
// go-tpm-tools v0.4.5 protobuf.
export { FormatError } from './errors.js';
export type {
  AttestationParameters,
  CertificationParameters,
  EncryptedCredential,
  GoBytes,
  PCR,
  PlatformParameters,
  Quote,
} from './go-attestation.js';
export {
  EncodedGoBytes,
  GoCryptoHash,
  TPM_VERSION_20,
  attestationParametersFromJson,
  decodeAttestationParameters,
  decodeCertificationParameters,
  decodeEncryptedCredential,
  decodePlatformParameters,
  encodeAttestationParameters,
  encodeCertificationParameters,
  encodeEncryptedCredential,
  encodePlatformParameters,
  pcrFromJson,
  quoteFromJson,
  requireBytes,
} from './go-attestation.js';
export type { JsonObject, JsonValue } from './go-json.js';
export { decodeBase64, encodeBase64, parseJsonObject } from './go-json.js';
export type { ImportBlob, PcrValues } from './import-blob.js';
export { HashAlgo, decodeImportBlob, encodeImportBlob } from './import-blob.js';
export { decodePublicKeyPem, encodePublicKeyPem } from './pem.js';
