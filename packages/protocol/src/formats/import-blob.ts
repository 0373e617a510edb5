// go-tpm-tools v0.4.5 `tpm.ImportBlob` protobuf (FORMATS.md), through the generated message classes.
import { tpm } from '../proto/gen/tpm.js';
import type { WireSchema } from '../proto/wire.js';
import { WireFormatError, checkWire } from '../proto/wire.js';
import { FormatError } from './errors.js';

/** Wire shape of tpm.ImportBlob: bytes 1-3, PCRs 4 { enum 1, map<uint32, bytes> 2 }. */
const IMPORT_BLOB_SCHEMA: WireSchema = {
  1: { wireType: 2 },
  2: { wireType: 2 },
  3: { wireType: 2 },
  4: {
    wireType: 2,
    message: { 1: { wireType: 0 }, 2: { wireType: 2, message: { 1: { wireType: 0 }, 2: { wireType: 2 } } } },
  },
};
const FIELD_NAMES: Record<string, string> = {
  'ImportBlob.1': 'ImportBlob.duplicate',
  'ImportBlob.2': 'ImportBlob.encrypted_seed',
  'ImportBlob.3': 'ImportBlob.public_area',
  'ImportBlob.4': 'ImportBlob.pcrs',
  'ImportBlob.4.1': 'ImportBlob.pcrs.hash',
  'ImportBlob.4.2': 'ImportBlob.pcrs.pcrs',
};

/** go-tpm-tools `tpm.HashAlgo`: TPM_ALG_ID values of the PCR bank in `PCRs.hash`. */
export const HashAlgo = { HASH_INVALID: 0, SHA1: 0x0004, SHA256: 0x000b, SHA384: 0x000c, SHA512: 0x000d } as const;

/** go-tpm-tools `tpm.PCRs`: a bank and PCR index -> expected digest. */
export interface PcrValues {
  /** TPM_ALG_ID of the bank (see {@link HashAlgo}). */
  hash: number;
  pcrs: Map<number, Uint8Array>;
}

/** go-tpm-tools `tpm.ImportBlob`: an object duplicated to the EK. */
export interface ImportBlob {
  /** TPM2B_PRIVATE contents (`u16 hmacSize || hmac || encSensitive`). */
  duplicate: Uint8Array;
  /** TPM2B_ENCRYPTED_SECRET contents (RSA: OAEP ciphertext; ECC: TPMS_ECC_POINT). */
  encryptedSeed: Uint8Array;
  /** TPMT_PUBLIC of the duplicated object. */
  publicArea: Uint8Array;
  /** The PCR policy the object is bound to, when the `pcrs` field is present. */
  pcrs?: PcrValues;
}

/** Encodes an ImportBlob as go-tpm-tools protobuf bytes. */
export function encodeImportBlob(blob: ImportBlob): Uint8Array {
  const msg = new tpm.ImportBlob({
    duplicate: blob.duplicate,
    encrypted_seed: blob.encryptedSeed,
    public_area: blob.publicArea,
  });
  if (blob.pcrs !== undefined) {
    msg.pcrs = new tpm.PCRs({ hash: blob.pcrs.hash, pcrs: new Map(blob.pcrs.pcrs) });
  }
  return msg.serialize();
}

/**
 * Decodes go-tpm-tools ImportBlob protobuf bytes. Throws FormatError for bytes that are not a
 * protobuf message of that shape; the field contents are not interpreted here.
 */
export function decodeImportBlob(bytes: Uint8Array): ImportBlob {
  try {
    // google-protobuf trusts length prefixes (see proto/wire.ts): check the wire bytes first.
    checkWire(bytes, IMPORT_BLOB_SCHEMA, 'ImportBlob');
  } catch (e) {
    if (!(e instanceof WireFormatError)) throw e;
    const field = FIELD_NAMES[e.field] ?? (e.field.startsWith('ImportBlob.4.2') ? 'ImportBlob.pcrs.pcrs' : e.field);
    throw new FormatError(field, e.problem);
  }
  let msg: tpm.ImportBlob;
  try {
    msg = tpm.ImportBlob.deserialize(bytes);
  } catch {
    throw new FormatError('ImportBlob', 'not a valid tpm.ImportBlob protobuf message');
  }
  const out: ImportBlob = {
    duplicate: asBytes(msg.duplicate, 'ImportBlob.duplicate'),
    encryptedSeed: asBytes(msg.encrypted_seed, 'ImportBlob.encrypted_seed'),
    publicArea: asBytes(msg.public_area, 'ImportBlob.public_area'),
  };
  if (msg.has_pcrs) {
    const pcrs = new Map<number, Uint8Array>();
    for (const [index, digest] of msg.pcrs.pcrs) {
      if (typeof index !== 'number' || !Number.isInteger(index) || index < 0) {
        throw new FormatError('ImportBlob.pcrs.pcrs', 'invalid PCR index');
      }
      pcrs.set(index, digest == null ? new Uint8Array(0) : asBytes(digest, `ImportBlob.pcrs.pcrs[${index}]`));
    }
    out.pcrs = { hash: msg.pcrs.hash, pcrs };
  }
  return out;
}

function asBytes(value: unknown, field: string): Uint8Array {
  if (value instanceof Uint8Array) return value;
  // google-protobuf may hand back a base64 string for bytes fields that were set from one.
  if (typeof value === 'string') return new Uint8Array(Buffer.from(value, 'base64'));
  throw new FormatError(field, 'not a bytes value');
}
