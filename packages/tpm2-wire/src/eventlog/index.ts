/**
 * TCG PC Client firmware event logs: parse (SHA1 format and crypto agile), replay per bank
 * with PCR0's StartupLocality / H-CRTM rule, compare with quoted PCRs, read the facts
 * (Secure Boot, EFI applications, separators, quirks), and write crypto-agile logs; and
 * systemd's userspace measurement log (tpm2-measure.log), replayed on top of the firmware log.
 */
export * from './constants.js';
export { EventLogError } from './errors.js';
export * from './parse.js';
export * from './efi.js';
export * from './replay.js';
export * from './facts.js';
export * from './writer.js';
export * from './json.js';
export * from './userspace.js';
