// Shared helpers of the verification steps: key types, TPM structures from payload bytes,
// attribute and key descriptions.
import { type KeyObject, timingSafeEqual } from 'node:crypto';
import {
  TPMA_OBJECT, TPMT_PUBLIC, TPMT_SIGNATURE, TPM_ALG, TPM_ECC, algName, toHex, unmarshal, unmarshalExact,
} from '@tpmds/tpm2-wire';

/** The key types of the gRPC contract: RSA-2048 or NIST P-256. */
export type KeyType = 'rsa' | 'ecc';

/** Parses a `--key-type` value; undefined when it is neither "rsa" nor "ecc". */
export function parseKeyType(s: string): KeyType | undefined {
  return s === 'rsa' || s === 'ecc' ? s : undefined;
}

/**
 * Decodes a TPMT_PUBLIC sent without a size prefix, keeping its exact bytes (the name is
 * hashed over what was sent, not over a re-encoding).
 */
export function decodePublicArea(bytes: Uint8Array): TPMT_PUBLIC {
  return unmarshalExact(TPMT_PUBLIC, bytes);
}

/** Decodes a TPMT_SIGNATURE. */
export function decodeSignature(bytes: Uint8Array): TPMT_SIGNATURE {
  return unmarshal(TPMT_SIGNATURE, bytes);
}

/** "RSA-2048", "ECC NIST P-256", ... of a public area. */
export function describePublic(pub: TPMT_PUBLIC): string {
  if (pub.type === TPM_ALG.RSA) return `RSA-${pub.parameters.keyBits}`;
  if (pub.type === TPM_ALG.ECC) return `ECC ${curveName(pub.parameters.curveID)}`;
  return algName(pub.type).toUpperCase();
}

function curveName(id: number): string {
  for (const [k, v] of Object.entries(TPM_ECC)) if (v === id) return k.replace('NIST_', 'NIST ').replace(/P(\d+)$/, 'P-$1');
  return `curve 0x${id.toString(16)}`;
}

/** Why `pub` is not the key type asked for (RSA-2048 / NIST P-256), or undefined when it is. */
export function keyTypeMismatch(pub: TPMT_PUBLIC, keyType: KeyType): string | undefined {
  if (keyType === 'rsa') {
    if (pub.type !== TPM_ALG.RSA) return `${describePublic(pub)} key; RSA-2048 expected`;
    if (pub.parameters.keyBits !== 2048) return `RSA-${pub.parameters.keyBits}; RSA-2048 expected`;
    return undefined;
  }
  if (pub.type !== TPM_ALG.ECC) return `${describePublic(pub)} key; ECC NIST P-256 expected`;
  if (pub.parameters.curveID !== TPM_ECC.NIST_P256) return `${describePublic(pub)}; ECC NIST P-256 expected`;
  return undefined;
}

/** Why a Node key is not the key type asked for, or undefined when it is. */
export function keyObjectTypeMismatch(key: KeyObject, keyType: KeyType): string | undefined {
  const details = key.asymmetricKeyDetails ?? {};
  if (keyType === 'rsa') {
    if (key.asymmetricKeyType !== 'rsa') return `${String(key.asymmetricKeyType)} key; RSA-2048 expected`;
    if (details.modulusLength !== 2048) return `RSA-${String(details.modulusLength)}; RSA-2048 expected`;
    return undefined;
  }
  if (key.asymmetricKeyType !== 'ec') return `${String(key.asymmetricKeyType)} key; ECC NIST P-256 expected`;
  if (details.namedCurve !== 'prime256v1') return `curve ${String(details.namedCurve)}; NIST P-256 expected`;
  return undefined;
}

/** "RSA-2048" / "ECC NIST P-256" of a Node key. */
export function describeKeyObject(key: KeyObject): string {
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') return `RSA-${String(d.modulusLength)}`;
  if (key.asymmetricKeyType === 'ec') return `ECC ${d.namedCurve === 'prime256v1' ? 'NIST P-256' : String(d.namedCurve)}`;
  return String(key.asymmetricKeyType);
}

/** Names of the TPMA_OBJECT bits in `bits`. */
export function attributeNames(bits: number): string[] {
  return Object.entries(TPMA_OBJECT)
    .filter(([, v]) => (bits & v) !== 0)
    .map(([k]) => k);
}

/**
 * Checks `pub.objectAttributes` against bits that must be set and bits that must be clear;
 * returns the problem in words, or undefined.
 */
export function attributeProblem(pub: TPMT_PUBLIC, set: number, clear: number): string | undefined {
  const a = pub.objectAttributes;
  const missing = attributeNames(set & ~a);
  const extra = attributeNames(clear & a);
  const parts: string[] = [];
  if (missing.length > 0) parts.push(`lacks ${missing.join(', ')}`);
  if (extra.length > 0) parts.push(`must not have ${extra.join(', ')}`);
  return parts.length > 0 ? `key ${parts.join('; ')} (attributes 0x${a.toString(16).padStart(8, '0')})` : undefined;
}

/** Lowercase hex of a name or digest. */
export function hex(b: Uint8Array): string {
  return toHex(b);
}

/** Constant-time equality of two byte strings (false for different lengths). */
export function secretsEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
