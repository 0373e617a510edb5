import { strict as assert } from 'node:assert';
import { generateKeyPairSync, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import {
  TPMA_OBJECT as O, TPM_ALG, TPM_CC, TPM_RC, TPM_RH, TpmError, hash, keyObjectToPublic, policyDigest, privateKeyFromSensitive,
  publicToKeyObject, srkTemplateEccP256, unwrapDuplicate, verifySignature, type TPMT_PUBLIC, type Tpm, openTpm,
} from '../src/index.js';
import { withSwtpm } from './fixtures/swtpm.js';

/** An ECC P-256 signing key, noDA, that may be duplicated (fixedTPM/fixedParent clear, Duplicate allowed by policy). */
function duplicableKey(): TPMT_PUBLIC {
  return {
    type: TPM_ALG.ECC, nameAlg: TPM_ALG.SHA256,
    objectAttributes: O.sign | O.sensitiveDataOrigin | O.userWithAuth | O.noDA,
    authPolicy: policyDigest(TPM_ALG.SHA256, [{ type: 'PolicyCommandCode', code: TPM_CC.Duplicate }]),
    parameters: { symmetric: { algorithm: TPM_ALG.NULL }, scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 }, curveID: 3, kdf: { scheme: TPM_ALG.NULL } },
    unique: { x: new Uint8Array(0), y: new Uint8Array(0) },
  };
}

describe('TPM2_ObjectChangeAuth and TPM2_Duplicate @swtpm', function () {
  this.timeout(60_000);
  const swtpm = withSwtpm();
  describe('on one TPM connection', () => {
    let tpm: Tpm;
    let srk: number;
    before(async () => {
      tpm = await openTpm(swtpm().address);
      srk = (await tpm.createPrimary(TPM_RH.OWNER, srkTemplateEccP256())).handle;
    });
    after(async () => {
      await tpm.flushContext(srk);
      assert.deepEqual(await tpm.getLoadedHandles(), [], 'nothing left loaded');
      await tpm.close();
    });

    it('getLoadedHandles lists loaded and saved sessions of both kinds, and nothing once they are flushed', async () => {
      const policy = await tpm.startAuthSession({ type: 'policy' });
      const hmac = await tpm.startAuthSession({});
      assert.deepEqual((await tpm.getHandles(0x02000000)).sort(), [hmac.handle, policy.handle].sort(), 'loaded sessions');
      const saved = await tpm.contextSave(hmac.handle);
      assert.deepEqual(await tpm.getHandles(0x03000000), [hmac.handle], 'saved sessions');
      assert.deepEqual((await tpm.getLoadedHandles()).sort(), [srk, hmac.handle, policy.handle].sort());
      await tpm.flushContext(await tpm.contextLoad(saved));
      await tpm.flushContext(policy.handle);
      assert.deepEqual(await tpm.getLoadedHandles(), [srk]);
    });

    it('ObjectChangeAuth: the new private part signs with the new auth only', async () => {
      const oldAuth = new TextEncoder().encode('old');
      const newAuth = new TextEncoder().encode('new secret');
      const k = await tpm.create(srk, { ...duplicableKey(), authPolicy: new Uint8Array(0), objectAttributes: O.sign | O.fixedTPM | O.fixedParent | O.sensitiveDataOrigin | O.userWithAuth | O.noDA }, { userAuth: oldAuth });
      const loaded = await tpm.load(srk, k.private, k.public);
      const newPrivate = await tpm.objectChangeAuth({ handle: loaded.handle, auth: oldAuth }, srk, newAuth);
      await tpm.flushContext(loaded.handle);
      const again = await tpm.load(srk, newPrivate, k.public);
      try {
        const digest = hash(TPM_ALG.SHA256, new Uint8Array([1]));
        const sig = await tpm.sign({ handle: again.handle, auth: newAuth }, digest);
        assert.ok(verifySignature(k.public, new Uint8Array([1]), sig));
        await assert.rejects(tpm.sign({ handle: again.handle, auth: oldAuth }, digest), (e: unknown) => e instanceof TpmError && e.is(TPM_RC.BAD_AUTH));
      } finally {
        await tpm.flushContext(again.handle);
      }
    });

    it('Duplicate to an external parent: our software unwrap recovers the key the TPM made', async () => {
      // The new parent: a software RSA storage key, its public part loaded with LoadExternal.
      const parent = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const parentPub = keyObjectToPublic(parent.publicKey, {
        type: TPM_ALG.RSA, nameAlg: TPM_ALG.SHA256, objectAttributes: O.restricted | O.decrypt | O.userWithAuth | O.noDA,
        authPolicy: new Uint8Array(0),
        parameters: { symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB }, scheme: { scheme: TPM_ALG.NULL }, keyBits: 2048, exponent: 0 },
        unique: new Uint8Array(0),
      });
      const newParent = await tpm.loadExternal(parentPub, null, TPM_RH.NULL);
      const k = await tpm.create(srk, duplicableKey());
      const obj = await tpm.load(srk, k.private, k.public);
      const session = await tpm.startAuthSession({ type: 'policy', symmetric: { algorithm: TPM_ALG.NULL } });
      try {
        const loaded = await tpm.getLoadedHandles();
      for (const h of [newParent.handle, obj.handle, session.handle]) assert.ok(loaded.includes(h), `getLoadedHandles lists 0x${h.toString(16)}`);
      await tpm.policyCommandCode(session, TPM_CC.Duplicate);
        const dup = await tpm.duplicate(obj.handle, newParent.handle, { sessions: [session] });
        assert.equal(dup.encryptionKeyOut.length, 0, 'no inner wrapper asked for');
        const sensitive = unwrapDuplicate(parent.privateKey, parentPub, k.public, dup.duplicate, dup.outSymSeed);
        const priv = privateKeyFromSensitive(k.public, sensitive);
        const msg = new TextEncoder().encode('duplicated');
        assert.ok(verifySignature(k.public, msg, await tpm.sign(obj.handle, hash(TPM_ALG.SHA256, msg))), 'the TPM copy signs');
        assert.ok(nodeVerify('sha256', msg, { key: publicToKeyObject(k.public), dsaEncoding: 'der' }, nodeSign('sha256', msg, priv)), 'the recovered private key matches the public area');
      } finally {
        await tpm.flushContext(session.handle);
        await tpm.flushContext(obj.handle);
        await tpm.flushContext(newParent.handle);
      }
    });
  });
});
