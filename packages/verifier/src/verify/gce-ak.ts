// GetGCEEKSigningKey + SignGCEEK: the node's cloud attestation key (Google Cloud's vTPM: a key
// the platform's template in TPM NV defines, certified by Google's EK/AK CA). A signature over a
// fresh nonce proves the key is in use on the target now; the certificate, chained to --ak-roots,
// proves whose TPM it lives in, and Google's instance-identity extension says which VM.
import { type KeyObject, createHash, createPublicKey } from 'node:crypto';
import { keyObjectToPublic, type ParsedCertificate } from '@tpmds/tpm2-wire';
import { decodePublicKeyPem } from '@tpmds/protocol/formats';
import { certificateKeyMismatch, checkKeyCertificate } from './certificate.js';
import { type Check, CheckList, errorText, type StepResult } from './checks.js';
import { type GceInstanceInfo, describeGceInstanceInfo, gceInstanceInfo } from './gce.js';
import { signatureVerifies } from './import.js';
import { describeKeyObject, hex, keyObjectTypeMismatch, type KeyType } from './keys.js';

export interface GceAkOptions {
  keyType: KeyType;
  /** Trust anchors for the key's certificate (DER); empty: the chain is not checked (a warning). */
  roots: readonly Uint8Array[];
  intermediates: readonly Uint8Array[];
  /** Validate the chain at this time (default now). */
  at?: Date;
}

export interface GceAkValue {
  publicKey: KeyObject;
  /** SHA-256 of the key's SubjectPublicKeyInfo DER, hex. */
  spkiSha256: string;
  certificate?: ParsedCertificate;
  /** Whether the certificate is for this key and chains to the roots given (only then are its instance facts verified). */
  chainVerified: boolean;
  instance?: GceInstanceInfo;
}

/**
 * Verifies a GetGCEEKSigningKey response and a SignGCEEK signature over `nonce`: the PEM key
 * decodes and is the requested type, the signature is RSASSA-PKCS1-v1_5 / ECDSA over
 * SHA-256(nonce) by it, and a certificate, when sent, is for this key and chains to `roots`.
 */
export async function verifyGceAk(resp: { public: Uint8Array; cert: Uint8Array }, nonce: Uint8Array, signature: Uint8Array, opts: GceAkOptions): Promise<StepResult<GceAkValue>> {
  const c = new CheckList();
  const key = c.attempt(
    'gceAk.public',
    () => createPublicKey({ key: Buffer.from(decodePublicKeyPem(resp.public)), format: 'der', type: 'spki' }),
    (k) => `PEM public key decodes (${describeKeyObject(k)})`,
  );
  if (key === undefined) return c.result();
  const mismatch = keyObjectTypeMismatch(key, opts.keyType);
  if (mismatch !== undefined) c.fail('gceAk.keyType', mismatch);
  const scheme = key.asymmetricKeyType === 'ec' ? 'ECDSA (ASN.1 DER)' : 'RSASSA-PKCS1-v1_5';
  c.expect(
    'gceAk.signature',
    signatureVerifies(key, nonce, signature),
    `SignGCEEK: ${scheme} SHA-256 signature over a fresh ${nonce.length}-byte nonce verifies with the key`,
    `SignGCEEK: the signature (${signature.length} bytes) is not a ${scheme} SHA-256 signature over the nonce by the key`,
  );
  const spki = new Uint8Array(key.export({ format: 'der', type: 'spki' }));
  const value: GceAkValue = { publicKey: key, spkiSha256: hex(new Uint8Array(createHash('sha256').update(spki).digest())), chainVerified: false };

  const checked = await checkKeyCertificate(c, resp.cert, {
    name: 'gceAk.certificate', roots: opts.roots, intermediates: opts.intermediates, at: opts.at,
    rootsFlag: '--ak-roots', missing: 'the TPM has no certificate for this key', missingNote: 'NV 0x01c10000 / 0x01c10002 empty',
    key: { same: 'the certificate is for this key (same key material)', mismatch: (certificate) => certificateKeyMismatch(certificate.der, keyObjectToPublic(key), 'the one GetGCEEKSigningKey returned') },
  });
  const certificate = checked.certificate;
  if (certificate === undefined) return c.result(value);
  value.certificate = certificate;
  // A certificate for another key proves nothing about this one, however well it chains.
  value.chainVerified = checked.chained && checked.sameKey;
  const instance = instanceCheck(c.checks, 'gceAk.instance', certificate, value.chainVerified);
  if (instance) value.instance = instance;
  return c.result(value);
}

/**
 * Google's instance identity in `certificate`, as a check named `name` (none when the certificate
 * has no such extension): a warning when the certificate is not verified, since the facts are then
 * only what the certificate claims.
 */
export function instanceCheck(checks: Check[], name: string, certificate: ParsedCertificate, verified: boolean): GceInstanceInfo | undefined {
  let info: GceInstanceInfo | undefined;
  try {
    info = gceInstanceInfo(certificate);
  } catch (e) {
    checks.push({ name, ok: false, detail: errorText(e) });
    return undefined;
  }
  if (info === undefined) return undefined;
  const facts = `GCE instance: ${describeGceInstanceInfo(info)}`;
  checks.push(verified ? { name, ok: true, detail: facts } : { name, ok: true, warning: true, detail: `${facts} (claimed by a certificate whose chain was not verified)` });
  return info;
}
