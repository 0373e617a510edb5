// The seam between the gRPC server and the TPM. The server validates and decodes every request
// (uid/kid syntax, keyType, nonce size, payload formats) before a backend method is called, and
// encodes what it returns; a backend deals with the TPM and the key store only.
import type {
  AttestationParameters,
  CertificationParameters,
  ImportBlob,
  PlatformParameters,
} from '@tpmds/protocol/formats';
import type { KeyType } from './validate.js';

export type { KeyType } from './validate.js';

/** GetEKCert result. */
export interface EKCertResult {
  /** PKIX SubjectPublicKeyInfo DER of the EK. */
  ekPub: Uint8Array;
  /** EK certificate DER from NV, or null when the TPM has none for this key. */
  ekCert: Uint8Array | null;
}

/**
 * An Attest request's go-attestation EncryptedCredential, checked by the server: both fields
 * present and each a well-formed TPM2B (its u16 size prefix matches). The prefixes are kept,
 * as on the wire; strip them (`subarray(2)`) for TPM2_ActivateCredential.
 */
export interface CheckedEncryptedCredential {
  /** TPM2B_ID_OBJECT with its size prefix. */
  credential: Uint8Array;
  /** TPM2B_ENCRYPTED_SECRET with its size prefix. */
  secret: Uint8Array;
}

/** What a backend method knows of the call besides its arguments. */
export interface CallOptions {
  /** Fires when the caller cancelled or its deadline passed: work not yet started on the TPM is dropped. */
  signal?: AbortSignal;
}

/** GetGCEEKSigningKey result. */
export interface CloudAkResult {
  /** PKIX SubjectPublicKeyInfo DER of the cloud attestation key (the server sends it as PEM "PUBLIC KEY"). */
  publicKey: Uint8Array;
  /** Its certificate DER from NV, or null when the TPM has none. */
  certificate: Uint8Array | null;
}

/** NewKey result. */
export interface NewKeyResult {
  /** PKIX SubjectPublicKeyInfo DER of the new key (the server sends it as PEM "PUBLIC KEY"). */
  publicKey: Uint8Array;
  /** TPM2_Certify of the new key by the uid's AK. */
  certification: CertificationParameters;
}

/**
 * What the attestor server needs from the TPM side. Every method may throw an
 * {@link AttestorError} whose code and message go to the caller as they are; any other error is
 * answered with a bare INTERNAL and logged with an error id.
 *
 * Every uid/kid lives in the namespace of the caller `identity` (the server authenticated it;
 * '' for --auth none): the same uid/kid of two identities are two unrelated things, and a backend
 * must answer for another identity's key exactly as for a key that does not exist.
 *
 * Inputs are already validated: `uid`/`kid` match `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$` without
 * "..", `keyType` is "rsa" or "ecc" (P-256), a Quote nonce is 1-48 bytes, ImportBlobs decoded
 * with non-empty duplicate/encryptedSeed/publicArea and, when present, a PCR policy with a known
 * bank, indices 0-23 and digests of the bank's size.
 *
 * Every method takes the call's {@link CallOptions} last: the TPM is shared fairly between
 * identities, and a call whose caller went away never reaches it.
 */
export interface AttestorBackend {
  /** The EK of `keyType` and its certificate (RSA: 0x81010001 / NV 0x01C00002; ECC: 0x81010002 / NV 0x01C0000A). */
  getEKCert(identity: string, keyType: KeyType, call?: CallOptions): Promise<EKCertResult>;
  /** The uid's AK, created (and certified with TPM2_CertifyCreation) on first use; later calls return the same AK. */
  getAK(identity: string, uid: string, keyType: KeyType, call?: CallOptions): Promise<AttestationParameters>;
  /** TPM2_ActivateCredential with the uid's AK and the EK the secret was made for; returns the secret. NOT_FOUND without an AK. */
  attest(identity: string, uid: string, credential: CheckedEncryptedCredential, call?: CallOptions): Promise<Uint8Array>;
  /** One quote per active PCR bank over PCRs 0-23 with `nonce` and all PCR values (the server adds the event logs). NOT_FOUND without an AK. */
  quote(identity: string, uid: string, nonce: Uint8Array, call?: CallOptions): Promise<PlatformParameters>;
  /** Import + Unseal of a sealed-data blob made for the EK; returns the unsealed bytes. */
  importBlob(identity: string, uid: string, blob: ImportBlob, call?: CallOptions): Promise<Uint8Array>;
  /** Import of a signing key made for the EK, stored as uid/kid (ALREADY_EXISTS if present); returns its signature over SHA-256(uid). */
  importSigningKey(identity: string, uid: string, kid: string, blob: ImportBlob, call?: CallOptions): Promise<Uint8Array>;
  /** A new signing key uid/kid under the SRK, certified by the uid's AK (NOT_FOUND without an AK, ALREADY_EXISTS if present). */
  newKey(identity: string, uid: string, kid: string, keyType: KeyType, call?: CallOptions): Promise<NewKeyResult>;
  /** Signature over SHA-256(data): RSA PKCS#1 v1.5, ECC ASN.1 DER ECDSA. NOT_FOUND for an unknown uid/kid. */
  sign(identity: string, uid: string, kid: string, data: Uint8Array, call?: CallOptions): Promise<Uint8Array>;
  /**
   * The cloud attestation key of `keyType`: a primary key of the endorsement hierarchy made from
   * the template the platform keeps in NV (RSA 0x01c10001, ECC 0x01c10003), and its certificate
   * (NV 0x01c10000 / 0x01c10002). FAILED_PRECONDITION when the TPM has no such template.
   */
  getGCEEKSigningKey(identity: string, keyType: KeyType, call?: CallOptions): Promise<CloudAkResult>;
  /** Signature over SHA-256(data) by that key: RSA PKCS#1 v1.5, ECC ASN.1 DER ECDSA. The server has checked the caller may use it. */
  signGCEEK(identity: string, keyType: KeyType, data: Uint8Array, call?: CallOptions): Promise<Uint8Array>;
  /** Whether the backend can serve requests now (TPM reachable, primary keys loaded). */
  ready(): boolean | Promise<boolean>;
  /** Releases the TPM; called once, after the last request finished (or the shutdown wait ran out). */
  close(): Promise<void>;
}
