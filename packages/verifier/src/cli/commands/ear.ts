/**
 * EAR (EAT Attestation Results, draft-ietf-rats-ear-04) on the command line: the flags `run` takes
 * to write a signed EAR after the run (`--ear-out`, `--ear-key`, `--ear-submod`, `--policy`), and
 * the `ear verify` command that checks a token offline.
 */
import { accessSync, constants, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  DEFAULT_POLICY, EarError, PolicyError, appraisalInputFromReport, appraise, earClaims,
  parsePolicy, signEar, signingKeyFromPem, verificationKeyFromPem, verifyEar, type AppraisalPolicy,
} from '../../ear/index.js';
import { formatVector, formatVerifiedEar } from '../../ear/token.js';
import type { Command } from '../command.js';
import { EXIT, UsageError } from '../exit.js';
import type { Args, FlagSpecs } from '../flags.js';
import type { ReportFinisher } from './attestor-steps.js';
import { readInputFile as readFile, verifierVersion } from '../files.js';

/** The flags `run` takes for an EAR. */
export const EAR_FLAGS: FlagSpecs = {
  'ear-out': { type: 'string', valueName: 'FILE', description: 'after the run, whatever the verdict, write a signed EAR (JWT) there; needs --ear-key' },
  'ear-key': { type: 'string', valueName: 'KEY.pem', description: 'PEM private key that signs the EAR: EC P-256 (ES256) or Ed25519 (EdDSA)' },
  'ear-submod': { type: 'string', valueName: 'NAME', description: 'the EAR submod naming the attested node (default: tpm:<EK name hex>)' },
  policy: { type: 'string', valueName: 'FILE', description: 'appraisal policy (JSON) mapping the run to AR4SI claims, with PCR reference values (default: the built-in policy)' },
};

/** The EAR step of `run` from its flags (key and policy read and checked now), or undefined without --ear-out. */
/** Why `file` cannot be written (created in its directory, or replaced), or undefined. */
function writeProblem(file: string): string | undefined {
  try {
    if (existsSync(file)) {
      if (statSync(file).isDirectory()) return 'it is a directory';
      accessSync(file, constants.W_OK);
    } else accessSync(dirname(resolve(file)), constants.W_OK);
    return undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  }
}

export function earFinisherFromArgs(args: Args): ReportFinisher | undefined {
  const out = args.string('ear-out');
  const keyPath = args.string('ear-key');
  if (out === undefined) {
    for (const f of ['ear-key', 'ear-submod', 'policy']) if (args.has(f)) throw new UsageError(`--${f} needs --ear-out`);
    return undefined;
  }
  if (keyPath === undefined) throw new UsageError('--ear-out needs --ear-key (the PEM private key that signs the EAR)');
  // Found out now, not after a run whose report the failed write would take with it.
  const unwritable = writeProblem(out);
  if (unwritable !== undefined) throw new UsageError(`--ear-out ${out}: cannot write (${unwritable})`);
  let signer;
  try {
    signer = signingKeyFromPem(readFile('--ear-key', keyPath), `--ear-key ${keyPath}`);
  } catch (e) {
    if (e instanceof EarError) throw new UsageError(e.message);
    throw e;
  }
  const policyPath = args.string('policy');
  let policy: AppraisalPolicy = DEFAULT_POLICY;
  if (policyPath !== undefined) {
    try {
      policy = parsePolicy(readFile('--policy', policyPath).toString('utf8'), `--policy ${policyPath}`);
    } catch (e) {
      if (e instanceof PolicyError) throw new UsageError(e.message);
      throw e;
    }
  }
  const submod = args.string('ear-submod');
  if (submod !== undefined && submod === '') throw new UsageError('--ear-submod must not be empty');
  return async (report) => {
    const appraisal = appraise(appraisalInputFromReport(report), policy);
    const claims = earClaims(report, appraisal, { build: `tpmds-verifier ${verifierVersion()}`, ...(submod !== undefined ? { submod } : {}) });
    const token = await signEar(claims, signer.key, signer.alg);
    try {
      writeFileSync(out, token + '\n', { mode: 0o644 });
    } catch (e) {
      throw new Error(`--ear-out ${out}: cannot write (${(e as Error).message})`);
    }
    const [name, sub] = Object.entries(claims.submods)[0]!;
    const text = [
      `EAR: ${appraisal.status} (${name}, policy ${appraisal.policyId}, ${signer.alg}) written to ${out}`,
      ...formatVector(sub.ear_trustworthiness_vector ?? {}, '  '),
      ...Object.entries(appraisal.vector).filter(([, c]) => c.failedChecks.length > 0).map(([claim, c]) => `  ${claim}: ${c.failedChecks.join(', ')}`),
      '',
    ].join('\n');
    return { json: { ear: { file: out, alg: signer.alg, claims } }, text };
  };
}

