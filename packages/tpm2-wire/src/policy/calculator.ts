/**
 * Offline policy digests (TPM 2.0 Part 1, 19.7 "Policy Authorization";
 * Part 3, 23.x the policyDigest update of each command), like go-tpm's
 * PolicyCalculator and a trial session.
 */
import { concatBytes, u32be } from '../bytes/hex.js';
import { marshal } from '../types/codec.js';
import { TPM_ALG, TPM_CC, algName } from '../types/constants.js';
import { TPML_PCR_SELECTION } from '../types/structures.js';
import { digestSize, hash } from '../crypto/hash.js';
import type { PolicyPCRStep, PolicyStep } from './steps.js';

/** Raised for a policy step that cannot be computed (wrong sizes, bad PCR index, ...). */
export class PolicyError extends Error {
  override readonly name = 'PolicyError';
}

/**
 * TPML_PCR_SELECTION for one bank (Part 2, 10.6): the bitmap has at least 3
 * bytes (PCR 0-23, what PC Client TPMs expect) and grows for higher indices.
 */
export function pcrSelection(hashAlg: number, indices: readonly number[]): TPML_PCR_SELECTION {
  digestSize(hashAlg);
  let max = -1;
  for (const i of indices) {
    if (!Number.isInteger(i) || i < 0 || i > 255) throw new PolicyError(`PCR index ${i} is out of range`);
    max = Math.max(max, i);
  }
  const bitmap = new Uint8Array(Math.max(3, Math.ceil((max + 1) / 8)));
  for (const i of indices) bitmap[i >> 3]! |= 1 << (i & 7);
  return [{ hash: hashAlg, pcrSelect: bitmap }];
}

/** H_hashAlg(concatenation of the PCR values in ascending index order): the pcrDigest of PolicyPCR and of a quote. */
export function pcrValuesDigest(hashAlg: number, values: ReadonlyMap<number, Uint8Array>): Uint8Array {
  const keys = [...values.keys()].sort((a, b) => a - b);
  return hash(hashAlg, ...keys.map((k) => values.get(k)!));
}

/** PCR values of one bank, as carried by go-tpm-tools `tpm.PCRs` (hashAlg is a TPM_ALG_ID). */
export interface PcrValues {
  hashAlg: number;
  values: ReadonlyMap<number, Uint8Array>;
}

/**
 * The PolicyPCR step binding to these PCR values, as go-tpm-tools builds it:
 * selection of `pcrs.hashAlg` (3-byte bitmap), pcrDigest with the policy's
 * hash (default SHA-256, the session hash) over the values in index order.
 */
export function pcrPolicyStep(pcrs: PcrValues, policyHashAlg: number = TPM_ALG.SHA256): PolicyPCRStep {
  const size = digestSize(pcrs.hashAlg);
  if (pcrs.values.size === 0) throw new PolicyError('PolicyPCR needs at least one PCR value');
  for (const [i, v] of pcrs.values) {
    if (v.length !== size) throw new PolicyError(`PCR ${i} value is ${v.length} bytes; ${algName(pcrs.hashAlg)} needs ${size}`);
  }
  return { type: 'PolicyPCR', selection: pcrSelection(pcrs.hashAlg, [...pcrs.values.keys()]), pcrDigest: pcrValuesDigest(policyHashAlg, pcrs.values) };
}

/**
 * A policy digest computed step by step, starting from the zero digest
 * (Part 1, 19.7.1). `update` applies one step as the TPM's policy command
 * would update policySession->policyDigest.
 */
export class PolicyCalculator {
  private current: Uint8Array;

  constructor(readonly hashAlg: number) {
    this.current = new Uint8Array(digestSize(hashAlg));
  }

  /** The current policy digest (a copy). */
  get digest(): Uint8Array {
    return this.current.slice();
  }

  /** Back to the zero digest (TPM2_PolicyRestart). */
  reset(): this {
    this.current = new Uint8Array(digestSize(this.hashAlg));
    return this;
  }

  /** Apply one step (Part 3, 23: PolicyPCR 23.7, PolicySecret 23.4, PolicyAuthValue 23.17, PolicyPassword 23.18, PolicyCommandCode 23.11, PolicyOR 23.6). */
  update(step: PolicyStep): this {
    const h = (...parts: Uint8Array[]) => hash(this.hashAlg, ...parts);
    const size = digestSize(this.hashAlg);
    switch (step.type) {
      case 'PolicyPCR':
        if (step.pcrDigest.length !== size) throw new PolicyError(`PolicyPCR pcrDigest is ${step.pcrDigest.length} bytes; ${size} expected`);
        this.current = h(this.current, u32be(TPM_CC.PolicyPCR), marshal(TPML_PCR_SELECTION, step.selection), step.pcrDigest);
        break;
      case 'PolicySecret':
        if (step.authObjectName.length === 0) throw new PolicyError('PolicySecret needs the name of the authorizing entity');
        this.current = h(h(this.current, u32be(TPM_CC.PolicySecret), step.authObjectName), step.policyRef ?? new Uint8Array(0));
        break;
      case 'PolicyAuthValue':
      case 'PolicyPassword':
        // PolicyPassword deliberately extends TPM_CC_PolicyAuthValue (Part 3, 23.18).
        this.current = h(this.current, u32be(TPM_CC.PolicyAuthValue));
        break;
      case 'PolicyCommandCode':
        if (!Number.isInteger(step.code) || step.code < 0 || step.code > 0xffffffff) throw new PolicyError(`command code ${step.code} is invalid`);
        this.current = h(this.current, u32be(TPM_CC.PolicyCommandCode), u32be(step.code));
        break;
      case 'PolicyOR':
        if (step.branches.length < 2 || step.branches.length > 8) throw new PolicyError(`PolicyOR needs 2 to 8 branches, got ${step.branches.length}`);
        for (const b of step.branches) if (b.length !== size) throw new PolicyError(`PolicyOR branch is ${b.length} bytes; ${size} expected`);
        this.current = h(new Uint8Array(size), u32be(TPM_CC.PolicyOR), concatBytes(...step.branches));
        break;
      default: {
        const never: never = step;
        throw new PolicyError(`unknown policy step ${JSON.stringify((never as { type?: unknown }).type)}`);
      }
    }
    return this;
  }
}

/** The policy digest of `steps` applied in order from the zero digest (what a trial session's PolicyGetDigest returns). */
export function policyDigest(hashAlg: number, steps: readonly PolicyStep[]): Uint8Array {
  const c = new PolicyCalculator(hashAlg);
  for (const s of steps) c.update(s);
  return c.digest;
}
