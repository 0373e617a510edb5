// Parameter encryption against swtpm (issue 3, "Secrets stay off the bus in clear"): with a transport
// that records every byte, the plaintext of sealed data (Create), of unsealed data (Unseal), of an
// activated credential (ActivateCredential) and of an imported private key never crosses the bus
// when a salted AES-128-CFB session encrypts the parameter, and does cross it without one, so the
// check has teeth.
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import {
  TPMA_OBJECT,
  TPMA_SESSION,
  TPM_ALG,
  TPM_CC,
  TPM_RH,
  TPM2,
  akTemplate,
  createImportBlob,
  keyObjectToPublic,
  makeCredential,
  openTpm,
  policyDigest,
  openTransport,
  sensitiveFromPrivateKey,
  verifySignature,
  type HandleRef,
  type Session,
  type TPMT_PUBLIC,
  type Tpm,
} from '../src/index.js';
import { EK_P256_HANDLE, EK_RSA_HANDLE, SRK_HANDLE, withSwtpm, type SwtpmInstance } from './fixtures/swtpm.js';
import { RecordingTransport } from './fixtures/recording-transport.js';

const sha256 = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());

/** Sealed data usable with the (empty) authValue: userWithAuth, noDA. */
const SEALED_TEMPLATE: TPMT_PUBLIC = {
  type: TPM_ALG.KEYEDHASH, nameAlg: TPM_ALG.SHA256,
  objectAttributes: TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.noDA,
  authPolicy: new Uint8Array(0), parameters: { scheme: { scheme: TPM_ALG.NULL } }, unique: new Uint8Array(0),
};

/** The secret half of a software key as it would travel in a TPMT_SENSITIVE: prime p (RSA) or the scalar (ECC). */
function sensitiveBytes(key: KeyObject): Uint8Array {
  return sensitiveFromPrivateKey(key).sensitive;
}

describe('sessions: parameter encryption keeps secrets off the bus @swtpm', function () {
  this.timeout(60_000);
  const swtpm = withSwtpm();
  describe('one TPM connection', encryptionTests(swtpm));
});

