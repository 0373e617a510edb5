// Issue 12: without a resource manager another process can flush a kept-loaded key and load its
// own object at the same handle number. A Sign with a kept noDA userWithAuth key is authorized by
// a kept-open HMAC session whose HMAC covers the key's expected Name, so the TPM itself refuses a
// foreign object there (TPM_RC_BAD_AUTH) instead of signing; keys that cannot be checked that way
// (a PCR-bound key, authorized by its policy) keep the check of each signature. Counted in TPM
// commands and response codes, never timed.
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import {
  TPMA_OBJECT, TPM_ALG, TPM_CC, TPM_RC, TPM_RH, createImportBlob, duplicateObject, keyObjectToPublic, openTpm, openTransport, pcrSelection, sensitiveFromPrivateKey,
  type TPMT_PUBLIC, type Tpm, type Transport,
} from '@tpmds/tpm2-wire';
import { withSwtpm } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { AttestorTpm, type WrappedKey } from '../src/tpm/attestor-tpm.js';
import { loadedHandles, signedBy } from './fixtures/counted.js';

/** One command as sent by the attestor and the TPM's response code. */
interface Sent {
  cc: number;
  rc: number;
  /** The handle of the first session in the authorization area (0 without sessions). */
  session: number;
}

/**
 * The attestor and "another process" on one swtpm connection (swtpm serves one at a time): each
 * gets a transport of its own over it; the attestor's records what it sends.
 */
async function sharedTpm(address: string): Promise<{
  attestor: AttestorTpm;
  other: Tpm;
  sent: Sent[];
  reclaimed: { objects: number; sessions: number }[];
  /** Runs before each command of the attestor reaches the TPM (the other process acting in between). */
  before: { hook?: (cmd: Uint8Array) => Promise<void> };
  close: () => Promise<void>;
}> {
  const shared = await openTransport(address);
  const sent: Sent[] = [];
  const before: { hook?: (cmd: Uint8Array) => Promise<void> } = {};
  const recording = (): Transport => ({
    async send(cmd) {
      await before.hook?.(cmd);
      const rsp = await shared.send(cmd);
      const view = new DataView(cmd.buffer, cmd.byteOffset, cmd.byteLength);
      const cc = view.getUint32(6);
      const handles = cc === TPM_CC.Sign ? 1 : 0;
      const session = view.getUint16(0) === 0x8002 && handles > 0 ? view.getUint32(10 + 4 * handles + 4) : 0;
      sent.push({ cc, rc: new DataView(rsp.buffer, rsp.byteOffset, rsp.byteLength).getUint32(6), session });
      return rsp;
    },
    close: () => Promise.resolve(),
    get startups() {
      return shared.startups;
    },
  });
  const borrowed = (): Transport => ({ send: (c) => shared.send(c), close: () => Promise.resolve(), get startups() { return shared.startups; } });
  const reclaimed: { objects: number; sessions: number }[] = [];
  const attestor = new AttestorTpm(address, { openTransport: () => Promise.resolve(recording()), onReclaim: (r) => reclaimed.push(r) });
  const other = await openTpm(undefined, { transport: borrowed() });
  return {
    attestor, other, sent, reclaimed, before,
    close: async () => {
      await attestor.close();
      await other.close();
      await shared.close();
    },
  };
}

const count = (sent: Sent[], cc: number): number => sent.filter((s) => s.cc === cc).length;
const isHmacSession = (h: number): boolean => h >>> 24 === 0x02;
const base = (rc: number): number => (rc & 0x080 ? 0x080 | (rc & 0x3f) : rc);

