/** Policy steps as data and the offline policy calculator. */
export type {
  PolicyStep, PolicyPCRStep, PolicySecretStep, PolicyAuthValueStep, PolicyPasswordStep, PolicyCommandCodeStep, PolicyORStep,
} from './steps.js';
export { PolicyCalculator, PolicyError, policyDigest, pcrSelection, pcrValuesDigest, pcrPolicyStep, type PcrValues } from './calculator.js';
