/** `tpmds-verifier quote`: quotes, PCRs, the event log and --expect-pcr values. */
import { stepCommand } from './attestor-steps.js';

export const quoteCommand = stepCommand(
  'quote',
  'verify a fresh quote, the PCRs and the event log (Quote)',
  'Each bank\'s quote: signed by the AK, tag, the fresh nonce, all 24 PCRs selected, pcrDigest over the PCR\nvalues sent. The event log (if any) replays to the verified PCRs; --expect-pcr values are compared; the\nSecure Boot state is read from the verified log.',
);
