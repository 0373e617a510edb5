/**
 * Policy steps as plain data (TPM 2.0 Part 3, 23 "Enhanced Authorization
 * (EA) Commands"). The same step objects are computed offline here and
 * executed against a TPM policy session by the session layer.
 */
import type { TPML_PCR_SELECTION } from '../types/structures.js';

/** TPM2_PolicyPCR: the PCRs in `selection` must hash (with the session's hash) to `pcrDigest`. */
export interface PolicyPCRStep {
  readonly type: 'PolicyPCR';
  readonly selection: TPML_PCR_SELECTION;
  /** H_sessionAlg(concatenation of the selected PCR values, ascending per bank in selection order). */
  readonly pcrDigest: Uint8Array;
}

/** TPM2_PolicySecret: authorization of another entity (e.g. TPM_RH_ENDORSEMENT for the EK). */
export interface PolicySecretStep {
  readonly type: 'PolicySecret';
  /** Name of the authorizing entity: a permanent handle's 4 bytes, or an object's/NV index's name. */
  readonly authObjectName: Uint8Array;
  /** Optional policyRef (default empty). */
  readonly policyRef?: Uint8Array;
}

/** TPM2_PolicyAuthValue: the object's authValue is needed (in an HMAC computed with it). */
export interface PolicyAuthValueStep {
  readonly type: 'PolicyAuthValue';
}

/** TPM2_PolicyPassword: the object's authValue is needed in clear; same digest as PolicyAuthValue. */
export interface PolicyPasswordStep {
  readonly type: 'PolicyPassword';
}

/** TPM2_PolicyCommandCode: only this command may be authorized. */
export interface PolicyCommandCodeStep {
  readonly type: 'PolicyCommandCode';
  /** A TPM_CC value, e.g. TPM_CC.Unseal. */
  readonly code: number;
}

/** TPM2_PolicyOR: the session must already be in one of the branch digests (2 to 8 of them). */
export interface PolicyORStep {
  readonly type: 'PolicyOR';
  readonly branches: readonly Uint8Array[];
}

/** One policy command, as data. */
export type PolicyStep = PolicyPCRStep | PolicySecretStep | PolicyAuthValueStep | PolicyPasswordStep | PolicyCommandCodeStep | PolicyORStep;
