/**
 * TPM public and sensitive areas <-> standard key forms: Node `KeyObject`,
 * PKIX SubjectPublicKeyInfo (DER/PEM), and TPMT_SIGNATURE <-> DER/raw
 * signatures. RSA and NIST P-256/P-384/P-521 (Part 2, 12.2.3 TPMU_PUBLIC_ID,
 * 12.3 TPMT_SENSITIVE, 11.3 TPMT_SIGNATURE).
 */
import { type KeyObject, type JsonWebKey, createPrivateKey, createPublicKey } from 'node:crypto';
import { TPMA_OBJECT, TPM_ALG, TPM_ECC, algName } from '../types/constants.js';
import type { TPMT_PUBLIC, TPMT_SENSITIVE, TPMT_SIGNATURE } from '../types/structures.js';
import { TpmCryptoError } from './errors.js';

/** What we know about a NIST curve: TPM_ECC id, JWK name, OpenSSL name, field size in bytes. */
export interface CurveInfo {
  readonly curveID: number;
  readonly jwk: string;
  readonly openssl: string;
  readonly size: number;
}

const CURVES: readonly CurveInfo[] = [
  { curveID: TPM_ECC.NIST_P256, jwk: 'P-256', openssl: 'prime256v1', size: 32 },
  { curveID: TPM_ECC.NIST_P384, jwk: 'P-384', openssl: 'secp384r1', size: 48 },
  { curveID: TPM_ECC.NIST_P521, jwk: 'P-521', openssl: 'secp521r1', size: 66 },
];

/** The curve of a TPM_ECC_CURVE id; throws TpmCryptoError('unsupported') for curves we do not implement. */
export function curveInfo(curveID: number): CurveInfo {
  const c = CURVES.find((x) => x.curveID === curveID);
  if (c === undefined) throw new TpmCryptoError(`ECC curve 0x${curveID.toString(16).padStart(4, '0')} is not supported`, 'unsupported');
  return c;
}

function curveByJwk(crv: string | undefined): CurveInfo {
  const c = CURVES.find((x) => x.jwk === crv);
  if (c === undefined) throw new TpmCryptoError(`ECC curve ${String(crv)} is not supported`, 'unsupported');
  return c;
}

// ---- small byte/bigint helpers ----------------------------------------------

/** base64url without padding (JWK). */
function b64u(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}
function fromB64u(s: string | undefined, what: string): Uint8Array {
  if (s === undefined) throw new TpmCryptoError(`key has no ${what}`, 'invalid');
  return new Uint8Array(Buffer.from(s, 'base64url'));
}
function stripZeros(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}
/** Left-pad (or strip leading zeros) to exactly `n` bytes; throws if the value does not fit. */
export function fixedLength(b: Uint8Array, n: number, what = 'value'): Uint8Array {
  const s = stripZeros(b);
  if (s.length > n) throw new TpmCryptoError(`${what} is longer than ${n} bytes`, 'invalid');
  if (s.length === n) return s.slice();
  const out = new Uint8Array(n);
  out.set(s, n - s.length);
  return out;
}
function toBigInt(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt('0x' + Buffer.from(b).toString('hex'));
}
function fromBigInt(v: bigint, len?: number): Uint8Array {
  let h = v.toString(16);
  if (h.length % 2) h = '0' + h;
  const b = new Uint8Array(Buffer.from(h, 'hex'));
  return len === undefined ? b : fixedLength(b, len);
}
function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1] = [((a % m) + m) % m, m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw new TpmCryptoError('value is not invertible', 'invalid');
  return ((s0 % m) + m) % m;
}

/** The RSA public exponent of a TPMS_RSA_PARMS (0 means the default 2^16 + 1). */
export function rsaExponent(exponent: number): number {
  return exponent === 0 ? 65537 : exponent;
}

// ---- public areas ------------------------------------------------------------------

