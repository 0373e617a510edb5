// EAT Attestation Results (draft-ietf-rats-ear-04) for a verifier run: the appraisal policy,
// the AR4SI vocabulary, and signed EAR tokens.
export * from './ar4si.js';
export * from './policy.js';
export * from './token.js';
