// tpmds-device-plugin against a fake kubelet: registration, ListAndWatch (count and health),
// Allocate (devices, mounts, envs, the copied event log and the state directory), re-registration
// after a kubelet restart, and SIGTERM on the built binary. Temp dirs stand in for /sys, /dev,
// /run and /var/lib.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { parseArgs } from '../src/config.js';
import type { DevicePluginConfig } from '../src/config.js';
import { v1beta1 } from '../src/gen/api.js';
import { Logger } from '../src/log.js';
import { startDevicePlugin } from '../src/plugin.js';
import type { RunningDevicePlugin } from '../src/plugin.js';
import { FakeKubelet } from './fake-kubelet.js';

const PKG = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ROOT = process.getuid?.() === 0;
/** The attestor's uid:gid when we may chown (root, as in CI), else our own. */
const OWNER = ROOT ? { uid: 10001, gid: 10001 } : { uid: process.getuid!(), gid: process.getgid!() };

class MemoryLog {
  readonly lines: Record<string, unknown>[] = [];
  write(line: string): void {
    this.lines.push(JSON.parse(line) as Record<string, unknown>);
  }
}

interface Node {
  root: string;
  pluginDir: string;
  device: string;
  firmwareLog: string;
  systemdLog: string;
  eventLogDir: string;
  stateDir: string;
  args: string[];
}

/** A fake node under a temp dir: the TPM "device" is a plain file. */
function fakeNode(): Node {
  const root = mkdtempSync(join(tmpdir(), 'tpmds-dp-'));
  const n = {
    root,
    pluginDir: join(root, 'device-plugins'),
    device: join(root, 'dev/tpmrm0'),
    firmwareLog: join(root, 'sys/kernel/security/tpm0/binary_bios_measurements'),
    systemdLog: join(root, 'run/log/systemd/tpm2-measure.log'),
    eventLogDir: join(root, 'var/lib/tpmds-device-plugin/eventlog'),
    stateDir: join(root, 'var/lib/tpmds'),
  };
  for (const d of [n.pluginDir, dirname(n.device), dirname(n.firmwareLog), dirname(n.systemdLog)]) mkdirSync(d, { recursive: true });
  writeFileSync(n.device, '');
  const args = [
    ...['--plugin-dir', n.pluginDir, '--device', '/dev/tpmrm0', '--device-probe', n.device],
    ...['--event-log-source', n.firmwareLog, '--systemd-log-source', n.systemdLog, '--event-log-dir', n.eventLogDir],
    ...['--state-dir', n.stateDir, '--state-owner', `${OWNER.uid}:${OWNER.gid}`, '--count', '3'],
    ...['--poll-interval-ms', '50', '--event-log-refresh-ms', '50'],
  ];
  return { ...n, args };
}

/** The node's flags with `extra` (--flag VALUE pairs) replacing or adding to them. */
function configOf(node: Node, extra: string[] = []): DevicePluginConfig {
  const args = [...node.args];
  for (let i = 0; i < extra.length; i += 2) {
    const at = args.indexOf(extra[i]!);
    if (at >= 0) args.splice(at, 2);
    args.push(extra[i]!, extra[i + 1]!);
  }
  const parsed = parseArgs(args);
  assert.equal(parsed.kind, 'run');
  return parsed.config;
}

/** Firmware event log stand-in: not parsed by the plugin, only copied. */
const FIRMWARE = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff);

