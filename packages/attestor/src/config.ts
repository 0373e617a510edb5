// tpmds-attestor flags (ARCHITECTURE.md "packages/attestor"): each also as TPMDS_<NAME>; a flag
// given on the command line wins over the environment.
import { AUTH_MODES, type AuthMode } from './auth/caller.js';
import { NodeKeyAccess } from './auth/node-key.js';
import { IN_CLUSTER_CA, IN_CLUSTER_TOKEN, MAX_CACHE_SECONDS } from './auth/k8s.js';
import { ConfigError } from './errors.js';
import { parseKeyPool } from './key-pool.js';
import { DEFAULT_MAX_KEYS_PER_IDENTITY, parseSignRate } from './limits.js';

/** Log levels, lowest first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** The attestor's configuration. */
export interface AttestorConfig {
  /** gRPC address: `host:port`, `[v6]:port` or `unix:/path`. */
  listen: string;
  /** TPM address (`device:/dev/tpmrm0`, `swtpm:port=2321`, ...). */
  tpm: string;
  /** Most TPM calls waiting at once (more are answered RESOURCE_EXHAUSTED). */
  tpmQueueLimit: number;
  /** Keys (and AKs) of each type created ahead of need: `rsa=N,ecc=M`, 0 disables. */
  keyPool: string;
  /** Most AKs + keys one caller identity may have (0: no limit); more are RESOURCE_EXHAUSTED. */
  maxKeysPerIdentity: number;
  /** Per-identity token bucket of signing RPCs: "RATE[:BURST]" per second, or "off" (default). */
  signRate: string;
  /** Directory of the key blobs, created 0700 when missing. */
  stateDir: string;
  /** Firmware event log shipped with quotes. */
  eventLog: string;
  /** systemd's userspace measurement log shipped with quotes (absent file: none). */
  userspaceLog: string;
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
  /** Who callers are (caller identity; keys are isolated per identity): none, mtls or k8s. */
  auth: AuthMode;
  /** Policy file mapping identities to the RPCs they may call (optional). */
  allow?: string;
  /** Identities that may sign with the node's own keys (SignGCEEK): "ns/sa" under k8s, the certificate identity under mtls. */
  allowNodeKey?: string[];
  /** Kubernetes API server URL for TokenReviews (--auth k8s; in-cluster default). */
  kubeApi?: string;
  /** PEM CA of the API server. */
  kubeCa: string;
  /** The attestor's own service-account token (re-read when it changes). */
  kubeTokenFile: string;
  /** The audience callers' tokens must carry. */
  tokenAudience: string;
  /** This node's name: callers' tokens must be bound to a pod on it. */
  nodeName?: string;
  /** Seconds a successful TokenReview is reused (0-60). */
  tokenCacheSeconds: number;
}

interface FlagSpec {
  flag: string;
  key: keyof AttestorConfig;
  /** 'list': repeatable, and each value may be a comma-separated list (the environment variable too). */
  kind: 'string' | 'bool' | 'int' | 'list';
  default?: string;
  meta: string;
  help: string;
}

