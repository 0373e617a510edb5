/**
 * What `run` and the per-step subcommands (`ek`, `ak`, `attest`, `quote`, `import-blob`,
 * `import-signing-key`, `new-key`, `sign`) share: the connection flags, turning flags into
 * `runAll` options, and printing the report (readable, or one JSON document with --json).
 * ARCHITECTURE.md, "packages/verifier — the CLI", fixes the flags and the output.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { pemToDers } from '@tpmds/tpm2-wire';
import { AttestorClient, type CallerCredentials } from '@tpmds/protocol/proto';
import {
  ExpectPcrError, expectedPcrMap, formatHeader, formatStep, formatVerdict, parseKeyType, runAll, stepsWithDependencies,
  type RunOptions, type RunReport, type StepName, type VerifierRpc,
} from '../../verify/index.js';
import type { CliIo, Command } from '../command.js';
import { EXIT, UsageError } from '../exit.js';
import { readInputFile } from '../files.js';
import type { Args, FlagSpec, FlagSpecs } from '../flags.js';

/** Flags every attestor command takes: where the attestor is and how to talk to it. */
const CONNECTION_FLAGS: FlagSpecs = {
  target: { type: 'string', valueName: 'HOST:PORT', description: 'the attestor\'s gRPC address (HOST:PORT or unix:/path); required' },
  ca: { type: 'string', valueName: 'FILE', description: 'PEM CA certificate(s) to verify the attestor\'s TLS certificate (default: the system roots)' },
  insecure: { type: 'boolean', description: 'plaintext gRPC, no TLS (local development only; not with --ca)' },
  'client-cert': { type: 'string', valueName: 'FILE', description: 'PEM client certificate for mTLS (with --client-key)' },
  'client-key': { type: 'string', valueName: 'FILE', description: 'PEM private key of --client-cert' },
  'token-file': {
    type: 'string',
    valueName: 'FILE',
    description: 'a bearer token sent as "authorization: Bearer <token>" (for an attestor with --auth k8s: the pod\'s projected service-account token with audience tpmds); re-read for every call; default: $TPMDS_TOKEN_FILE',
  },
};

/** Flags a step adds, beyond the connection flags. */
const STEP_FLAGS: Readonly<Record<string, FlagSpec>> = {
  'ek-roots': { type: 'string', repeatable: true, valueName: 'FILE', description: 'PEM file of EK CA root certificates (trust anchors; several per file allowed)' },
  'ek-intermediates': { type: 'string', repeatable: true, valueName: 'FILE', description: 'PEM file of untrusted intermediate certificates for the EK chain' },
  'expect-pcr': { type: 'string', repeatable: true, valueName: 'IDX:HEX', description: 'the quoted PCR IDX must hold HEX (40 hex digits: sha1, 64: sha256, 96: sha384)' },
  'allow-missing-eventlog': {
    type: 'boolean',
    description: 'accept a quote without a firmware event log, or with systemd PCRs (11, 12, 13, 15) no log explains (a warning, not a failure): for TPMs that have no log, such as swtpm or VMs without measured boot, and nodes without systemd\'s userspace log; --expect-pcr checks still run',
  },
  uid: { type: 'string', valueName: 'U', description: 'the uid whose AK and keys are used (default: a fresh random UUID)' },
  kid: { type: 'string', valueName: 'K', description: 'the key id for NewKey/Sign; ImportSigningKey uses K-import (default: a fresh random UUID)' },
  'ak-roots': { type: 'string', repeatable: true, valueName: 'FILE', description: 'PEM file of CA root certificates for the cloud attestation key\'s certificate (e.g. Google\'s EK/AK roots)' },
  'ak-intermediates': { type: 'string', repeatable: true, valueName: 'FILE', description: 'PEM file of untrusted intermediate certificates for the cloud attestation key\'s chain' },
};
const COMMON_TAIL: FlagSpecs = {
  'key-type': { type: 'string', valueName: 'rsa|ecc', description: 'EK, AK, key and cloud attestation-key type: RSA-2048 or NIST P-256 (default rsa)' },
  json: { type: 'boolean', description: 'print exactly one JSON document (the report) on stdout; progress goes to stderr' },
};

/** Which step flags each step reads. */
const FLAGS_OF_STEP: Readonly<Record<StepName, readonly string[]>> = {
  health: [],
  ek: ['ek-roots', 'ek-intermediates'],
  ak: ['uid'],
  attest: ['uid'],
  quote: ['uid', 'expect-pcr', 'allow-missing-eventlog'],
  'import-blob': ['uid'],
  'import-signing-key': ['uid', 'kid'],
  'new-key': ['uid', 'kid'],
  sign: ['uid', 'kid'],
  'gce-ak': ['ak-roots', 'ak-intermediates'],
};

