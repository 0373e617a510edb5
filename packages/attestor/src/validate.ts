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

/** The largest command a TPM takes (TPM_PT_MAX_COMMAND_SIZE: 4096 on libtpms/swtpm and common discrete TPMs). */
export const TPM_MAX_COMMAND_BYTES = 4096;
/**
 * What TPM2_Import needs besides the blob's three fields: header, parent handle, two
 * authorization sessions (policy + parameter encryption, each with 64-byte nonce and HMAC),
 * encryptionKey, three size prefixes and symmetricAlg, rounded up.
 */
const IMPORT_COMMAND_OVERHEAD = 384;
/** Largest sum of ImportBlob.duplicate + encrypted_seed + public_area that fits one TPM2_Import. */
export const MAX_IMPORT_BLOB_FIELDS_BYTES = TPM_MAX_COMMAND_BYTES - IMPORT_COMMAND_OVERHEAD;

/**
 * The TPM2B size limits of the caller-supplied ImportBlob fields (Part 2: TPM2B_PRIVATE holds at most
 * 4096 bytes as encoded here, TPM2B_ENCRYPTED_SECRET 512, a TPMT_PUBLIC with a 4096-bit RSA key
 * fits 1024), and their sum against one TPM command. `where` prefixes the message (the request
 * field, e.g. "encryptedKey").
 */
export function checkImportBlobSizes(where: string, blob: { duplicate: Uint8Array; encryptedSeed: Uint8Array; publicArea: Uint8Array }): void {
  const fields: [string, Uint8Array, number, string][] = [
    ['duplicate', blob.duplicate, 4096, 'TPM2B_PRIVATE'],
    ['encrypted_seed', blob.encryptedSeed, 512, 'TPM2B_ENCRYPTED_SECRET'],
    ['public_area', blob.publicArea, 1024, 'TPMT_PUBLIC'],
  ];
  for (const [name, value, max, type] of fields) {
    if (value.length > max) {
      throw new AttestorError('INVALID_ARGUMENT', `${where}: ImportBlob.${name} is ${value.length} bytes; a ${type} holds at most ${max}`);
    }
  }
  const total = fields.reduce((n, [, value]) => n + value.length, 0);
  if (total > MAX_IMPORT_BLOB_FIELDS_BYTES) {
    throw new AttestorError(
      'INVALID_ARGUMENT',
      `${where}: ImportBlob.duplicate, encrypted_seed and public_area are ${total} bytes together; ` +
        `one TPM command of at most ${TPM_MAX_COMMAND_BYTES} bytes holds at most ${MAX_IMPORT_BLOB_FIELDS_BYTES} of them`,
    );
  }
}

/**
 * The most data SignGCEEK signs: with a restricted cloud AK the TPM hashes it itself, one
 * TPM2_SequenceUpdate per input buffer (usually 1 KiB), holding the TPM queue meanwhile; 64 KiB is
 * 64 commands. Larger data is INVALID_ARGUMENT naming the limit.
 */
export const MAX_NODE_KEY_SIGN_BYTES = 64 * 1024;

/** SignGCEEK's data, checked against {@link MAX_NODE_KEY_SIGN_BYTES}. */
export function checkNodeKeySignData(data: Uint8Array): Uint8Array {
  if (data.length > MAX_NODE_KEY_SIGN_BYTES) {
    throw new AttestorError('INVALID_ARGUMENT', `data is ${data.length} bytes; SignGCEEK signs at most ${MAX_NODE_KEY_SIGN_BYTES} (the TPM hashes it itself, a command per KiB): sign a digest of larger data instead`);
  }
  return data;
}
