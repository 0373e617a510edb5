// GetAK: go-attestation AttestationParameters, checked as ActivationParameters.Generate does
// (FORMATS.md "AttestationParameters"), plus the AK's type and attributes.
import { TPMA_OBJECT, objectName, verifyCertifyCreation, type TPMT_PUBLIC } from '@tpmds/tpm2-wire';
import { decodeAttestationParameters, requireBytes, type AttestationParameters } from '@tpmds/protocol/formats';
import { CheckList, errorText, type StepResult } from './checks.js';
import { attributeNames, attributeProblem, decodePublicArea, decodeSignature, describePublic, hex, keyTypeMismatch, type KeyType } from './keys.js';

/** What a verified GetAK yields. */
export interface AkValue {
  akPublic: TPMT_PUBLIC;
  /** nameAlg || H(TPMT_PUBLIC): what MakeCredential binds the secret to. */
  akName: Uint8Array;
  params: AttestationParameters;
}

/** Attributes an AK must have (a restricted signing key that never leaves this TPM), and must not. */
export const AK_REQUIRED_ATTRIBUTES = TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.restricted | TPMA_OBJECT.sign;
export const AK_FORBIDDEN_ATTRIBUTES = TPMA_OBJECT.decrypt;

/**
 * Verifies GetAKResponse.ak: the JSON and its TPM structures decode; TPM2_CertifyCreation by
 * the AK itself verifies (signature, magic, tag CREATION, creationHash, name — with
 * `verifyCertifyCreation`); the AK is a restricted signing key of the requested type.
 */
export function verifyAk(akJson: Uint8Array, keyType: KeyType): StepResult<AkValue> {
  const c = new CheckList();
  const decoded = c.attempt(
    'ak.decode',
    () => {
      const params = decodeAttestationParameters(akJson);
      if (params.useTCSDActivationFormat) throw new Error('UseTCSDActivationFormat is set: a TPM 1.2 AK, not TPM 2.0');
      const akPublic = decodePublicArea(requireBytes(params.public, 'AttestationParameters.Public'));
      const createData = requireBytes(params.createData, 'AttestationParameters.CreateData');
      const attest = requireBytes(params.createAttestation, 'AttestationParameters.CreateAttestation');
      const sig = decodeSignature(requireBytes(params.createSignature, 'AttestationParameters.CreateSignature'));
      return { params, akPublic, createData, attest, sig };
    },
    (d) => `AttestationParameters decode: ${describePublic(d.akPublic)} AK, name ${hex(objectName(d.akPublic))}`,
  );
  if (decoded === undefined) return c.result();
  const { params, akPublic, createData, attest, sig } = decoded;

  const mismatch = keyTypeMismatch(akPublic, keyType);
  c.expect('ak.keyType', mismatch === undefined, `${describePublic(akPublic)} as requested (--key-type ${keyType})`, mismatch ?? '');
  try {
    verifyCertifyCreation(akPublic, createData, attest, sig);
    c.pass('ak.certifyCreation', 'TPM2_CertifyCreation signed by the AK itself: signature, magic, tag ATTEST_CREATION, creationHash, name, fixedTPM/fixedParent/sensitiveDataOrigin/restricted');
  } catch (e) {
    c.fail('ak.certifyCreation', errorText(e));
  }
  const problem = attributeProblem(akPublic, AK_REQUIRED_ATTRIBUTES, AK_FORBIDDEN_ATTRIBUTES);
  c.expect('ak.attributes', problem === undefined, `${attributeNames(akPublic.objectAttributes).join(' ')}; not decrypt`, problem ?? '');
  return c.result({ akPublic, akName: objectName(akPublic), params });
}
