// go-tpm-tools compatible import blobs against swtpm (issue 3): createImportBlob -> TPM2_Import +
// TPM2_Load under the RSA-2048 and the P-256 EK (PolicySecret(endorsement) sessions) -> Unseal gives
// the data back; with a PCR policy only while the PCR holds the value; imported RSA and ECC signing
// keys sign, and the signatures verify with the original (Node) public keys.
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes, verify as nodeVerify, type KeyObject } from 'node:crypto';
import {
  TPMA_SESSION,
  TPM_ALG,
  TPM_RC,
  TPM_RH,
  TpmError,
  createImportBlob,
  objectName,
  openTpm,
  pcrSelection,
  signatureToDer,
  type ImportBlob,
  type Session,
  type TPMT_PUBLIC,
  type TPMT_SIGNATURE,
  type Tpm,
} from '../src/index.js';
import { EK_P256_HANDLE, EK_RSA_HANDLE, withSwtpm, type SwtpmInstance } from './fixtures/swtpm.js';

const PCR = 23; // resettable at locality 0

/** Verifies a TPM signature over SHA-256(message) with a Node public key, independently of our verifySignature. */
function verifiesWith(publicKey: KeyObject, message: Uint8Array, sig: TPMT_SIGNATURE): boolean {
  if (sig.sigAlg === TPM_ALG.RSASSA) return nodeVerify('sha256', message, publicKey, sig.sig);
  if (sig.sigAlg === TPM_ALG.ECDSA) return nodeVerify('sha256', message, { key: publicKey, dsaEncoding: 'der' }, signatureToDer(sig));
  throw new Error(`unexpected signature algorithm 0x${sig.sigAlg.toString(16)}`);
}

const EKS = [['RSA-2048', EK_RSA_HANDLE], ['ECC P-256', EK_P256_HANDLE]] as const;

describe('import: go-tpm-tools import blobs under the EK on swtpm @swtpm', function () {
  this.timeout(60_000);
  const swtpm = withSwtpm();
  describe('one TPM connection', importTests(swtpm));
});

