/** `tpmds-verifier ak`: GetAK, the AK's creation certified by itself and its attributes. */
import { stepCommand } from './attestor-steps.js';

export const akCommand = stepCommand(
  'ak',
  'verify the uid\'s attestation key (GetAK)',
  'AttestationParameters decode; TPM2_CertifyCreation signed by the AK itself verifies (signature, magic,\ntag, creationHash, name); the AK is restricted, sign, fixedTPM, fixedParent, sensitiveDataOrigin, not\ndecrypt, and of the requested type.',
);
