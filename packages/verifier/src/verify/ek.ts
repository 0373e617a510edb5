// GetEKCert: the EK public key, its certificate, and the chain to the manufacturer's roots
// (TCG EK Credential Profile 2.x).
import { type KeyObject, createPublicKey } from 'node:crypto';
import {
  ekTemplateEccP256, ekTemplateRsa2048, keyObjectToPublic, objectName, type ParsedCertificate, type TPMT_PUBLIC,
} from '@tpmds/tpm2-wire';
import { certificateKeyMismatch, checkKeyCertificate } from './certificate.js';
import { CheckList, type StepResult } from './checks.js';
import { describeKeyObject, hex, keyObjectTypeMismatch, type KeyType } from './keys.js';

/** Trust anchors and untrusted chain certificates for the EK certificate (DER). */
export interface EkOptions {
  /** Trust anchors (every one is trusted); empty: the chain is not checked (a warning). */
  roots: readonly Uint8Array[];
  /** Untrusted intermediate certificates. */
  intermediates: readonly Uint8Array[];
  keyType: KeyType;
  /** Validate the chain at this time (default now). */
  at?: Date;
}

/** What a verified GetEKCert yields. */
export interface EkValue {
  /** The EK as a TPMT_PUBLIC: the SPKI key in the TCG EK template (L-1 RSA-2048 / L-2 P-256). */
  ekPublic: TPMT_PUBLIC;
  ekKey: KeyObject;
  certificate?: ParsedCertificate;
}

/**
 * The EK public area of a PKIX SubjectPublicKeyInfo: the key in the TCG EK template of its type,
 * so the nameAlg and symmetric parameters used by MakeCredential and Import are the EK's.
 */
export function ekPublicFromSpki(spkiDer: Uint8Array, keyType: KeyType): TPMT_PUBLIC {
  const key = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
  return keyObjectToPublic(key, keyType === 'ecc' ? ekTemplateEccP256() : ekTemplateRsa2048());
}

/**
 * Verifies a GetEKCert response: the SPKI decodes and is the requested key type; the
 * certificate decodes, certifies this very key (compared by key material), and chains to one
 * of `opts.roots` through `opts.intermediates`. Without roots the chain is not checked (a
 * warning); a missing certificate fails when roots are given.
 */
export async function verifyEk(resp: { ekPub: Uint8Array; ekCert: Uint8Array }, opts: EkOptions): Promise<StepResult<EkValue>> {
  const c = new CheckList();
  const key = c.attempt(
    'ek.public',
    () => createPublicKey({ key: Buffer.from(resp.ekPub), format: 'der', type: 'spki' }),
    (k) => `EK public key decodes (${describeKeyObject(k)})`,
  );
  let ekPublic: TPMT_PUBLIC | undefined;
  if (key !== undefined) {
    const mismatch = keyObjectTypeMismatch(key, opts.keyType);
    if (mismatch !== undefined) {
      c.fail('ek.keyType', mismatch);
    } else {
      ekPublic = c.attempt(
        'ek.keyType',
        () => keyObjectToPublic(key, opts.keyType === 'ecc' ? ekTemplateEccP256() : ekTemplateRsa2048()),
        (p) => `${describeKeyObject(key)} as requested; name in the TCG EK template ${hex(objectName(p))}`,
      );
    }
  }

  const ek = ekPublic;
  const { certificate } = await checkKeyCertificate(c, resp.ekCert, {
    name: 'ek.certificate', roots: opts.roots, intermediates: opts.intermediates, at: opts.at,
    rootsFlag: '--ek-roots', missing: 'the TPM has no EK certificate for this key',
    // Without the EK (it did not decode, or is not the requested type) there is nothing to compare.
    key: ek === undefined ? undefined : { same: 'the certificate is for this EK (same key material)', mismatch: () => certificateKeyMismatch(resp.ekCert, ek, 'the EK') },
  });
  const value: EkValue | undefined =
    ekPublic !== undefined && key !== undefined ? { ekPublic, ekKey: key, ...(certificate ? { certificate } : {}) } : undefined;
  return c.result(value);
}