function importTests(swtpm: () => SwtpmInstance) {
  return function () {
    let tpm: Tpm;
    const ekPub = new Map<number, TPMT_PUBLIC>();
    const cleanup: number[] = [];

    before(async () => {
      tpm = await openTpm(swtpm().address);
      for (const [, h] of EKS) ekPub.set(h, (await tpm.readPublic(h)).public);
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

    /**
     * Import + Load under the EK, as the attestor does: each command needs the EK policy satisfied
     * afresh, because a successful use resets the policy session. (No encrypting session here: the
     * blob is already encrypted to the EK.) Returns the loaded object (flushed after the test).
     */
    async function importAndLoad(ek: number, blob: ImportBlob): Promise<{ handle: number; name: Uint8Array }> {
      const policy = await start({ type: 'policy' });
      await tpm.policySecret(TPM_RH.ENDORSEMENT, policy);
      const outPrivate = await tpm.import(ek, blob.publicArea, blob.duplicate, blob.encryptedSeed, { sessions: [policy] });
      await tpm.policySecret(TPM_RH.ENDORSEMENT, policy);
      const h = await tpm.load(ek, outPrivate, blob.publicArea, { sessions: [policy] });
      cleanup.push(h.handle);
      await tpm.flushContext(policy.handle);
      cleanup.splice(cleanup.indexOf(policy.handle), 1);
      assert.deepEqual(h.name, objectName(blob.publicArea), 'the TPM\'s Name of the imported object is the one computed offline');
      return h;
    }

    for (const [label, ek] of EKS) {
      describe(`${label} EK`, () => {
        it('sealed data: Import + Load + Unseal returns the data (through a salted encrypting session too)', async () => {
          const data = randomBytes(64);
          const blob = createImportBlob(ekPub.get(ek)!, { kind: 'sealed', data });
          assert.deepEqual(blob.policy, [], 'no PCRs: no policy, the empty authValue opens it');
          const h = await importAndLoad(ek, blob);
          assert.deepEqual(await tpm.unseal(h.handle), new Uint8Array(data));
          const enc = (await start({ salt: { handle: ek } })).with(TPMA_SESSION.encrypt);
          assert.deepEqual(await tpm.unseal(h.handle, { sessions: [enc] }), new Uint8Array(data));
        });

        it('sealed data bound to PCR 23: unseals while the PCR holds the value, fails after a PCR_Extend', async () => {
          await tpm.pcrReset(PCR);
          await tpm.pcrExtend(PCR, { hashAlg: TPM_ALG.SHA256, digest: randomBytes(32) });
          const values = await tpm.readPcrs(TPM_ALG.SHA256, [PCR]);
          const data = randomBytes(32);
          const blob = createImportBlob(ekPub.get(ek)!, { kind: 'sealed', data }, { pcrs: { hashAlg: TPM_ALG.SHA256, values } });
          assert.equal(blob.policy.length, 1);
          const h = await importAndLoad(ek, blob);
          const s = await start({ type: 'policy' });

          // A password session is not enough: the object has no userWithAuth.
          await assert.rejects(tpm.unseal(h.handle), (e: unknown) => e instanceof TpmError && e.is(TPM_RC.AUTH_UNAVAILABLE));
          await tpm.applyPolicy(s, blob.policy);
          assert.deepEqual(await tpm.unseal(h.handle, { sessions: [s] }), new Uint8Array(data), 'the PCR holds the value: unsealed');

          await tpm.pcrExtend(PCR, { hashAlg: TPM_ALG.SHA256, digest: randomBytes(32) });
          // The blob's PolicyPCR step (a fixed pcrDigest) is refused by the TPM at once...
          await assert.rejects(tpm.applyPolicy(s, blob.policy), (e: unknown) => e instanceof TpmError && e.is(TPM_RC.VALUE));
          // ...and a PolicyPCR over the current values yields a policy the object does not accept.
          await tpm.policyRestart(s);
          await tpm.policyPCR(s, pcrSelection(TPM_ALG.SHA256, [PCR]));
          await assert.rejects(tpm.unseal(h.handle, { sessions: [s] }), (e: unknown) => {
            assert.ok(e instanceof TpmError);
            assert.equal(e.rc, 0x99d, `TPM_RC_POLICY_FAIL for session 1, got ${e.message}`);
            return true;
          });
        });

        for (const keyType of ['rsa', 'ecc'] as const) {
          it(`an imported ${keyType.toUpperCase()} signing key (made by Node) signs; the signature verifies with the original public key`, async () => {
            const { privateKey, publicKey } = keyType === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
            const blob = createImportBlob(ekPub.get(ek)!, { kind: 'signingKey', privateKey });
            const h = await importAndLoad(ek, blob);
            for (let i = 0; i < 2; i++) {
              const message = randomBytes(50);
              const sig = await tpm.sign(h.handle, new Uint8Array(createHash('sha256').update(message).digest()));
              assert.equal(sig.sigAlg, keyType === 'rsa' ? TPM_ALG.RSASSA : TPM_ALG.ECDSA, 'the scheme of the key\'s public area');
              assert.ok(verifiesWith(publicKey, message, sig), 'verifies with the original public key');
              assert.equal(verifiesWith(publicKey, randomBytes(50), sig), false);
            }
          });
        }

        it('a blob made for the other EK, or with a flipped byte, is refused', async () => {
          const [, other] = EKS.find(([, x]) => x !== ek)!;
          const policy = await start({ type: 'policy' });
          const forOther = createImportBlob(ekPub.get(other)!, { kind: 'sealed', data: randomBytes(16) });
          await tpm.policySecret(TPM_RH.ENDORSEMENT, policy);
          await assert.rejects(tpm.import(ek, forOther.publicArea, forOther.duplicate, forOther.encryptedSeed, { sessions: [policy] }), TpmError);
          const good = createImportBlob(ekPub.get(ek)!, { kind: 'sealed', data: randomBytes(16) });
          const tampered = new Uint8Array(good.duplicate);
          tampered[tampered.length - 1]! ^= 1;
          await tpm.policyRestart(policy);
          await tpm.policySecret(TPM_RH.ENDORSEMENT, policy);
          await assert.rejects(
            tpm.import(ek, good.publicArea, tampered, good.encryptedSeed, { sessions: [policy] }),
            (e: unknown) => e instanceof TpmError && e.is(TPM_RC.INTEGRITY),
          );
        });
      });
    }
  };
}