export const earCommand: Command = {
  name: 'ear',
  summary: 'check a signed EAR (EAT Attestation Result) offline; print the built-in appraisal policy',
  usage: 'verify TOKEN --key PUB.pem [--max-age SECONDS] [--json] | default-policy',
  description: [
    '`ear default-policy` prints the built-in appraisal policy of `run --ear-out` as JSON: a starting',
    'point for a --policy file (add referenceValues.pcrs, change values).',
    '',
    'TOKEN is a file holding the JWT (as `run --ear-out` writes it), or "-" for standard input.',
    'Checks the signature with --key (a PEM public key, certificate or private key; EC P-256 for',
    'ES256, Ed25519 for EdDSA), the EAR profile (draft-ietf-rats-ear-04, or Veraison\'s pre-draft',
    'profile with its "ear.status"/"ear.trustworthiness-vector" names), the claim shapes, exp and',
    '--max-age; then prints the appraisal: status, trustworthiness vector, policy, attester claims.',
    '',
    'Exit status: 0 when the signature holds and the claims are well-formed (whatever the status the',
    'token carries), 1 when not (the message names the problem), 2 for a usage error.',
  ].join('\n'),
  flags: {
    key: { type: 'string', valueName: 'PUB.pem', description: 'the EAR signer\'s public key (PEM); required' },
    'max-age': { type: 'string', valueName: 'SECONDS', description: 'refuse a token issued (iat) more than SECONDS ago' },
    json: { type: 'boolean', description: 'print one JSON document: the algorithm, the claim spelling, the status, the submods and the claims' },
  },
  positionals: { min: 1, max: 2, names: 'verify TOKEN, or default-policy' },
  run: async (args, io) => {
    const [action, tokenPath] = args.positionals as [string, string | undefined];
    if (action === 'default-policy') {
      if (tokenPath !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(tokenPath)}`);
      io.stdout(JSON.stringify(DEFAULT_POLICY, null, 2) + '\n');
      return EXIT.OK;
    }
    if (action !== 'verify') throw new UsageError(`unknown action "${action}" (expected: verify, default-policy)`);
    if (tokenPath === undefined) throw new UsageError('missing TOKEN (a file, or - for standard input)');
    const keyPath = args.string('key');
    if (keyPath === undefined) throw new UsageError('--key is required (the signer\'s PEM public key)');
    const maxAgeText = args.string('max-age');
    let maxAgeSeconds: number | undefined;
    if (maxAgeText !== undefined) {
      if (!/^\d+$/.test(maxAgeText)) throw new UsageError(`--max-age ${JSON.stringify(maxAgeText)}: expected a whole number of seconds`);
      maxAgeSeconds = Number(maxAgeText);
    }
    const token = tokenPath === '-' ? readFileSync(0, 'utf8') : readFile('TOKEN', tokenPath).toString('utf8');
    let key;
    try {
      key = verificationKeyFromPem(readFile('--key', keyPath), `--key ${keyPath}`).key;
    } catch (e) {
      if (e instanceof EarError) throw new UsageError(e.message);
      throw e;
    }
    try {
      const v = await verifyEar(token, key, maxAgeSeconds !== undefined ? { maxAgeSeconds } : {});
      if (args.bool('json')) {
        const { claims, ...rest } = v;
        io.stdout(JSON.stringify({ ok: true, ...rest, claims }, null, 2) + '\n');
      } else {
        io.stdout(formatVerifiedEar(v));
      }
      return EXIT.OK;
    } catch (e) {
      if (!(e instanceof EarError)) throw e;
      if (args.bool('json')) io.stdout(JSON.stringify({ ok: false, error: e.message }) + '\n');
      io.stderr(`tpmds-verifier ear verify: ${e.message}\n`);
      return EXIT.FAILED;
    }
  },
};