describe('tpmds-device-plugin against a fake kubelet', function () {
  this.timeout(20000);
  let node: Node;
  let kubelet: FakeKubelet;
  let plugin: RunningDevicePlugin | undefined;
  let log: MemoryLog;

  beforeEach(async () => {
    node = fakeNode();
    writeFileSync(node.firmwareLog, FIRMWARE);
    kubelet = new FakeKubelet(node.pluginDir);
    await kubelet.start();
    log = new MemoryLog();
  });
  afterEach(async () => {
    await plugin?.close();
    plugin = undefined;
    await kubelet.stop();
    rmSync(node.root, { recursive: true, force: true });
  });

  const start = async (extra: string[] = []): Promise<RunningDevicePlugin> => {
    plugin = await startDevicePlugin(configOf(node, extra), new Logger('debug', log));
    return plugin;
  };

  it('registers (v1beta1, its socket name, tpmds.io/tpm) and lists --count Healthy devices', async () => {
    await start();
    await kubelet.until('a registration and a device list', () => kubelet.registrations.length === 1 && kubelet.updates.length > 0);
    assert.deepEqual(kubelet.registrations[0], { version: 'v1beta1', endpoint: 'tpmds.sock', resourceName: 'tpmds.io/tpm', preferredAllocation: true });
    assert.deepEqual(kubelet.last, [
      { id: 'tpm-0', health: 'Healthy' },
      { id: 'tpm-1', health: 'Healthy' },
      { id: 'tpm-2', health: 'Healthy' },
    ]);
    const options = await kubelet.call<v1beta1.Empty, v1beta1.DevicePluginOptions>('GetDevicePluginOptions', new v1beta1.Empty());
    // The options Register sent.
    assert.deepEqual(options.toObject(), { pre_start_required: false, get_preferred_allocation_available: true });
    await kubelet.call('PreStartContainer', new v1beta1.PreStartContainerRequest({ devices_ids: ['tpm-0'] }));
  });

  it('marks every device Unhealthy while the TPM device is missing, Healthy again when it is back', async () => {
    await start();
    await kubelet.until('Healthy devices', () => kubelet.last?.[0]?.health === 'Healthy');
    rmSync(node.device);
    await kubelet.until('Unhealthy devices', () => kubelet.last?.every((d) => d.health === 'Unhealthy') === true);
    assert.equal(kubelet.last!.length, 3);
    writeFileSync(node.device, '');
    await kubelet.until('Healthy devices again', () => kubelet.last?.every((d) => d.health === 'Healthy') === true);
  });

  it('Allocate: the device (rw), the read-only event-log folder, the state directory and the attestor env', async () => {
    writeFileSync(node.systemdLog, 'systemd measurements\n');
    await start();
    await kubelet.until('registration', () => kubelet.plugin !== undefined);
    const res = await kubelet.call<v1beta1.AllocateRequest, v1beta1.AllocateResponse>(
      'Allocate',
      new v1beta1.AllocateRequest({ container_requests: [new v1beta1.ContainerAllocateRequest({ devices_ids: ['tpm-1'] })] }),
    );
    assert.equal(res.container_responses.length, 1);
    const c = res.container_responses[0]!;
    assert.deepEqual(
      c.devices.map((d) => d.toObject()),
      [{ container_path: '/dev/tpmrm0', host_path: '/dev/tpmrm0', permissions: 'rw' }],
    );
    assert.deepEqual(
      c.mounts.map((m) => m.toObject()),
      [
        { container_path: '/run/tpmds/eventlog', host_path: node.eventLogDir, read_only: true },
        { container_path: '/var/lib/tpmds', host_path: node.stateDir, read_only: false },
      ],
    );
    assert.deepEqual(Object.fromEntries(c.envs), {
      TPMDS_TPM: 'device:/dev/tpmrm0',
      TPMDS_STATE_DIR: '/var/lib/tpmds',
      TPMDS_EVENT_LOG: '/run/tpmds/eventlog/binary_bios_measurements',
      TPMDS_USERSPACE_LOG: '/run/tpmds/eventlog/tpm2-measure.log',
    });

    // The copies: same bytes, 0440, owned by the attestor; the folder 0750 with its group.
    const copy = join(node.eventLogDir, 'binary_bios_measurements');
    assert.deepEqual(new Uint8Array(readFileSync(copy)), FIRMWARE);
    const st = statSync(copy);
    assert.equal(st.mode & 0o7777, 0o440);
    assert.deepEqual({ uid: st.uid, gid: st.gid }, OWNER);
    assert.equal(readFileSync(join(node.eventLogDir, 'tpm2-measure.log'), 'utf8'), 'systemd measurements\n');
    const dirSt = statSync(node.eventLogDir);
    assert.equal(dirSt.mode & 0o7777, 0o750);
    assert.equal(dirSt.gid, OWNER.gid);
    // The state directory: 0700, owned by the attestor.
    const state = statSync(node.stateDir);
    assert.equal(state.mode & 0o7777, 0o700);
    assert.deepEqual({ uid: state.uid, gid: state.gid }, OWNER);
  });

  it('Allocate answers every container of a pod, and refuses unknown IDs and a missing TPM by name', async () => {
    await start();
    await kubelet.until('registration', () => kubelet.plugin !== undefined);
    const two = await kubelet.call<v1beta1.AllocateRequest, v1beta1.AllocateResponse>(
      'Allocate',
      new v1beta1.AllocateRequest({ container_requests: [new v1beta1.ContainerAllocateRequest({ devices_ids: ['tpm-0'] }), new v1beta1.ContainerAllocateRequest({ devices_ids: ['tpm-2'] })] }),
    );
    assert.equal(two.container_responses.length, 2);
    await assert.rejects(
      kubelet.call('Allocate', new v1beta1.AllocateRequest({ container_requests: [new v1beta1.ContainerAllocateRequest({ devices_ids: ['gpu-0'] })] })),
      (e: grpc.ServiceError) => e.code === grpc.status.INVALID_ARGUMENT && e.details === 'unknown device IDs: gpu-0 (this plugin has tpm-0..tpm-2)',
    );
    await assert.rejects(
      kubelet.call('Allocate', new v1beta1.AllocateRequest({ container_requests: [new v1beta1.ContainerAllocateRequest({ devices_ids: [] })] })),
      (e: grpc.ServiceError) => e.code === grpc.status.INVALID_ARGUMENT && e.details === 'a container request lists no device IDs',
    );
    rmSync(node.device);
    await assert.rejects(
      kubelet.call('Allocate', new v1beta1.AllocateRequest({ container_requests: [new v1beta1.ContainerAllocateRequest({ devices_ids: ['tpm-0'] })] })),
      (e: grpc.ServiceError) => e.code === grpc.status.FAILED_PRECONDITION && e.details === 'TPM device /dev/tpmrm0 is missing on this node',
    );
  });

  it('Allocate hands out the folder without re-reading the logs (the refresh timer keeps the copies fresh)', async () => {
    await start(['--event-log-refresh-ms', '3600000']);
    await kubelet.until('registration', () => kubelet.plugin !== undefined);
    writeFileSync(node.firmwareLog, Uint8Array.from([9, 9, 9]));
    await kubelet.call('Allocate', new v1beta1.AllocateRequest({ container_requests: [new v1beta1.ContainerAllocateRequest({ devices_ids: ['tpm-0'] })] }));
    assert.deepEqual(new Uint8Array(readFileSync(join(node.eventLogDir, 'binary_bios_measurements'))), FIRMWARE);
    assert.equal(log.lines.filter((l) => l['msg'] === 'log copied').length, 1);
  });

  it('a device probe that cannot be checked (not merely absent) is Unhealthy with the reason logged and in Allocate\'s refusal', async () => {
    await start(['--device-probe', join(node.device, 'not-a-dir')]);
    await kubelet.until('Unhealthy devices', () => kubelet.last?.every((d) => d.health === 'Unhealthy') === true);
    const warning = log.lines.find((l) => l['msg'] === 'TPM device cannot be checked: devices Unhealthy');
    assert.match(String(warning?.['error']), /ENOTDIR/);
    await assert.rejects(
      kubelet.call('Allocate', new v1beta1.AllocateRequest({ container_requests: [new v1beta1.ContainerAllocateRequest({ devices_ids: ['tpm-0'] })] })),
      (e: grpc.ServiceError) => e.code === grpc.status.FAILED_PRECONDITION && /^TPM device \/dev\/tpmrm0 cannot be checked on this node: ENOTDIR/.test(e.details),
    );
  });

  it('GetPreferredAllocation keeps the required IDs and fills up from the available ones', async () => {
    await start();
    await kubelet.until('registration', () => kubelet.plugin !== undefined);
    const res = await kubelet.call<v1beta1.PreferredAllocationRequest, v1beta1.PreferredAllocationResponse>(
      'GetPreferredAllocation',
      new v1beta1.PreferredAllocationRequest({
        container_requests: [new v1beta1.ContainerPreferredAllocationRequest({ available_deviceIDs: ['tpm-0', 'tpm-1', 'tpm-2'], must_include_deviceIDs: ['tpm-2'], allocation_size: 2 })],
      }),
    );
    assert.deepEqual(res.container_responses[0]!.deviceIDs, ['tpm-2', 'tpm-0']);
  });

  it('refreshes the copies when a log changes, adds systemd\'s log when it appears, drops a copy whose source is gone', async () => {
    await start();
    const copy = join(node.eventLogDir, 'binary_bios_measurements');
    const systemdCopy = join(node.eventLogDir, 'tpm2-measure.log');
    assert.equal(existsSync(systemdCopy), false);
    writeFileSync(node.firmwareLog, Uint8Array.from([1, 2, 3]));
    writeFileSync(node.systemdLog, 'appeared\n');
    await kubelet.until('refreshed copies', () => existsSync(systemdCopy) && readFileSync(copy).length === 3);
    assert.equal(statSync(copy).mode & 0o7777, 0o440);
    rmSync(node.systemdLog);
    await kubelet.until('the stale copy removed', () => !existsSync(systemdCopy));
  });

  it('without a firmware log: warns once, still serves and allocates, and copies the log when it appears', async () => {
    rmSync(node.firmwareLog);
    await start();
    await kubelet.until('registration', () => kubelet.plugin !== undefined);
    const copy = join(node.eventLogDir, 'binary_bios_measurements');
    const res = await kubelet.call<v1beta1.AllocateRequest, v1beta1.AllocateResponse>(
      'Allocate',
      new v1beta1.AllocateRequest({ container_requests: [new v1beta1.ContainerAllocateRequest({ devices_ids: ['tpm-0'] })] }),
    );
    assert.equal(res.container_responses.length, 1);
    assert.equal(existsSync(copy), false);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(
      log.lines.filter((l) => l['msg'] === 'log source missing: containers get no copy').map((l) => l['source']),
      [node.firmwareLog],
    );
    writeFileSync(node.firmwareLog, FIRMWARE);
    await kubelet.until('the copy', () => existsSync(copy));
    assert.deepEqual(new Uint8Array(readFileSync(copy)), FIRMWARE);
  });

  it('a log that cannot be read (not merely absent) is logged once by name and its last copy kept', async () => {
    await start();
    const copy = join(node.eventLogDir, 'binary_bios_measurements');
    rmSync(node.firmwareLog);
    mkdirSync(node.firmwareLog); // readFile: EISDIR
    await kubelet.until('the error logged', () => log.lines.some((l) => l['msg'] === 'cannot copy log'));
    await new Promise((r) => setTimeout(r, 200));
    const errors = log.lines.filter((l) => l['msg'] === 'cannot copy log');
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!['source'], node.firmwareLog);
    assert.match(String(errors[0]!['error']), /EISDIR/);
    assert.deepEqual(new Uint8Array(readFileSync(copy)), FIRMWARE);
  });

  for (const [what, flag, setUp, message] of [
    ['a state directory that cannot be created', '--state-dir', (n: Node) => join(n.device, 'state'), /^state directory .*\/dev\/tpmrm0\/state \(want mode 0700, owner \d+:\d+\): (ENOTDIR|EEXIST)/],
    ['an event-log folder that cannot be created', '--event-log-dir', (n: Node) => join(n.device, 'eventlog'), /^event log folder .*\/dev\/tpmrm0\/eventlog: (ENOTDIR|EEXIST)/],
    ['a non-socket file where the plugin socket goes', '--socket-name', (n: Node) => (writeFileSync(join(n.pluginDir, 'taken.sock'), ''), 'taken.sock'), /\/taken\.sock exists and is not a socket$/],
  ] as const) {
    it(`refuses to start with ${what}, naming it, and leaves nothing running`, async () => {
      await assert.rejects(start([flag, setUp(node)]), (e: Error) => message.test(e.message));
      assert.equal(plugin, undefined);
      // Changes a running loop would log: a new firmware log, the device gone.
      const lines = log.lines.length;
      writeFileSync(node.firmwareLog, Uint8Array.from([7]));
      rmSync(node.device, { recursive: true });
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(log.lines.slice(lines), [], 'a loop still running after a failed start');
      assert.equal(kubelet.registrations.length, 0);
    });
  }

  it('close() stops every loop: nothing is checked, copied or registered afterwards', async () => {
    const p = await start();
    await kubelet.until('registration', () => kubelet.updates.length > 0);
    await p.close();
    plugin = undefined;
    const lines = log.lines.length;
    writeFileSync(node.firmwareLog, Uint8Array.from([4, 5, 6]));
    rmSync(node.device);
    await kubelet.restart();
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(log.lines.slice(lines), []);
    assert.equal(kubelet.registrations.length, 1);
    assert.equal(existsSync(join(node.pluginDir, 'tpmds.sock')), false);
  });

  it('registers again and serves a new socket after the kubelet restarts', async () => {
    await start();
    await kubelet.until('first registration', () => kubelet.registrations.length === 1 && kubelet.updates.length > 0);
    const before = kubelet.updates.length;
    await kubelet.restart();
    assert.equal(existsSync(join(node.pluginDir, 'tpmds.sock')), false);
    await kubelet.until('second registration and device list', () => kubelet.registrations.length === 2 && kubelet.updates.length > before);
    assert.equal(kubelet.last!.length, 3);
    assert.ok(existsSync(join(node.pluginDir, 'tpmds.sock')));
    assert.ok(log.lines.some((l) => l['msg'] === 'registered with the kubelet again'));
  });

  it('keeps retrying while the kubelet refuses or is absent, and logs the problem once', async () => {
    await kubelet.stop();
    await start();
    assert.equal(plugin!.registration.registered, false);
    kubelet.refuse = 'resource name tpmds.io/tpm is already registered';
    await kubelet.start();
    await kubelet.until('a refusal logged', () => log.lines.some((l) => String(l['error']).includes('already registered')));
    assert.ok(
      log.lines.some((l) => l['error'] === `Register with ${kubelet.socket} failed: UNKNOWN: resource name tpmds.io/tpm is already registered`),
      'the refusal names the kubelet socket, the gRPC status and the kubelet\'s message',
    );
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(log.lines.filter((l) => l['msg'] === 'registration failed: will retry').length, 1);
    kubelet.refuse = undefined;
    await kubelet.until('registration', () => kubelet.registrations.length === 1);
  });
});

