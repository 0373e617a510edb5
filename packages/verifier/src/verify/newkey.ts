// NewKey: a TPM-made signing key certified by the AK (TPM2_Certify), as go-attestation's
// CertificationParameters.Verify checks it (FORMATS.md "CertificationParameters").
import { type KeyObject, createPublicKey } from 'node:crypto';
import { TPMA_OBJECT, objectName, publicToKeyObject, verifyCertify, type TPMT_PUBLIC } from '@tpmds/tpm2-wire';
import { decodeCertificationParameters, decodePublicKeyPem, requireBytes } from '@tpmds/protocol/formats';
import { CheckList, errorText, type StepResult } from './checks.js';
import { attributeNames, attributeProblem, decodePublicArea, decodeSignature, describePublic, hex, keyTypeMismatch, type KeyType } from './keys.js';

/** What a verified NewKey yields. */
export interface NewKeyValue {
  /** The certified key's public area. */
  keyPublic: TPMT_PUBLIC;
  /** The PEM public key (PKIX) as a Node key: what Sign signatures are checked with. */
  publicKey: KeyObject;
}

/** Attributes of a TPM-bound signing key (never leaves the TPM, made inside it, signs anything): set, and clear. */
export const SIGNING_KEY_REQUIRED_ATTRIBUTES = TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.sign;
export const SIGNING_KEY_FORBIDDEN_ATTRIBUTES = TPMA_OBJECT.restricted;

/**
 * Verifies a NewKeyResponse: the PEM public key (labelled "PUBLIC KEY", or the seed's
 * "RSA PUBLIC KEY") and CertificationParameters decode; TPM2_Certify by the AK verifies
 * (signature, magic, tag CERTIFY, attested name == name of Public, with `verifyCertify`); the PEM
 * key is Public's key; the key is a fixedTPM/fixedParent/sensitiveDataOrigin unrestricted signing
 * key of the requested type.
 */
export function verifyNewKey(resp: { public: Uint8Array; keyCertification: Uint8Array }, akPublic: TPMT_PUBLIC, keyType: KeyType): StepResult<NewKeyValue> {
  const c = new CheckList();
  const decoded = c.attempt(
    'newKey.decode',
    () => {
      const params = decodeCertificationParameters(resp.keyCertification);
      const keyPublic = decodePublicArea(requireBytes(params.public, 'CertificationParameters.Public'));
      const attest = requireBytes(params.createAttestation, 'CertificationParameters.CreateAttestation');
      const sig = decodeSignature(requireBytes(params.createSignature, 'CertificationParameters.CreateSignature'));
      const publicKey = createPublicKey({ key: Buffer.from(decodePublicKeyPem(resp.public)), format: 'der', type: 'spki' });
      return { keyPublic, attest, sig, publicKey };
    },
    (d) => `PEM public key and CertificationParameters decode: ${describePublic(d.keyPublic)} key, name ${hex(objectName(d.keyPublic))}`,
  );
  if (decoded === undefined) return c.result();
  const { keyPublic, attest, sig, publicKey } = decoded;

  const mismatch = keyTypeMismatch(keyPublic, keyType);
  c.expect('newKey.keyType', mismatch === undefined, `${describePublic(keyPublic)} as requested (--key-type ${keyType})`, mismatch ?? '');
  try {
    verifyCertify(akPublic, attest, sig, keyPublic);
    c.pass('newKey.certify', 'TPM2_Certify signed by the AK: signature, magic, tag ATTEST_CERTIFY, attested name is the name of Public');
  } catch (e) {
    c.fail('newKey.certify', errorText(e));
  }
  let same = false;
  let why = 'the PEM public key is another key than the certified Public';
  try {
    same = publicToKeyObject(keyPublic).equals(publicKey);
  } catch (e) {
    why = `the certified Public has no usable public key: ${errorText(e)}`;
  }
  c.expect('newKey.publicKey', same, 'the PEM public key is the certified key', why);
  const problem = attributeProblem(keyPublic, SIGNING_KEY_REQUIRED_ATTRIBUTES, SIGNING_KEY_FORBIDDEN_ATTRIBUTES);
  c.expect('newKey.attributes', problem === undefined, `${attributeNames(keyPublic.objectAttributes).join(' ')}; not restricted`, problem ?? '');
  return c.result({ keyPublic, publicKey });
}
