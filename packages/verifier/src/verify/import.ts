// ImportBlob and ImportSigningKey: go-tpm-tools import blobs made here for the EK
// (FORMATS.md "go-tpm-tools tpm.ImportBlob"); only that TPM can unseal or use them.
import { type KeyObject, constants, createPrivateKey, createPublicKey, generateKeyPairSync, verify as nodeVerify } from 'node:crypto';
import { createImportBlob, publicAreaBytes, utf8, type PcrValues, type TPMT_PUBLIC } from '@tpmds/tpm2-wire';
import { encodeImportBlob } from '@tpmds/protocol/formats';
import { CheckList, type StepResult } from './checks.js';
import { describeKeyObject, secretsEqual, type KeyType } from './keys.js';

function encode(blob: ReturnType<typeof createImportBlob>): Uint8Array {
  return encodeImportBlob({
    duplicate: blob.duplicate,
    encryptedSeed: blob.encryptedSeed,
    publicArea: publicAreaBytes(blob.publicArea),
    ...(blob.pcrs !== undefined ? { pcrs: { hash: blob.pcrs.hashAlg, pcrs: new Map(blob.pcrs.values) } } : {}),
  });
}

/**
 * A go-tpm-tools ImportBlob (protobuf bytes) sealing `data` (at most 128 bytes) to the EK,
 * optionally bound to PCR values (PolicyPCR): what ImportBlobRequest.encryptedKey carries.
 */
export function makeImportBlob(ekPublic: TPMT_PUBLIC, data: Uint8Array, opts: { pcrs?: PcrValues } = {}): Uint8Array {
  return encode(createImportBlob(ekPublic, { kind: 'sealed', data }, opts.pcrs !== undefined ? { pcrs: opts.pcrs } : {}));
}

/** Checks that the unsealed bytes are the bytes sealed (constant-time; neither is shown). */
export function verifyImportBlob(sent: Uint8Array, returned: Uint8Array, name = 'importBlob.unsealed'): StepResult<void> {
  const c = new CheckList();
  c.expect(
    name,
    secretsEqual(sent, returned),
    `the unsealed ${sent.length} bytes match the ones sealed to the EK`,
    returned.length === sent.length ? 'the unsealed bytes differ from the ones sealed' : `${returned.length} bytes came back; ${sent.length} were sealed`,
  );
  return c.result();
}

/** A signing key made here and wrapped for the EK: the request payload and the public key to check with. */
export interface SigningKeyImport {
  /** go-tpm-tools ImportBlob protobuf (ImportSigningKeyRequest.encryptedSigningKey). */
  encryptedSigningKey: Uint8Array;
  /** The key's public half; the private half exists only inside the blob. */
  publicKey: KeyObject;
}

/** Generates an RSA-2048 or P-256 key pair and wraps its private key for the EK (go-tpm-tools CreateSigningKeyImportBlob). */
export function makeSigningKeyImport(ekPublic: TPMT_PUBLIC, keyType: KeyType, opts: { pcrs?: PcrValues } = {}): SigningKeyImport {
  // The pair is generated straight to DER and read back: Node 20 can deadlock exporting a
  // KeyObject that generateKeyPairSync returned (createImportBlob exports the private key) when a
  // GC during the export finalizes the generation job, which locks the same key's mutex (seen:
  // KeyObjectHandle::ExportJWK -> GC -> ~KeyGenJob -> uv_mutex_lock). Keys read from DER share
  // nothing with the job.
  const pair =
    keyType === 'ecc'
      ? generateKeyPairSync('ec', { namedCurve: 'prime256v1', publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } })
      : generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } });
  const privateKey = createPrivateKey({ key: pair.privateKey, format: 'der', type: 'pkcs8' });
  const publicKey = createPublicKey({ key: pair.publicKey, format: 'der', type: 'spki' });
  const blob = createImportBlob(ekPublic, { kind: 'signingKey', privateKey }, opts.pcrs !== undefined ? { pcrs: opts.pcrs } : {});
  return { encryptedSigningKey: encode(blob), publicKey };
}

/**
 * Verifies a signature over SHA-256(data) by `publicKey`: RSA PKCS#1 v1.5, or ECDSA with an
 * ASN.1 DER signature (the contract of Sign and of the ImportSigningKey confirmation).
 */
export function signatureVerifies(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    if (publicKey.asymmetricKeyType === 'ec') return nodeVerify('sha256', data, { key: publicKey, dsaEncoding: 'der' }, signature);
    return nodeVerify('sha256', data, { key: publicKey, padding: constants.RSA_PKCS1_PADDING }, signature);
  } catch {
    return false;
  }
}

/** Checks ImportSigningKeyResponse.confirmation: the imported key's signature over SHA-256(uid's UTF-8 bytes). */
export function verifyImportSigningKey(confirmation: Uint8Array, publicKey: KeyObject, uid: string): StepResult<void> {
  const c = new CheckList();
  const scheme = publicKey.asymmetricKeyType === 'ec' ? 'ECDSA (ASN.1 DER)' : 'RSASSA-PKCS1-v1_5';
  c.expect(
    'importSigningKey.confirmation',
    signatureVerifies(publicKey, utf8(uid), confirmation),
    `${scheme} SHA-256 signature over the uid by the imported ${describeKeyObject(publicKey)} key verifies`,
    `the confirmation (${confirmation.length} bytes) is not a ${scheme} SHA-256 signature over the uid by the imported key`,
  );
  return c.result();
}
