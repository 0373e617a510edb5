// Policy sessions against swtpm (issue 3, "Policy"): the offline calculator agrees with the TPM's
// PolicyGetDigest on trial and on real policy sessions, PolicyRestart, objects gated by
// PolicyAuthValue/PolicyPassword + PolicyCommandCode, and PolicyOR of two PCR branches.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  EK_POLICY_SHA256,
  TPMA_OBJECT,
  TPM_ALG,
  TPM_CC,
  TPM_RC,
  TPM_RH,
  TpmError,
  openTpm,
  pcrPolicyStep,
  pcrSelection,
  policyDigest,
  toHex,
  u32be,
  type PolicyStep,
  type Session,
  type TPMT_PUBLIC,
  type Tpm,
} from '../src/index.js';
import { SRK_HANDLE, withSwtpm, type SwtpmInstance } from './fixtures/swtpm.js';
import { expectRc } from './support/expect.js';

const AUTH = new TextEncoder().encode('unseal-auth');
const WRONG_AUTH = new TextEncoder().encode('wrong-auth');
const RESETTABLE_PCR = 23;

/** A sealed-data (KEYEDHASH) template usable only through `authPolicy` (userWithAuth clear). */
function sealedTemplate(authPolicy: Uint8Array): TPMT_PUBLIC {
  return {
    type: TPM_ALG.KEYEDHASH, nameAlg: TPM_ALG.SHA256,
    objectAttributes: TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.noDA,
    authPolicy, parameters: { scheme: { scheme: TPM_ALG.NULL } }, unique: new Uint8Array(0),
  };
}

const step = {
  authValue: { type: 'PolicyAuthValue' } as const,
  password: { type: 'PolicyPassword' } as const,
  cc: (code: number) => ({ type: 'PolicyCommandCode', code }) as const,
  secret: (handle: number, policyRef?: Uint8Array) => ({ type: 'PolicySecret', authObjectName: u32be(handle), ...(policyRef ? { policyRef } : {}) }) as const,
  or: (...branches: Uint8Array[]) => ({ type: 'PolicyOR', branches }) as const,
};

describe('sessions: policies on swtpm @swtpm', function () {
  this.timeout(60_000);
  const swtpm = withSwtpm();
  describe('one TPM connection', policyTests(swtpm));
});