describe('tpmds-device-plugin process', function () {
  this.timeout(20000);

  it('on SIGTERM stops, removes its socket and exits 0 (the built binary)', async () => {
    const bin = join(PKG, 'bin/tpmds-device-plugin.js');
    assert.ok(existsSync(join(PKG, 'dist/main.js')), 'packages/device-plugin/dist is missing: run pnpm build first');
    const node = fakeNode();
    writeFileSync(node.firmwareLog, FIRMWARE);
    const kubelet = new FakeKubelet(node.pluginDir);
    await kubelet.start();
    try {
      const child = spawn(process.execPath, [bin, ...node.args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
      await kubelet.until('registration', () => kubelet.updates.length > 0, 10000).catch((e: Error) => {
        child.kill('SIGKILL');
        throw new Error(`${e.message}; stdout: ${out} stderr: ${err}`);
      });
      const socket = join(node.pluginDir, 'tpmds.sock');
      assert.ok(existsSync(socket));
      child.kill('SIGTERM');
      assert.equal(await exited, 0, err);
      assert.equal(existsSync(socket), false);
      const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(lines.some((l) => l['msg'] === 'signal received: stopping' && l['signal'] === 'SIGTERM'));
      assert.equal(lines[lines.length - 1]!['msg'], 'device plugin stopped');
    } finally {
      await kubelet.stop();
      rmSync(node.root, { recursive: true, force: true });
    }
  });
});
