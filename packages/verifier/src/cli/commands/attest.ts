/** `tpmds-verifier attest`: credential activation for the uid's AK with the EK. */
import { stepCommand } from './attestor-steps.js';

export const attestCommand = stepCommand(
  'attest',
  'prove the AK is in the EK\'s TPM (Attest)',
  'MakeCredential is done here for the EK (from GetEKCert) and the AK\'s name (from GetAK); the secret must\ncome back from Attest.',
);
