export * from './hash.js';
export * from './names.js';
export * from './templates.js';
export { TpmCryptoError, type TpmCryptoErrorReason, AttestationError, type AttestationCheck } from './errors.js';
export { kdfa, kdfe } from './kdf.js';
export {
  type CurveInfo, curveInfo, rsaExponent, publicToKeyObject, publicToSpkiDer, publicToPem, keyObjectToPublic,
  sensitiveFromPrivateKey, privateKeyFromSensitive, signatureToDer, signatureToRaw,
} from './keys.js';
export { type SecretLabel, type CreateSeedOptions, type EncryptedSeed, createSeed, recoverSeed, oaepHashAlg } from './secret.js';
export { type MadeCredential, makeCredential, activateCredentialSoftware } from './credential.js';
export {
  type DuplicatedObject, type ImportPayload, type ImportBlobOptions, type ImportBlob, MAX_SEALED_DATA,
  duplicateObject, unwrapDuplicate, createImportBlob,
} from './duplicate.js';
export {
  type TPMS_ATTEST_QUOTE, type TPMS_ATTEST_CERTIFY, type TPMS_ATTEST_CREATION, type QuoteExpectations,
  type CertifyExpectations, type CertifyCreationOptions, verifySignature, verifyQuote, verifyCertify, verifyCertifyCreation,
} from './attest.js';
export { type ParsedCertificate, parseCertificate, certificateMatchesPublic, verifyCertificateChain, pemToDers, derToPem } from './certs.js';