function policyTests(swtpm: () => SwtpmInstance) {
  return function () {
    let tpm: Tpm;
    /** Sealed objects loaded in a test, flushed by afterEach. */
    const loaded: number[] = [];

    before(async () => {
      tpm = await openTpm(swtpm().address);
      // Non-zero PCR 16 and 23 in both banks, so PolicyPCR digests are not of all-zero values.
      for (const pcr of [16, RESETTABLE_PCR]) {
        await tpm.pcrExtend(pcr, [{ hashAlg: TPM_ALG.SHA1, digest: randomBytes(20) }, { hashAlg: TPM_ALG.SHA256, digest: randomBytes(32) }]);
      }
    });
    afterEach(async () => {
      while (loaded.length > 0) await tpm.flushContext(loaded.pop()!);
      assert.deepEqual(await tpm.getLoadedHandles(), [], 'no objects or sessions left loaded');
    });
    after(async () => {
      await tpm?.close();
    });

    async function session(type: 'trial' | 'policy', hashAlg: number = TPM_ALG.SHA256): Promise<Session> {
      const s = await tpm.startAuthSession({ type, hashAlg });
      assert.equal(s.handle >>> 24, 0x03, 'a policy session handle');
      return s;
    }

    async function currentPcrStep(hashAlg: number, indices: number[], policyHashAlg: number = TPM_ALG.SHA256): Promise<PolicyStep> {
      return pcrPolicyStep({ hashAlg, values: await tpm.readPcrs(hashAlg, indices) }, policyHashAlg);
    }

    async function seal(authPolicy: Uint8Array, data: Uint8Array, userAuth: Uint8Array = AUTH): Promise<number> {
      const c = await tpm.create(SRK_HANDLE, sealedTemplate(authPolicy), { userAuth, sensitiveData: data });
      const h = await tpm.load(SRK_HANDLE, c.private, c.public);
      loaded.push(h.handle);
      return h.handle;
    }

    /** Runs `steps` on a fresh trial and a fresh policy session and compares both with the offline digest. */
    async function expectDigest(steps: readonly PolicyStep[], hashAlg: number = TPM_ALG.SHA256, real = true): Promise<Uint8Array> {
      const offline = policyDigest(hashAlg, steps);
      for (const type of real ? (['trial', 'policy'] as const) : (['trial'] as const)) {
        const s = await session(type, hashAlg);
        try {
          await tpm.applyPolicy(s, steps);
          assert.equal(toHex(await tpm.policyGetDigest(s)), toHex(offline), `${type} session: PolicyGetDigest equals the offline policyDigest`);
        } finally {
          await tpm.flushContext(s.handle);
        }
      }
      return offline;
    }

    describe('offline policyDigest equals the TPM\'s PolicyGetDigest (trial and real sessions)', () => {
      it('PolicyPCR, SHA-256 bank, PCRs 16 and 23', async () => {
        await expectDigest([await currentPcrStep(TPM_ALG.SHA256, [16, RESETTABLE_PCR])]);
      });
      it('PolicyPCR, SHA-1 bank values digested with the SHA-256 session hash', async () => {
        await expectDigest([await currentPcrStep(TPM_ALG.SHA1, [0, 7, 16])]);
      });
      it('PolicyPCR with an empty pcrDigest: the TPM uses the current values, as the offline step does', async () => {
        const s = await session('trial');
        await tpm.policyPCR(s, pcrSelection(TPM_ALG.SHA256, [RESETTABLE_PCR]));
        const fromTpm = await tpm.policyGetDigest(s);
        await tpm.flushContext(s.handle);
        assert.equal(toHex(fromTpm), toHex(policyDigest(TPM_ALG.SHA256, [await currentPcrStep(TPM_ALG.SHA256, [RESETTABLE_PCR])])));
      });
      it('PolicySecret(TPM_RH_ENDORSEMENT) is the TCG EK policy', async () => {
        const d = await expectDigest([step.secret(TPM_RH.ENDORSEMENT)]);
        assert.equal(toHex(d), toHex(EK_POLICY_SHA256));
      });
      it('PolicySecret(TPM_RH_OWNER) with a policyRef', async () => {
        await expectDigest([step.secret(TPM_RH.OWNER, new TextEncoder().encode('ref'))]);
      });
      it('PolicyAuthValue and PolicyPassword (the same digest)', async () => {
        const a = await expectDigest([step.authValue]);
        const p = await expectDigest([step.password]);
        assert.equal(toHex(a), toHex(p));
      });
      it('PolicyCommandCode(Unseal)', async () => {
        await expectDigest([step.cc(TPM_CC.Unseal)]);
      });
      it('PolicyOR of two branches (trial session: no branch check)', async () => {
        const a = policyDigest(TPM_ALG.SHA256, [step.cc(TPM_CC.Unseal)]);
        const b = policyDigest(TPM_ALG.SHA256, [step.secret(TPM_RH.ENDORSEMENT)]);
        await expectDigest([step.or(a, b)], TPM_ALG.SHA256, false);
      });
      it('combinations: PolicyPCR + PolicyCommandCode + PolicyAuthValue; PolicySecret + PolicyPCR', async () => {
        const pcr = await currentPcrStep(TPM_ALG.SHA256, [16, RESETTABLE_PCR]);
        await expectDigest([pcr, step.cc(TPM_CC.Unseal), step.authValue]);
        await expectDigest([step.secret(TPM_RH.ENDORSEMENT), pcr]);
      });
      it('combinations with PolicyOR on a real session: branch steps, OR over the branches, then more steps', async () => {
        const branchA = [step.cc(TPM_CC.Unseal)] as const;
        const branchB = [step.secret(TPM_RH.ENDORSEMENT)] as const;
        const a = policyDigest(TPM_ALG.SHA256, branchA);
        const b = policyDigest(TPM_ALG.SHA256, branchB);
        const viaA = await expectDigest([...branchA, step.or(a, b), step.authValue]);
        const viaB = await expectDigest([...branchB, step.or(a, b), step.authValue]);
        assert.equal(toHex(viaA), toHex(viaB), 'either branch leads to the same policy');
      });
      it('SHA-1 and SHA-384 session hashes', async () => {
        for (const alg of [TPM_ALG.SHA1, TPM_ALG.SHA384]) {
          await expectDigest([await currentPcrStep(TPM_ALG.SHA256, [RESETTABLE_PCR], alg), step.secret(TPM_RH.ENDORSEMENT), step.cc(TPM_CC.Unseal), step.authValue], alg);
        }
      });
    });

    it('PolicyRestart resets the session to the zero digest (and the session\'s auth flags)', async () => {
      const s = await session('policy');
      try {
        await tpm.applyPolicy(s, [step.cc(TPM_CC.Unseal), step.authValue]);
        assert.equal(s.authValueNeeded, true);
        assert.notEqual(toHex(await tpm.policyGetDigest(s)), '00'.repeat(32));
        await tpm.policyRestart(s);
        assert.equal(toHex(await tpm.policyGetDigest(s)), '00'.repeat(32));
        assert.equal(s.authValueNeeded, false);
        await tpm.applyPolicy(s, [step.secret(TPM_RH.ENDORSEMENT)]);
        assert.equal(toHex(await tpm.policyGetDigest(s)), toHex(EK_POLICY_SHA256), 'after a restart the session builds a new policy from zero');
      } finally {
        await tpm.flushContext(s.handle);
      }
    });

    describe('an object with authPolicy = PolicyCommandCode(Unseal) + PolicyAuthValue', () => {
      const steps = [step.cc(TPM_CC.Unseal), step.authValue] as const;
      const data = randomBytes(48);
      let item: number;
      beforeEach(async () => {
        item = await seal(policyDigest(TPM_ALG.SHA256, steps), data);
      });

      it('unseals with a policy session and the right authValue', async () => {
        const s = await session('policy');
        try {
          await tpm.applyPolicy(s, steps);
          assert.deepEqual(await tpm.unseal({ handle: item, auth: AUTH }, { sessions: [s] }), new Uint8Array(data));
        } finally {
          await tpm.flushContext(s.handle);
        }
      });

      it('unseals with PolicyPassword in place of PolicyAuthValue (same digest, authValue in clear)', async () => {
        const s = await session('policy');
        try {
          await tpm.applyPolicy(s, [step.cc(TPM_CC.Unseal), step.password]);
          assert.deepEqual(await tpm.unseal({ handle: item, auth: AUTH }, { sessions: [s] }), new Uint8Array(data));
        } finally {
          await tpm.flushContext(s.handle);
        }
      });

      it('fails with the wrong authValue (TPM_RC_BAD_AUTH: the object is noDA)', async () => {
        for (const authStep of [step.authValue, step.password]) {
          const s = await session('policy');
          try {
            await tpm.applyPolicy(s, [step.cc(TPM_CC.Unseal), authStep]);
            await assert.rejects(tpm.unseal({ handle: item, auth: WRONG_AUTH }, { sessions: [s] }), expectRc(TPM_RC.BAD_AUTH));
          } finally {
            await tpm.flushContext(s.handle);
          }
        }
      });

      it('fails with a password session (userWithAuth is clear) and with an incomplete policy', async () => {
        await assert.rejects(tpm.unseal({ handle: item, auth: AUTH }), expectRc(TPM_RC.AUTH_UNAVAILABLE));
        const s = await session('policy');
        try {
          await tpm.applyPolicy(s, [step.cc(TPM_CC.Unseal)]);
          await assert.rejects(tpm.unseal({ handle: item, auth: AUTH }, { sessions: [s] }), (e: unknown) => {
            assert.ok(e instanceof TpmError);
            assert.equal(e.rc, 0x99d, `TPM_RC_POLICY_FAIL for session 1, got ${e.message}`);
            return true;
          });
        } finally {
          await tpm.flushContext(s.handle);
        }
      });

      it('a policy session reused after a successful command starts afresh (the TPM reset it)', async () => {
        // Object B needs only PolicyCommandCode(Unseal) but has a non-empty authValue, which must then
        // not enter the HMAC (Part 1, 19.6.8: the authValue is used only after PolicyAuthValue).
        const dataB = randomBytes(16);
        const itemB = await seal(policyDigest(TPM_ALG.SHA256, [step.cc(TPM_CC.Unseal)]), dataB);
        const s = await session('policy');
        try {
          await tpm.applyPolicy(s, steps);
          assert.deepEqual(await tpm.unseal({ handle: item, auth: AUTH }, { sessions: [s] }), new Uint8Array(data));
          assert.equal(toHex(await tpm.policyGetDigest(s)), '00'.repeat(32), 'the TPM reset the policy after the successful Unseal');
          await tpm.applyPolicy(s, [step.cc(TPM_CC.Unseal)]);
          assert.deepEqual(await tpm.unseal({ handle: itemB, auth: AUTH }, { sessions: [s] }), new Uint8Array(dataB));
        } finally {
          await tpm.flushContext(s.handle);
        }
      });
    });

    it('PolicyOR of two PCR branches: unseals in either PCR state, not in a third', async () => {
      await tpm.pcrReset(RESETTABLE_PCR);
      const branchA = await currentPcrStep(TPM_ALG.SHA256, [RESETTABLE_PCR]);
      await tpm.pcrExtend(RESETTABLE_PCR, { hashAlg: TPM_ALG.SHA256, digest: randomBytes(32) });
      const branchB = await currentPcrStep(TPM_ALG.SHA256, [RESETTABLE_PCR]);
      const a = policyDigest(TPM_ALG.SHA256, [branchA]);
      const b = policyDigest(TPM_ALG.SHA256, [branchB]);
      const data = randomBytes(32);
      const item = await seal(policyDigest(TPM_ALG.SHA256, [step.or(a, b)]), data, new Uint8Array(0));
      const s = await session('policy');
      try {
        // PCR in state B.
        await tpm.applyPolicy(s, [branchB, step.or(a, b)]);
        assert.deepEqual(await tpm.unseal(item, { sessions: [s] }), new Uint8Array(data), 'branch B');
        // Back to state A.
        await tpm.pcrReset(RESETTABLE_PCR);
        await tpm.applyPolicy(s, [branchA, step.or(a, b)]);
        assert.deepEqual(await tpm.unseal(item, { sessions: [s] }), new Uint8Array(data), 'branch A');
        // A third state: PolicyPCR with branch A's digest is refused, and the current values match no branch.
        await tpm.pcrExtend(RESETTABLE_PCR, { hashAlg: TPM_ALG.SHA256, digest: randomBytes(32) });
        await tpm.pcrExtend(RESETTABLE_PCR, { hashAlg: TPM_ALG.SHA256, digest: randomBytes(32) });
        await assert.rejects(tpm.applyPolicy(s, [branchA]), expectRc(TPM_RC.VALUE));
        await tpm.policyRestart(s);
        await tpm.policyPCR(s, pcrSelection(TPM_ALG.SHA256, [RESETTABLE_PCR]));
        await assert.rejects(tpm.policyOR(s, [a, b]), expectRc(TPM_RC.VALUE));
      } finally {
        await tpm.flushContext(s.handle);
      }
    });
  };
}
