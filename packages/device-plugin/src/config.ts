// tpmds-device-plugin flags. Paths named "host" are paths on the node: the kubelet hands them to
// the container runtime as they are, so the plugin's own DaemonSet mounts each of them at the
// same path inside its container (see manifests/device-plugin/daemonset.yaml).
import { LOG_LEVELS, type LogLevel } from './log.js';

/** A configuration problem: `flag` names the flag at fault. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly flag: string,
    problem: string,
  ) {
    super(`${flag}: ${problem}`);
  }
}

export interface DevicePluginConfig {
  /** Extended resource advertised to the kubelet. */
  resourceName: string;
  /** How many devices (pods) may share the TPM. */
  count: number;
  /** Kubelet's device-plugin directory: our socket is created here, kubelet.sock is expected here. */
  pluginDir: string;
  /** Our socket's file name inside pluginDir. */
  socketName: string;
  /** The kubelet's Registration socket. */
  kubeletSocket: string;
  /** Host path of the TPM device (DeviceSpec.host_path). */
  device: string;
  /** Where this process checks that the device exists (the device as seen from the plugin's container). */
  deviceProbe: string;
  /** Path of the device inside the consuming container. */
  containerDevice: string;
  /** The firmware event log to copy (as seen by the plugin). */
  eventLogSource: string;
  /** systemd's userspace TPM measurement log to copy when present (as seen by the plugin). */
  systemdLogSource: string;
  /** Host folder the logs are copied to (mounted read-only into containers). */
  eventLogDir: string;
  /** Where eventLogDir appears in the container. */
  eventLogMount: string;
  /** Host path of the per-node state directory (mounted read-write). */
  stateDir: string;
  /** Where stateDir appears in the container. */
  stateMount: string;
  /** uid and gid that own the state directory and the copied logs (the attestor's). */
  stateOwner: { uid: number; gid: number };
  /** How often the device and the sockets are checked. */
  pollIntervalMs: number;
  /** How often the logs are re-read and re-copied when they changed. */
  eventLogRefreshMs: number;
  logLevel: LogLevel;
}

interface FlagSpec {
  flag: string;
  key: keyof DevicePluginConfig;
  default: string;
  meta: string;
  help: string;
}

/** Every flag, in --help order. Defaults are the paths the manifests use. */
export const FLAGS: readonly FlagSpec[] = [
  { flag: '--resource-name', key: 'resourceName', default: 'tpmds.io/tpm', meta: 'NAME', help: 'extended resource to advertise (pods request it in resources.limits)' },
  { flag: '--count', key: 'count', default: '8', meta: 'N', help: 'devices advertised: how many containers on the node may share the TPM at once' },
  { flag: '--plugin-dir', key: 'pluginDir', default: '/var/lib/kubelet/device-plugins', meta: 'DIR', help: "the kubelet's device-plugin directory (our socket is created there)" },
  { flag: '--socket-name', key: 'socketName', default: 'tpmds.sock', meta: 'NAME', help: 'file name of our gRPC socket inside --plugin-dir' },
  { flag: '--kubelet-socket', key: 'kubeletSocket', default: '', meta: 'PATH', help: "the kubelet's Registration socket (default: <plugin-dir>/kubelet.sock)" },
  { flag: '--device', key: 'device', default: '/dev/tpmrm0', meta: 'PATH', help: 'host path of the TPM device given to containers (the kernel resource manager)' },
  { flag: '--device-probe', key: 'deviceProbe', default: '', meta: 'PATH', help: 'where this process checks that the device exists, e.g. /host/dev/tpmrm0 when the host /dev is mounted at /host/dev (default: --device)' },
  { flag: '--container-device', key: 'containerDevice', default: '/dev/tpmrm0', meta: 'PATH', help: 'path of the device inside the container' },
  { flag: '--event-log-source', key: 'eventLogSource', default: '/sys/kernel/security/tpm0/binary_bios_measurements', meta: 'FILE', help: 'firmware (TCG PC Client) event log to copy for containers' },
  { flag: '--systemd-log-source', key: 'systemdLogSource', default: '/run/log/systemd/tpm2-measure.log', meta: 'FILE', help: "systemd's userspace measurement log, copied too when present" },
  { flag: '--event-log-dir', key: 'eventLogDir', default: '/var/lib/tpmds-device-plugin/eventlog', meta: 'DIR', help: 'host folder the logs are copied to (owned by --state-owner, files 0440), mounted read-only into containers' },
  { flag: '--event-log-mount', key: 'eventLogMount', default: '/run/tpmds/eventlog', meta: 'DIR', help: 'where --event-log-dir appears in the container' },
  { flag: '--state-dir', key: 'stateDir', default: '/var/lib/tpmds', meta: 'DIR', help: 'host path of the per-node state directory, created 0700 and owned by --state-owner, mounted read-write' },
  { flag: '--state-mount', key: 'stateMount', default: '/var/lib/tpmds', meta: 'DIR', help: 'where --state-dir appears in the container' },
  { flag: '--state-owner', key: 'stateOwner', default: '10001:10001', meta: 'UID:GID', help: "the attestor's uid and gid: owner of the state directory and of the copied logs" },
  { flag: '--poll-interval-ms', key: 'pollIntervalMs', default: '1000', meta: 'MS', help: 'how often the device and the sockets (kubelet restarts) are checked' },
  { flag: '--event-log-refresh-ms', key: 'eventLogRefreshMs', default: '10000', meta: 'MS', help: 'how often the logs are re-read (and re-copied when they changed)' },
  { flag: '--log-level', key: 'logLevel', default: 'info', meta: 'LEVEL', help: 'debug, info, warn or error (JSON lines on stdout)' },
];

