// tpmds-attestor flags (ARCHITECTURE.md "packages/attestor"): each also as TPMDS_<NAME>; a flag
// given on the command line wins over the environment.
import { ConfigError } from './errors.js';

/** Log levels, lowest first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** The attestor's configuration. */
export interface AttestorConfig {
  /** gRPC address: `host:port`, `[v6]:port` or `unix:/path`. */
  listen: string;
  /** TPM address (`device:/dev/tpmrm0`, `swtpm:port=2321`, ...). */
  tpm: string;
  /** Directory of the key blobs, created 0700 when missing. */
  stateDir: string;
  /** Firmware event log shipped with quotes. */
  eventLog: string;
  /** PEM server certificate chain (with tlsKey). */
  tlsCert?: string;
  /** PEM server private key (with tlsCert). */
  tlsKey?: string;
  /** PEM CA bundle: when set, clients must present a certificate issued by it (mTLS). */
  clientCa?: string;
  /** Plaintext gRPC for local development. */
  insecure: boolean;
  /** Plaintext HTTP address of /healthz, /readyz and /metrics. */
  healthListen: string;
  logLevel: LogLevel;
}

interface FlagSpec {
  flag: string;
  key: keyof AttestorConfig;
  kind: 'string' | 'bool';
  default?: string;
  meta: string;
  help: string;
}

/** Every flag, in --help order. */
export const FLAGS: readonly FlagSpec[] = [
  { flag: '--listen', key: 'listen', kind: 'string', default: '0.0.0.0:50051', meta: 'ADDR', help: 'gRPC address: HOST:PORT, [IPV6]:PORT or unix:/path for a Unix socket' },
  { flag: '--tpm', key: 'tpm', kind: 'string', default: 'device:/dev/tpmrm0', meta: 'ADDR', help: 'TPM address: device:/dev/tpmrm0, device:/dev/tpm0, swtpm:port=N, swtpm:host=H,port=N, swtpm:path=SOCK, mssim:host=H,port=N' },
  { flag: '--state-dir', key: 'stateDir', kind: 'string', default: '/var/lib/tpmds', meta: 'DIR', help: 'where TPM-wrapped key blobs are kept (created with mode 0700 when missing)' },
  { flag: '--event-log', key: 'eventLog', kind: 'string', default: '/sys/kernel/security/tpm0/binary_bios_measurements', meta: 'FILE', help: 'firmware event log sent with quotes (a missing log is sent empty, with a warning)' },
  { flag: '--tls-cert', key: 'tlsCert', kind: 'string', meta: 'FILE', help: 'PEM certificate chain of the gRPC server (TLS); needs --tls-key' },
  { flag: '--tls-key', key: 'tlsKey', kind: 'string', meta: 'FILE', help: 'PEM private key of the gRPC server; needs --tls-cert' },
  { flag: '--client-ca', key: 'clientCa', kind: 'string', meta: 'FILE', help: 'PEM CA certificates: clients must present a certificate issued by one of them (mTLS); needs --tls-cert' },
  { flag: '--insecure', key: 'insecure', kind: 'bool', default: 'false', meta: '', help: 'serve plaintext gRPC without TLS: for local development only' },
  { flag: '--health-listen', key: 'healthListen', kind: 'string', default: '0.0.0.0:8080', meta: 'ADDR', help: 'plaintext HTTP HOST:PORT for /healthz, /readyz and /metrics' },
  { flag: '--log-level', key: 'logLevel', kind: 'string', default: 'info', meta: 'LEVEL', help: 'debug, info, warn or error (JSON lines on stdout)' },
];

/** TPMDS_<NAME> of a flag, e.g. `--state-dir` -> `TPMDS_STATE_DIR`. */
export function envName(flag: string): string {
  return 'TPMDS_' + flag.replace(/^--/, '').replace(/-/g, '_').toUpperCase();
}

/** What the command line asks for. */
export type ParsedArgs =
  | { kind: 'run'; config: AttestorConfig }
  | { kind: 'help'; text: string }
  | { kind: 'version'; text: string };

/** The defaults of every flag. */
export function defaultConfig(): AttestorConfig {
  return {
    listen: '0.0.0.0:50051',
    tpm: 'device:/dev/tpmrm0',
    stateDir: '/var/lib/tpmds',
    eventLog: '/sys/kernel/security/tpm0/binary_bios_measurements',
    insecure: false,
    healthListen: '0.0.0.0:8080',
    logLevel: 'info',
  };
}

function parseBool(flag: string, value: string): boolean {
  switch (value.toLowerCase()) {
    case '1':
    case 'true':
    case 'yes':
    case 'on':
      return true;
    case '0':
    case 'false':
    case 'no':
    case 'off':
      return false;
    default:
      throw new ConfigError(flag, `expected true or false, got ${JSON.stringify(value)}`);
  }
}

/**
 * Parses `argv` (without node and the script) and `env`. Throws ConfigError naming the flag or
 * environment variable at fault. `--help` and `--version` win over everything else.
 */