/** Every flag, in --help order. */
export const FLAGS: readonly FlagSpec[] = [
  { flag: '--listen', key: 'listen', kind: 'string', default: '0.0.0.0:50051', meta: 'ADDR', help: 'gRPC address: HOST:PORT, [IPV6]:PORT or unix:/path for a Unix socket' },
  { flag: '--tpm', key: 'tpm', kind: 'string', default: 'device:/dev/tpmrm0', meta: 'ADDR', help: 'TPM address: device:/dev/tpmrm0, device:/dev/tpm0, swtpm:port=N, swtpm:host=H,port=N, swtpm:path=SOCK, mssim:host=H,port=N' },
  { flag: '--tpm-queue-limit', key: 'tpmQueueLimit', kind: 'int', default: '256', meta: 'N', help: 'most calls waiting for the TPM at once, shared fairly between callers (1 or more); more are answered RESOURCE_EXHAUSTED' },
  { flag: '--key-pool', key: 'keyPool', kind: 'string', default: 'rsa=0,ecc=0', meta: 'rsa=N,ecc=M', help: 'signing keys and AKs of each type created ahead of need in the background (when the TPM is idle) and kept in <state-dir>/pool, so NewKey and a first GetAK skip the key creation; 0 disables' },
  { flag: '--max-keys-per-identity', key: 'maxKeysPerIdentity', kind: 'int', default: String(DEFAULT_MAX_KEYS_PER_IDENTITY), meta: 'N', help: 'most AKs and keys one caller identity may have (0: no limit); one more is answered RESOURCE_EXHAUSTED' },
  { flag: '--sign-rate', key: 'signRate', kind: 'string', default: 'off', meta: 'RATE[:BURST]', help: 'per caller identity, most Sign and Quote calls per second (token bucket, bursts of BURST, default RATE); more are answered RESOURCE_EXHAUSTED. Off by default; set it where the TPM may leak ECDSA timing (TPM-FAIL recovered keys from about 1,300 signatures)' },
  { flag: '--state-dir', key: 'stateDir', kind: 'string', default: '/var/lib/tpmds', meta: 'DIR', help: 'where TPM-wrapped key blobs are kept (created with mode 0700 when missing)' },
  { flag: '--event-log', key: 'eventLog', kind: 'string', default: '/sys/kernel/security/tpm0/binary_bios_measurements', meta: 'FILE', help: 'firmware event log sent with quotes (a missing or unreadable one is sent empty: said at start, in /readyz, /metrics and each QuoteResponse)' },
  { flag: '--userspace-log', key: 'userspaceLog', kind: 'string', default: '/run/log/systemd/tpm2-measure.log', meta: 'FILE', help: "systemd's userspace measurement log (JSON-SEQ of CEL-JSON records) sent with quotes beside the firmware log; an absent file means none" },
  { flag: '--tls-cert', key: 'tlsCert', kind: 'string', meta: 'FILE', help: 'PEM certificate chain of the gRPC server (TLS); needs --tls-key' },
  { flag: '--tls-key', key: 'tlsKey', kind: 'string', meta: 'FILE', help: 'PEM private key of the gRPC server; needs --tls-cert' },
  { flag: '--client-ca', key: 'clientCa', kind: 'string', meta: 'FILE', help: 'PEM CA certificates: clients must present a certificate issued by one of them (mTLS); needs --tls-cert' },
  { flag: '--insecure', key: 'insecure', kind: 'bool', default: 'false', meta: '', help: 'serve plaintext gRPC without TLS: for local development only' },
  { flag: '--health-listen', key: 'healthListen', kind: 'string', default: '0.0.0.0:8080', meta: 'ADDR', help: 'plaintext HTTP HOST:PORT for /healthz, /readyz and /metrics' },
  { flag: '--log-level', key: 'logLevel', kind: 'string', default: 'info', meta: 'LEVEL', help: 'debug, info, warn or error (JSON lines on stdout)' },
  { flag: '--auth', key: 'auth', kind: 'string', default: 'none', meta: 'MODE', help: 'who callers are; keys are kept apart per caller: none (one shared namespace; only with --insecure or --client-ca), mtls (client certificate: first URI SAN, else subject CN; needs --client-ca), k8s (service-account token in "authorization: Bearer", checked with a TokenReview)' },
  { flag: '--allow', key: 'allow', kind: 'string', meta: 'FILE', help: 'JSON or YAML policy of which identities may call which RPCs (default: every authenticated caller may call every RPC on its own keys); needs --auth mtls or k8s' },
  { flag: '--allow-node-key', key: 'allowNodeKey', kind: 'list', meta: 'NS/SA', help: "identities that may sign with the node's cloud attestation key (SignGCEEK): NAMESPACE/SERVICEACCOUNT under --auth k8s, the certificate identity under --auth mtls; repeatable or comma-separated (default: nobody; under --auth none every caller)" },
  { flag: '--kube-api', key: 'kubeApi', kind: 'string', meta: 'URL', help: '--auth k8s: the Kubernetes API server (default in a pod: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)' },
  { flag: '--kube-ca', key: 'kubeCa', kind: 'string', default: IN_CLUSTER_CA, meta: 'FILE', help: '--auth k8s: PEM CA of the API server' },
  { flag: '--kube-token-file', key: 'kubeTokenFile', kind: 'string', default: IN_CLUSTER_TOKEN, meta: 'FILE', help: "--auth k8s: the attestor's own service-account token (allowed to create tokenreviews; re-read when it rotates)" },
  { flag: '--token-audience', key: 'tokenAudience', kind: 'string', default: 'tpmds', meta: 'AUD', help: "--auth k8s: the audience callers' tokens must be issued for" },
  { flag: '--node-name', key: 'nodeName', kind: 'string', meta: 'NAME', help: "--auth k8s: this node's name (downward API spec.nodeName); tokens of pods on other nodes are refused" },
  { flag: '--token-cache-seconds', key: 'tokenCacheSeconds', kind: 'int', default: '10', meta: 'N', help: `--auth k8s: how long a successful TokenReview is reused (0-${MAX_CACHE_SECONDS}; never past the token's expiry)` },
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
    tpmQueueLimit: 256,
    keyPool: 'rsa=0,ecc=0',
    maxKeysPerIdentity: DEFAULT_MAX_KEYS_PER_IDENTITY,
    signRate: 'off',
    stateDir: '/var/lib/tpmds',
    eventLog: '/sys/kernel/security/tpm0/binary_bios_measurements',
    userspaceLog: '/run/log/systemd/tpm2-measure.log',
    insecure: false,
    healthListen: '0.0.0.0:8080',
    logLevel: 'info',
    auth: 'none',
    kubeCa: IN_CLUSTER_CA,
    kubeTokenFile: IN_CLUSTER_TOKEN,
    tokenAudience: 'tpmds',
    tokenCacheSeconds: 10,
  };
}

function parseInt10(flag: string, value: string): number {
  if (!/^\d{1,9}$/.test(value)) throw new ConfigError(flag, `expected a whole number, got ${JSON.stringify(value)}`);
  return Number(value);
}

