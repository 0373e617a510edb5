/**
 * The "outer wrapper" shared by credentials and duplicates (TPM 2.0 Part 1,
 * 23.3.2.3 and 24.4-24.5): a symmetric key KDFa(nameAlg, seed, "STORAGE",
 * name, "", keyBits) encrypting with CFB and a zero IV, and an HMAC key
 * KDFa(nameAlg, seed, "INTEGRITY", "", "", digest bits) over
 * encrypted data || name. nameAlg and the symmetric algorithm are the
 * protector's (the EK or the new parent).
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { concatBytes, constantTimeEqual, u16be } from '../bytes/hex.js';
import { TPM_ALG, algName } from '../types/constants.js';
import type { TPMT_PUBLIC } from '../types/structures.js';
import { digestSize, hmac } from './hash.js';
import { kdfa } from './kdf.js';
import { TpmCryptoError } from './errors.js';

/** The AES key size (bits) of a storage key's symmetric definition; throws unless it is AES-CFB. */
export function protectorSymmetricBits(protector: TPMT_PUBLIC): number {
  if (protector.type !== TPM_ALG.RSA && protector.type !== TPM_ALG.ECC) {
    throw new TpmCryptoError(`a ${algName(protector.type)} key cannot protect credentials or duplicates`, 'unsupported');
  }
  const sym = protector.parameters.symmetric;
  if (sym.algorithm !== TPM_ALG.AES) throw new TpmCryptoError(`protector's symmetric algorithm ${algName(sym.algorithm)} is not supported (AES-CFB needed)`, 'unsupported');
  if (sym.mode !== TPM_ALG.CFB) throw new TpmCryptoError(`protector's symmetric mode ${algName(sym.mode)} is not CFB`, 'unsupported');
  if (![128, 192, 256].includes(sym.keyBits)) throw new TpmCryptoError(`AES key size ${sym.keyBits} is invalid`, 'invalid');
  return sym.keyBits;
}

/** AES-CFB with a zero IV (Part 1, 11.4.6.3: the IV of outer wrappers is all zeros). */
export function aesCfb(direction: 'encrypt' | 'decrypt', key: Uint8Array, data: Uint8Array): Uint8Array {
  const alg = `aes-${key.length * 8}-cfb`;
  const iv = new Uint8Array(16);
  const c = direction === 'encrypt' ? createCipheriv(alg, key, iv) : createDecipheriv(alg, key, iv);
  return new Uint8Array(Buffer.concat([c.update(data), c.final()]));
}

/**
 * ProduceOuterWrap: encrypts `u16 size || plaintext` and returns
 * `u16 hmacSize || hmac || encrypted` (the contents of TPM2B_ID_OBJECT or TPM2B_PRIVATE).
 */
export function produceOuterWrap(protector: TPMT_PUBLIC, seed: Uint8Array, name: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const bits = protectorSymmetricBits(protector);
  const nameAlg = protector.nameAlg;
  const symKey = kdfa(nameAlg, seed, 'STORAGE', name, new Uint8Array(0), bits);
  const enc = aesCfb('encrypt', symKey, concatBytes(u16be(plaintext.length), plaintext));
  const hmacKey = kdfa(nameAlg, seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), digestSize(nameAlg) * 8);
  const mac = hmac(nameAlg, hmacKey, enc, name);
  return concatBytes(u16be(mac.length), mac, enc);
}

/**
 * UnwrapOuter: checks the HMAC of `u16 hmacSize || hmac || encrypted` and
 * returns the plaintext inside the `u16 size ||` prefix. Throws
 * TpmCryptoError('integrity') on any mismatch.
 */
export function unwrapOuter(protector: TPMT_PUBLIC, seed: Uint8Array, name: Uint8Array, blob: Uint8Array, what: string): Uint8Array {
  const bits = protectorSymmetricBits(protector);
  const nameAlg = protector.nameAlg;
  const hLen = digestSize(nameAlg);
  if (blob.length < 2) throw new TpmCryptoError(`${what} is too short`, 'invalid');
  const macSize = (blob[0]! << 8) | blob[1]!;
  if (macSize !== hLen || blob.length < 2 + macSize + 2) throw new TpmCryptoError(`${what} has an integrity HMAC of ${macSize} bytes; ${hLen} expected`, 'integrity');
  const mac = blob.subarray(2, 2 + macSize);
  const enc = blob.subarray(2 + macSize);
  const hmacKey = kdfa(nameAlg, seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), hLen * 8);
  if (!constantTimeEqual(mac, hmac(nameAlg, hmacKey, enc, name))) throw new TpmCryptoError(`${what} integrity check failed (wrong key, seed or name)`, 'integrity');
  const symKey = kdfa(nameAlg, seed, 'STORAGE', name, new Uint8Array(0), bits);
  const plain = aesCfb('decrypt', symKey, enc);
  const size = (plain[0]! << 8) | plain[1]!;
  if (size !== plain.length - 2) throw new TpmCryptoError(`${what} decrypts to ${plain.length - 2} bytes but says ${size}`, 'integrity');
  return plain.slice(2);
}
