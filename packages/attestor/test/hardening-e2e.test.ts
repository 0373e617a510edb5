// Faults on a real attestor (in-process, real TpmBackend) on swtpm: the TPM dying under load and
// coming back, power cycles under load, TPM_RC_RETRY/YIELDED/TESTING and dictionary-attack
// lockout, payload sizes the TPM cannot take, and a state directory that turns read-only or
// full (a small tmpfs; needs root, skipped otherwise). docs/RELIABILITY.md lists the figures.
import assert from 'node:assert/strict';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { mkdirSync, readdirSync, writeFileSync, rmSync } from 'node:fs';
import { httpGet } from './helpers.js';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { TPM_RC, type Tpm } from '@tpmds/tpm2-wire';
import { decodePublicKeyPem, encodeImportBlob } from '@tpmds/protocol/formats';
import { AttestorClient } from '@tpmds/protocol/proto';
import { provisionSwtpmState, startSwtpm, type ProvisionedState, type SwtpmInstance } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { FaultProxy } from './fault-proxy.js';
import { ekPublicFromSpki, importBlobBytes, rejection, sleep, startWithConfig, tempDir, verifiesWith, withTpm, type ConfiguredAttestor } from './e2e-support.js';

const S = grpc.status;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

const httpStatus = async (address: string, path: string): Promise<number> => (await httpGet(address, path)).status;

/** Polls /readyz until it answers `want` (200 or 503); fails after `ms`. */
async function readyBecomes(att: ConfiguredAttestor, want: number, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  let last = 0;
  while (Date.now() < end) {
    last = await httpStatus(att.running.healthAddress, '/readyz');
    if (last === want) return;
    await sleep(100);
  }
  assert.fail(`/readyz stayed ${last}, expected ${want}`);
}

/** A gRPC status of a finished call: 0 for OK. */
async function outcome(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return S.OK;
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e; // a wrong signature is never an outcome
    return (e as grpc.ServiceError).code;
  }
}

