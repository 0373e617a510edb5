/**
 * Duplication in software (TPM 2.0 Part 1, 23.3 "Protected Storage
 * Hierarchy / Duplication"): wrapping an object's sensitive area for a new
 * parent with an outer wrapper only, so the parent's TPM can TPM2_Import it.
 * On top, go-tpm-tools compatible import blobs (`server.CreateImportBlob`,
 * `CreateSigningKeyImportBlob`) for sealed data and signing keys.
 */
import { type KeyObject, createECDH, randomBytes } from 'node:crypto';
import { bytesEqual, concatBytes, toHex } from '../bytes/hex.js';
import { marshal, unmarshal } from '../types/codec.js';
import { TPMA_OBJECT, TPM_ALG } from '../types/constants.js';
import { TPMT_SENSITIVE, type TPMT_PUBLIC } from '../types/structures.js';
import { type PcrValues, pcrPolicyStep, policyDigest } from '../policy/calculator.js';
import type { PolicyStep } from '../policy/steps.js';
import { hash } from './hash.js';
import { curveInfo, fixedLength, keyObjectToPublic, sensitiveFromPrivateKey } from './keys.js';
import { objectName } from './names.js';
import { type CreateSeedOptions, createSeed, recoverSeed } from './secret.js';
import { produceOuterWrap, protectorSymmetricBits, unwrapOuter } from './wrap.js';
import { TpmCryptoError } from './errors.js';

/** The parameters of TPM2_Import for a duplicated object, without u16 size prefixes. */
export interface DuplicatedObject {
  /** TPM2B_PRIVATE contents: `u16 hmacSize || outerHMAC || AES-CFB(u16 size || TPMT_SENSITIVE)`. */
  duplicate: Uint8Array;
  /** TPM2B_ENCRYPTED_SECRET contents (inSymSeed): RSA-OAEP ciphertext or a marshalled TPMS_ECC_POINT. */
  encryptedSeed: Uint8Array;
}

/**
 * Wraps `sensitive` (the private part of `publicArea`) for `parentPub` with
 * an outer wrapper only (no inner wrapper, encryptionKey empty, symmetricAlg
 * NULL at Import): seed shared under label "DUPLICATE"; symmetric key
 * KDFa(parentNameAlg, seed, "STORAGE", name(publicArea), "", parent AES bits);
 * HMAC keyed by KDFa(parentNameAlg, seed, "INTEGRITY") over encSensitive || name.
 * The RSA seed is the parent's symmetric key size (16 bytes for AES-128, as
 * go-tpm-tools does) unless `opts` says otherwise. The object must not have
 * fixedTPM or fixedParent set (the TPM refuses to import it otherwise).
 */
export function duplicateObject(parentPub: TPMT_PUBLIC, publicArea: TPMT_PUBLIC, sensitive: TPMT_SENSITIVE, opts: CreateSeedOptions = {}): DuplicatedObject {
  if (publicArea.type !== sensitive.sensitiveType) throw new TpmCryptoError('sensitive area type does not match the public area', 'invalid');
  if (publicArea.objectAttributes & (TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent)) {
    throw new TpmCryptoError('objects with fixedTPM or fixedParent cannot be duplicated (TPM_RC_ATTRIBUTES at Import)', 'invalid');
  }
  const bits = protectorSymmetricBits(parentPub);
  const seedOpts = parentPub.type === TPM_ALG.RSA && opts.seedLength === undefined && opts.seed === undefined ? { ...opts, seedLength: bits / 8 } : opts;
  const { seed, encryptedSecret } = createSeed(parentPub, 'DUPLICATE', seedOpts);
  const duplicate = produceOuterWrap(parentPub, seed, objectName(publicArea), marshal(TPMT_SENSITIVE, sensitive));
  return { duplicate, encryptedSeed: encryptedSecret };
}

