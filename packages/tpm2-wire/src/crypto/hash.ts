/** Hash and HMAC by TPM algorithm ID (Node's built-in implementations). */
import { createHash, createHmac } from 'node:crypto';
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

/** H_alg(parts[0] || parts[1] || ...). */
export function hash(alg: number, ...parts: Uint8Array[]): Uint8Array {
  const h = createHash(nodeHashName(alg));
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** HMAC_alg(key, parts[0] || parts[1] || ...). */
export function hmac(alg: number, key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac(nodeHashName(alg), key);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}