describe('name-checked Sign: the TPM checks that a kept handle holds the key @swtpm', function () {
  this.timeout(180_000);
  const swtpm = withSwtpm({ transport: 'unix' });

  it('N Signs on a hot key are N TPM2_Sign authorized by one kept HMAC session: no Load, ContextLoad, FlushContext or StartAuthSession after the first', async () => {
    const t = await sharedTpm(swtpm().address);
    try {
      const ak = (await t.attestor.createAk('ecc')).key;
      for (const keyType of ['ecc', 'rsa'] as const) {
        const key = (await t.attestor.createKey(ak, keyType)).key;
        await t.attestor.sign(key, new Uint8Array([0]));
        t.sent.length = 0;
        const n = 20;
        for (let i = 0; i < n; i++) {
          const data = new Uint8Array([1, i]);
          assert.ok(signedBy(key.public, data, await t.attestor.sign(key, data)), `${keyType} signature ${i}`);
        }
        assert.equal(count(t.sent, TPM_CC.Sign), n, `${keyType}: one TPM2_Sign per Sign`);
        assert.equal(t.sent.length, n, `${keyType}: nothing else (${t.sent.map((s) => s.cc.toString(16))})`);
        assert.ok(t.sent.every((s) => isHmacSession(s.session) && s.session === t.sent[0]!.session && s.rc === 0), `${keyType}: every TPM2_Sign authorized by the same HMAC session`);
      }
    } finally {
      await t.close();
    }
    // close() flushed the session along with the kept objects.
    assert.deepEqual(await loadedHandles(swtpm().address), []);
  });

  it('foreign objects at our handles (our session intact): TPM2_Sign fails with TPM_RC_BAD_AUTH, the key is loaded again and signs; no foreign signature is ever returned', async () => {
    const t = await sharedTpm(swtpm().address);
    try {
      const ak = (await t.attestor.createAk('ecc')).key;
      const keys = [(await t.attestor.createKey(ak, 'ecc')).key, (await t.attestor.createKey(ak, 'rsa')).key];
      for (const key of keys) await t.attestor.sign(key, new Uint8Array([0]));
      for (let round = 0; round < 2; round++) {
        // The other process flushes our objects (not our session) and loads signing keys of its own
        // at their handle numbers: without the Name check each would sign our digest.
        const ours = (await t.other.getLoadedHandles()).filter((h) => h >>> 24 === 0x80);
        for (const h of ours) await t.other.flushContext(h);
        const foreign: { handle: number; public: TPMT_PUBLIC }[] = [];
        const software = [generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey];
        for (const priv of software) {
          const pub: TPMT_PUBLIC = { ...keyObjectToPublic(priv), objectAttributes: TPMA_OBJECT.sign | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.noDA };
          foreign.push({ handle: (await t.other.loadExternal(pub, sensitiveFromPrivateKey(priv), TPM_RH.NULL)).handle, public: pub });
        }
        assert.ok(ours.some((h) => foreign.some((f) => f.handle === h)), `a foreign key took one of our handles (${ours.map((h) => h.toString(16))})`);
        t.sent.length = 0;
        for (const [i, key] of keys.entries()) {
          const data = new Uint8Array([2, round, i]);
          const sig = await t.attestor.sign(key, data);
          assert.ok(signedBy(key.public, data, sig), `round ${round} key ${i}: signed by the key`);
          assert.ok(foreign.every((f) => !signedBy(f.public, data, sig)), `round ${round} key ${i}: not by a foreign key`);
        }
        const signRcs = t.sent.filter((s) => s.cc === TPM_CC.Sign).map((s) => base(s.rc));
        assert.ok(signRcs.includes(TPM_RC.BAD_AUTH), `the TPM refused to sign with the foreign object (TPM2_Sign answered ${signRcs.map((rc) => rc.toString(16))})`);
        assert.ok(signRcs.every((rc) => rc === 0 || rc === TPM_RC.BAD_AUTH), 'no TPM2_Sign succeeded with a foreign object');
        assert.ok(count(t.sent, TPM_CC.Load) >= 1, 'loaded again from the blobs');
        assert.ok(t.reclaimed.length > 0, 'the foreign objects were reclaimed (no resource manager: the attestor is the rightful user)');
      }
    } finally {
      await t.close();
    }
  });

  it('a process that puts its own key at the handle before every TPM2_Sign: UNAVAILABLE after the reload, never its signature', async () => {
    const t = await sharedTpm(swtpm().address);
    try {
      const ak = (await t.attestor.createAk('ecc')).key;
      const key = (await t.attestor.createKey(ak, 'ecc')).key;
      await t.attestor.sign(key, new Uint8Array([0]));
      const priv = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const foreignPub: TPMT_PUBLIC = { ...keyObjectToPublic(priv), objectAttributes: TPMA_OBJECT.sign | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.noDA };
      let replaced = 0;
      t.before.hook = async (cmd) => {
        const view = new DataView(cmd.buffer, cmd.byteOffset, cmd.byteLength);
        if (view.getUint32(6) !== TPM_CC.Sign) return;
        const handle = view.getUint32(10);
        await t.other.flushContext(handle);
        // Loaded into the lowest free slot: load until a copy lands at the handle, flush the others.
        const extra: number[] = [];
        for (let i = 0; i < 3; i++) {
          const loaded = await t.other.loadExternal(foreignPub, sensitiveFromPrivateKey(priv), TPM_RH.NULL);
          if (loaded.handle === handle) break;
          extra.push(loaded.handle);
        }
        for (const h of extra) await t.other.flushContext(h);
        replaced++;
      };
      t.sent.length = 0;
      await assert.rejects(t.attestor.sign(key, new Uint8Array([1])), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'UNAVAILABLE', e.message);
        assert.match(e.message, /TPM2_Sign was refused twice \(TPM_RC_BAD_AUTH\)/);
        return true;
      });
      assert.equal(replaced, 2);
      assert.deepEqual(t.sent.filter((s) => s.cc === TPM_CC.Sign).map((s) => base(s.rc)), [TPM_RC.BAD_AUTH, TPM_RC.BAD_AUTH]);
      delete t.before.hook;
      assert.ok(signedBy(key.public, new Uint8Array([2]), await t.attestor.sign(key, new Uint8Array([2]))), 'signs again once the other process stops');
    } finally {
      await t.close();
    }
  });

  it('our session flushed by another process: the Sign starts a new one (no reload); its handle number taken by another HMAC session: refused, reclaimed, signs', async () => {
    const t = await sharedTpm(swtpm().address);
    try {
      const ak = (await t.attestor.createAk('rsa')).key;
      const key = (await t.attestor.createKey(ak, 'ecc')).key;
      await t.attestor.sign(key, new Uint8Array([0]));
      const sessionOf = async (): Promise<number> => {
        const s = (await t.other.getLoadedHandles()).filter((h) => h >>> 24 !== 0x80);
        assert.equal(s.length, 1, 'the attestor keeps one session between flows');
        return s[0]!;
      };
      const kept = await sessionOf();
      // 1. Flushed: TPM_RC_REFERENCE_S0, one new StartAuthSession, the key stays loaded.
      await t.other.flushContext(kept);
      t.sent.length = 0;
      assert.ok(signedBy(key.public, new Uint8Array([1]), await t.attestor.sign(key, new Uint8Array([1]))));
      assert.deepEqual(t.sent.map((s) => [s.cc, base(s.rc)]), [[TPM_CC.Sign, TPM_RC.REFERENCE_S0], [TPM_CC.StartAuthSession, 0], [TPM_CC.Sign, 0]]);
      // 2. Flushed and its number taken by another process's HMAC session (nonces unknown to us):
      // refused like a foreign object, then reclaimed and signed with a new session.
      const mine = await sessionOf();
      await t.other.flushContext(mine);
      const theirs = await t.other.startAuthSession({ type: 'hmac', symmetric: { algorithm: TPM_ALG.NULL } });
      assert.equal(theirs.handle, mine, 'the other process got our session handle number');
      t.sent.length = 0;
      assert.ok(signedBy(key.public, new Uint8Array([2]), await t.attestor.sign(key, new Uint8Array([2]))));
      const signs2 = t.sent.filter((s) => s.cc === TPM_CC.Sign).map((s) => base(s.rc));
      assert.deepEqual(signs2, [TPM_RC.BAD_AUTH, 0]);
      assert.equal(count(t.sent, TPM_CC.StartAuthSession), 1);
      t.sent.length = 0;
      await t.attestor.sign(key, new Uint8Array([3]));
      assert.deepEqual(t.sent.map((s) => s.cc), [TPM_CC.Sign], 'hot again: one TPM2_Sign');
    } finally {
      await t.close();
    }
  });

  it('a TPM power cycle with a full cache: every key signs with its own key, with a new session', async () => {
    const t = await sharedTpm(swtpm().address);
    try {
      const ak = (await t.attestor.createAk('rsa')).key;
      const keys: WrappedKey[] = [];
      for (let i = 0; i < 4; i++) keys.push((await t.attestor.createKey(ak, i % 2 === 0 ? 'ecc' : 'rsa')).key);
      for (const key of keys) await t.attestor.sign(key, new Uint8Array([0]));
      assert.equal(t.attestor.cachedObjects.loaded, 3, 'the cache is full');
      for (let cycle = 0; cycle < 2; cycle++) {
        await swtpm().powerCycle();
        t.sent.length = 0;
        for (const [i, key] of [...keys].reverse().entries()) {
          const data = new Uint8Array([cycle, i]);
          assert.ok(signedBy(key.public, data, await t.attestor.sign(key, data)), `cycle ${cycle}: key ${keys.length - 1 - i}`);
        }
        const signed = t.sent.filter((s) => s.cc === TPM_CC.Sign);
        assert.ok(signed.every((s) => isHmacSession(s.session)), 'every TPM2_Sign with the HMAC session');
        // The first command after the reset meets it (the swtpm transport starts the TPM itself):
        // a kept handle or the kept session is not loaded any more, and the flow runs again.
        assert.ok(signed.every((s) => [0, TPM_RC.REFERENCE_H0, TPM_RC.REFERENCE_S0].includes(base(s.rc))), 'TPM2_Sign failed only on what the reset unloaded');
        const sessions = count(t.sent, TPM_CC.StartAuthSession);
        assert.ok(sessions >= 1 && sessions <= 2, `a new sign session after the reset (${sessions})`);
        await t.attestor.sign(keys[0]!, new Uint8Array([9]));
        t.sent.length = 0;
        await t.attestor.sign(keys[0]!, new Uint8Array([9]));
        assert.deepEqual(t.sent.map((s) => [s.cc, s.rc]), [[TPM_CC.Sign, 0]], 'hot again: one TPM2_Sign');
      }
    } finally {
      await t.close();
    }
  });

  it("a key's own fault (a scheme of its own) is FAILED_PRECONDITION after one TPM2_ReadPublic: not retried, and the other kept keys stay loaded", async () => {
    const t = await sharedTpm(swtpm().address);
    try {
      const ek = (await t.attestor.ek('ecc')).public;
      const priv = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const soft = keyObjectToPublic(priv);
      // An imported key that signs only ECDSA-SHA384: Sign's ECDSA-SHA256 is TPM_RC_SCHEME, as for a foreign key there.
      const publicArea = {
        ...soft,
        objectAttributes: TPMA_OBJECT.sign | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.noDA,
        parameters: { ...soft.parameters, scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA384 } },
      } as TPMT_PUBLIC;
      const own = await t.attestor.importKey('ecc', { publicArea, ...duplicateObject(ek, publicArea, sensitiveFromPrivateKey(priv)) });
      const ak = (await t.attestor.createAk('ecc')).key;
      const good = (await t.attestor.createKey(ak, 'ecc')).key;
      await t.attestor.sign(good, new Uint8Array([0]));
      t.sent.length = 0;
      await assert.rejects(t.attestor.sign(own, new Uint8Array([1])), (e: Error & { code?: string }) => e.code === 'FAILED_PRECONDITION' && /cannot sign SHA-256 digests as ecdsa/.test(e.message));
      assert.deepEqual(t.sent.filter((x) => x.cc === TPM_CC.Sign).map((x) => base(x.rc)), [TPM_RC.SCHEME], 'one TPM2_Sign: no retry');
      assert.equal(t.sent.filter((x) => x.cc === TPM_CC.ReadPublic).length, 1, 'one TPM2_ReadPublic to tell whose fault it is');
      t.sent.length = 0;
      assert.ok(signedBy(good.public, new Uint8Array([2]), await t.attestor.sign(good, new Uint8Array([2]))));
      assert.deepEqual(t.sent.map((x) => x.cc), [TPM_CC.Sign], 'the other caller\'s kept key was not forgotten');
    } finally {
      await t.close();
    }
  });

  it('a PCR-bound key (authorized by its policy) keeps the signature check: a foreign key with the same policy at its handle is caught', async () => {
    const t = await sharedTpm(swtpm().address);
    try {
      const ek = (await t.attestor.ek('ecc')).public;
      const pcr23 = (await t.other.pcrRead(pcrSelection(TPM_ALG.SHA256, [23]))).pcrValues[0]!;
      const pcrs = { hashAlg: TPM_ALG.SHA256, values: new Map([[23, pcr23]]) };
      const bound = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const blob = createImportBlob(ek, { kind: 'signingKey', privateKey: bound }, { pcrs });
      assert.equal(blob.publicArea.objectAttributes & TPMA_OBJECT.userWithAuth, 0, 'a PCR-bound key has no userWithAuth');
      const key = await t.attestor.importKey('ecc', blob);
      const plain = await t.attestor.importKey('ecc', createImportBlob(ek, { kind: 'signingKey', privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey }));
      t.sent.length = 0;
      assert.ok(signedBy(createPublicKey(bound), new Uint8Array([1]), await t.attestor.sign(key, new Uint8Array([1]), blob.policy)));
      assert.ok(signedBy(plain.public, new Uint8Array([1]), await t.attestor.sign(plain, new Uint8Array([1]))), 'an imported key without PCRs (userWithAuth, noDA) signs');
      const bySession = t.sent.filter((s) => s.cc === TPM_CC.Sign).map((s) => s.session >>> 24);
      assert.deepEqual(bySession, [0x03, 0x02], 'the PCR-bound key signs with its policy session, the other with the HMAC session');
      // A foreign key of the same policy (it signs under the same PolicyPCR) at the bound key's handle.
      const ours = (await t.other.getLoadedHandles()).filter((h) => h >>> 24 === 0x80);
      for (const h of ours) await t.other.flushContext(h);
      const foreignPriv = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const foreignPub: TPMT_PUBLIC = { ...keyObjectToPublic(foreignPriv), objectAttributes: blob.publicArea.objectAttributes, authPolicy: blob.publicArea.authPolicy };
      const foreign: number[] = [];
      for (let i = 0; i < 3; i++) foreign.push((await t.other.loadExternal(foreignPub, sensitiveFromPrivateKey(foreignPriv), TPM_RH.NULL)).handle);
      assert.ok(ours.some((h) => foreign.includes(h)));
      t.sent.length = 0;
      const data = new Uint8Array([2]);
      const sig = await t.attestor.sign(key, data, blob.policy);
      assert.ok(signedBy(createPublicKey(bound), data, sig), 'signed by the PCR-bound key');
      assert.ok(!signedBy(foreignPub, data, sig), 'not by the foreign key');
      assert.deepEqual(t.sent.filter((s) => s.cc === TPM_CC.Sign).map((s) => s.rc), [0, 0], 'the foreign key signed (its policy was met), the check caught it, the key signed after its reload');
      assert.ok(count(t.sent, TPM_CC.Load) >= 1, 'loaded again from its blob');
    } finally {
      await t.close();
    }
  });

  it('a session left by a killed attestor is reclaimed by the next one like any leftover', async () => {
    const shared = await openTransport(swtpm().address);
    const borrowed = (): Transport => ({ send: (c) => shared.send(c), close: () => Promise.resolve(), get startups() { return shared.startups; } });
    const killed = new AttestorTpm(swtpm().address, { openTransport: () => Promise.resolve(borrowed()) });
    const ak = (await killed.createAk('ecc')).key;
    const key = (await killed.createKey(ak, 'ecc')).key;
    await killed.sign(key, new Uint8Array([0]));
    // SIGKILL: nothing flushed. The next attestor on the TPM:
    const reclaimed: { objects: number; sessions: number }[] = [];
    const next = new AttestorTpm(swtpm().address, { openTransport: () => Promise.resolve(borrowed()), onReclaim: (r) => reclaimed.push(r) });
    const check = await openTpm(undefined, { transport: borrowed() });
    try {
      assert.ok(signedBy(key.public, new Uint8Array([1]), await next.sign(key, new Uint8Array([1]))));
      assert.equal(reclaimed.length, 1);
      assert.equal(reclaimed[0]!.sessions, 1, 'the killed attestor\'s sign session');
      assert.ok(reclaimed[0]!.objects >= 1, 'and its kept objects');
      await next.close();
      assert.deepEqual(await check.getLoadedHandles(), []);
    } finally {
      await next.close();
      await check.close();
      await shared.close();
    }
  });
});
