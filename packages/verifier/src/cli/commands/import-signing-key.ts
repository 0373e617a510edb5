/** `tpmds-verifier import-signing-key`: a key made here, wrapped for the EK, must sign the uid. */
import { stepCommand } from './attestor-steps.js';

export const importSigningKeyCommand = stepCommand(
  'import-signing-key',
  'import a signing key wrapped for the EK (ImportSigningKey)',
  'A key pair of --key-type is made here; its private key is wrapped for the EK (go-tpm-tools ImportBlob)\nand imported as "<kid>-import". The confirmation must be its signature over SHA-256 of the uid.',
);
