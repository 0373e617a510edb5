// HMAC sessions against swtpm (issue 3, "Sessions"): unbound/unsalted, bound, salted to the RSA and
// the P-256 EK, nonce rolling, continueSession, wrong authValues, tampered responses, audit, and a
// policy session plus an encrypting session on one command.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  TPMA_OBJECT,
  TPMA_SESSION,
  TPM_ALG,
  TPM_CC,
  TPM_RC,
  TPM_RH,
  TpmAuthError,
  TpmError,
  openTpm,
  openTransport,
  policyDigest,
  signingKeyTemplate,
  verifySignature,
  type HandleRef,
  type Session,
  type TPMT_PUBLIC,
  type Tpm,
} from '../src/index.js';
import { EK_P256_HANDLE, EK_RSA_HANDLE, SRK_HANDLE, withSwtpm, type SwtpmInstance } from './fixtures/swtpm.js';
import { RecordingTransport, TamperingTransport, flipResponseHmacByte, responseAuthAreaOffset } from './fixtures/recording-transport.js';

const KEY_AUTH = new TextEncoder().encode('sign-key-auth');
const WRONG_AUTH = new TextEncoder().encode('not-the-auth');
const sha256 = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());

/** nonceCaller of the first session in a command with `handles` handles (Part 1, 18.2). */
function commandNonce(cmd: Uint8Array, handles: number): Uint8Array {
  const dv = new DataView(cmd.buffer, cmd.byteOffset, cmd.byteLength);
  const at = 10 + 4 * handles + 4 + 4; // header, handles, authorizationSize, sessionHandle
  return cmd.slice(at + 2, at + 2 + dv.getUint16(at));
}

/** sessionAttributes of the first response session (Part 1, 18.9). */
function responseSessionAttributes(rsp: Uint8Array, responseHandles = 0): number {
  const dv = new DataView(rsp.buffer, rsp.byteOffset, rsp.byteLength);
  const at = responseAuthAreaOffset(rsp, responseHandles);
  return rsp[at + 2 + dv.getUint16(at)]!;
}

function expectTpmError(base: number): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof TpmError, `expected a TpmError, got ${String(e)}`);
    assert.equal(e.base, base, `expected base 0x${base.toString(16)}, got ${e.message}`);
    return true;
  };
}

describe('sessions: HMAC sessions on swtpm @swtpm', function () {
  this.timeout(60_000);
  const swtpm = withSwtpm();
  // A nested block, so its after() runs before the harness stops swtpm.
  describe('one TPM connection', sessionTests(swtpm));
});

