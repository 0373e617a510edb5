/**
 * Credential protection (TPM 2.0 Part 1, 24 "Credential Protection";
 * Part 3, 12.5-12.6 MakeCredential/ActivateCredential) done in software:
 * what a verifier sends so that only the TPM holding the EK, and only for
 * the object with the given name (the AK), can recover the secret.
 */
import type { KeyObject } from 'node:crypto';
import { TPM_ALG } from '../types/constants.js';
import type { TPMT_PUBLIC } from '../types/structures.js';
import { digestSize } from './hash.js';
import { type CreateSeedOptions, createSeed, recoverSeed } from './secret.js';
import { produceOuterWrap, protectorSymmetricBits, unwrapOuter } from './wrap.js';
import { TpmCryptoError } from './errors.js';

/** The result of `makeCredential`: the two parameters of TPM2_ActivateCredential, without their u16 size prefixes. */
export interface MadeCredential {
  /** TPM2B_ID_OBJECT contents: `u16 hmacSize || integrityHMAC || encIdentity`. */
  credentialBlob: Uint8Array;
  /** TPM2B_ENCRYPTED_SECRET contents: RSA-OAEP ciphertext, or a marshalled TPMS_ECC_POINT. */
  encryptedSecret: Uint8Array;
}

function checkName(objectName: Uint8Array): void {
  if (objectName.length < 2) throw new TpmCryptoError('object name is empty', 'invalid');
}

/**
 * TPM2_MakeCredential in software (Part 1, 24.4-24.5) for an RSA or ECC EK:
 * a seed shared with the EK under label "IDENTITY", encIdentity =
 * AES-CFB(KDFa(ekNameAlg, seed, "STORAGE", objectName), u16 len || secret),
 * integrity HMAC keyed by KDFa(ekNameAlg, seed, "INTEGRITY") over
 * encIdentity || objectName. The RSA seed is 16 bytes for an AES-128 EK (the
 * EK's symmetric key size, as go-attestation/go-tpm credactivation do);
 * `opts.seedLength` or `opts.seed` override it. `secret` is at most the EK
 * nameAlg's digest size (it comes back as a TPM2B_DIGEST).
 */
export function makeCredential(ekPub: TPMT_PUBLIC, objectName: Uint8Array, secret: Uint8Array, opts: CreateSeedOptions = {}): MadeCredential {
  checkName(objectName);
  const bits = protectorSymmetricBits(ekPub);
  const max = digestSize(ekPub.nameAlg);
  if (secret.length === 0 || secret.length > max) throw new TpmCryptoError(`credential secret must be 1 to ${max} bytes`, 'invalid');
  const seedOpts = ekPub.type === TPM_ALG.RSA && opts.seedLength === undefined && opts.seed === undefined ? { ...opts, seedLength: bits / 8 } : opts;
  const { seed, encryptedSecret } = createSeed(ekPub, 'IDENTITY', seedOpts);
  return { credentialBlob: produceOuterWrap(ekPub, seed, objectName, secret), encryptedSecret };
}

/**
 * TPM2_ActivateCredential in software with the EK's private key: recovers
 * the seed, checks the integrity HMAC against `objectName` and returns the
 * secret. Throws TpmCryptoError('integrity') if the blob was not made for this
 * EK and name. For tests and tools; the real one runs in the TPM.
 */
export function activateCredentialSoftware(
  ekPrivate: KeyObject,
  ekPub: TPMT_PUBLIC,
  objectName: Uint8Array,
  credentialBlob: Uint8Array,
  encryptedSecret: Uint8Array,
): Uint8Array {
  checkName(objectName);
  const seed = recoverSeed(ekPrivate, ekPub, 'IDENTITY', encryptedSecret);
  return unwrapOuter(ekPub, seed, objectName, credentialBlob, 'credential blob');
}