function rsaJwk(pub: Extract<TPMT_PUBLIC, { type: 0x0001 }>): JsonWebKey {
  if (pub.unique.length === 0) throw new TpmCryptoError('RSA public area has no modulus (a template?)', 'invalid');
  return { kty: 'RSA', n: b64u(stripZeros(pub.unique)), e: b64u(fromBigInt(BigInt(rsaExponent(pub.parameters.exponent)))) };
}

function eccJwk(pub: Extract<TPMT_PUBLIC, { type: 0x0023 }>): JsonWebKey {
  const c = curveInfo(pub.parameters.curveID);
  if (pub.unique.x.length === 0) throw new TpmCryptoError('ECC public area has no point (a template?)', 'invalid');
  return { kty: 'EC', crv: c.jwk, x: b64u(fixedLength(pub.unique.x, c.size, 'x')), y: b64u(fixedLength(pub.unique.y, c.size, 'y')) };
}

/** The public key of an RSA or ECC TPMT_PUBLIC as a Node KeyObject (Part 2, 12.2.3). */
export function publicToKeyObject(pub: TPMT_PUBLIC): KeyObject {
  let jwk: JsonWebKey;
  if (pub.type === TPM_ALG.RSA) jwk = rsaJwk(pub);
  else if (pub.type === TPM_ALG.ECC) jwk = eccJwk(pub);
  else throw new TpmCryptoError(`public area of type ${algName(pub.type)} has no asymmetric public key`, 'unsupported');
  try {
    return createPublicKey({ key: jwk, format: 'jwk' });
  } catch (e) {
    throw new TpmCryptoError(`public key does not import: ${(e as Error).message}`, 'invalid');
  }
}

/** The PKIX SubjectPublicKeyInfo (DER) of an RSA or ECC TPMT_PUBLIC. */
export function publicToSpkiDer(pub: TPMT_PUBLIC): Uint8Array {
  return new Uint8Array(publicToKeyObject(pub).export({ type: 'spki', format: 'der' }));
}

/** PEM "PUBLIC KEY" (PKIX SubjectPublicKeyInfo) of an RSA or ECC TPMT_PUBLIC. */
export function publicToPem(pub: TPMT_PUBLIC): string {
  return publicToKeyObject(pub).export({ type: 'spki', format: 'pem' }).toString();
}

/** The public key of a KeyObject (public or private) as JWK. */
function publicJwk(key: KeyObject): JsonWebKey {
  const pubKey = key.type === 'private' ? createPublicKey(key) : key;
  if (key.type === 'secret') throw new TpmCryptoError('a secret key has no public area', 'invalid');
  return pubKey.export({ format: 'jwk' });
}

/**
 * A TPMT_PUBLIC for a software RSA or NIST ECC key (public or private
 * KeyObject). The template supplies nameAlg, attributes, authPolicy and
 * parameters (its keyBits/curveID must agree with the key); without one:
 * nameAlg SHA-256, `sign | userWithAuth`, RSASSA-SHA256 or ECDSA-SHA256,
 * no symmetric algorithm (an external signing key, importable or loadable
 * with TPM2_LoadExternal). An RSA exponent of 65537 is written as 0 (the
 * TPM's default), as the TPM does for keys it creates.
 */