describe('hardening e2e: TPM faults and state-directory faults @swtpm', function () {
  this.timeout(120_000);
  let dirs: ReturnType<typeof tempDir>;
  let state: ProvisionedState;
  let swtpm: SwtpmInstance;
  let proxy: FaultProxy;
  let att: ConfiguredAttestor;
  let client: AttestorClient;
  /** Public keys of the keys made here, by kid. */
  const keys = new Map<string, KeyObject>();

  const socketOf = (s: SwtpmInstance): string => s.address.slice('swtpm:path='.length);

  before(async function () {
    this.timeout(120_000);
    dirs = tempDir('tpmds-hard-');
    state = await provisionSwtpmState();
    swtpm = await startSwtpm({ transport: 'unix', state });
    proxy = await FaultProxy.start(join(dirs.dir, 'tpm.sock'), socketOf(swtpm));
    att = await startWithConfig({ tpm: proxy.address }, { address: proxy.address }, join(dirs.dir, 'state'));
    client = new AttestorClient(att.running.address, grpc.credentials.createInsecure());
    for (const kt of ['rsa', 'ecc'] as const) {
      await client.getAK({ uid: `pod-${kt}`, keyType: kt });
      const r = await client.newKey({ uid: `pod-${kt}`, kid: `k-${kt}`, keyType: kt });
      keys.set(`k-${kt}`, createPublicKey({ key: Buffer.from(decodePublicKeyPem(r.public)), format: 'der', type: 'spki' }));
    }
  });

  after(async function () {
    this.timeout(60_000);
    client?.close();
    await att?.stop();
    await proxy?.close();
    await swtpm?.stop();
    await state?.dispose();
    dirs?.cleanup();
  });

  async function signs(kid: string, data = enc(kid)): Promise<void> {
    const uid = kid.endsWith('rsa') ? 'pod-rsa' : 'pod-ecc';
    const r = await client.sign({ uid, kid, data });
    assert.ok(verifiesWith(keys.get(kid)!, data, r.signed), `${kid}'s signature verifies`);
  }

  it('TPM_RC_RETRY, _YIELDED and _TESTING are resent and the call succeeds; a TPM that keeps answering them is UNAVAILABLE, not INTERNAL', async () => {
    proxy.inject.push(TPM_RC.RETRY, TPM_RC.YIELDED, TPM_RC.TESTING, TPM_RC.RETRY);
    await signs('k-rsa');
    assert.equal(proxy.inject.length, 0);
    proxy.inject.push(...Array.from({ length: 40 }, () => TPM_RC.RETRY));
    const e = await rejection(client.sign({ uid: 'pod-ecc', kid: 'k-ecc', data: enc('busy') }));
    assert.equal(e.code, S.UNAVAILABLE, e.details);
    assert.match(e.details, /kept answering TPM_RC_RETRY/);
    proxy.inject.length = 0;
    await signs('k-ecc');
  });

  it('TPM_RC_LOCKOUT is FAILED_PRECONDITION saying how to clear it; the next call works', async () => {
    proxy.inject.push(TPM_RC.LOCKOUT);
    const e = await rejection(client.sign({ uid: 'pod-rsa', kid: 'k-rsa', data: enc('locked') }));
    assert.equal(e.code, S.FAILED_PRECONDITION, e.details);
    assert.match(e.details, /dictionary-attack lockout.*DictionaryAttackLockReset/);
    await signs('k-rsa');
  });

  it('ImportBlob/ImportSigningKey fields at the size limits reach the real TPM and are refused as payloads (never INTERNAL)', async () => {
    const ek = ekPublicFromSpki((await client.getEKCert('rsa')).ekPub, 'rsa');
    const good = importBlobBytes(ek, { kind: 'sealed', data: enc('sealed') });
    const { decodeImportBlob } = await import('@tpmds/protocol/formats');
    const parts = decodeImportBlob(good);
    for (const duplicate of [new Uint8Array(3000).fill(7), new Uint8Array(3712 - parts.encryptedSeed.length - parts.publicArea.length).fill(9)]) {
      const code = await outcome(client.importBlob({ uid: 'pod-rsa', encryptedKey: encodeImportBlob({ ...parts, duplicate }) }));
      assert.ok(code === S.INVALID_ARGUMENT || code === S.FAILED_PRECONDITION, `duplicate of ${duplicate.length} bytes: ${S[code]}`);
    }
    const big = await rejection(client.importSigningKey({ uid: 'pod-rsa', kid: 'big', encryptedSigningKey: encodeImportBlob({ ...parts, duplicate: new Uint8Array(1 << 20) }) }));
    assert.equal(big.code, S.INVALID_ARGUMENT);
    assert.match(big.details, /ImportBlob\.duplicate is 1048576 bytes/);
    assert.equal((await client.importBlob({ uid: 'pod-rsa', encryptedKey: good })).decryptedKey.length, 6, 'the TPM is fine afterwards');
  });

  it('swtpm killed under load: calls end UNAVAILABLE promptly, readiness fails; swtpm back: readiness recovers by itself and the earlier keys sign', async () => {
    let stop = false;
    const codes: number[] = [];
    let firstFailureAfterKillMs: number | undefined;
    let killedAt = 0;
    const loop = async (kid: string): Promise<void> => {
      while (!stop) {
        const code = await outcome(signs(kid, enc(`${kid}-${codes.length}`)));
        codes.push(code);
        if (code !== S.OK && killedAt > 0 && firstFailureAfterKillMs === undefined) firstFailureAfterKillMs = Date.now() - killedAt;
        if (code !== S.OK) await sleep(20);
      }
    };
    const loops = ['k-rsa', 'k-ecc', 'k-rsa', 'k-ecc'].map(loop);
    await sleep(500);
    const okBeforeKill = codes.filter((c) => c === S.OK).length;
    killedAt = Date.now();
    process.kill(swtpm.pid, 'SIGKILL');
    proxy.upstream = undefined; // the socket file of a killed swtpm refuses connections; so does the proxy
    proxy.dropAll();
    await readyBecomes(att, 503);
    await sleep(300);
    const duringOutage = codes.length;
    await swtpm.stop(); // reaps the killed process, keeps `state`
    swtpm = await startSwtpm({ transport: 'unix', state });
    proxy.upstream = socketOf(swtpm);
    await readyBecomes(att, 200);
    await sleep(300);
    stop = true;
    await Promise.all(loops);
    const failures = codes.filter((c) => c !== S.OK);
    assert.ok(okBeforeKill > 0, 'calls succeeded before the kill');
    assert.ok(failures.length > 0 && duringOutage > okBeforeKill, 'calls were answered during the outage');
    assert.deepEqual([...new Set(failures.map((c) => S[c]))], ['UNAVAILABLE'], 'every failed call is UNAVAILABLE (no hang, no INTERNAL)');
    assert.ok(firstFailureAfterKillMs !== undefined && firstFailureAfterKillMs < 10_000, `the first UNAVAILABLE came ${firstFailureAfterKillMs} ms after the kill`);
    assert.equal(codes[codes.length - 1], S.OK, 'calls succeed again after the TPM is back');
    await signs('k-rsa');
    await signs('k-ecc');
  });

  it('power cycles (swtpm control channel) under load: calls succeed or are UNAVAILABLE "reset during the call", every signature verifies, quotes work after, no handle leaks', async () => {
    let stop = false;
    const codes: number[] = [];
    const details: string[] = [];
    const loop = async (i: number): Promise<void> => {
      for (let n = 0; !stop; n++) {
        const kid = i % 2 === 0 ? 'k-rsa' : 'k-ecc';
        try {
          if (i === 3) await client.quote({ uid: 'pod-ecc', nonce: enc(`n${n}`) });
          else await signs(kid, enc(`${i}-${n}`));
          codes.push(S.OK);
        } catch (e) {
          if (e instanceof assert.AssertionError) throw e;
          codes.push((e as grpc.ServiceError).code);
          details.push((e as grpc.ServiceError).details);
        }
      }
    };
    const loops = [0, 1, 2, 3].map(loop);
    for (let k = 0; k < 5; k++) {
      await sleep(300);
      await swtpm.powerCycle();
    }
    await sleep(500);
    stop = true;
    await Promise.all(loops);
    const failures = codes.filter((c) => c !== S.OK);
    assert.ok(codes.length - failures.length > 10, `${codes.length - failures.length} calls succeeded across the cycles`);
    for (let i = 0; i < failures.length; i++) {
      assert.equal(S[failures[i]!], 'UNAVAILABLE', details[i]);
      assert.match(details[i]!, /reset during the call|TPM2_Startup|retry/, details[i]);
    }
    await signs('k-rsa');
    await client.quote({ uid: 'pod-rsa', nonce: enc('after') });
    // The attestor holds the (single-client) swtpm connection: stop it to look at the TPM.
    client.close();
    await att.stop();
    const handles = await withTpm(swtpm.address, (tpm: Tpm) => tpm.getLoadedHandles());
    assert.deepEqual(handles, [], 'no transient objects or sessions left on the TPM');
    att = await startWithConfig({ tpm: proxy.address }, { address: proxy.address }, join(dirs.dir, 'state'));
    client = new AttestorClient(att.running.address, grpc.credentials.createInsecure());
    await signs('k-ecc');
  });

  it('--max-keys-per-identity on the real backend: a full identity gets RESOURCE_EXHAUSTED before any TPM work; its existing AK and keys still work', async () => {
    client.close();
    await att.stop(); // one swtpm client at a time
    const limited = await startWithConfig({ tpm: proxy.address, maxKeysPerIdentity: 4 }, { address: proxy.address }, join(dirs.dir, 'state'));
    const c = new AttestorClient(limited.running.address, grpc.credentials.createInsecure());
    try {
      // The store holds 2 AKs and 2 keys of the caller (--auth none: one identity).
      await readyBecomes(limited, 200); // the start's own TPM work is done
      await sleep(200);
      const before = proxy.forwarded;
      for (const call of [
        () => c.newKey({ uid: 'pod-ecc', kid: 'one-more', keyType: 'ecc' }),
        () => c.getAK({ uid: 'pod-new', keyType: 'ecc' }),
        () => c.importSigningKey({ uid: 'pod-ecc', kid: 'imp', encryptedSigningKey: encodeImportBlob({ duplicate: new Uint8Array(100), encryptedSeed: new Uint8Array(256), publicArea: new Uint8Array([0, 1, 0, 11, 0, 4, 0, 0x72, 0, 0]) }) }),
      ]) {
        const e = await rejection(call());
        assert.ok(e.code === S.RESOURCE_EXHAUSTED || e.code === S.INVALID_ARGUMENT, `${S[e.code]}: ${e.details}`);
        if (e.code === S.RESOURCE_EXHAUSTED) assert.match(e.details, /already has 4 AKs and keys.*--max-keys-per-identity/);
      }
      assert.equal(proxy.forwarded, before, 'no TPM command was sent for refused creations');
      assert.equal((await rejection(c.newKey({ uid: 'pod-ecc', kid: 'one-more', keyType: 'ecc' }))).code, S.RESOURCE_EXHAUSTED);
      await c.getAK({ uid: 'pod-ecc', keyType: 'ecc' });
      const data = enc('quota');
      assert.ok(verifiesWith(keys.get('k-ecc')!, data, (await c.sign({ uid: 'pod-ecc', kid: 'k-ecc', data })).signed));
    } finally {
      c.close();
      await limited.stop();
      att = await startWithConfig({ tpm: proxy.address }, { address: proxy.address }, join(dirs.dir, 'state'));
      client = new AttestorClient(att.running.address, grpc.credentials.createInsecure());
    }
  });

  describe('the state directory on a small tmpfs (root only)', () => {
    let mnt: string;
    let tatt: ConfiguredAttestor;
    let tclient: AttestorClient;
    let mounted = false;

    before(async function () {
      if (process.getuid?.() !== 0) return this.skip();
      mnt = join(dirs.dir, 'tmpfs');
      mkdirSync(mnt);
      try {
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k,mode=0700', 'tmpfs', mnt]);
        mounted = true;
      } catch {
        return this.skip();
      }
      client.close();
      await att.stop(); // one swtpm client at a time
      tatt = await startWithConfig({ tpm: proxy.address }, { address: proxy.address }, join(mnt, 'state'));
      tclient = new AttestorClient(tatt.running.address, grpc.credentials.createInsecure());
    });

    after(async function () {
      tclient?.close();
      await tatt?.stop();
      if (mounted) execFileSync('umount', ['-l', mnt]);
      if (mnt !== undefined) {
        att = await startWithConfig({ tpm: proxy.address }, { address: proxy.address }, join(dirs.dir, 'state'));
        client = new AttestorClient(att.running.address, grpc.credentials.createInsecure());
      }
    });

    it('full: NewKey is RESOURCE_EXHAUSTED, readiness fails, existing keys sign; space back: readiness and NewKey recover', async () => {
      await tclient.getAK({ uid: 'pod', keyType: 'ecc' });
      const made = await tclient.newKey({ uid: 'pod', kid: 'before', keyType: 'ecc' });
      const key = createPublicKey({ key: Buffer.from(decodePublicKeyPem(made.public)), format: 'der', type: 'spki' });
      await readyBecomes(tatt, 200);
      // Fill the file system.
      const filler = join(mnt, 'filler');
      try {
        writeFileSync(filler, new Uint8Array(1 << 20));
      } catch {
        // ENOSPC: as full as it gets
      }
      const e = await rejection(tclient.newKey({ uid: 'pod', kid: 'full', keyType: 'ecc' }));
      assert.equal(e.code, S.RESOURCE_EXHAUSTED, e.details);
      assert.match(e.details, /file system is full/);
      await readyBecomes(tatt, 503);
      const sig = await tclient.sign({ uid: 'pod', kid: 'before', data: enc('still') });
      assert.ok(verifiesWith(key, enc('still'), sig.signed));
      assert.ok(!readdirSync(join(mnt, 'state', 'keys', 'pod')).some((n) => n.startsWith('.')), 'no temp files left behind');
      rmSync(filler);
      await readyBecomes(tatt, 200);
      await tclient.newKey({ uid: 'pod', kid: 'full', keyType: 'ecc' });
    });

    it('read-only: NewKey is FAILED_PRECONDITION, readiness fails, Sign works; writable again: recovers', async () => {
      execFileSync('mount', ['-o', 'remount,ro', mnt]);
      try {
        const e = await rejection(tclient.newKey({ uid: 'pod', kid: 'ro', keyType: 'ecc' }));
        assert.equal(e.code, S.FAILED_PRECONDITION, e.details);
        assert.match(e.details, /read-only/);
        await readyBecomes(tatt, 503);
        await tclient.sign({ uid: 'pod', kid: 'before', data: enc('ro') });
      } finally {
        execFileSync('mount', ['-o', 'remount,rw', mnt]);
      }
      await readyBecomes(tatt, 200);
      await tclient.newKey({ uid: 'pod', kid: 'ro', keyType: 'ecc' });
    });
  });
});