/** The flags of a command that runs `steps` (and what they need). */
export function flagsForSteps(steps: readonly StepName[]): FlagSpecs {
  const used = new Set(stepsWithDependencies(steps).flatMap((s) => FLAGS_OF_STEP[s]));
  const own = Object.fromEntries(Object.entries(STEP_FLAGS).filter(([name]) => used.has(name)));
  return { ...CONNECTION_FLAGS, ...own, ...COMMON_TAIL };
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const TARGET_RE = /^(?:(?:unix|unix-abstract|dns|ipv4|ipv6):.+|(?:\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+):\d{1,5})$/;

function readFlagFile(flag: string, path: string): Buffer {
  return readInputFile(`--${flag}`, path);
}

function readCerts(flag: string, paths: readonly string[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const p of paths) {
    let certs: Uint8Array[];
    try {
      certs = pemToDers(new Uint8Array(readFlagFile(flag, p)));
    } catch (e) {
      if (e instanceof UsageError) throw e;
      throw new UsageError(`--${flag} ${p}: ${(e as Error).message}`);
    }
    if (certs.length === 0) throw new UsageError(`--${flag} ${p}: no PEM CERTIFICATE block (or DER certificate) in the file`);
    out.push(...certs);
  }
  return out;
}

/** The gRPC target, checked: `HOST:PORT` or a grpc-js scheme such as `unix:/path`. */
export function parseTarget(args: Args): string {
  const target = args.string('target');
  if (target === undefined || target === '') throw new UsageError('--target is required (HOST:PORT or unix:/path)');
  if (!TARGET_RE.test(target)) throw new UsageError(`--target ${JSON.stringify(target)}: expected HOST:PORT or unix:/path`);
  return target;
}

/** Channel credentials from --ca / --insecure / --client-cert / --client-key. */
export function channelCredentials(args: Args): grpc.ChannelCredentials {
  const insecure = args.bool('insecure');
  const ca = args.string('ca');
  const cert = args.string('client-cert');
  const key = args.string('client-key');
  if (insecure && ca !== undefined) throw new UsageError('--ca and --insecure exclude each other');
  if ((cert === undefined) !== (key === undefined)) throw new UsageError(cert === undefined ? '--client-key needs --client-cert' : '--client-cert needs --client-key');
  if (insecure && cert !== undefined) throw new UsageError('--client-cert/--client-key need TLS; they cannot be used with --insecure');
  if (insecure) return grpc.credentials.createInsecure();
  const root = ca === undefined ? null : readFlagFile('ca', ca);
  if (root !== null && pemToDers(new Uint8Array(root)).length === 0) throw new UsageError(`--ca ${ca}: no PEM CERTIFICATE block in the file`);
  return grpc.credentials.createSsl(root, key === undefined ? null : readFlagFile('client-key', key), cert === undefined ? null : readFlagFile('client-cert', cert));
}

/** The bearer token of --token-file (or TPMDS_TOKEN_FILE), re-read for every call since the kubelet rotates it. */
export function callerCredentials(args: Args, env: Readonly<Record<string, string | undefined>> = process.env): CallerCredentials {
  const flag = args.string('token-file');
  const path = flag ?? (env['TPMDS_TOKEN_FILE'] || undefined);
  if (path === undefined) return {};
  const from = flag === undefined ? 'TPMDS_TOKEN_FILE' : '--token-file';
  const read = (): string => {
    let token: string;
    try {
      token = readFileSync(path, 'utf8').trim();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new UsageError(`${from} ${path}: cannot read (${code === 'ENOENT' ? 'no such file' : (e as Error).message})`);
    }
    if (token === '' || /\s/.test(token)) throw new UsageError(`${from} ${path}: ${token === '' ? 'the file is empty' : 'not a single token'}`);
    return token;
  };
  read(); // a usage error now, not a failed call later
  return { bearerToken: read };
}

function idFlag(args: Args, flag: 'uid' | 'kid'): string {
  const v = args.string(flag);
  if (v === undefined) return randomUUID();
  if (!ID_RE.test(v) || v.includes('..')) {
    throw new UsageError(`--${flag} ${JSON.stringify(v)}: must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$ without ".."`);
  }
  return v;
}

/** `runAll` options from the flags (files read, values checked); throws UsageError naming the flag. */
export function runOptionsFromArgs(args: Args, steps: readonly StepName[]): RunOptions & { uid: string; kid: string; target: string } {
  const keyTypeText = args.string('key-type') ?? 'rsa';
  const keyType = parseKeyType(keyTypeText);
  if (keyType === undefined) throw new UsageError(`--key-type ${JSON.stringify(keyTypeText)}: expected rsa or ecc`);
  let expectedPcrs;
  try {
    expectedPcrs = expectedPcrMap(args.strings('expect-pcr'));
  } catch (e) {
    if (e instanceof ExpectPcrError) throw new UsageError(e.message);
    throw e;
  }
  return {
    target: parseTarget(args),
    uid: idFlag(args, 'uid'),
    kid: idFlag(args, 'kid'),
    keyType,
    ekRoots: readCerts('ek-roots', args.strings('ek-roots')),
    ekIntermediates: readCerts('ek-intermediates', args.strings('ek-intermediates')),
    akRoots: readCerts('ak-roots', args.strings('ak-roots')),
    akIntermediates: readCerts('ak-intermediates', args.strings('ak-intermediates')),
    ...(expectedPcrs.size > 0 ? { expectedPcrs } : {}),
    ...(args.bool('allow-missing-eventlog') ? { allowMissingEventLog: true } : {}),
    steps: ['health', ...steps],
  };
}

/** Makes the attestor client; tests replace it. */
export type ClientFactory = (target: string, credentials: grpc.ChannelCredentials, caller: CallerCredentials) => VerifierRpc & { close(): void };

let clientFactory: ClientFactory = (target, credentials, caller) => new AttestorClient(target, credentials, undefined, caller);

/** Replaces how commands connect (for tests); returns the previous factory. */
export function setClientFactory(f: ClientFactory): ClientFactory {
  const prev = clientFactory;
  clientFactory = f;
  return prev;
}

/**
 * Work on the finished report before it is printed (the EAR of `run --ear-out`): `json` fields are
 * added to the --json report, `text` is printed after the readable verdict.
 */
export type ReportFinisher = (report: RunReport) => Promise<{ json: Record<string, unknown>; text: string }>;

/** Runs `steps` against the attestor named by the flags and prints the report; exit 0 only when every check passed. */
export async function runSteps(
  args: Args,
  io: CliIo,
  steps: readonly StepName[],
  extra: Partial<RunOptions> = {},
  finish?: ReportFinisher,
): Promise<number> {
  const opts = { ...runOptionsFromArgs(args, steps), ...extra };
  const credentials = channelCredentials(args);
  const caller = callerCredentials(args);
  const json = args.bool('json');
  const client = clientFactory(opts.target, credentials, caller);
  try {
    if (!json) io.stdout(formatHeader({ ...opts, keyType: opts.keyType ?? 'rsa' }) + '\n');
    const report = await runAll(client, {
      ...opts,
      onStep: (s) => {
        if (json) io.stderr(`${s.step}: ${s.skipped ? 'not run' : s.ok ? 'ok' : `FAIL (${s.checks.filter((c) => !c.ok).map((c) => c.name).join(', ')})`}\n`);
        else io.stdout(formatStep(s) + '\n');
      },
    });
    const extra = finish ? await finish(report) : { json: {}, text: '' };
    if (json) io.stdout(JSON.stringify({ ...report, ...extra.json }, null, 2) + '\n');
    else io.stdout(formatVerdict(report) + extra.text);
    if (!report.ok && json) io.stderr(`FAIL: ${report.failed.join(', ')}\n`);
    return report.ok ? EXIT.OK : EXIT.FAILED;
  } finally {
    client.close();
  }
}

/** A subcommand that runs `step` (and the steps it needs) against an attestor. */
export function stepCommand(step: StepName, summary: string, description: string): Command {
  const needs = stepsWithDependencies([step]).filter((s) => s !== step);
  return {
    name: step,
    summary,
    usage: '--target HOST:PORT [--ca FILE | --insecure] [flags]',
    description: `${description}\n\nRuns first: health${needs.length > 0 ? `, ${needs.join(', ')}` : ''} (each verified and reported too).\n\nExit status: 0 when every check passed, 1 when a check failed (the report says which and why), 2 for a usage error.`,
    flags: flagsForSteps([step]),
    positionals: { min: 0, max: 0, names: '' },
    run: (args, io) => runSteps(args, io, [step]),
  };
}
