/**
 * Test-side conversions between TPM public areas and Node KeyObjects, written independently of the
 * library's crypto layer so that tests cross-check it rather than reuse it.
 */
import { createPublicKey, type KeyObject, type JsonWebKey } from 'node:crypto';
import { TPM_ALG, TPM_ECC, type TPMT_PUBLIC } from '../../src/index.js';

const b64url = (b: Uint8Array) => Buffer.from(b).toString('base64url');
const fromB64url = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));

const CURVES: Record<number, { crv: string; size: number }> = {
  [TPM_ECC.NIST_P256]: { crv: 'P-256', size: 32 },
  [TPM_ECC.NIST_P384]: { crv: 'P-384', size: 48 },
  [TPM_ECC.NIST_P521]: { crv: 'P-521', size: 66 },
};

/** The public key of an RSA or ECC public area as a JWK (exponent 0 means 65537, Part 2 12.2.3.5). */
export function jwkOf(pub: TPMT_PUBLIC): JsonWebKey {
  if (pub.type === TPM_ALG.RSA) {
    const e = pub.parameters.exponent === 0 ? 65537 : pub.parameters.exponent;
    const eb = Buffer.alloc(4);
    eb.writeUInt32BE(e);
    let i = 0;
    while (i < 3 && eb[i] === 0) i++;
    return { kty: 'RSA', n: b64url(pub.unique), e: b64url(eb.subarray(i)) };
  }
  if (pub.type === TPM_ALG.ECC) {
    const c = CURVES[pub.parameters.curveID];
    if (!c) throw new Error(`curve 0x${pub.parameters.curveID.toString(16)} not supported in tests`);
    return { kty: 'EC', crv: c.crv, x: b64url(pub.unique.x), y: b64url(pub.unique.y) };
  }
  throw new Error(`type 0x${pub.type.toString(16)} has no public key`);
}

export function keyObjectOf(pub: TPMT_PUBLIC): KeyObject {
  return createPublicKey({ key: jwkOf(pub), format: 'jwk' });
}

/** RSA modulus / EC point of a KeyObject, as bytes (for comparison with a TPMT_PUBLIC's unique). */
export function publicNumbers(key: KeyObject): { n?: Uint8Array; e?: Uint8Array; x?: Uint8Array; y?: Uint8Array; crv?: string } {
  const j = key.export({ format: 'jwk' });
  if (j.kty === 'RSA') return { n: fromB64url(j.n!), e: fromB64url(j.e!) };
  return { x: fromB64url(j.x!), y: fromB64url(j.y!), crv: j.crv! };
}

/** Left-pad to `n` bytes (ECDSA r/s as raw IEEE P1363 halves). */
export function padTo(b: Uint8Array, n: number): Uint8Array {
  if (b.length >= n) return b;
  const out = new Uint8Array(n);
  out.set(b, n - b.length);
  return out;
}
