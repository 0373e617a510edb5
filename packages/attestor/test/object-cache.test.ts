// Issue 12, "hot keys stay loaded": counted in TPM commands (never timed). A repeated Sign on a hot
// key is one TPM2_Sign; more keys than the TPM's slots are pushed out and brought back correctly;
// a TPM power cycle with a full cache still signs with the right key.
import assert from 'node:assert/strict';
import { TPM_CC, TPM_RC, akTemplate, openTpm, openTransport, TPM_RH, signingKeyTemplate, srkTemplateEccP256, type Transport } from '@tpmds/tpm2-wire';
import { withSwtpm } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { AttestorTpm, type WrappedKey } from '../src/tpm/attestor-tpm.js';
import { CLOUD_AK_NV, provisionCloudAkTemplate, removePlatformNv } from './fixtures/cloud-ak.js';
import { loadedHandles, signedBy, startCountedAttestor } from './fixtures/counted.js';

describe('object cache: hot keys stay loaded (counted in TPM commands) @swtpm', function () {
  this.timeout(180_000);
  const swtpm = withSwtpm({ transport: 'unix' });

  it('N Sign RPCs on a hot key are exactly N TPM2_Sign and no TPM2_Load or TPM2_ContextLoad (per-command metrics)', async () => {
    const t = await startCountedAttestor(swtpm().address);
    const count = t.count;
    try {
      for (const keyType of ['ecc', 'rsa'] as const) {
        const uid = `u-${keyType}`;
        await t.client.getAK({ uid, keyType });
        await t.client.newKey({ uid, kid: 'k', keyType });
        await t.client.sign({ uid, kid: 'k', data: new Uint8Array([0]) });
        const before = { sign: count(TPM_CC.Sign), load: count(TPM_CC.Load), contextLoad: count(TPM_CC.ContextLoad), flush: count(TPM_CC.FlushContext), session: count(TPM_CC.StartAuthSession) };
        const n = 25;
        for (let i = 0; i < n; i++) await t.client.sign({ uid, kid: 'k', data: new Uint8Array([i]) });
        assert.equal(count(TPM_CC.Sign) - before.sign, n, `${keyType}: one TPM2_Sign per Sign RPC`);
        assert.equal(count(TPM_CC.Load) - before.load, 0, `${keyType}: no TPM2_Load`);
        assert.equal(count(TPM_CC.ContextLoad) - before.contextLoad, 0, `${keyType}: no TPM2_ContextLoad`);
        assert.equal(count(TPM_CC.FlushContext) - before.flush, 0, `${keyType}: no TPM2_FlushContext`);
        assert.equal(count(TPM_CC.StartAuthSession) - before.session, 0, `${keyType}: no TPM2_StartAuthSession (the sign session is kept)`);
      }
    } finally {
      await t.stop();
    }
  });

  it('more keys than slots: each key signs correctly, the TPM never holds more than its slots, a key pushed out comes back with one TPM2_ContextLoad', async () => {
    const commands: number[] = [];
    const tpm = new AttestorTpm(swtpm().address, { onCommand: (cc) => commands.push(cc) });
    try {
      const ak = (await tpm.createAk('ecc')).key;
      const keys: WrappedKey[] = [];
      for (let i = 0; i < 6; i++) keys.push((await tpm.createKey(ak, i % 2 === 0 ? 'ecc' : 'rsa')).key);
      for (let round = 0; round < 3; round++) {
        for (const [i, key] of keys.entries()) {
          const data = new Uint8Array([round, i]);
          commands.length = 0;
          const sig = await tpm.sign(key, data);
          assert.ok(signedBy(key.public, data, sig), `key ${i} round ${round}: the signature is this key's`);
          assert.ok(tpm.cachedObjects.loaded <= 3, `${tpm.cachedObjects.loaded} objects loaded`);
          // Pushed out: ContextSave + FlushContext of the least recently used, ContextLoad of this one.
          assert.equal(commands.filter((c) => c === TPM_CC.Load).length, 0, 'reloaded from its saved context, not its blob');
          assert.equal(commands.filter((c) => c === TPM_CC.ContextLoad).length, 1);
          assert.equal(commands.filter((c) => c === TPM_CC.Sign).length, 1);
        }
      }
      // Two hot keys (with the AK pushed out) are one TPM2_Sign each.
      await tpm.sign(keys[0] as WrappedKey, new Uint8Array([1]));
      await tpm.sign(keys[1] as WrappedKey, new Uint8Array([1]));
      commands.length = 0;
      await tpm.sign(keys[0] as WrappedKey, new Uint8Array([2]));
      await tpm.sign(keys[1] as WrappedKey, new Uint8Array([2]));
      assert.deepEqual(commands, [TPM_CC.Sign, TPM_CC.Sign]);
    } finally {
      await tpm.close();
    }
    // close() leaves nothing loaded.
    assert.deepEqual(await loadedHandles(swtpm().address), []);
  });

  it('another process flushes the kept keys (and loads its own objects at their handle numbers): the next Signs still sign with their own keys', async () => {
    // The attestor and the "other process" share one swtpm connection (swtpm serves one at a time).
    const shared = await openTransport(swtpm().address);
    const borrowed = (): Transport => ({ send: (c) => shared.send(c), close: () => Promise.resolve(), get startups() { return shared.startups; } });
    // The attestor's TPM2_Sign response codes.
    const signRcs: number[] = [];
    const recording = (): Transport => ({
      async send(c) {
        const r = await shared.send(c);
        if (new DataView(c.buffer, c.byteOffset).getUint32(6) === TPM_CC.Sign) signRcs.push(new DataView(r.buffer, r.byteOffset).getUint32(6));
        return r;
      },
      close: () => Promise.resolve(),
      get startups() {
        return shared.startups;
      },
    });
    const tpm = new AttestorTpm(swtpm().address, { openTransport: () => Promise.resolve(recording()) });
    const other = await openTpm(undefined, { transport: borrowed() });
    try {
      const ak = (await tpm.createAk('ecc')).key;
      const keys = [(await tpm.createKey(ak, 'ecc')).key, (await tpm.createKey(ak, 'rsa')).key];
      for (const key of keys) await tpm.sign(key, new Uint8Array([0]));
      const flushAll = async (): Promise<number[]> => {
        const held = await other.getLoadedHandles();
        for (const h of held) await other.flushContext(h);
        return held.filter((h) => h >>> 24 === 0x80);
      };
      // 1. Flushed only: the Sign meets TPM_RC_REFERENCE_H0 and loads its key again.
      assert.ok((await flushAll()).length >= 2);
      for (const [i, key] of keys.entries()) assert.ok(signedBy(key.public, new Uint8Array([1, i]), await tpm.sign(key, new Uint8Array([1, i]))), `key ${i} after the flush`);
      // 2. Flushed and the handle numbers taken by other keys: the TPM refuses to sign with them (the
      // kept session's HMAC covers our key's Name: TPM_RC_BAD_AUTH), the keys are loaded again.
      const was = await flushAll();
      const srk = await other.createPrimary(TPM_RH.OWNER, srkTemplateEccP256());
      const foreign: number[] = [];
      for (const keyType of ['ecc', 'rsa'] as const) {
        const c = await other.create(srk.handle, signingKeyTemplate(keyType));
        foreign.push((await other.load(srk.handle, c.private, c.public)).handle);
      }
      assert.ok(was.some((h) => foreign.includes(h) || h === srk.handle), `a foreign object took one of our handles (${was.map((h) => h.toString(16))} vs ${[srk.handle, ...foreign].map((h) => h.toString(16))})`);
      signRcs.length = 0;
      for (const [i, key] of keys.entries()) assert.ok(signedBy(key.public, new Uint8Array([2, i]), await tpm.sign(key, new Uint8Array([2, i]))), `key ${i} after its handle was taken`);
      assert.ok(signRcs.some((rc) => (0x080 | (rc & 0x3f)) === TPM_RC.BAD_AUTH && rc & 0x080), `a TPM2_Sign was refused with TPM_RC_BAD_AUTH (${signRcs.map((rc) => rc.toString(16))})`);
    } finally {
      await tpm.close();
      await other.close();
      await shared.close();
    }
  });

  // go-tpm-tools' AK template is not noDA: the TPM does not check its Name on TPM2_Sign (see
  // name-checked-sign.test.ts), each of its signatures is checked against the key instead.
  it('the kept cloud attestation key (a primary) gets the same check: flushed and its handle taken by a foreign AK, SignGCEEK still signs with its own key', async () => {
    const shared = await openTransport(swtpm().address);
    const borrowed = (): Transport => ({ send: (c) => shared.send(c), close: () => Promise.resolve(), get startups() { return shared.startups; } });
    const tpm = new AttestorTpm(swtpm().address, { openTransport: () => Promise.resolve(borrowed()) });
    const other = await openTpm(undefined, { transport: borrowed() });
    try {
      await removePlatformNv(other, CLOUD_AK_NV.rsa.template);
      await provisionCloudAkTemplate(other, 'rsa');
      const cloud = await tpm.cloudAk('rsa');
      const data = new Uint8Array([3, 1, 4]);
      assert.ok(signedBy(cloud.public, data, await tpm.cloudAkSign('rsa', data)));
      const held = (await other.getLoadedHandles()).filter((h) => h >>> 24 === 0x80);
      for (const h of await other.getLoadedHandles()) await other.flushContext(h);
      // Restricted RSA signing keys of another process at our handle numbers: each would sign the ticketed digest.
      const srk = await other.createPrimary(TPM_RH.OWNER, srkTemplateEccP256());
      const foreign: number[] = [srk.handle];
      for (let i = 0; i < 2; i++) {
        const c = await other.create(srk.handle, akTemplate('rsa'));
        foreign.push((await other.load(srk.handle, c.private, c.public)).handle);
      }
      assert.ok(held.some((h) => foreign.includes(h)), 'a foreign object took one of our handles');
      assert.ok(signedBy(cloud.public, data, await tpm.cloudAkSign('rsa', data)), 'signed with the cloud attestation key, not the foreign object');
    } finally {
      await tpm.close();
      await removePlatformNv(other, CLOUD_AK_NV.rsa.template).catch(() => undefined);
      await other.close();
      await shared.close();
    }
  });

  it('SignGCEEK with a restricted cloud AK on a full cache: short data is TPM2_Hash + TPM2_Sign and pushes nothing out; only data long enough for a hash sequence makes room for it', async () => {
    const shared = await openTransport(swtpm().address);
    const commands: number[] = [];
    const borrowed = (): Transport => ({ send: (c) => shared.send(c), close: () => Promise.resolve(), get startups() { return shared.startups; } });
    const counted: Transport = { send: (c) => (commands.push(new DataView(c.buffer, c.byteOffset).getUint32(6)), shared.send(c)), close: () => Promise.resolve(), get startups() { return shared.startups; } };
    const sent = (cc: number): boolean => commands.includes(cc);
    const tpm = new AttestorTpm(swtpm().address, { openTransport: () => Promise.resolve(counted) });
    const other = await openTpm(undefined, { transport: borrowed() });
    try {
      await removePlatformNv(other, CLOUD_AK_NV.rsa.template);
      await provisionCloudAkTemplate(other, 'rsa');
      const cloud = await tpm.cloudAk('rsa');
      const ak = (await tpm.createAk('ecc')).key;
      const key = (await tpm.createKey(ak, 'ecc')).key;
      await tpm.sign(key, new Uint8Array([0]));
      const short = new Uint8Array([3, 1, 4]);
      assert.ok(signedBy(cloud.public, short, await tpm.cloudAkSign('rsa', short)));
      assert.equal(tpm.cachedObjects.loaded, 3, 'the cache is full');
      commands.length = 0;
      assert.ok(signedBy(cloud.public, short, await tpm.cloudAkSign('rsa', short)));
      assert.deepEqual(commands, [TPM_CC.Hash, TPM_CC.Sign], 'short data: nothing saved or flushed');
      const long = new Uint8Array(5000).fill(0x41);
      commands.length = 0;
      assert.ok(signedBy(cloud.public, long, await tpm.cloudAkSign('rsa', long)));
      assert.ok(sent(TPM_CC.HashSequenceStart), 'long data: a hash sequence');
      assert.ok(sent(TPM_CC.FlushContext), 'long data: an object pushed out for the sequence');
    } finally {
      await tpm.close();
      await removePlatformNv(other, CLOUD_AK_NV.rsa.template).catch(() => undefined);
      await other.close();
      await shared.close();
    }
  });

  it('a TPM power cycle with a full cache: every key still signs, with its own key (stale handles reloaded from the blobs)', async () => {
    const tpm = new AttestorTpm(swtpm().address);
    try {
      const ak = (await tpm.createAk('rsa')).key;
      const keys: WrappedKey[] = [];
      for (let i = 0; i < 4; i++) keys.push((await tpm.createKey(ak, i % 2 === 0 ? 'rsa' : 'ecc')).key);
      for (const key of keys) await tpm.sign(key, new Uint8Array([0]));
      assert.equal(tpm.cachedObjects.loaded, 3, 'the cache is full');
      for (let cycle = 0; cycle < 2; cycle++) {
        await swtpm().powerCycle();
        // After the reset the same handle numbers are handed out again, in another order.
        for (const [i, key] of [...keys].reverse().entries()) {
          const data = new Uint8Array([cycle, i]);
          assert.ok(signedBy(key.public, data, await tpm.sign(key, data)), `cycle ${cycle}: key ${keys.length - 1 - i}`);
        }
      }
      const q = await tpm.quote(ak, new Uint8Array(16));
      assert.ok(q.length >= 1 && q.every((b) => b.pcrs.size === 24), 'a quote reads every PCR of every bank');
    } finally {
      await tpm.close();
    }
  });
});
