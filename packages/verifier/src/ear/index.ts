// EAT Attestation Results (draft-ietf-rats-ear-04) for a verifier run: the appraisal policy,
// the AR4SI vocabulary, and signed EAR tokens. This is the package's public EAR API; the helpers
// the modules share (tier arithmetic, claim-value lookups, the policy's pattern matcher, the
// reference-value checks, claim reading and formatting) stay inside: import them from their module.
export { AR4SI_CLAIMS, CLAIM_VALUES, TIERS, valueName, type Ar4siClaim, type Tier } from './ar4si.js';
export {
  DEFAULT_POLICY, PolicyError, appraise, parsePolicy, validatePolicy,
  type Appraisal, type AppraisalCheck, type AppraisalInput, type AppraisalPolicy, type ClaimAppraisal, type Condition,
  type EventReferenceValues, type PcrReferenceValues, type Rule,
} from './policy.js';
export {
  EAR_PROFILE, EAR_PROFILE_PRE_DRAFT, EarError, appraisalInputFromReport, attesterClaims, earClaims, signEar, signingKeyFromPem,
  verificationKeyFromPem, verifyEar,
  type EarAlgorithm, type EarClaims, type EarClaimsOptions, type EarSubmod, type ReadSubmod, type VerifiedEar, type VerifyEarOptions,
} from './token.js';
