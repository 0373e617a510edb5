// The attestor reclaims the TPM (issue 16, section 1): without a resource manager (swtpm, mssim,
// a bare /dev/tpm0) whatever an earlier process left loaded stays until someone flushes it, and
// with 3 object slots three leftovers made every NewKey and Sign UNAVAILABLE forever. The
// attestor now flushes every transient object and session at connect, after a reconnect and
// after a TPM reset, and logs one warning with the counts; behind /dev/tpmrm* it leaves that to
// the kernel, and memory that stays full is UNAVAILABLE with a message naming what holds it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { TPM_CC, TPM_RH, ekTemplateEccP256, type Tpm } from '@tpmds/tpm2-wire';
import { startSwtpm, type SwtpmInstance } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { AttestorTpm, TpmFlowError, hasResourceManager, heldHandles, type HeldHandles } from '../src/tpm/attestor-tpm.js';
import {
  ATTESTOR_BIN,
  checkAk,
  checkNewKey,
  expectStatus,
  spawnAttestor,
  startInProcess,
  tempDir,
  verifiesWith,
  withTpm,
  type CheckedAk,
  type SpawnedAttestor,
} from './e2e-support.js';

const S = grpc.status;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const hex = (hs: number[]): string[] => hs.map((h) => `0x${h.toString(16)}`);

/** The reproduction: three transient primaries from tpm2-tools, left loaded (what a killed process leaves). */
async function leaveThreePrimaries(swtpm: SwtpmInstance, dir: string): Promise<void> {
  for (let i = 0; i < 3; i++) await swtpm.tpm2('tpm2_createprimary', ['-C', 'o', '-G', 'ecc', '-c', join(dir, `x${i}.ctx`)], { flush: false });
}

/** One loaded and one saved (context-saved) session, as a killed attestor mid-flow can leave. */
async function leaveTwoSessions(tpm: Tpm): Promise<void> {
  await tpm.startAuthSession({ type: 'hmac' });
  const saved = await tpm.startAuthSession({ type: 'policy' });
  await tpm.contextSave(saved.handle);
}

async function held(address: string): Promise<HeldHandles> {
  return withTpm(address, heldHandles);
}

function reclaimWarnings(lines: Record<string, unknown>[]): Record<string, unknown>[] {
  return lines.filter((l) => typeof l['msg'] === 'string' && (l['msg'] as string).startsWith('reclaimed the TPM'));
}

/** The spawned attestor's reclaim warnings, once `n` of them arrived on its stdout (the pipe may lag the RPC answer). */
async function spawnedReclaimWarnings(att: SpawnedAttestor, n: number): Promise<Record<string, unknown>[]> {
  for (let i = 0; i < 40 && reclaimWarnings(logLines(att.stdout())).length < n; i++) await new Promise((r) => setTimeout(r, 50));
  return reclaimWarnings(logLines(att.stdout()));
}

