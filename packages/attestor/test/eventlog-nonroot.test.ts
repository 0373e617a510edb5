// The prod shape of the event logs, on swtpm: the built attestor runs as uid/gid 10001 (setpriv
// --reuid 10001 --regid 10001 --clear-groups, as the prod DaemonSet's runAsUser/runAsGroup) while
// the firmware log and systemd's userspace log are root:root 0440, as on every distribution.
// Reading them directly fails: the start-up line, /readyz and the QuoteResponse say so, and
// `tpmds-verifier run` fails naming the logs. With the hand-over (the device plugin's copier,
// the same code prod runs, giving the attestor 0440 copies it owns) the quote carries both logs
// in full and `tpmds-verifier run` passes, the userspace log replayed phase by phase. Needs root
// (to drop to 10001) and `pnpm build`.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { httpGet } from './helpers.js';
import { join } from 'node:path';
import { TPM_ALG, buildEventLog, buildUserspaceLog, parseUserspaceLog, phaseRecord, utf8 } from '@tpmds/tpm2-wire';
import { EventLogCopier, defaultSources } from '../../device-plugin/src/eventlog.js';
import { Logger as PluginLogger } from '../../device-plugin/src/log.js';
import { startSwtpm, type SwtpmInstance } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { REPO, bootEvents, cleanEnv, extendLog, spawnAttestor, tempDir, withTpm, type SpawnedAttestor } from './e2e-support.js';

const UID = 10001;
const AS_ATTESTOR = ['setpriv', '--reuid', String(UID), '--regid', String(UID), '--clear-groups'];
const VERIFIER_BIN = join(REPO, 'packages/verifier/bin/tpmds-verifier.js');
const PHASES = ['enter-initrd', 'leave-initrd', 'sysinit', 'ready'];


