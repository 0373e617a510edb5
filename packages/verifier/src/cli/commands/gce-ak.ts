/** `tpmds-verifier gce-ak`: the node's cloud attestation key signs a fresh nonce; its certificate chains to --ak-roots. */
import type { Command } from '../command.js';
import { runSteps, stepCommand } from './attestor-steps.js';

const base = stepCommand(
  'gce-ak',
  'verify the cloud attestation key: a signature over a fresh nonce, its certificate (GetGCEEKSigningKey, SignGCEEK)',
  [
    'GetGCEEKSigningKey returns the key the TPM makes from the template its platform keeps in NV (Google Cloud:',
    'RSA 0x01c10001, ECC P-256 0x01c10003 with --key-type ecc) and its certificate (NV 0x01c10000 / 0x01c10002).',
    'SignGCEEK over a fresh random nonce must verify with it (RSA PKCS#1 v1.5 or ECDSA ASN.1 DER over SHA-256); the',
    'certificate must be for that key and chain to --ak-roots (through --ak-intermediates). Google\'s instance identity',
    '(extension 1.3.6.1.4.1.11129.2.1.21: zone, project, instance) is printed from it, and from the EK certificate in run.',
    'A target that does not offer the key (UNIMPLEMENTED, or FAILED_PRECONDITION: no template) fails here; run skips it.',
  ].join('\n'),
);

export const gceAkCommand: Command = { ...base, run: (args, io) => runSteps(args, io, ['gce-ak'], { requireGceAk: true }) };