export function keyObjectToPublic(key: KeyObject, template?: TPMT_PUBLIC): TPMT_PUBLIC {
  const jwk = publicJwk(key);
  const none = { algorithm: TPM_ALG.NULL } as const;
  const attrs = TPMA_OBJECT.sign | TPMA_OBJECT.userWithAuth;
  if (jwk.kty === 'RSA') {
    const n = stripZeros(fromB64u(jwk.n, 'modulus'));
    const e = Number(toBigInt(fromB64u(jwk.e, 'exponent')));
    const keyBits = n.length * 8;
    if (template !== undefined && template.type !== TPM_ALG.RSA) throw new TpmCryptoError('template is not an RSA template', 'invalid');
    const base: Extract<TPMT_PUBLIC, { type: 0x0001 }> = template ?? {
      type: TPM_ALG.RSA, nameAlg: TPM_ALG.SHA256, objectAttributes: attrs, authPolicy: new Uint8Array(0),
      parameters: { symmetric: none, scheme: { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 }, keyBits, exponent: 0 },
      unique: new Uint8Array(0),
    };
    if (base.parameters.keyBits !== keyBits) throw new TpmCryptoError(`template is for RSA-${base.parameters.keyBits}, the key is RSA-${keyBits}`, 'invalid');
    return { ...base, parameters: { ...base.parameters, exponent: e === 65537 ? 0 : e }, unique: n };
  }
  if (jwk.kty === 'EC') {
    const c = curveByJwk(jwk.crv);
    if (template !== undefined && template.type !== TPM_ALG.ECC) throw new TpmCryptoError('template is not an ECC template', 'invalid');
    const base: Extract<TPMT_PUBLIC, { type: 0x0023 }> = template ?? {
      type: TPM_ALG.ECC, nameAlg: TPM_ALG.SHA256, objectAttributes: attrs, authPolicy: new Uint8Array(0),
      parameters: { symmetric: none, scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 }, curveID: c.curveID, kdf: { scheme: TPM_ALG.NULL } },
      unique: { x: new Uint8Array(0), y: new Uint8Array(0) },
    };
    if (base.parameters.curveID !== c.curveID) throw new TpmCryptoError(`template is for curve 0x${base.parameters.curveID.toString(16)}, the key is ${c.jwk}`, 'invalid');
    return { ...base, unique: { x: fixedLength(fromB64u(jwk.x, 'x'), c.size), y: fixedLength(fromB64u(jwk.y, 'y'), c.size) } };
  }
  throw new TpmCryptoError(`key type ${String(jwk.kty)} is not supported`, 'unsupported');
}

/**
 * The TPMT_SENSITIVE of a software private key (Part 2, 12.3.2.4): RSA
 * carries the first prime p, ECC the private scalar (padded to the curve
 * size). `authValue` and `seedValue` default to empty.
 */
export function sensitiveFromPrivateKey(key: KeyObject, opts: { authValue?: Uint8Array; seedValue?: Uint8Array } = {}): TPMT_SENSITIVE {
  if (key.type !== 'private') throw new TpmCryptoError('a private key is required', 'invalid');
  const jwk = key.export({ format: 'jwk' });
  const common = { authValue: opts.authValue ?? new Uint8Array(0), seedValue: opts.seedValue ?? new Uint8Array(0) };
  if (jwk.kty === 'RSA') return { sensitiveType: TPM_ALG.RSA, ...common, sensitive: stripZeros(fromB64u(jwk.p, 'prime p')).slice() };
  if (jwk.kty === 'EC') {
    const c = curveByJwk(jwk.crv);
    return { sensitiveType: TPM_ALG.ECC, ...common, sensitive: fixedLength(fromB64u(jwk.d, 'private scalar'), c.size) };
  }
  throw new TpmCryptoError(`key type ${String(jwk.kty)} is not supported`, 'unsupported');
}

/**
 * The private key of an RSA or ECC object from its public area and
 * TPMT_SENSITIVE (RSA: n and p give q, d and the CRT values; ECC: the scalar).
 * For software inverses and tests (unwrapped duplicates, test vectors).
 */