function verifier(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [VERIFIER_BIN, ...args], { cwd: REPO, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((res) => child.on('close', (status) => res({ status, stdout, stderr })));
}

function hasSetpriv(): boolean {
  try {
    execFileSync('setpriv', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('event logs for a non-root attestor (prod shape) @swtpm', function () {
  this.timeout(180_000);
  let swtpm: SwtpmInstance;
  let dirs: { dir: string; cleanup: () => void };
  let att: SpawnedAttestor | undefined;
  const firmware = buildEventLog(bootEvents(), [TPM_ALG.SHA1, TPM_ALG.SHA256]);
  const userspace = buildUserspaceLog([
    ...PHASES.slice(0, 2).map(phaseRecord),
    { pcr: 15, data: utf8('machine-id:0f1e2d3c4b5a69788796a5b4c3d2e1f0'), string: 'machine-id:0f1e2d3c4b5a69788796a5b4c3d2e1f0', eventType: 'machine-id' },
    ...PHASES.slice(2).map(phaseRecord),
  ], [TPM_ALG.SHA1, TPM_ALG.SHA256]);
  let host: { firmware: string; userspace: string };

  before(async function () {
    if (process.getuid?.() !== 0 || !hasSetpriv()) this.skip();
    assert.ok(existsSync(join(REPO, 'packages/attestor/dist/event-logs.js')), 'the attestor is not built: run `pnpm build` first');
    dirs = tempDir('tpmds-nonroot-');
    chmodSync(dirs.dir, 0o755); // uid 10001 must reach its state directory and the copies
    // The node: both logs root:root 0440, their measurements in the TPM (swtpm over TCP: no socket file to share).
    mkdirSync(join(dirs.dir, 'host'), { mode: 0o755 });
    host = { firmware: join(dirs.dir, 'host/binary_bios_measurements'), userspace: join(dirs.dir, 'host/tpm2-measure.log') };
    for (const [path, bytes] of [[host.firmware, firmware], [host.userspace, userspace]] as const) {
      writeFileSync(path, bytes);
      chownSync(path, 0, 0);
      chmodSync(path, 0o440);
    }
    swtpm = await startSwtpm({ transport: 'tcp', pcrBanks: ['sha1', 'sha256'] });
    await withTpm(swtpm.address, async (tpm) => {
      await extendLog(tpm, firmware);
      for (const r of parseUserspaceLog(userspace).records) await tpm.pcrExtend(r.pcr, [...r.digests].map(([hashAlg, digest]) => ({ hashAlg, digest })));
    });
    const state = join(dirs.dir, 'state');
    mkdirSync(state, { mode: 0o700 });
    chownSync(state, UID, UID);
  });

  afterEach(async () => {
    await att?.stop();
    att = undefined;
  });

  after(async () => {
    await swtpm?.stop();
    dirs?.cleanup();
  });

  const start = (eventLog: string, userspaceLog: string): Promise<SpawnedAttestor> =>
    spawnAttestor([
      '--tpm', swtpm.address, '--listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0', '--state-dir', join(dirs.dir, 'state'),
      '--event-log', eventLog, '--userspace-log', userspaceLog, '--insecure',
    ], AS_ATTESTOR);

  it('reading the root-owned 0440 logs directly: the start-up line, /readyz and the quote say why; tpmds-verifier run fails naming both logs', async () => {
    att = await start(host.firmware, host.userspace);
    const lines = att.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const warned = lines.find((l) => String(l['msg']).startsWith('firmware event log not sent with quotes'));
    assert.ok(warned, att.stdout());
    assert.match(String(warned['msg']), new RegExp(`binary_bios_measurements: permission denied \\(EACCES\\) \\(the attestor runs as uid ${UID}\\)`));
    assert.ok(lines.some((l) => String(l['msg']).startsWith('userspace event log not sent with quotes')));

    const ready = await httpGet(att.healthAddress, '/readyz');
    assert.equal(ready.status, 200, 'keys are still served');
    assert.match(ready.body, /^ready\nfirmware event log unreadable: .*EACCES.*\nuserspace event log unreadable: .*EACCES/);

    const r = await verifier(['run', '--target', att.address, '--insecure', '--ek-roots', swtpm.caRootPem, '--ek-intermediates', swtpm.caIntermediatePem]);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^ {2}FAIL {2}eventlog\s+the attestor sent no event log; quotes cannot be explained \(the attestor says: .*binary_bios_measurements: permission denied \(EACCES\)/m);
    assert.match(r.stdout, /^ {2}FAIL {2}eventlog\.userspace\s+the attestor sent no userspace event log although the node has one: .*tpm2-measure\.log: permission denied/m);
    assert.match(r.stdout, /^✓ Signature \(Sign\)$/m, 'keys are served all the same');
  });

  it('with the hand-over copies: the quote carries both logs in full and tpmds-verifier run passes, phase by phase', async () => {
    const copies = join(dirs.dir, 'copies');
    const copier = new EventLogCopier({
      dir: copies,
      sources: defaultSources(host.firmware, host.userspace),
      owner: { uid: UID, gid: UID },
      logger: new PluginLogger('error'),
    });
    await copier.prepare();
    await copier.start(60_000);
    await copier.stop();

    att = await start(join(copies, 'binary_bios_measurements'), join(copies, 'tpm2-measure.log'));
    const lines = att.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const fw = lines.find((l) => l['msg'] === 'event log' && l['log'] === 'firmware');
    assert.ok(fw, att.stdout());
    assert.deepEqual([fw['bytes'], fw['sha256']], [firmware.length, createHash('sha256').update(firmware).digest('hex')]);
    assert.deepEqual((await httpGet(att.healthAddress, '/readyz')).body, 'ready\n');

    const r = await verifier(['run', '--target', att.address, '--insecure', '--ek-roots', swtpm.caRootPem, '--ek-intermediates', swtpm.caIntermediatePem, '--json']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout) as { facts: { eventLogEvents?: number; userspaceLog?: { phases: string[]; pcrs: Record<string, number[]> } }; steps: { checks: { name: string; detail: string }[] }[] };
    assert.equal(report.facts.eventLogEvents, bootEvents().length + 1, 'every firmware event (and the Spec ID header)');
    assert.deepEqual(report.facts.userspaceLog?.phases, PHASES);
    assert.deepEqual(report.facts.userspaceLog?.pcrs, { sha1: [11, 15], sha256: [11, 15] });
    const detail = report.steps.flatMap((s) => s.checks).find((c) => c.name === 'eventlog.userspace.replay')!.detail;
    assert.match(detail, /PCR 11: enter-initrd -> leave-initrd -> sysinit -> ready/);
  });

  it('a tampered userspace copy fails tpmds-verifier run, naming the record; without one, the unexplained PCRs fail, named (a warning with --allow-missing-eventlog)', async () => {
    const copies = join(dirs.dir, 'tampered');
    mkdirSync(copies, { mode: 0o750 });
    chownSync(copies, 0, UID);
    const give = (name: string, bytes: Uint8Array | string): string => {
      const path = join(copies, name);
      writeFileSync(path, bytes);
      chmodSync(path, 0o440);
      chownSync(path, UID, UID);
      return path;
    };
    const fw = give('binary_bios_measurements', firmware);
    // "ready" logged with the digest of another word: the TPM saw the real one.
    const forged = new TextDecoder().decode(userspace).replace(
      createHash('sha256').update('ready').digest('hex'), createHash('sha256').update('ready!').digest('hex'));
    const us = give('tpm2-measure.log', forged);
    att = await start(fw, us);
    const bad = await verifier(['run', '--target', att.address, '--insecure', '--ek-roots', swtpm.caRootPem, '--ek-intermediates', swtpm.caIntermediatePem]);
    assert.equal(bad.status, 1, bad.stdout + bad.stderr);
    assert.match(bad.stdout, /^ {2}FAIL {2}eventlog\.userspace\.records\s+record #5 phase "ready": its sha256 digest/m);
    assert.match(bad.stdout, /^ {2}FAIL {2}eventlog\.userspace\.replay\s+the userspace log does not replay to the quoted PCRs: sha256 PCR 11:/m);
    await att.stop();

    att = await start(fw, join(copies, 'no-such-log'));
    const none = await verifier(['run', '--target', att.address, '--insecure', '--ek-roots', swtpm.caRootPem, '--ek-intermediates', swtpm.caIntermediatePem]);
    assert.equal(none.status, 1, none.stdout + none.stderr);
    assert.match(none.stdout, /^ {2}FAIL {2}eventlog\.unexplained\s+sha1 PCRs 11,15, sha256 PCRs 11,15 hold values no event log explains.*\/run\/log\/systemd\/tpm2-measure\.log/m);
    const allowed = await verifier(['run', '--target', att.address, '--insecure', '--allow-missing-eventlog', '--ek-roots', swtpm.caRootPem, '--ek-intermediates', swtpm.caIntermediatePem]);
    assert.equal(allowed.status, 0, allowed.stdout + allowed.stderr);
    assert.match(allowed.stdout, /^ {2}warn {2}eventlog\.unexplained\s+sha1 PCRs 11,15, sha256 PCRs 11,15 hold values no event log explains/m);
  });
});