/** Checks that a sensitive area belongs to a public area, as TPM2_Load does (Part 1, 23.3.2.3 / Part 3, 12.2.3). */
function checkBinding(pub: TPMT_PUBLIC, s: TPMT_SENSITIVE): void {
  const fail = (why: string): never => {
    throw new TpmCryptoError(`sensitive area does not match the public area: ${why}`, 'integrity');
  };
  if (pub.type !== s.sensitiveType) fail('types differ');
  if (pub.type === TPM_ALG.KEYEDHASH || pub.type === TPM_ALG.SYMCIPHER) {
    if (!bytesEqual(pub.unique, hash(pub.nameAlg, s.seedValue, s.sensitive))) fail('unique is not H(seedValue || sensitive)');
  } else if (pub.type === TPM_ALG.RSA) {
    const n = BigInt('0x' + (toHex(pub.unique) || '0'));
    const p = BigInt('0x' + (toHex(s.sensitive) || '0'));
    if (p <= 1n || n % p !== 0n) fail('the prime does not divide the modulus');
  } else if (pub.type === TPM_ALG.ECC) {
    const c = curveInfo(pub.parameters.curveID);
    const e = createECDH(c.openssl);
    e.setPrivateKey(fixedLength(s.sensitive, c.size, 'private scalar'));
    const point = new Uint8Array(e.getPublicKey());
    const expected = concatBytes(Uint8Array.of(4), fixedLength(pub.unique.x, c.size, 'x'), fixedLength(pub.unique.y, c.size, 'y'));
    if (!bytesEqual(point, expected)) fail('the private scalar does not give the public point');
  }
}

/**
 * The software inverse of `duplicateObject` (TPM2_Import with the parent's
 * private key): recovers the seed, checks the outer HMAC against the name of
 * `publicArea`, decrypts, and checks the sensitive area belongs to the public
 * area. Throws TpmCryptoError('integrity') when anything does not match.
 */
export function unwrapDuplicate(
  parentPrivate: KeyObject,
  parentPub: TPMT_PUBLIC,
  publicArea: TPMT_PUBLIC,
  duplicate: Uint8Array,
  encryptedSeed: Uint8Array,
): TPMT_SENSITIVE {
  const seed = recoverSeed(parentPrivate, parentPub, 'DUPLICATE', encryptedSeed);
  const plain = unwrapOuter(parentPub, seed, objectName(publicArea), duplicate, 'duplicate');
  let sensitive: TPMT_SENSITIVE;
  try {
    sensitive = unmarshal(TPMT_SENSITIVE, plain);
  } catch (e) {
    throw new TpmCryptoError(`decrypted sensitive area does not decode: ${(e as Error).message}`, 'integrity');
  }
  checkBinding(publicArea, sensitive);
  return sensitive;
}

// ---- go-tpm-tools import blobs -------------------------------------------------------

/** Largest sealed payload a TPM takes (MAX_SYM_DATA, Part 2, 10.4.3 TPM2B_SENSITIVE_DATA on common TPMs). */
export const MAX_SEALED_DATA = 128;

/** What `createImportBlob` wraps: sealed bytes, or a software signing key. */
export type ImportPayload =
  | { kind: 'sealed'; data: Uint8Array }
  | { kind: 'signingKey'; privateKey: KeyObject };

/** Options of `createImportBlob`: an optional PCR binding, plus test hooks. */
export interface ImportBlobOptions extends CreateSeedOptions {
  /** Bind use of the object to these PCR values (PolicyPCR, SHA-256 policy); otherwise userWithAuth with an empty password. */
  pcrs?: PcrValues;
  /** Sealed data: the 32-byte seedValue (default random). */
  seedValue?: Uint8Array;
}