export function privateKeyFromSensitive(pub: TPMT_PUBLIC, sensitive: TPMT_SENSITIVE): KeyObject {
  if (pub.type !== sensitive.sensitiveType) throw new TpmCryptoError('sensitive area type does not match the public area', 'invalid');
  let jwk: JsonWebKey;
  if (pub.type === TPM_ALG.RSA) {
    const n = toBigInt(pub.unique);
    const e = BigInt(rsaExponent(pub.parameters.exponent));
    const p = toBigInt(sensitive.sensitive);
    if (p <= 1n || n % p !== 0n) throw new TpmCryptoError('RSA prime does not divide the modulus', 'integrity');
    const q = n / p;
    const d = modInverse(e, (p - 1n) * (q - 1n));
    jwk = {
      ...rsaJwk(pub), d: b64u(fromBigInt(d)), p: b64u(fromBigInt(p)), q: b64u(fromBigInt(q)),
      dp: b64u(fromBigInt(d % (p - 1n))), dq: b64u(fromBigInt(d % (q - 1n))), qi: b64u(fromBigInt(modInverse(q, p))),
    };
  } else if (pub.type === TPM_ALG.ECC) {
    const c = curveInfo(pub.parameters.curveID);
    jwk = { ...eccJwk(pub), d: b64u(fixedLength(sensitive.sensitive, c.size, 'private scalar')) };
  } else {
    throw new TpmCryptoError(`object type ${algName(pub.type)} has no asymmetric private key`, 'unsupported');
  }
  try {
    return createPrivateKey({ key: jwk, format: 'jwk' });
  } catch (e) {
    throw new TpmCryptoError(`private key does not import: ${(e as Error).message}`, 'invalid');
  }
}

// ---- signatures ------------------------------------------------------------------------

function derInteger(v: Uint8Array): Uint8Array {
  let s = stripZeros(v);
  if (s.length === 0) s = new Uint8Array(1);
  const pad = s[0]! & 0x80 ? 1 : 0;
  const out = new Uint8Array(2 + pad + s.length);
  out[0] = 0x02;
  out[1] = pad + s.length;
  out.set(s, 2 + pad);
  return out;
}

function derLength(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  if (n < 0x100) return Uint8Array.of(0x81, n);
  return Uint8Array.of(0x82, n >> 8, n & 0xff);
}

/** The standard form of a signature: ECDSA as an ASN.1 DER `SEQUENCE { r, s }`, RSA (SSA/PSS) the raw signature bytes. */
export function signatureToDer(sig: TPMT_SIGNATURE): Uint8Array {
  if (sig.sigAlg === TPM_ALG.RSASSA || sig.sigAlg === TPM_ALG.RSAPSS) return sig.sig.slice();
  if (sig.sigAlg === TPM_ALG.ECDSA) {
    const r = derInteger(sig.signatureR);
    const s = derInteger(sig.signatureS);
    const len = derLength(r.length + s.length);
    const out = new Uint8Array(1 + len.length + r.length + s.length);
    out[0] = 0x30;
    out.set(len, 1);
    out.set(r, 1 + len.length);
    out.set(s, 1 + len.length + r.length);
    return out;
  }
  throw new TpmCryptoError(`signature algorithm ${algName(sig.sigAlg)} is not supported`, 'unsupported');
}

/**
 * The raw form of a signature: ECDSA as r || s, each left-padded to
 * `fieldSize` bytes (default: the longer of r and s rounded to a NIST curve
 * size: 32, 48 or 66); RSA the signature bytes.
 */
export function signatureToRaw(sig: TPMT_SIGNATURE, fieldSize?: number): Uint8Array {
  if (sig.sigAlg === TPM_ALG.RSASSA || sig.sigAlg === TPM_ALG.RSAPSS) return sig.sig.slice();
  if (sig.sigAlg === TPM_ALG.ECDSA) {
    const longest = Math.max(stripZeros(sig.signatureR).length, stripZeros(sig.signatureS).length);
    const n = fieldSize ?? (CURVES.find((c) => c.size >= longest)?.size ?? longest);
    const out = new Uint8Array(2 * n);
    out.set(fixedLength(sig.signatureR, n, 'r'), 0);
    out.set(fixedLength(sig.signatureS, n, 's'), n);
    return out;
  }
  throw new TpmCryptoError(`signature algorithm ${algName(sig.sigAlg)} is not supported`, 'unsupported');
}