function logLines(text: string): Record<string, unknown>[] {
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('attestor: which transports have a resource manager (the reclaim decision)', () => {
  it('only a device path named tpmrm* has one; swtpm, mssim and a bare /dev/tpm* do not', () => {
    for (const a of ['device:/dev/tpmrm0', 'device:/dev/tpmrm1', 'device:', 'device:/host/dev/tpmrm0']) assert.equal(hasResourceManager(a), true, a);
    for (const a of ['device:/dev/tpm0', 'device:/dev/pts/3', 'swtpm:path=/run/swtpm/sock', 'swtpm:port=2321', 'mssim:host=h,port=2321', 'device:/tmp/tpmrm/tpm0']) {
      assert.equal(hasResourceManager(a), false, a);
    }
    assert.equal(new AttestorTpm('device:/dev/tpmrm0').reclaims, false);
    assert.equal(new AttestorTpm('device:/dev/tpm0').reclaims, true);
    assert.equal(new AttestorTpm('swtpm:port=2321').reclaims, true);
    assert.equal(new AttestorTpm('swtpm:port=2321', { reclaim: false }).reclaims, false);
  });
});

describe('attestor e2e: reclaims a TPM left full by an earlier process @swtpm', function () {
  this.timeout(90_000);
  let swtpm: SwtpmInstance;
  let dirs: ReturnType<typeof tempDir>;

  before(async function () {
    this.timeout(120_000);
    dirs = tempDir('tpmds-reclaim-');
    swtpm = await startSwtpm({ transport: 'unix' });
  });

  after(async function () {
    this.timeout(30_000);
    await swtpm?.stop();
    dirs?.cleanup();
  });

  it('the reproduction (3 tpm2_createprimary objects + a loaded and a saved session): the in-process attestor starts, warns once with the counts, NewKey and Sign work, nothing is left', async () => {
    assert.deepEqual(await held(swtpm.address), { objects: [], sessions: [] }, 'baseline: nothing loaded');
    await leaveThreePrimaries(swtpm, dirs.dir);
    await withTpm(swtpm.address, leaveTwoSessions);
    const before = await held(swtpm.address);
    assert.equal(before.objects.length, 3);
    assert.equal(before.sessions.length, 2);

    const att = await startInProcess({ tpm: swtpm.address, stateDir: join(dirs.dir, 'state-a'), eventLog: join(dirs.dir, 'none') });
    try {
      const ak = checkAk((await att.client.getAK({ uid: 'r', keyType: 'ecc' })).ak, 'ecc');
      for (const kt of ['ecc', 'rsa'] as const) {
        const { key } = checkNewKey(await att.client.newKey({ uid: 'r', kid: kt, keyType: kt }), ak, kt);
        const data = new Uint8Array(randomBytes(24));
        assert.ok(verifiesWith(key, data, (await att.client.sign({ uid: 'r', kid: kt, data })).signed), `${kt} signs`);
      }
      const warnings = reclaimWarnings(att.log.lines);
      assert.equal(warnings.length, 1, 'one warning');
      assert.equal(warnings[0]!['msg'], 'reclaimed the TPM: flushed 3 objects, 2 sessions left by an earlier process');
      assert.equal(warnings[0]!['level'], 'warn');
      assert.equal(warnings[0]!['objects'], 3);
      assert.equal(warnings[0]!['sessions'], 2);
      const metrics = att.metrics.render();
      assert.match(metrics, /tpmds_tpm_reclaimed_total\{kind="object"\} 3/);
      assert.match(metrics, /tpmds_tpm_reclaimed_total\{kind="session"\} 2/);
      assert.doesNotMatch(metrics, /code="(UNAVAILABLE|INTERNAL|UNKNOWN)"/);
      assert.doesNotMatch(metrics, /tpmds_tpm_exhausted_total\{/);
    } finally {
      await att.stop();
    }
    assert.deepEqual(await held(swtpm.address), { objects: [], sessions: [] }, 'back to baseline');
  });

  it('without the reclaim (as behind a resource manager) the same TPM answers UNAVAILABLE naming what holds it, not "retry"', async () => {
    await leaveThreePrimaries(swtpm, dirs.dir);
    await withTpm(swtpm.address, leaveTwoSessions);
    const exhausted: { kind: string; objects: number; sessions: number }[] = [];
    const tpm = new AttestorTpm(swtpm.address, { reclaim: false, onExhausted: (kind, h) => exhausted.push({ kind, objects: h.objects.length, sessions: h.sessions.length }) });
    try {
      const e = await tpm.createAk('ecc').then(() => assert.fail('createAk succeeded on a full TPM'), (err: unknown) => err);
      assert.ok(e instanceof TpmFlowError, String(e));
      assert.equal(e.code, 'UNAVAILABLE');
      assert.match(e.message, /^the TPM has no free object slots \(TPM_RC_OBJECT_MEMORY\): 3 transient objects and 2 sessions are held by another user of the TPM \(not this attestor\)/);
      assert.doesNotMatch(e.message, /retry/);
      assert.deepEqual(exhausted, [{ kind: 'object', objects: 3, sessions: 2 }]);
    } finally {
      await tpm.close();
    }
    // The leftovers are still there (nothing was flushed); a reclaiming AttestorTpm clears them on its first flow.
    assert.equal((await held(swtpm.address)).objects.length, 3);
    const flushed: { objects: number; sessions: number }[] = [];
    const reclaiming = new AttestorTpm(swtpm.address, { onReclaim: (f) => flushed.push(f) });
    try {
      assert.equal(await reclaiming.ready(), true);
      assert.deepEqual(flushed, [{ objects: 3, sessions: 2 }]);
    } finally {
      await reclaiming.close();
    }
    assert.deepEqual(await held(swtpm.address), { objects: [], sessions: [] });
  });

  it('memory filled by another user after the start: the flow reclaims once and runs again', async () => {
    const flushed: { objects: number; sessions: number }[] = [];
    const tpm = new AttestorTpm(swtpm.address, { onReclaim: (f) => flushed.push(f) });
    try {
      assert.equal(await tpm.ready(), true);
      assert.deepEqual(flushed, []);
      // Another user of the same connection-less TPM (the attestor's connection stands in for it here:
      // swtpm serves one client at a time) takes every object slot between two flows.
      const conn = (tpm as unknown as { tpm: Tpm }).tpm;
      for (let i = 0; i < 3; i++) await conn.createPrimary(TPM_RH.OWNER, ekTemplateEccP256());
      const ak = await tpm.createAk('ecc');
      assert.equal(ak.key.keyType, 'ecc');
      assert.deepEqual(flushed, [{ objects: 3, sessions: 0 }]);
    } finally {
      await tpm.close();
    }
    assert.deepEqual(await held(swtpm.address), { objects: [], sessions: [] });
  });

  it('a TPM reset or a reconnect makes the next flow reclaim again (and only then)', async () => {
    const commands: number[] = [];
    const tpm = new AttestorTpm(swtpm.address, { onCommand: (cc) => commands.push(cc) });
    const capabilityCalls = async (): Promise<number> => {
      commands.length = 0;
      assert.equal(await tpm.ready(), true, tpm.notReadyReason);
      return commands.filter((c) => c === TPM_CC.GetCapability).length;
    };
    try {
      assert.ok((await capabilityCalls()) >= 3, 'reclaim at connect');
      assert.equal(await capabilityCalls(), 0, 'no reclaim between flows');
      await swtpm.powerCycle();
      assert.ok((await capabilityCalls()) >= 3, 'reclaim after the reset');
      assert.equal(await capabilityCalls(), 0);
      await tpm.close();
    } finally {
      await tpm.close();
    }
    const again = new AttestorTpm(swtpm.address, { onCommand: (cc) => commands.push(cc) });
    try {
      commands.length = 0;
      assert.equal(await again.ready(), true);
      assert.ok(commands.filter((c) => c === TPM_CC.GetCapability).length >= 3, 'reclaim on a new connection');
    } finally {
      await again.close();
    }
  });
});

describe('attestor e2e: no reclaim behind a device path named tpmrm; full memory is UNAVAILABLE and counted @swtpm', function () {
  this.timeout(60_000);
  let swtpm: SwtpmInstance;
  let dirs: ReturnType<typeof tempDir>;

  before(async function () {
    this.timeout(120_000);
    dirs = tempDir('tpmds-tpmrm-');
    swtpm = await startSwtpm({ transport: 'device' });
  });

  after(async function () {
    this.timeout(30_000);
    await swtpm?.stop();
    dirs?.cleanup();
  });

  it('an attestor on device:.../tpmrm0 leaves foreign objects alone and answers UNAVAILABLE with what holds the TPM', async () => {
    // The pty behind swtpm, under a name the attestor takes for the kernel's resource manager.
    mkdirSync(join(dirs.dir, 'dev'));
    const rm = join(dirs.dir, 'dev', 'tpmrm0');
    symlinkSync(swtpm.address.replace(/^device:/, ''), rm);
    await withTpm(swtpm.address, async (tpm) => {
      for (let i = 0; i < 3; i++) await tpm.createPrimary(TPM_RH.OWNER, ekTemplateEccP256());
    });
    const att = await startInProcess({ tpm: `device:${rm}`, stateDir: join(dirs.dir, 'state'), eventLog: join(dirs.dir, 'none') });
    try {
      const e = await expectStatus(att.client.getAK({ uid: 'rm', keyType: 'ecc' }), S.UNAVAILABLE, 'TPM full');
      assert.match(e.details, /the TPM has no free object slots .*3 transient objects and 0 sessions are held by another user of the TPM \(not this attestor\)/);
      assert.doesNotMatch(e.details, /retry/);
      assert.deepEqual(reclaimWarnings(att.log.lines), [], 'no reclaim');
      assert.match(att.metrics.render(), /tpmds_tpm_exhausted_total\{kind="object"\} 1/);
    } finally {
      await att.stop();
    }
    const objects = await withTpm(swtpm.address, (tpm) => tpm.getHandles(0x80000000));
    assert.equal(objects.length, 3, 'the attestor flushed nothing it did not own');
    await withTpm(swtpm.address, async (tpm) => {
      for (const h of objects) await tpm.flushContext(h);
    });
  });
});

describe('tpmds-attestor binary e2e: SIGKILL while holding objects, restart, every key signs @swtpm', function () {
  this.timeout(120_000);
  let swtpm: SwtpmInstance;
  let dirs: ReturnType<typeof tempDir>;
  let att: SpawnedAttestor | undefined;
  const args = (): string[] => [
    '--tpm', swtpm.address,
    '--listen', `unix:${join(dirs.dir, 'grpc.sock')}`,
    '--health-listen', '127.0.0.1:0',
    '--state-dir', join(dirs.dir, 'state'),
    '--event-log', join(dirs.dir, 'none'),
    '--auth', 'none',
    '--insecure',
  ];

  before(async function () {
    this.timeout(120_000);
    if (!existsSync(ATTESTOR_BIN)) throw new Error(`${ATTESTOR_BIN} is missing: run pnpm build first`);
    dirs = tempDir('tpmds-kill-');
    swtpm = await startSwtpm({ transport: 'unix' });
  });

  after(async function () {
    this.timeout(30_000);
    if (att && att.child.exitCode === null && att.child.signalCode === null) {
      att.child.kill('SIGKILL');
      await att.exited;
    }
    await swtpm?.stop();
    dirs?.cleanup();
  });

  it('the issue reproduction against the binary, then SIGKILLs mid-work: each restart warns with the counts, every key signs, the TPM is back to baseline', async () => {
    await leaveThreePrimaries(swtpm, dirs.dir);
    att = await spawnAttestor(args());
    const ak: CheckedAk = checkAk((await att.client.getAK({ uid: 'k', keyType: 'ecc' })).ak, 'ecc');
    const keys = new Map<string, ReturnType<typeof checkNewKey>['key']>();
    for (const kid of ['a', 'b']) keys.set(kid, checkNewKey(await att.client.newKey({ uid: 'k', kid, keyType: 'ecc' }), ak, 'ecc').key);
    assert.deepEqual(
      (await spawnedReclaimWarnings(att, 1)).map((l) => [l['msg'], l['objects'], l['sessions']]),
      [['reclaimed the TPM: flushed 3 objects, 0 sessions left by an earlier process', 3, 0]],
    );

    let leftBehind = 0;
    for (let round = 0; round < 10; round++) {
      // Keep the TPM busy with flows that hold objects and sessions (AK + key + SRK, policy sessions), then kill.
      const calls: Promise<unknown>[] = [];
      for (let i = 0; i < 12; i++) {
        calls.push(att.client.sign({ uid: 'k', kid: i % 2 ? 'a' : 'b', data: enc(`x${i}`) }).catch(() => undefined));
        calls.push(att.client.newKey({ uid: 'k', kid: `r${round}-${i}`, keyType: 'ecc' }).catch(() => undefined));
      }
      // Kill once the attestor is serving them (the first one answered: the rest are queued or in a
      // flow, so the TPM holds a flow's objects nearly all the time), not after a fixed delay that a
      // loaded machine may spend before the first call even arrives.
      await calls[0];
      await new Promise((r) => setTimeout(r, round * 3));
      att.child.kill('SIGKILL');
      await att.exited;
      att.client.close();
      await Promise.all(calls);
      const h = await held(swtpm.address);
      const n = h.objects.length + h.sessions.length;
      leftBehind += n;

      att = await spawnAttestor(args());
      for (const [kid, key] of keys) {
        const data = new Uint8Array(randomBytes(16));
        assert.ok(verifiesWith(key, data, (await att.client.sign({ uid: 'k', kid, data })).signed), `round ${round}: ${kid} signs`);
      }
      const warnings = await spawnedReclaimWarnings(att, n === 0 ? 0 : 1);
      if (n === 0) assert.deepEqual(warnings, [], 'nothing to reclaim, no warning');
      else {
        assert.equal(warnings.length, 1, `round ${round}: one warning for ${hex([...h.objects, ...h.sessions])}`);
        assert.equal(warnings[0]!['msg'], `reclaimed the TPM: flushed ${h.objects.length} objects, ${h.sessions.length} sessions left by an earlier process`);
      }
      if (leftBehind > 0 && round >= 1) break;
    }
    assert.ok(leftBehind > 0, 'at least one SIGKILL left objects or sessions behind');
    assert.equal(await att.stop(), 0);
    att = undefined;
    assert.deepEqual(await held(swtpm.address), { objects: [], sessions: [] }, 'handle counts back to baseline');
  });
});