/** An import blob: the fields of go-tpm-tools `tpm.ImportBlob`, decoded. */
export interface ImportBlob {
  /** public_area: the object's TPMT_PUBLIC. */
  publicArea: TPMT_PUBLIC;
  /** duplicate: TPM2B_PRIVATE contents. */
  duplicate: Uint8Array;
  /** encrypted_seed: TPM2B_ENCRYPTED_SECRET contents. */
  encryptedSeed: Uint8Array;
  /** pcrs: the PCR values the object is bound to, if any. */
  pcrs?: PcrValues;
  /** The policy to satisfy for the object (a PolicyPCR step, or nothing when userWithAuth). */
  policy: PolicyStep[];
}

/**
 * A go-tpm-tools compatible import blob for an EK (TCG RSA-2048 or ECC
 * P-256 template; Part 1, 23.3 outer wrapper under label "DUPLICATE"):
 * - sealed: KEYEDHASH, nameAlg SHA-256, scheme NULL, 32-byte random
 *   seedValue, unique = SHA-256(seedValue || data), empty authValue;
 * - signingKey: the key's public area (RSASSA-SHA256 or ECDSA-SHA256, `sign`),
 *   sensitive = prime p (RSA) or the private scalar (ECC).
 * Without PCRs the object has `userWithAuth` and no authPolicy; with PCRs
 * `adminWithPolicy` and authPolicy = PolicyPCR over those values. fixedTPM and
 * fixedParent are clear (required for Import); `noDA` is set (the authValue
 * is empty, so there is nothing to guess, and no DA bookkeeping is triggered).
 * Import it under the EK with a PolicySecret(TPM_RH_ENDORSEMENT) session.
 */
export function createImportBlob(ekPub: TPMT_PUBLIC, payload: ImportPayload, opts: ImportBlobOptions = {}): ImportBlob {
  const policy: PolicyStep[] = opts.pcrs === undefined ? [] : [pcrPolicyStep(opts.pcrs, TPM_ALG.SHA256)];
  const auth =
    policy.length === 0
      ? { objectAttributes: TPMA_OBJECT.userWithAuth | TPMA_OBJECT.noDA, authPolicy: new Uint8Array(0) }
      : { objectAttributes: TPMA_OBJECT.adminWithPolicy | TPMA_OBJECT.noDA, authPolicy: policyDigest(TPM_ALG.SHA256, policy) };
  let publicArea: TPMT_PUBLIC;
  let sensitive: TPMT_SENSITIVE;
  if (payload.kind === 'sealed') {
    if (payload.data.length > MAX_SEALED_DATA) throw new TpmCryptoError(`sealed data is ${payload.data.length} bytes; at most ${MAX_SEALED_DATA} fit`, 'invalid');
    const seedValue = opts.seedValue ?? new Uint8Array(randomBytes(32));
    sensitive = { sensitiveType: TPM_ALG.KEYEDHASH, authValue: new Uint8Array(0), seedValue, sensitive: payload.data.slice() };
    publicArea = {
      type: TPM_ALG.KEYEDHASH, nameAlg: TPM_ALG.SHA256, ...auth,
      parameters: { scheme: { scheme: TPM_ALG.NULL } },
      unique: hash(TPM_ALG.SHA256, seedValue, payload.data),
    };
  } else if (payload.kind === 'signingKey') {
    const base = keyObjectToPublic(payload.privateKey);
    if (base.type === TPM_ALG.RSA && base.parameters.keyBits < 2048) throw new TpmCryptoError(`RSA-${base.parameters.keyBits} is too small; 2048 bits or more needed`, 'invalid');
    publicArea = { ...base, objectAttributes: TPMA_OBJECT.sign | auth.objectAttributes, authPolicy: auth.authPolicy };
    sensitive = sensitiveFromPrivateKey(payload.privateKey);
  } else {
    throw new TpmCryptoError(`unknown import payload kind ${JSON.stringify((payload as { kind?: unknown }).kind)}`, 'invalid');
  }
  const { duplicate, encryptedSeed } = duplicateObject(ekPub, publicArea, sensitive, opts);
  return { publicArea, duplicate, encryptedSeed, ...(opts.pcrs !== undefined ? { pcrs: opts.pcrs } : {}), policy };
}