export function parseArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>>, version: string): ParsedArgs {
  if (argv.includes('--help') || argv.includes('-h')) return { kind: 'help', text: helpText(version) };
  if (argv.includes('--version')) return { kind: 'version', text: `tpmds-attestor ${version}` };

  const values: Partial<Record<keyof AttestorConfig, string | boolean>> = {};
  for (const spec of FLAGS) {
    const raw = env[envName(spec.flag)];
    if (raw === undefined || raw === '') continue;
    values[spec.key] = spec.kind === 'bool' ? parseBool(envName(spec.flag), raw) : raw;
  }

  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--')) throw new ConfigError(arg, 'unexpected argument (flags start with --; see --help)');
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    const spec = FLAGS.find((f) => f.flag === name);
    if (spec === undefined) throw new ConfigError(name, 'unknown flag (see --help)');
    if (seen.has(name)) throw new ConfigError(name, 'given more than once');
    seen.add(name);
    if (spec.kind === 'bool') {
      values[spec.key] = eq === -1 ? true : parseBool(name, arg.slice(eq + 1));
      continue;
    }
    let value: string;
    if (eq !== -1) {
      value = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new ConfigError(name, `needs a value (${spec.meta})`);
      value = next;
      i++;
    }
    values[spec.key] = value;
  }

  const config = { ...defaultConfig(), ...values } as AttestorConfig;
  validateConfig(config);
  return { kind: 'run', config };
}

const HOST_PORT_RE = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/;

/** Why `addr` is not HOST:PORT, or null. */
function hostPortProblem(addr: string): string | null {
  const m = HOST_PORT_RE.exec(addr);
  if (m === null) return `expected HOST:PORT (e.g. 0.0.0.0:50051 or [::]:50051), got ${JSON.stringify(addr)}`;
  const port = Number(m[3]);
  if (port > 65535) return `port ${port} is out of range (0-65535)`;
  return null;
}

/**
 * Checks a configuration (from flags or built in code) and throws ConfigError naming the flag:
 * address syntax, TLS file pairs, TLS or --insecure (exactly one), log level.
 */
export function validateConfig(c: AttestorConfig): void {
  if (c.listen.startsWith('unix:')) {
    const path = c.listen.slice('unix:'.length).replace(/^\/\/(?=\/)/, '');
    if (!path.startsWith('/')) throw new ConfigError('--listen', 'a unix: address needs an absolute path (unix:/run/tpmds.sock)');
  } else {
    const p = hostPortProblem(c.listen);
    if (p !== null) throw new ConfigError('--listen', p);
  }
  const hp = hostPortProblem(c.healthListen);
  if (hp !== null) throw new ConfigError('--health-listen', hp);
  if (!/^(device|swtpm|mssim):./.test(c.tpm)) {
    throw new ConfigError('--tpm', `expected device:PATH, swtpm:... or mssim:..., got ${JSON.stringify(c.tpm)}`);
  }
  if (c.stateDir === '') throw new ConfigError('--state-dir', 'must not be empty');
  if (c.eventLog === '') throw new ConfigError('--event-log', 'must not be empty');
  if (!['debug', 'info', 'warn', 'error'].includes(c.logLevel)) {
    throw new ConfigError('--log-level', `expected debug, info, warn or error, got ${JSON.stringify(c.logLevel)}`);
  }
  const hasCert = c.tlsCert !== undefined && c.tlsCert !== '';
  const hasKey = c.tlsKey !== undefined && c.tlsKey !== '';
  const hasCa = c.clientCa !== undefined && c.clientCa !== '';
  if (hasCert && !hasKey) throw new ConfigError('--tls-key', 'is required with --tls-cert');
  if (hasKey && !hasCert) throw new ConfigError('--tls-cert', 'is required with --tls-key');
  if (hasCa && !hasCert) throw new ConfigError('--client-ca', 'needs --tls-cert and --tls-key (mTLS is TLS with client certificates)');
  if (c.insecure && hasCert) throw new ConfigError('--insecure', 'cannot be combined with --tls-cert/--tls-key');
  if (!c.insecure && !hasCert) {
    throw new ConfigError('--tls-cert', 'no TLS configured: give --tls-cert and --tls-key (and --client-ca for mTLS), or --insecure for plaintext local development');
  }
}

/** The --help text: every flag with its environment variable and default. */
export function helpText(version: string): string {
  const lines = [
    `tpmds-attestor ${version}: gRPC access to this node's TPM for pods (tpmds)`,
    '',
    'Usage: tpmds-attestor [flags]',
    '',
    'Flags (each also read from the environment variable shown; a flag given here wins):',
  ];
  for (const f of FLAGS) {
    const head = f.meta === '' ? f.flag : `${f.flag} ${f.meta}`;
    lines.push(`  ${head}`);
    lines.push(`      ${f.help}`);
    lines.push(`      env ${envName(f.flag)}; default: ${f.default === undefined ? 'none' : f.default}`);
  }
  lines.push('  --help, -h');
  lines.push('      print this help and exit');
  lines.push('  --version');
  lines.push('      print the version and exit');
  lines.push('');
  lines.push('gRPC serves verifier.Verifier, grpc.health.v1.Health ("", verifier.Verifier, attest.Attestor) and');
  lines.push('server reflection. Without TLS files the attestor refuses to start unless --insecure is given.');
  return lines.join('\n') + '\n';
}