export type ParsedArgs = { kind: 'run'; config: DevicePluginConfig } | { kind: 'help'; text: string } | { kind: 'version'; text: string };

function positiveInt(flag: string, value: string, max: number): number {
  if (!/^[0-9]+$/.test(value)) throw new ConfigError(flag, `expected a whole number, got ${JSON.stringify(value)}`);
  const n = Number(value);
  if (n < 1 || n > max) throw new ConfigError(flag, `must be between 1 and ${max}, got ${n}`);
  return n;
}

function absolute(flag: string, value: string): string {
  if (!value.startsWith('/')) throw new ConfigError(flag, `expected an absolute path, got ${JSON.stringify(value)}`);
  return value.length > 1 ? value.replace(/\/+$/, '') : value;
}

function owner(flag: string, value: string): { uid: number; gid: number } {
  const m = /^([0-9]+):([0-9]+)$/.exec(value);
  if (m === null) throw new ConfigError(flag, `expected UID:GID (numbers), got ${JSON.stringify(value)}`);
  return { uid: Number(m[1]), gid: Number(m[2]) };
}

/** Whether one of two absolute, normalised paths is the other or lies inside it. */
function overlap(a: string, b: string): boolean {
  const inside = (child: string, parent: string): boolean => parent === '/' || child === parent || child.startsWith(`${parent}/`);
  return inside(a, b) || inside(b, a);
}

/** Extended resource names are `<domain>/<name>` (kubelet rejects names without a domain). */
const RESOURCE_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export function helpText(version: string): string {
  const lines = [
    `tpmds-device-plugin ${version}`,
    '',
    "Kubernetes device plugin (kubelet API v1beta1) that gives pods the node's TPM without privileges:",
    "it advertises --count shareable devices of --resource-name, and a container requesting one gets",
    '  - the TPM device (--device, mounted at --container-device, cgroup rw),',
    '  - a read-only copy of the firmware event log (and of systemd\'s tpm2-measure.log when present)',
    '    under --event-log-mount, refreshed when the source changes,',
    '  - the node\'s state directory at --state-mount (read-write, 0700, owned by --state-owner),',
    '  - TPMDS_TPM, TPMDS_STATE_DIR, TPMDS_EVENT_LOG and TPMDS_USERSPACE_LOG pointing at them (tpmds-attestor reads these).',
    'Devices turn Unhealthy while the TPM device is missing. The plugin registers with the kubelet',
    'again whenever the kubelet restarts. SIGTERM/SIGINT stop it and remove its socket.',
    '',
    'Usage: tpmds-device-plugin [flags]',
    '',
    'Flags (--flag VALUE or --flag=VALUE):',
  ];
  for (const f of FLAGS) {
    lines.push(`  ${f.flag} ${f.meta}`);
    lines.push(`      ${f.help}${f.default !== '' ? ` (default ${f.default})` : ''}`);
  }
  lines.push('  --help', '      this text', '  --version', '      the version');
  lines.push('', 'Exit codes: 0 stopped by a signal (or --help/--version), 1 failed at run time, 2 bad flags.');
  return lines.join('\n') + '\n';
}

