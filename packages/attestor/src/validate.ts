// Request checks that need no TPM (ARCHITECTURE.md "packages/attestor").
import { AttestorError } from './errors.js';

/** Key types of the contract: "ecc" is NIST P-256. */
export type KeyType = 'rsa' | 'ecc';

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Why `value` is not a valid uid/kid, or null when it is. */
export function idProblem(value: string): string | null {
  if (value.length === 0) return 'is empty';
  if (value.length > 128) return `is ${value.length} characters long (at most 128)`;
  if (!ID_RE.test(value)) {
    return 'must start with a letter or digit and contain only letters, digits, ".", "_" and "-"';
  }
  if (value.includes('..')) return 'must not contain ".."';
  return null;
}

/** Throws INVALID_ARGUMENT unless `value` is a valid uid/kid; `name` is "uid" or "kid". */
export function checkId(name: 'uid' | 'kid', value: string): string {
  const problem = idProblem(value);
  if (problem !== null) throw new AttestorError('INVALID_ARGUMENT', `${name} ${problem}`);
  return value;
}

/** "" and "rsa" are RSA-2048, "ecc" is NIST P-256; anything else is INVALID_ARGUMENT. */
export function parseKeyType(value: string): KeyType {
  switch (value) {
    case '':
    case 'rsa':
      return 'rsa';
    case 'ecc':
      return 'ecc';
    default:
      throw new AttestorError('INVALID_ARGUMENT', `keyType must be "rsa", "ecc" or empty (rsa), got ${JSON.stringify(value.slice(0, 32))}`);
  }
}

/** Quote nonces must fit TPM2B_DATA with SHA-384 on every TPM: 1 to 48 bytes. */
export function checkNonce(nonce: Uint8Array): Uint8Array {
  if (nonce.length === 0) throw new AttestorError('INVALID_ARGUMENT', 'nonce is empty (1 to 48 bytes expected)');
  if (nonce.length > 48) throw new AttestorError('INVALID_ARGUMENT', `nonce is ${nonce.length} bytes (1 to 48 expected)`);
  return nonce;
}
