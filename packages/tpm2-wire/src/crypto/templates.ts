/**
 * Standard key templates: TCG EK Credential Profile 2.x B.3.3 (template L-1,
 * RSA-2048) and B.3.4 (L-2, ECC P-256); TCG TPM v2.0 Provisioning Guidance
 * SRK templates; go-attestation's AK; signing keys.
 */
import { fromHex } from '../bytes/hex.js';
import { TPMA_OBJECT as O, TPM_ALG, TPM_ECC } from '../types/constants.js';
import type { TPMT_PUBLIC } from '../types/structures.js';

/** PolicySecret(TPM_RH_ENDORSEMENT) with SHA-256: the EK's authPolicy (EK profile B.3.2). */
export const EK_POLICY_SHA256 = fromHex('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa');

const EK_ATTRS = O.fixedTPM | O.fixedParent | O.sensitiveDataOrigin | O.adminWithPolicy | O.restricted | O.decrypt;
const SRK_ATTRS = O.fixedTPM | O.fixedParent | O.sensitiveDataOrigin | O.userWithAuth | O.noDA | O.restricted | O.decrypt;
const AES128_CFB = { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB } as const;

/** TCG EK template L-1: RSA-2048, AES-128-CFB, SHA-256 PolicySecret(endorsement), 256 zero bytes of unique. */
export function ekTemplateRsa2048(): TPMT_PUBLIC {
  return {
    type: TPM_ALG.RSA, nameAlg: TPM_ALG.SHA256, objectAttributes: EK_ATTRS, authPolicy: EK_POLICY_SHA256,
    parameters: { symmetric: AES128_CFB, scheme: { scheme: TPM_ALG.NULL }, keyBits: 2048, exponent: 0 },
    unique: new Uint8Array(256),
  };
}

/** TCG EK template L-2: ECC NIST P-256, AES-128-CFB, SHA-256 policy, 32 zero bytes for x and y. */
export function ekTemplateEccP256(): TPMT_PUBLIC {
  return {
    type: TPM_ALG.ECC, nameAlg: TPM_ALG.SHA256, objectAttributes: EK_ATTRS, authPolicy: EK_POLICY_SHA256,
    parameters: { symmetric: AES128_CFB, scheme: { scheme: TPM_ALG.NULL }, curveID: TPM_ECC.NIST_P256, kdf: { scheme: TPM_ALG.NULL } },
    unique: { x: new Uint8Array(32), y: new Uint8Array(32) },
  };
}

/** SRK (storage root key) RSA-2048 per the TCG Provisioning Guidance (as tpm2_createprimary and swtpm_setup make it). */
export function srkTemplateRsa2048(): TPMT_PUBLIC {
  return {
    type: TPM_ALG.RSA, nameAlg: TPM_ALG.SHA256, objectAttributes: SRK_ATTRS, authPolicy: new Uint8Array(0),
    parameters: { symmetric: AES128_CFB, scheme: { scheme: TPM_ALG.NULL }, keyBits: 2048, exponent: 0 },
    unique: new Uint8Array(0),
  };
}

/** SRK ECC NIST P-256. */
export function srkTemplateEccP256(): TPMT_PUBLIC {
  return {
    type: TPM_ALG.ECC, nameAlg: TPM_ALG.SHA256, objectAttributes: SRK_ATTRS, authPolicy: new Uint8Array(0),
    parameters: { symmetric: AES128_CFB, scheme: { scheme: TPM_ALG.NULL }, curveID: TPM_ECC.NIST_P256, kdf: { scheme: TPM_ALG.NULL } },
    unique: { x: new Uint8Array(0), y: new Uint8Array(0) },
  };
}

/** go-attestation's AK attributes (0x00050472): sign | restricted | fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | noDA. */
export const AK_ATTRIBUTES = O.sign | O.restricted | O.fixedTPM | O.fixedParent | O.sensitiveDataOrigin | O.userWithAuth | O.noDA;

/** An attestation key (restricted signing key): RSA-2048 RSASSA-SHA256 or ECC P-256 ECDSA-SHA256. */
export function akTemplate(keyType: 'rsa' | 'ecc'): TPMT_PUBLIC {
  return signingTemplate(keyType, AK_ATTRIBUTES);
}

/** An unrestricted signing key (RSA-2048 RSASSA-SHA256 or P-256 ECDSA-SHA256), sign | fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | noDA. */
export function signingKeyTemplate(keyType: 'rsa' | 'ecc'): TPMT_PUBLIC {
  return signingTemplate(keyType, O.sign | O.fixedTPM | O.fixedParent | O.sensitiveDataOrigin | O.userWithAuth | O.noDA);
}

function signingTemplate(keyType: 'rsa' | 'ecc', objectAttributes: number): TPMT_PUBLIC {
  const none = { algorithm: TPM_ALG.NULL } as const;
  if (keyType === 'rsa') {
    return {
      type: TPM_ALG.RSA, nameAlg: TPM_ALG.SHA256, objectAttributes, authPolicy: new Uint8Array(0),
      parameters: { symmetric: none, scheme: { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 }, keyBits: 2048, exponent: 0 },
      unique: new Uint8Array(0),
    };
  }
  return {
    type: TPM_ALG.ECC, nameAlg: TPM_ALG.SHA256, objectAttributes, authPolicy: new Uint8Array(0),
    parameters: { symmetric: none, scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 }, curveID: TPM_ECC.NIST_P256, kdf: { scheme: TPM_ALG.NULL } },
    unique: { x: new Uint8Array(0), y: new Uint8Array(0) },
  };
}
