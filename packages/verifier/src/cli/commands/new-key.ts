/** `tpmds-verifier new-key`: a TPM key certified by the AK. */
import { stepCommand } from './attestor-steps.js';

export const newKeyCommand = stepCommand(
  'new-key',
  'create a TPM signing key and verify its certification by the AK (NewKey)',
  'TPM2_Certify by the uid\'s AK verifies (signature, magic, tag, attested name == name of Public); the PEM\npublic key is the certified key; the key is fixedTPM, fixedParent, sensitiveDataOrigin, sign, not\nrestricted, of the requested type.',
);
