// Credential activation against swtpm (issue 3): the offline makeCredential, for the RSA-2048 and the
// P-256 EK, is accepted by the TPM's ActivateCredential (EK authorized by a PolicySecret(endorsement)
// policy session), as is the TPM's own MakeCredential output; credentials for another name or another
// EK are refused.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  TPM_RC,
  TPM_RH,
  TpmError,
  akTemplate,
  makeCredential,
  objectName,
  openTpm,
  srkTemplateEccP256,
  type Session,
  type TPMT_PUBLIC,
  type Tpm,
} from '../src/index.js';
import { EK_P256_HANDLE, EK_RSA_HANDLE, SRK_HANDLE, withSwtpm, type SwtpmInstance } from './fixtures/swtpm.js';
import { expectRc } from './support/expect.js';

const EKS = [['RSA-2048', EK_RSA_HANDLE], ['ECC P-256', EK_P256_HANDLE]] as const;

describe('attestation: MakeCredential / ActivateCredential on swtpm @swtpm', function () {
  this.timeout(60_000);
  const swtpm = withSwtpm();
  describe('one TPM connection', credentialTests(swtpm));
});

function credentialTests(swtpm: () => SwtpmInstance) {
  return function () {
    let tpm: Tpm;
    /** An ECC AK (go-attestation attributes) under the SRK, loaded for the whole block. */
    let ak: { handle: number; name: Uint8Array; public: TPMT_PUBLIC };
    const ekPub = new Map<number, TPMT_PUBLIC>();
    const sessions: number[] = [];

    before(async () => {
      tpm = await openTpm(swtpm().address);
      const created = await tpm.create(SRK_HANDLE, akTemplate('ecc'));
      const loaded = await tpm.load(SRK_HANDLE, created.private, created.public);
      ak = { handle: loaded.handle, name: loaded.name, public: created.public };
      assert.deepEqual(ak.name, objectName(created.public), 'the TPM\'s Name of the AK is the one computed offline');
      for (const [, h] of EKS) ekPub.set(h, (await tpm.readPublic(h)).public);
    });
    afterEach(async () => {
      while (sessions.length > 0) await tpm.flushContext(sessions.pop()!);
      assert.deepEqual(await tpm.getLoadedHandles(), [ak.handle], 'only the AK stays loaded between tests');
    });
    after(async () => {
      if (!tpm) return;
      await tpm.flushContext(ak.handle);
      assert.deepEqual(await tpm.getLoadedHandles(), []);
      await tpm.close();
    });

    /** A policy session satisfying the EK's authPolicy, PolicySecret(TPM_RH_ENDORSEMENT). */
    async function ekSession(): Promise<Session> {
      const s = await tpm.startAuthSession({ type: 'policy' });
      sessions.push(s.handle);
      await tpm.policySecret(TPM_RH.ENDORSEMENT, s);
      return s;
    }

    function activate(ek: number, blob: { credentialBlob: Uint8Array; encryptedSecret?: Uint8Array; secret?: Uint8Array }, s: Session): Promise<Uint8Array> {
      const encrypted = blob.encryptedSecret ?? blob.secret!;
      return tpm.activateCredential(ak.handle, ek, blob.credentialBlob, encrypted, { sessions: [undefined, s] });
    }

    for (const [label, ek] of EKS) {
      describe(`${label} EK`, () => {
        it('offline makeCredential -> TPM ActivateCredential returns the secret (16- and 32-byte secrets)', async () => {
          const s = await ekSession();
          for (const size of [16, 32]) {
            const secret = randomBytes(size);
            const cred = makeCredential(ekPub.get(ek)!, ak.name, secret);
            assert.deepEqual(await activate(ek, cred, s), new Uint8Array(secret));
            // The successful use reset the policy session: satisfy the EK policy again for the next round.
            await tpm.policySecret(TPM_RH.ENDORSEMENT, s);
          }
        });

        it('the TPM\'s own MakeCredential output activates too', async () => {
          const secret = randomBytes(32);
          const made = await tpm.makeCredential(ek, secret, ak.name);
          assert.deepEqual(await activate(ek, made, await ekSession()), new Uint8Array(secret));
        });

        it('a credential made for another object name is refused (TPM_RC_INTEGRITY)', async () => {
          const otherName = objectName({ ...ak.public, authPolicy: randomBytes(32) });
          const cred = makeCredential(ekPub.get(ek)!, otherName, randomBytes(32));
          await assert.rejects(activate(ek, cred, await ekSession()), expectRc(TPM_RC.INTEGRITY));
        });

        it('a credential made for another key of the same type (a storage key) is refused', async () => {
          // RSA: the persistent RSA SRK; ECC: a P-256 SRK made here. The seed does not decrypt to the
          // same value under the EK, so the integrity check (or the seed decryption) fails.
          let other: TPMT_PUBLIC;
          let flush: number | undefined;
          if (ek === EK_RSA_HANDLE) other = (await tpm.readPublic(SRK_HANDLE)).public;
          else {
            const p = await tpm.createPrimary(TPM_RH.OWNER, srkTemplateEccP256());
            other = p.public;
            flush = p.handle;
          }
          try {
            const cred = makeCredential(other, ak.name, randomBytes(32));
            await assert.rejects(activate(ek, cred, await ekSession()), (e: unknown) => e instanceof TpmError);
          } finally {
            if (flush !== undefined) await tpm.flushContext(flush);
          }
        });

        it('a credential made for the other EK type is refused', async () => {
          const [, other] = EKS.find(([, h]) => h !== ek)!;
          const cred = makeCredential(ekPub.get(other)!, ak.name, randomBytes(32));
          await assert.rejects(activate(ek, cred, await ekSession()), (e: unknown) => e instanceof TpmError);
        });

        it('the EK cannot be used without its policy (a password session is refused)', async () => {
          const cred = makeCredential(ekPub.get(ek)!, ak.name, randomBytes(32));
          await assert.rejects(
            tpm.activateCredential(ak.handle, ek, cred.credentialBlob, cred.encryptedSecret),
            (e: unknown) => e instanceof TpmError && (e.is(TPM_RC.AUTH_TYPE) || e.is(TPM_RC.AUTH_UNAVAILABLE)),
          );
        });
      });
    }
  };
}
