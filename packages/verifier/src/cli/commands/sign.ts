/** `tpmds-verifier sign`: a signature by a new TPM key verifies. */
import { stepCommand } from './attestor-steps.js';

export const signCommand = stepCommand(
  'sign',
  'sign random data with a new TPM key and verify the signature (Sign)',
  'A new key is made with NewKey (uid, kid) and verified; then Sign over random data must verify with it\n(RSA PKCS#1 v1.5 or ECDSA ASN.1 DER over SHA-256).',
);