function sessionTests(swtpm: () => SwtpmInstance) {
  return function () {
  let rec: RecordingTransport;
  let tam: TamperingTransport;
  let tpm: Tpm;
  /** ECC P-256 signing key (noDA) with KEY_AUTH, loaded under the SRK for the whole block. */
  let key: { handle: number; name: Uint8Array; public: TPMT_PUBLIC };
  const keyRef = (auth: Uint8Array = KEY_AUTH): HandleRef => ({ handle: key.handle, name: key.name, auth });

  async function signAndCheck(session: Session | undefined, ref: HandleRef = keyRef()): Promise<void> {
    const message = randomBytes(40);
    const sig = await tpm.sign(ref, sha256(message), { sessions: [session] });
    assert.ok(verifySignature(key.public, message, sig), 'the signature verifies with the key\'s public area');
  }

  before(async () => {
    rec = new RecordingTransport(await openTransport(swtpm().address));
    tam = new TamperingTransport(rec);
    tpm = await openTpm(undefined, { transport: tam });
    const created = await tpm.create(SRK_HANDLE, signingKeyTemplate('ecc'), { userAuth: KEY_AUTH });
    const loaded = await tpm.load(SRK_HANDLE, created.private, created.public);
    key = { handle: loaded.handle, name: loaded.name, public: created.public };
  });
  afterEach(async () => {
    tam.tamper = undefined;
    assert.deepEqual(await tpm.getLoadedHandles(), [key.handle], 'only the block\'s key is loaded between tests (no leaked sessions)');
  });
  after(async () => {
    if (!tpm) return;
    await tpm.flushContext(key.handle);
    assert.deepEqual(await tpm.getLoadedHandles(), []);
    await tpm.close();
  });

  it('an unbound, unsalted HMAC session authorizes a key with a non-empty authValue', async () => {
    const s = await tpm.startAuthSession();
    assert.equal(s.handle >>> 24, 0x02, 'an HMAC session handle');
    assert.equal(s.keyed, false, 'neither salted nor bound: no session key');
    rec.clear();
    await signAndCheck(s);
    const [sign] = rec.of(TPM_CC.Sign);
    assert.equal(new DataView(sign!.command.buffer).getUint32(10 + 4 + 4), s.handle, 'the Sign command carries the HMAC session, not a password');
    assert.equal(rec.contains(KEY_AUTH), false, 'the authValue itself never crosses the bus');
    await tpm.flushContext(s.handle);
  });

  it('nonces roll: two commands in one session, fresh nonceCaller and nonceTPM each time', async () => {
    const s = await tpm.startAuthSession();
    const nonceTpm0 = s.nonceTPM;
    rec.clear();
    await signAndCheck(s);
    const nonceTpm1 = s.nonceTPM;
    await signAndCheck(s);
    const nonceTpm2 = s.nonceTPM;
    const [c1, c2] = rec.of(TPM_CC.Sign).map((e) => commandNonce(e.command, 1));
    assert.equal(c1!.length, 32);
    assert.notDeepEqual(c1, c2, 'nonceCaller rolls');
    assert.notDeepEqual(nonceTpm0, nonceTpm1, 'nonceTPM rolls on the first command');
    assert.notDeepEqual(nonceTpm1, nonceTpm2, 'nonceTPM rolls on the second command');
    await tpm.flushContext(s.handle);
  });

  it('a bound session has the authValue in its session key, and works for other entities too', async () => {
    const s = await tpm.startAuthSession({ bind: keyRef() });
    assert.equal(s.keyed, true, 'bound: there is a session key');
    await signAndCheck(s);
    // The same session authorizing a different entity (the SRK, empty authValue): Part 1, 19.6.9.
    const other = await tpm.create(SRK_HANDLE, signingKeyTemplate('ecc'), { sessions: [s] });
    assert.equal(other.public.type, TPM_ALG.ECC);
    await tpm.flushContext(s.handle);
  });

  it('a session bound with the wrong authValue cannot authorize the bind entity', async () => {
    // The entity's auth below is right, but for the bind entity only the session key counts.
    const s = await tpm.startAuthSession({ bind: { handle: key.handle, name: key.name, auth: WRONG_AUTH } });
    await assert.rejects(signAndCheck(s), expectTpmError(TPM_RC.BAD_AUTH));
    await tpm.flushContext(s.handle);
  });

  for (const [label, ek] of [['RSA-2048', EK_RSA_HANDLE], ['ECC P-256', EK_P256_HANDLE]] as const) {
    it(`a session salted to the ${label} EK authorizes, with and without parameter encryption`, async () => {
      const s = await tpm.startAuthSession({ salt: { handle: ek } });
      assert.equal(s.keyed, true, 'salted: there is a session key');
      await signAndCheck(s);
      s.with(TPMA_SESSION.decrypt);
      rec.clear();
      const message = randomBytes(40);
      const digest = sha256(message);
      const sig = await tpm.sign(keyRef(), digest, { sessions: [s] });
      assert.ok(verifySignature(key.public, message, sig));
      assert.equal(rec.contains(digest), false, 'the digest went out encrypted');
      await tpm.flushContext(s.handle);
    });
  }

  for (const [label, hashAlg] of [['SHA-1', TPM_ALG.SHA1], ['SHA-384', TPM_ALG.SHA384]] as const) {
    it(`a bound and salted ${label} session (nonces, KDFa and HMACs with that hash) authorizes and encrypts`, async () => {
      const s = (await tpm.startAuthSession({ hashAlg, salt: { handle: EK_P256_HANDLE }, bind: keyRef() })).with(TPMA_SESSION.decrypt);
      assert.equal(s.nonceTPM.length, hashAlg === TPM_ALG.SHA1 ? 20 : 48);
      rec.clear();
      const message = randomBytes(40);
      const digest = sha256(message);
      const sig = await tpm.sign(keyRef(), digest, { sessions: [s] });
      assert.ok(verifySignature(key.public, message, sig));
      assert.equal(rec.contains(digest), false);
      await tpm.flushContext(s.handle);
    });
  }

  it('clearing continueSession closes the session: the handle is gone afterwards', async () => {
    const s = await tpm.startAuthSession();
    await signAndCheck(s);
    assert.ok((await tpm.getHandles(0x02000000)).includes(s.handle));
    s.setAttributes(s.configuredAttributes & ~TPMA_SESSION.continueSession);
    await signAndCheck(s);
    assert.equal(s.open, false, 'the session knows it is closed');
    assert.equal((await tpm.getHandles(0x02000000)).includes(s.handle), false, 'the TPM flushed it');
    await assert.rejects(tpm.flushContext(s.handle), (e: unknown) => e instanceof TpmError);
    await assert.rejects(signAndCheck(s), /closed/, 'a closed session is refused before anything is sent');
  });

  it('a wrong authValue fails with TPM_RC_BAD_AUTH on a noDA key, and the session stays usable', async () => {
    const s = await tpm.startAuthSession();
    await assert.rejects(signAndCheck(s, keyRef(WRONG_AUTH)), (e: unknown) => {
      assert.ok(e instanceof TpmError);
      assert.equal(e.rc, 0x9a2, `TPM_RC_BAD_AUTH for session 1, got ${e.message}`);
      assert.equal(e.decoded.session, 1);
      return true;
    });
    // The TPM did not roll nonceTPM for the failed command; ours must not have either.
    await signAndCheck(s);
    // A password session with the wrong value fails the same way.
    await assert.rejects(signAndCheck(undefined, keyRef(WRONG_AUTH)), expectTpmError(TPM_RC.BAD_AUTH));
    await tpm.flushContext(s.handle);
  });

  it('a wrong authValue on a DA-protected key fails with TPM_RC_AUTH_FAIL (0x98E), then the lockout is reset', async () => {
    const template = signingKeyTemplate('ecc');
    const daKey = await tpm.create(SRK_HANDLE, { ...template, objectAttributes: template.objectAttributes & ~TPMA_OBJECT.noDA }, { userAuth: KEY_AUTH });
    const h = await tpm.load(SRK_HANDLE, daKey.private, daKey.public);
    const s = await tpm.startAuthSession();
    try {
      await assert.rejects(
        tpm.sign({ handle: h.handle, name: h.name, auth: WRONG_AUTH }, sha256(Uint8Array.of(1)), { sessions: [s] }),
        (e: unknown) => e instanceof TpmError && e.rc === 0x98e && e.decoded.session === 1,
      );
      await tpm.dictionaryAttackLockReset();
      const message = randomBytes(8);
      const sig = await tpm.sign({ handle: h.handle, name: h.name, auth: KEY_AUTH }, sha256(message), { sessions: [s] });
      assert.ok(verifySignature(daKey.public, message, sig));
    } finally {
      await tpm.flushContext(s.handle);
      await tpm.flushContext(h.handle);
    }
  });

  it('a response with an altered HMAC is rejected with TpmAuthError', async () => {
    const s = await tpm.startAuthSession({ salt: { handle: EK_P256_HANDLE } });
    tam.tamper = (cmd, rsp) => (new DataView(cmd.buffer, cmd.byteOffset).getUint32(6) === TPM_CC.Sign ? flipResponseHmacByte(rsp) : undefined);
    await assert.rejects(signAndCheck(s), TpmAuthError);
    assert.equal(tam.tamper, undefined, 'the tamper hook fired');
    await tpm.flushContext(s.handle);
  });

  it('a response with an altered parameter (the signature) is rejected with TpmAuthError', async () => {
    const s = await tpm.startAuthSession();
    tam.tamper = (cmd, rsp) => {
      if (new DataView(cmd.buffer, cmd.byteOffset).getUint32(6) !== TPM_CC.Sign) return undefined;
      const out = rsp.slice();
      out[10 + 4 + 20]! ^= 0x80; // inside signatureR
      return out;
    };
    await assert.rejects(signAndCheck(s), TpmAuthError);
    await tpm.flushContext(s.handle);
  });

  it('an audit session: the TPM accepts the audit attribute and echoes it in the response', async () => {
    const s = await tpm.startAuthSession();
    s.with(TPMA_SESSION.audit);
    rec.clear();
    await signAndCheck(s);
    await signAndCheck(s);
    for (const e of rec.of(TPM_CC.Sign)) assert.ok(responseSessionAttributes(e.response) & TPMA_SESSION.audit, 'audit is set in the response session');
    await tpm.flushContext(s.handle);
  });

  it('several sessions on one command: a policy session for the key plus a salted encrypting session', async () => {
    // A key usable only through PolicyCommandCode(Sign) + PolicyAuthValue (userWithAuth clear).
    const steps = [{ type: 'PolicyCommandCode', code: TPM_CC.Sign }, { type: 'PolicyAuthValue' }] as const;
    const template = signingKeyTemplate('ecc');
    const pk = await tpm.create(SRK_HANDLE, {
      ...template,
      objectAttributes: template.objectAttributes & ~TPMA_OBJECT.userWithAuth,
      authPolicy: policyDigest(TPM_ALG.SHA256, steps),
    }, { userAuth: KEY_AUTH });
    const h = await tpm.load(SRK_HANDLE, pk.private, pk.public);
    const ref = { handle: h.handle, name: h.name, auth: KEY_AUTH };
    const enc = (await tpm.startAuthSession({ salt: { handle: EK_RSA_HANDLE } })).with(TPMA_SESSION.decrypt);
    const policy = await tpm.startAuthSession({ type: 'policy' });
    try {
      // A password session is not enough for this key.
      await assert.rejects(tpm.sign(ref, sha256(Uint8Array.of(1))), expectTpmError(TPM_RC.AUTH_UNAVAILABLE));
      for (let round = 0; round < 2; round++) {
        await tpm.applyPolicy(policy, steps);
        const message = randomBytes(32);
        const digest = sha256(message);
        rec.clear();
        const sig = await tpm.sign(ref, digest, { sessions: [policy, enc] });
        assert.ok(verifySignature(pk.public, message, sig), `round ${round}: the signature verifies`);
        const [cmd] = rec.of(TPM_CC.Sign);
        const dv = new DataView(cmd!.command.buffer);
        assert.equal(dv.getUint32(10 + 4 + 4), policy.handle, 'session 1 is the policy session');
        assert.equal(rec.contains(digest), false, `round ${round}: the digest went out encrypted`);
      }
      // The policy with the wrong authValue fails.
      await tpm.applyPolicy(policy, steps);
      await assert.rejects(tpm.sign({ ...ref, auth: WRONG_AUTH }, sha256(Uint8Array.of(2)), { sessions: [policy, enc] }), expectTpmError(TPM_RC.BAD_AUTH));
    } finally {
      await tpm.flushContext(policy.handle);
      await tpm.flushContext(enc.handle);
      await tpm.flushContext(h.handle);
    }
  });

  it('TPM_RH_ENDORSEMENT authorized through an HMAC session (permanent handle: Name = handle)', async () => {
    const s = await tpm.startAuthSession({ salt: { handle: EK_P256_HANDLE } });
    const policy = await tpm.startAuthSession({ type: 'policy' });
    await tpm.policySecret(TPM_RH.ENDORSEMENT, policy, { sessions: [s] });
    assert.equal((await tpm.policyGetDigest(policy)).length, 32);
    await tpm.flushContext(policy.handle);
    await tpm.flushContext(s.handle);
  });
};
}