function encryptionTests(swtpm: () => SwtpmInstance) {
  return function () {
    let rec: RecordingTransport;
    let tpm: Tpm;
    const cleanup: number[] = [];

    before(async () => {
      rec = new RecordingTransport(await openTransport(swtpm().address));
      tpm = await openTpm(undefined, { transport: rec });
    });
    afterEach(async () => {
      while (cleanup.length > 0) await tpm.flushContext(cleanup.pop()!);
      assert.deepEqual(await tpm.getLoadedHandles(), [], 'no objects or sessions left loaded');
    });
    after(async () => {
      await tpm?.close();
    });

    async function start(opts: Parameters<Tpm['startAuthSession']>[0]): Promise<Session> {
      const s = await tpm.startAuthSession(opts);
      cleanup.push(s.handle);
      return s;
    }
    /** A policy session holding PolicySecret(TPM_RH_ENDORSEMENT): what the EK's authPolicy asks for. */
    async function ekPolicy(): Promise<Session> {
      const s = await start({ type: 'policy' });
      await tpm.policySecret(TPM_RH.ENDORSEMENT, s);
      return s;
    }

    for (const [label, ek] of [['RSA-2048', EK_RSA_HANDLE], ['ECC P-256', EK_P256_HANDLE]] as const) {
      describe(`session salted to the ${label} EK`, () => {
        it('Create: sealed data sent with a decrypt session never appears in the command bytes', async () => {
          const secret = randomBytes(32);
          const enc = (await start({ salt: { handle: ek } })).with(TPMA_SESSION.decrypt);
          rec.clear();
          const sealed = await tpm.create(SRK_HANDLE, SEALED_TEMPLATE, { sensitiveData: secret, sessions: [enc] });
          assert.equal(rec.of(TPM_CC.Create).length, 1);
          assert.equal(rec.leaks(secret), false, 'no 8-byte piece of the data crossed the bus');
          // Control: the same Create without the session sends the data in clear.
          rec.clear();
          await tpm.create(SRK_HANDLE, SEALED_TEMPLATE, { sensitiveData: secret });
          assert.ok(rec.contains(secret), 'without parameter encryption the data is on the bus');
          // And what was sealed through the encrypted channel is the data.
          const h = await tpm.load(SRK_HANDLE, sealed.private, sealed.public);
          cleanup.push(h.handle);
          assert.deepEqual(await tpm.unseal(h.handle, { sessions: [enc] }), new Uint8Array(secret));
        });

        it('Unseal: the data returned through an encrypt session never appears in the response bytes', async () => {
          const secret = randomBytes(64);
          const sealed = await tpm.create(SRK_HANDLE, SEALED_TEMPLATE, { sensitiveData: secret });
          const h = await tpm.load(SRK_HANDLE, sealed.private, sealed.public);
          cleanup.push(h.handle);
          const enc = (await start({ salt: { handle: ek } })).with(TPMA_SESSION.encrypt);
          rec.clear();
          assert.deepEqual(await tpm.unseal(h.handle, { sessions: [enc] }), new Uint8Array(secret), 'the decrypted value is the data');
          assert.equal(rec.leaks(secret), false, 'the unsealed data went back encrypted');
          // Control: a password session.
          rec.clear();
          assert.deepEqual(await tpm.unseal(h.handle), new Uint8Array(secret));
          assert.ok(rec.contains(secret), 'without parameter encryption the data is on the bus');
        });

        it('ActivateCredential: the credential comes back encrypted by an extra encrypt-only session', async () => {
          const ak = await tpm.create(SRK_HANDLE, akTemplate('ecc'));
          const akh = await tpm.load(SRK_HANDLE, ak.private, ak.public);
          cleanup.push(akh.handle);
          const ekPub = (await tpm.readPublic(ek)).public;
          const secret = randomBytes(32);
          const cred = makeCredential(ekPub, akh.name, secret);
          const enc = (await start({ salt: { handle: ek } })).with(TPMA_SESSION.encrypt);
          const policy = await ekPolicy();
          rec.clear();
          // Sessions: password for the AK, the policy session for the EK, then the encrypting session.
          const got = await tpm.activateCredential(akh.handle, ek, cred.credentialBlob, cred.encryptedSecret, { sessions: [undefined, policy, enc] });
          assert.deepEqual(got, new Uint8Array(secret));
          assert.equal(rec.leaks(secret), false, 'the activated secret went back encrypted');
          // Control: without the encrypting session the secret is on the bus.
          await tpm.policySecret(TPM_RH.ENDORSEMENT, policy);
          rec.clear();
          assert.deepEqual(await tpm.activateCredential(akh.handle, ek, cred.credentialBlob, cred.encryptedSecret, { sessions: [undefined, policy] }), new Uint8Array(secret));
          assert.ok(rec.contains(secret), 'without parameter encryption the secret is on the bus');
        });
      });
    }

    for (const keyType of ['ecc', 'rsa'] as const) {
      it(`an imported ${keyType.toUpperCase()} signing key: its private part never crosses the bus in clear`, async () => {
        const { privateKey, publicKey } = keyType === 'ecc' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
        const priv = sensitiveBytes(privateKey);
        const ekPub = (await tpm.readPublic(EK_RSA_HANDLE)).public;
        const blob = createImportBlob(ekPub, { kind: 'signingKey', privateKey });
        const enc = (await start({ salt: { handle: EK_RSA_HANDLE } })).with(TPMA_SESSION.decrypt | TPMA_SESSION.encrypt);
        const policy = await ekPolicy();
        rec.clear();
        const outPrivate = await tpm.import(EK_RSA_HANDLE, blob.publicArea, blob.duplicate, blob.encryptedSeed, { sessions: [policy, enc] });
        await tpm.policySecret(TPM_RH.ENDORSEMENT, policy);
        const h = await tpm.load(EK_RSA_HANDLE, outPrivate, blob.publicArea, { sessions: [policy, enc] });
        cleanup.push(h.handle);
        const message = randomBytes(20);
        const sig = await tpm.sign(h.handle, sha256(message), { sessions: [enc] });
        assert.ok(verifySignature(keyObjectToPublic(publicKey), message, sig), 'the imported key signs for the original public key');
        assert.equal(rec.leaks(priv), false, 'Import, Load and Sign never carried the private key in clear');

        // Control 1: LoadExternal of the same private key sends it in clear...
        const extPub = keyObjectToPublic(privateKey);
        rec.clear();
        const ext = await tpm.loadExternal(extPub, sensitiveFromPrivateKey(privateKey));
        await tpm.flushContext(ext.handle);
        assert.ok(rec.contains(priv), 'LoadExternal without parameter encryption puts the private key on the bus');
        // Control 2: ...unless a decrypt session encrypts the TPM2B_SENSITIVE.
        rec.clear();
        const ext2 = await tpm.execute(
          TPM2.LoadExternal,
          {},
          { inPrivate: sensitiveFromPrivateKey(privateKey), inPublic: extPub, hierarchy: TPM_RH.NULL },
          { sessions: [enc] },
        );
        await tpm.flushContext(ext2.objectHandle);
        assert.equal(rec.leaks(priv), false, 'LoadExternal with a decrypt session keeps it off the bus');
      });
    }

    /** Sealed data with an authValue, usable with that authValue (userWithAuth) or only through `authPolicy`. */
    async function sealWithAuth(secret: Uint8Array, auth: Uint8Array, authPolicy?: Uint8Array): Promise<HandleRef> {
      const template: TPMT_PUBLIC = authPolicy === undefined
        ? SEALED_TEMPLATE
        : { ...SEALED_TEMPLATE, objectAttributes: SEALED_TEMPLATE.objectAttributes & ~TPMA_OBJECT.userWithAuth, authPolicy };
      const sealed = await tpm.create(SRK_HANDLE, template, { sensitiveData: secret, userAuth: auth });
      const h = await tpm.load(SRK_HANDLE, sealed.private, sealed.public);
      cleanup.push(h.handle);
      return { handle: h.handle, name: h.name, auth };
    }

    // The session that authorizes an entity adds that entity's authValue to the parameter-encryption
    // key whether it is bound to the entity or not, and whatever kind of session it is (reference
    // code: ParseSessionBuffer / BuildResponseSession, "no matter if the handle is the session bound
    // entity or not"). Each case below decrypts the response with that key.
    it('a bound and salted session with both directions encrypted (Unseal of a key with an authValue)', async () => {
      const auth = randomBytes(16);
      const secret = randomBytes(32);
      const sealed = await tpm.create(SRK_HANDLE, SEALED_TEMPLATE, { sensitiveData: secret, userAuth: auth });
      const h = await tpm.load(SRK_HANDLE, sealed.private, sealed.public);
      cleanup.push(h.handle);
      const item: HandleRef = { handle: h.handle, name: h.name, auth };
      const s = (await start({ salt: { handle: EK_P256_HANDLE }, bind: item })).with(TPMA_SESSION.encrypt);
      rec.clear();
      assert.deepEqual(await tpm.unseal(item, { sessions: [s] }), new Uint8Array(secret));
      assert.equal(rec.leaks(secret), false);
      assert.equal(rec.leaks(auth), false, 'nor does the authValue');
    });
  
    it('an unsalted bound session encrypting for its bind entity', async () => {
      const secret = randomBytes(32);
      const item = await sealWithAuth(secret, randomBytes(12));
      const s = (await start({ bind: item })).with(TPMA_SESSION.encrypt);
      rec.clear();
      assert.deepEqual(await tpm.unseal(item, { sessions: [s] }), new Uint8Array(secret));
      assert.equal(rec.leaks(secret), false);
    });

    it('a salted policy session (PolicyCommandCode + PolicyAuthValue) encrypting the Unseal response', async () => {
      const secret = randomBytes(32);
      const steps = [{ type: 'PolicyCommandCode', code: TPM_CC.Unseal }, { type: 'PolicyAuthValue' }] as const;
      const item = await sealWithAuth(secret, randomBytes(12), policyDigest(TPM_ALG.SHA256, steps));
      const s = (await start({ type: 'policy', salt: { handle: EK_P256_HANDLE } })).with(TPMA_SESSION.encrypt);
      await tpm.applyPolicy(s, steps);
      rec.clear();
      assert.deepEqual(await tpm.unseal(item, { sessions: [s] }), new Uint8Array(secret));
      assert.equal(rec.leaks(secret), false);
    });

    it('a salted policy session without PolicyAuthValue encrypting for an object that has an authValue', async () => {
      const secret = randomBytes(32);
      const steps = [{ type: 'PolicyCommandCode', code: TPM_CC.Unseal }] as const;
      const item = await sealWithAuth(secret, randomBytes(12), policyDigest(TPM_ALG.SHA256, steps));
      const s = (await start({ type: 'policy', salt: { handle: EK_P256_HANDLE } })).with(TPMA_SESSION.encrypt);
      await tpm.applyPolicy(s, steps);
      rec.clear();
      assert.deepEqual(await tpm.unseal(item, { sessions: [s] }), new Uint8Array(secret));
      assert.equal(rec.leaks(secret), false);
    });

    it('an authValue with trailing zero bytes (the TPM drops them for HMACs and encryption keys)', async () => {
      const secret = randomBytes(32);
      const auth = Uint8Array.of(...randomBytes(10), 0x5a, 0, 0);
      const item = await sealWithAuth(secret, auth);
      const hmacOnly = await start({});
      assert.deepEqual(await tpm.unseal(item, { sessions: [hmacOnly] }), new Uint8Array(secret), 'HMAC session');
      const enc = (await start({ salt: { handle: EK_RSA_HANDLE } })).with(TPMA_SESSION.encrypt);
      assert.deepEqual(await tpm.unseal(item, { sessions: [enc] }), new Uint8Array(secret), 'salted encrypting session');
      const bound = (await start({ bind: item })).with(TPMA_SESSION.encrypt);
      assert.deepEqual(await tpm.unseal(item, { sessions: [bound] }), new Uint8Array(secret), 'bound encrypting session');
      await tpm.flushContext(cleanup.pop()!);
      // Bound and salted: the session key is KDFa over authValue || salt, where the zeros would matter.
      const boundSalted = (await start({ bind: item, salt: { handle: EK_P256_HANDLE } })).with(TPMA_SESSION.encrypt);
      assert.deepEqual(await tpm.unseal(item, { sessions: [boundSalted] }), new Uint8Array(secret), 'bound and salted encrypting session');
    });
  };
}
