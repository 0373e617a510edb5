// The verifier library: one module per step of the attestor flow, each returning named checks
// (never throwing for a failed check), and `runAll` for the whole flow.
export type { Check, StepResult } from './checks.js';
export { CheckList } from './checks.js';
export type { KeyType } from './keys.js';
export { decodePublicArea, parseKeyType } from './keys.js';
export type { EkOptions, EkValue } from './ek.js';
export { ekPublicFromSpki, verifyEk } from './ek.js';
export type { AkValue } from './ak.js';
export { AK_FORBIDDEN_ATTRIBUTES, AK_REQUIRED_ATTRIBUTES, verifyAk } from './ak.js';
export type { Challenge } from './attest.js';
export { makeChallenge, secretFingerprint, verifyAttest } from './attest.js';
export type { ExpectedPcrs, PcrBankValues, PlatformOptions, PlatformValue } from './quote.js';
export { ExpectPcrError, expectedPcrMap, parseExpectPcr, verifyPlatform } from './quote.js';
export type { SigningKeyImport } from './import.js';
export { makeImportBlob, makeSigningKeyImport, signatureVerifies, verifyImportBlob, verifyImportSigningKey } from './import.js';
export type { NewKeyValue } from './newkey.js';
export { SIGNING_KEY_FORBIDDEN_ATTRIBUTES, SIGNING_KEY_REQUIRED_ATTRIBUTES, verifyNewKey } from './newkey.js';
export { verifySign } from './sign.js';
export type { GceInstanceInfo } from './gce.js';
export { GCE_INSTANCE_INFO_OID, GceInstanceInfoError, decodeGceInstanceInfo, describeGceInstanceInfo, gceInstanceInfo } from './gce.js';
export type { GceAkOptions, GceAkValue } from './gce-ak.js';
export { verifyGceAk } from './gce-ak.js';
export type { RunOptions, RunReport, StepName, StepReport, VerifierRpc } from './run.js';
export { STEPS, STEP_DEPENDENCIES, importKidFor, rpcErrorText, runAll, stepReport, stepsWithDependencies } from './run.js';
export { formatChecks, formatHeader, formatReport, formatStep, formatVerdict } from './report.js';
