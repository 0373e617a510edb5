// tpmds-device-plugin flags: defaults (the paths the manifests rely on), --help, and errors that
// name the flag.
import assert from 'node:assert/strict';
import { runDevicePlugin } from '../src/cli.js';
import { FLAGS, parseArgs } from '../src/config.js';

async function run(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const status = await runDevicePlugin(args, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } });
  return { status, stdout, stderr };
}

describe('tpmds-device-plugin flags', () => {
  it('defaults to the paths documented in manifests/README.md', () => {
    const p = parseArgs([]);
    assert.equal(p.kind, 'run');
    const c = p.config;
    assert.equal(c.resourceName, 'tpmds.io/tpm');
    assert.equal(c.count, 8);
    assert.equal(c.kubeletSocket, '/var/lib/kubelet/device-plugins/kubelet.sock');
    assert.equal(c.deviceProbe, '/dev/tpmrm0');
    assert.equal(c.eventLogDir, '/var/lib/tpmds-device-plugin/eventlog');
    assert.equal(c.eventLogMount, '/run/tpmds/eventlog');
    assert.deepEqual(c.stateOwner, { uid: 10001, gid: 10001 });
  });

  it('--help lists every flag and exits 0', async () => {
    const r = await run(['--help']);
    assert.equal(r.status, 0);
    for (const f of FLAGS) assert.ok(r.stdout.includes(f.flag), f.flag);
  });

  for (const [args, message] of [
    [['--count', '0'], '--count: must be between 1 and 1000, got 0'],
    [['--state-owner', 'tss'], '--state-owner: expected UID:GID (numbers), got "tss"'],
    [['--resource-name', 'tpm'], '--resource-name: expected DOMAIN/NAME such as tpmds.io/tpm, got "tpm"'],
    [['--plugin-dir', 'relative'], '--plugin-dir: expected an absolute path, got "relative"'],
    [['--socket-name', 'kubelet.sock'], "--socket-name: kubelet.sock is the kubelet's own socket"],
    [['--event-log-dir', '/var/lib/tpmds'], '--event-log-dir: must not be, contain or lie inside --state-dir (/var/lib/tpmds)'],
    [['--event-log-dir', '/var/lib/tpmds/eventlog'], '--event-log-dir: must not be, contain or lie inside --state-dir (/var/lib/tpmds)'],
    [['--state-dir', '/var/lib/tpmds-device-plugin/eventlog/state'], '--event-log-dir: must not be, contain or lie inside --state-dir (/var/lib/tpmds-device-plugin/eventlog/state)'],
    [['--event-log-mount', '/var/lib/tpmds/'], '--event-log-mount: must not be, contain or lie inside --state-mount (/var/lib/tpmds)'],
    [['--count', '2', '--count=3'], '--count: given more than once'],
    [['--bogus'], '--bogus: unknown flag (see --help)'],
    [['--count'], '--count: needs a value (N)'],
  ] as const) {
    it(`rejects ${args.join(' ')} naming the flag (exit 2)`, async () => {
      const r = await run([...args]);
      assert.equal(r.status, 2);
      assert.equal(r.stderr.split('\n')[0], `tpmds-device-plugin: ${message}`);
    });
  }
});
