/** `tpmds-verifier import-blob`: data sealed to the EK (and to PCRs) must unseal. */
import { stepCommand } from './attestor-steps.js';

export const importBlobCommand = stepCommand(
  'import-blob',
  'seal a secret to the EK and check it comes back (ImportBlob)',
  'A fresh random secret is sealed to the EK as a go-tpm-tools ImportBlob and must come back. With a\nverified sha256 quote, one more is sealed to the quoted PCR 0 and 7 values (must come back) and one to\nvalues the PCRs do not have (must be refused with FAILED_PRECONDITION).',
);
