/**
 * `tpmds-verifier run`: the whole flow against an attestor (ARCHITECTURE.md, "packages/verifier —
 * the CLI"): health, EK certificate, AK, Attest, Quote, ImportBlob, ImportSigningKey, NewKey, Sign,
 * every payload verified; a readable report or one JSON document; exit 0 only when all passed.
 */
import { STEPS } from '../../verify/index.js';
import type { Command } from '../command.js';
import { flagsForSteps, runSteps } from './attestor-steps.js';
import { EAR_FLAGS, earFinisherFromArgs } from './ear.js';

export const runCommand: Command = {
  name: 'run',
  summary: 'walk an attestor through every RPC and verify each answer',
  usage: '--target HOST:PORT [--ca FILE | --insecure] [--client-cert F --client-key F] [--token-file F] [--ek-roots FILE]... [--ek-intermediates FILE]... [--ak-roots FILE]... [--ak-intermediates FILE]... [--expect-pcr IDX:HEX]... [--allow-missing-eventlog] [--uid U] [--kid K] [--key-type rsa|ecc] [--json] [--ear-out FILE --ear-key KEY.pem [--ear-submod NAME] [--policy FILE]]',
  description: [
    'Steps, in order, each with named checks:',
    '  health              grpc.health.v1 says "verifier.Verifier" is SERVING',
    '  ek                  GetEKCert: the EK is the requested type, its certificate is for this key and',
    '                      chains to --ek-roots (through --ek-intermediates)',
    '  ak                  GetAK: CertifyCreation by the AK itself (signature, magic, creationHash, name),',
    '                      a restricted signing key that never leaves the TPM',
    '  attest              Attest: a credential made here for the EK and the AK name comes back activated',
    '  quote               Quote with a fresh nonce: every bank\'s quote signed by the AK over all PCRs,',
    '                      the firmware event log replays to them, systemd\'s userspace log replays on',
    '                      top of it phase by phase, --expect-pcr values, Secure Boot state',
    '  import-blob         ImportBlob: a fresh secret sealed to the EK comes back; sealed to the quoted',
    '                      sha256 PCRs 0 and 7 too, and a blob bound to other values is refused',
    '  import-signing-key  ImportSigningKey: a key made here, wrapped for the EK, signs the uid',
    '  new-key             NewKey: TPM2_Certify by the AK, attributes, the PEM key is the certified key',
    '  sign                Sign: the signature verifies with the new key',
    '  gce-ak              GetGCEEKSigningKey, SignGCEEK: the cloud attestation key (template in TPM NV) signs',
    '                      a fresh nonce; its certificate is for it and chains to --ak-roots; skipped with a',
    '                      note when the target offers none (UNIMPLEMENTED or FAILED_PRECONDITION)',
    '',
    'A Google-issued EK or AK certificate\'s instance identity (zone, project, instance) is reported too.',
    'Without --ek-roots the EK chain is not checked (a warning). A missing or empty firmware event log',
    'fails the quote step ("quotes cannot be explained") unless --allow-missing-eventlog is given.',
    'uid and kid default to fresh random UUIDs; ImportSigningKey stores its key as "<kid>-import".',
    'No secret is printed: sealed and activated secrets are reported as matching or not.',
    '',
    'With --ear-out the run ends with a signed EAR (EAT Attestation Result, draft-ietf-rats-ear-04):',
    'the appraisal policy (--policy, or the built-in one) maps the checks and facts to AR4SI claims;',
    'the token is written whatever the verdict, and the --json report carries its claims ("ear").',
    '',
    'Exit status: 0 when every check passed, 1 when a check failed (the report says which and why),',
    '2 for a usage error (unknown flag, missing --target, --ca with --insecure, ...).',
  ].join('\n'),
  flags: { ...flagsForSteps(STEPS), ...EAR_FLAGS },
  positionals: { min: 0, max: 0, names: '' },
  run: (args, io) => runSteps(args, io, STEPS, {}, earFinisherFromArgs(args)),
};
