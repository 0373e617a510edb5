/** `tpmds-verifier quote`: quotes, PCRs, the firmware and userspace event logs and --expect-pcr values. */
import { stepCommand } from './attestor-steps.js';

export const quoteCommand = stepCommand(
  'quote',
  'verify a fresh quote, the PCRs and the event log (Quote)',
  'Each bank\'s quote: signed by the AK, tag, the fresh nonce, all 24 PCRs selected, pcrDigest over the PCR\nvalues sent. The firmware event log replays to the verified PCRs (a missing or empty one fails, unless\n--allow-missing-eventlog); systemd\'s userspace log, when the node has one, replays on top of it phase by\nphase; --expect-pcr values are compared; the Secure Boot state is read from the verified log.',
);
