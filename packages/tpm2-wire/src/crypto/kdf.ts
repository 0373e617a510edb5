/**
 * The TPM key derivation functions (TPM 2.0 Part 1, 11.4.10): KDFa (SP800-108
 * counter mode with HMAC) and KDFe (SP800-56A concatenation KDF).
 */
import { createHash } from 'node:crypto';
import { u32be, utf8 } from '../bytes/hex.js';
import { digestSize, hmac, nodeHashName } from './hash.js';
import { TpmCryptoError } from './errors.js';

/** A label as the KDFs use it: its bytes followed by one 0 byte (not doubled if already there). */
function labelBytes(label: string): Uint8Array {
  const b = utf8(label);
  if (b.length > 0 && b[b.length - 1] === 0) return b;
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

function checkBits(bits: number): number {
  if (!Number.isInteger(bits) || bits < 0 || bits > 0xffff * 8) throw new TpmCryptoError(`KDF output length ${bits} bits is invalid`, 'invalid');
  return Math.ceil(bits / 8);
}

/** Keep only the low `bits` bits of a big-endian value (Part 1, 11.4.10.2: the excess high bits are cleared). */
function maskTop(out: Uint8Array, bits: number): Uint8Array {
  if (bits % 8 !== 0) out[0]! &= (1 << bits % 8) - 1;
  return out;
}

/**
 * KDFa (Part 1, 11.4.10.2): for i = 1, 2, ...:
 * HMAC_hashAlg(key, [i]32 || label || 0x00 || contextU || contextV || [bits]32),
 * concatenated, truncated to `bits` (the top byte masked for odd lengths).
 */
export function kdfa(
  hashAlg: number,
  key: Uint8Array,
  label: string,
  contextU: Uint8Array,
  contextV: Uint8Array,
  bits: number,
): Uint8Array {
  const bytes = checkBits(bits);
  nodeHashName(hashAlg); // an algorithm this runtime cannot compute is refused by name here
  const size = digestSize(hashAlg);
  const lab = labelBytes(label);
  const len = u32be(bits);
  const out = new Uint8Array(Math.ceil(bytes / size) * size);
  for (let i = 1, at = 0; at < bytes; i++, at += size) out.set(hmac(hashAlg, key, u32be(i), lab, contextU, contextV, len), at);
  return maskTop(out.slice(0, bytes), bits);
}

/**
 * KDFe (Part 1, 11.4.10.3): for i = 1, 2, ...:
 * H_hashAlg([i]32 || Z || label || 0x00 || partyUInfo || partyVInfo),
 * concatenated, truncated to `bits` (the top byte masked for odd lengths).
 * In ECC secret sharing Z is the x-coordinate of the shared point,
 * partyUInfo the ephemeral x and partyVInfo the key's x.
 */
export function kdfe(
  hashAlg: number,
  z: Uint8Array,
  label: string,
  partyUInfo: Uint8Array,
  partyVInfo: Uint8Array,
  bits: number,
): Uint8Array {
  const bytes = checkBits(bits);
  const name = nodeHashName(hashAlg);
  const size = digestSize(hashAlg);
  const lab = labelBytes(label);
  const out = new Uint8Array(Math.ceil(bytes / size) * size);
  for (let i = 1, at = 0; at < bytes; i++, at += size) {
    const h = createHash(name);
    h.update(u32be(i)).update(z).update(lab).update(partyUInfo).update(partyVInfo);
    out.set(h.digest(), at);
  }
  return maskTop(out.slice(0, bytes), bits);
}
