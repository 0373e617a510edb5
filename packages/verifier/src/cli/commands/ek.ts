/** `tpmds-verifier ek`: GetEKCert, the EK certificate checked against the EK and --ek-roots. */
import { stepCommand } from './attestor-steps.js';

export const ekCommand = stepCommand(
  'ek',
  'verify the EK and its certificate (GetEKCert)',
  'The EK public key is the requested type; the EK certificate decodes, is for this very key (compared by\nkey material), and chains to one of the --ek-roots certificates through --ek-intermediates.',
);