/** Parses the command line (without node and the script). */
export function parseArgs(argv: readonly string[], version = 'unknown'): ParsedArgs {
  const given = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return { kind: 'help', text: helpText(version) };
    if (arg === '--version') return { kind: 'version', text: `tpmds-device-plugin ${version}\n` };
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    const spec = FLAGS.find((f) => f.flag === name);
    if (spec === undefined) throw new ConfigError(name, 'unknown flag (see --help)');
    if (given.has(name)) throw new ConfigError(name, 'given more than once');
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new ConfigError(name, `needs a value (${spec.meta})`);
      value = next;
      i++;
    }
    given.set(name, value);
  }
  const get = (flag: string): string => given.get(flag) ?? FLAGS.find((f) => f.flag === flag)!.default;

  const resourceName = get('--resource-name');
  if (!RESOURCE_NAME.test(resourceName)) throw new ConfigError('--resource-name', `expected DOMAIN/NAME such as tpmds.io/tpm, got ${JSON.stringify(resourceName)}`);
  const socketName = get('--socket-name');
  if (socketName === '' || socketName.includes('/')) throw new ConfigError('--socket-name', `expected a file name without '/', got ${JSON.stringify(socketName)}`);
  if (socketName === 'kubelet.sock') throw new ConfigError('--socket-name', 'kubelet.sock is the kubelet\'s own socket');
  const logLevel = get('--log-level') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError('--log-level', `expected one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);

  const pluginDir = absolute('--plugin-dir', get('--plugin-dir'));
  const device = absolute('--device', get('--device'));
  const config: DevicePluginConfig = {
    resourceName,
    // The kubelet keeps per-device state; thousands of fake devices only cost memory.
    count: positiveInt('--count', get('--count'), 1000),
    pluginDir,
    socketName,
    kubeletSocket: get('--kubelet-socket') === '' ? `${pluginDir}/kubelet.sock` : absolute('--kubelet-socket', get('--kubelet-socket')),
    device,
    deviceProbe: get('--device-probe') === '' ? device : absolute('--device-probe', get('--device-probe')),
    containerDevice: absolute('--container-device', get('--container-device')),
    eventLogSource: absolute('--event-log-source', get('--event-log-source')),
    systemdLogSource: absolute('--systemd-log-source', get('--systemd-log-source')),
    eventLogDir: absolute('--event-log-dir', get('--event-log-dir')),
    eventLogMount: absolute('--event-log-mount', get('--event-log-mount')),
    stateDir: absolute('--state-dir', get('--state-dir')),
    stateMount: absolute('--state-mount', get('--state-mount')),
    stateOwner: owner('--state-owner', get('--state-owner')),
    pollIntervalMs: positiveInt('--poll-interval-ms', get('--poll-interval-ms'), 3_600_000),
    eventLogRefreshMs: positiveInt('--event-log-refresh-ms', get('--event-log-refresh-ms'), 86_400_000),
    logLevel,
  };
  // One is mounted read-only, the other read-write: neither may be (or hold) the other, on the
  // host or in the container.
  if (overlap(config.eventLogDir, config.stateDir)) throw new ConfigError('--event-log-dir', `must not be, contain or lie inside --state-dir (${config.stateDir})`);
  if (overlap(config.eventLogMount, config.stateMount)) throw new ConfigError('--event-log-mount', `must not be, contain or lie inside --state-mount (${config.stateMount})`);
  return { kind: 'run', config };
}
