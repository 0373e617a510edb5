/**
 * Errors of the software-side crypto. Messages say what was wrong with the
 * input, never what a secret was.
 */

/** Why a software-side crypto operation failed. */
export type TpmCryptoErrorReason =
  /** an algorithm, curve, key size or scheme we do not implement */
  | 'unsupported'
  /** the input is malformed or inconsistent (wrong sizes, wrong key type, ...) */
  | 'invalid'
  /** an integrity check failed (HMAC of a credential or duplicate, key/public mismatch) */
  | 'integrity';

/** Raised by the crypto layer (KDFs, secret sharing, credentials, duplication, key conversion). */
export class TpmCryptoError extends Error {
  override readonly name = 'TpmCryptoError';
  constructor(
    message: string,
    readonly reason: TpmCryptoErrorReason,
  ) {
    super(message);
  }
}

/** The check of an attestation that failed (see `AttestationError`). */
export type AttestationCheck =
  | 'decode'
  | 'signature'
  | 'magic'
  | 'type'
  | 'nonce'
  | 'pcrSelection'
  | 'pcrDigest'
  | 'name'
  | 'creationHash'
  | 'attributes'
  | 'keyStrength';

/**
 * An attestation (Quote, Certify, CertifyCreation) did not verify. `check`
 * names the check that failed; the message says why.
 */
export class AttestationError extends Error {
  override readonly name = 'AttestationError';
  constructor(
    readonly check: AttestationCheck,
    message: string,
  ) {
    super(`${check} check failed: ${message}`);
  }
}