function parseValue(spec: FlagSpec, name: string, raw: string): string | boolean | number | string[] {
  if (spec.kind === 'bool') return parseBool(name, raw);
  if (spec.kind === 'list') return raw.split(',').map((v) => v.trim()).filter((v) => v !== '');
  if (spec.kind === 'int') return parseInt10(name, raw);
  return raw;
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

  const values: Partial<Record<keyof AttestorConfig, string | boolean | number | string[]>> = {};
  for (const spec of FLAGS) {
    const raw = env[envName(spec.flag)];
    if (raw === undefined || raw === '') continue;
    values[spec.key] = parseValue(spec, envName(spec.flag), raw);
  }

  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--')) throw new ConfigError(arg, 'unexpected argument (flags start with --; see --help)');
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    const spec = FLAGS.find((f) => f.flag === name);
    if (spec === undefined) throw new ConfigError(name, 'unknown flag (see --help)');
    if (seen.has(name) && spec.kind !== 'list') throw new ConfigError(name, 'given more than once');
    const firstOnCommandLine = !seen.has(name);
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
    const parsed = parseValue(spec, name, value);
    // A list flag's command-line values replace the environment's and add up among themselves.
    values[spec.key] = Array.isArray(parsed) && !firstOnCommandLine ? [...(values[spec.key] as string[]), ...parsed] : parsed;
  }

  const config = { ...defaultConfig(), ...values } as AttestorConfig;
  if (config.auth === 'k8s' && (config.kubeApi === undefined || config.kubeApi === '')) {
    const host = env['KUBERNETES_SERVICE_HOST'];
    const port = env['KUBERNETES_SERVICE_PORT'];
    if (host !== undefined && host !== '' && port !== undefined && port !== '') {
      config.kubeApi = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
    }
  }
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
  if (c.userspaceLog === '') throw new ConfigError('--userspace-log', 'must not be empty');
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
  validateAuth(c, hasCa);
}

function validateAuth(c: AttestorConfig, hasCa: boolean): void {
  if (!(AUTH_MODES as readonly string[]).includes(c.auth)) {
    throw new ConfigError('--auth', `expected none, mtls or k8s, got ${JSON.stringify(c.auth)}`);
  }
  NodeKeyAccess.of(c.auth, c.allowNodeKey ?? []); // each entry names an identity of this --auth mode
  if (c.auth === 'none') {
    if (!c.insecure && !hasCa) {
      throw new ConfigError(
        '--auth',
        'none lets every caller use every key, so it is allowed only with --insecure (local development) or --client-ca (only holders of a client certificate get in); ' +
          'choose --auth k8s (service-account tokens) or --auth mtls (with --client-ca)',
      );
    }
    if (c.allow !== undefined && c.allow !== '') throw new ConfigError('--allow', 'needs callers with identities: --auth mtls or --auth k8s');
  }
  if (c.auth === 'mtls' && !hasCa) throw new ConfigError('--auth', 'mtls needs --client-ca (the CA whose client certificates identify callers)');
  if (c.auth === 'k8s') {
    if (c.kubeApi === undefined || c.kubeApi === '') {
      throw new ConfigError('--kube-api', 'not set, and not running in a pod (KUBERNETES_SERVICE_HOST/PORT are unset)');
    }
    let url: URL;
    try {
      url = new URL(c.kubeApi);
    } catch {
      throw new ConfigError('--kube-api', `not a URL: ${JSON.stringify(c.kubeApi)}`);
    }
    if (url.protocol !== 'https:') throw new ConfigError('--kube-api', `must be https:// (got ${url.protocol})`);
    if (c.nodeName === undefined || c.nodeName === '') {
      throw new ConfigError('--node-name', 'is required with --auth k8s (set TPMDS_NODE_NAME from the downward API field spec.nodeName)');
    }
    if (c.tokenAudience === '') throw new ConfigError('--token-audience', 'must not be empty');
    if (c.kubeCa === '') throw new ConfigError('--kube-ca', 'must not be empty');
    if (c.kubeTokenFile === '') throw new ConfigError('--kube-token-file', 'must not be empty');
  }
  if (!Number.isInteger(c.tpmQueueLimit) || c.tpmQueueLimit < 1) throw new ConfigError('--tpm-queue-limit', 'must be 1 or more');
  parseKeyPool('--key-pool', c.keyPool);
  if (!Number.isInteger(c.maxKeysPerIdentity) || c.maxKeysPerIdentity < 0) throw new ConfigError('--max-keys-per-identity', 'must be 0 (no limit) or more');
  parseSignRate(c.signRate);
  if (!Number.isInteger(c.tokenCacheSeconds) || c.tokenCacheSeconds < 0 || c.tokenCacheSeconds > MAX_CACHE_SECONDS) {
    throw new ConfigError('--token-cache-seconds', `must be 0 to ${MAX_CACHE_SECONDS}`);
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
  lines.push('Keys and AKs are kept per caller identity (--auth): another caller\'s uid/kid looks exactly like one');
  lines.push('that does not exist. See the attestor README, "Security model".');
  return lines.join('\n') + '\n';
}
