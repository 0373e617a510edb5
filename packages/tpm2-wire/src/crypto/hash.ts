/** Hash and HMAC by TPM algorithm ID (Node's built-in implementations). */
import { createHash, createHmac, hash as hashOnce } from 'node:crypto';
import { HASH_SIZE, TPM_ALG, algName } from '../types/constants.js';

const NODE_HASH: Readonly<Record<number, string>> = {
  [TPM_ALG.SHA1]: 'sha1', [TPM_ALG.SHA256]: 'sha256', [TPM_ALG.SHA384]: 'sha384', [TPM_ALG.SHA512]: 'sha512',
  [TPM_ALG.SHA3_256]: 'sha3-256', [TPM_ALG.SHA3_384]: 'sha3-384', [TPM_ALG.SHA3_512]: 'sha3-512',
};

/** Node's name for a TPM hash algorithm ("sha256"); throws for one we cannot compute. */
export function nodeHashName(alg: number): string {
  const n = NODE_HASH[alg];
  if (n === undefined) throw new Error(`hash algorithm ${algName(alg)} is not supported`);
  return n;
}

/** Digest size in bytes of a TPM hash algorithm; throws if unknown. */
export function digestSize(alg: number): number {
  const n = HASH_SIZE[alg];
  if (n === undefined) throw new Error(`unknown hash algorithm ${algName(alg)}`);
  return n;
}

/**
 * Inputs up to this many bytes in all are joined and hashed with Node's one-shot `crypto.hash`,
 * which costs about half of a Hash object's create/update/digest; a session does several such
 * small hashes per command (cpHash, rpHash, two HMACs). Larger inputs are streamed.
 */
const ONE_SHOT_MAX = 4096;

/** H_alg(parts[0] || parts[1] || ...). */
export function hash(alg: number, ...parts: Uint8Array[]): Uint8Array {
  const name = nodeHashName(alg);
  const joined = joinSmall(parts);
  if (joined) return new Uint8Array(hashOnce(name, joined, 'buffer'));
  const h = createHash(name);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** Block sizes (bytes) of the SHA-1/SHA-2 hashes, for the one-shot HMAC. */
const BLOCK_SIZE: Readonly<Record<number, number>> = { [TPM_ALG.SHA1]: 64, [TPM_ALG.SHA256]: 64, [TPM_ALG.SHA384]: 128, [TPM_ALG.SHA512]: 128 };

/**
 * HMAC_alg(key, parts[0] || parts[1] || ...). Small inputs with a SHA-1/SHA-2 hash and a key no
 * longer than its block are computed as H((K ^ opad) || H((K ^ ipad) || message)) (RFC 2104) with
 * two one-shot hashes, about half the cost of an Hmac object (sessions do two per command);
 * anything else with Node's Hmac.
 */
export function hmac(alg: number, key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const name = nodeHashName(alg);
  const block = BLOCK_SIZE[alg];
  if (block !== undefined && key.length <= block) {
    const ipad = new Uint8Array(block).fill(0x36);
    for (let i = 0; i < key.length; i++) ipad[i]! ^= key[i]!;
    const joined = joinSmall([ipad, ...parts]);
    if (joined) {
      const opad = ipad.map((b) => b ^ 0x36 ^ 0x5c);
      return new Uint8Array(hashOnce(name, Buffer.concat([opad, hashOnce(name, joined, 'buffer')]), 'buffer'));
    }
  }
  const h = createHmac(name, key);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** `parts` joined into one buffer when they are small enough for a one-shot hash (a single part as is), else undefined. */
function joinSmall(parts: readonly Uint8Array[]): Uint8Array | undefined {
  if (parts.length === 1) return parts[0]!.length <= ONE_SHOT_MAX ? parts[0] : undefined;
  let n = 0;
  for (const p of parts) n += p.length;
  return n <= ONE_SHOT_MAX ? Buffer.concat(parts, n) : undefined;
}
