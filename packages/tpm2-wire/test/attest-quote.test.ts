// Quote, Certify, CertifyCreation and Sign against swtpm (issue 3): what the TPM signs verifies in
// software with verifyQuote / verifyCertify / verifyCertifyCreation / verifySignature, for RSA-2048
// and ECC P-256 AKs and RSASSA, RSAPSS and ECDSA signatures; a flipped byte makes each check fail.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  AttestationError,
  TPMA_OBJECT,
  TPM_ALG,
  TPM_RH,
  akTemplate,
  marshal,
  openTpm,
  rawBytes,
  signingKeyTemplate,
  verifyCertify,
  verifyCertifyCreation,
  verifyQuote,
  verifySignature,
  TPMT_SIGNATURE,
  unmarshal,
  type CreatedObject,
  type TPMT_PUBLIC,
  type TPMT_SIG_SCHEME,
  type Tpm,
} from '../src/index.js';
import { SRK_HANDLE, withSwtpm, type SwtpmInstance } from './fixtures/swtpm.js';

const hashOf = (alg: 'sha256' | 'sha384', b: Uint8Array) => new Uint8Array(createHash(alg).update(b).digest());

/** A copy of `b` with one bit flipped at `at` (negative: from the end). */
function flipped(b: Uint8Array, at: number): Uint8Array {
  const out = new Uint8Array(b); // a copy (Buffer#slice would be a view)
  out[at < 0 ? out.length + at : at]! ^= 0x01;
  return out;
}

/** A TPMT_SIGNATURE with one bit of its signature value flipped (re-encoded, so it still decodes). */
function flippedSignature(sig: TPMT_SIGNATURE): TPMT_SIGNATURE {
  return unmarshal(TPMT_SIGNATURE, flipped(marshal(TPMT_SIGNATURE, sig), -3));
}

function expectCheck(check: string): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof AttestationError, `expected an AttestationError, got ${String(e)}`);
    assert.equal(e.check, check, e.message);
    return true;
  };
}

interface Key {
  handle: number;
  name: Uint8Array;
  public: TPMT_PUBLIC;
  created: CreatedObject;
}

describe('attestation: Quote, Certify, CertifyCreation and Sign on swtpm @swtpm', function () {
  this.timeout(60_000);
  const swtpm = withSwtpm();
  describe('one TPM connection', quoteTests(swtpm));
});

function quoteTests(swtpm: () => SwtpmInstance) {
  return function () {
    let tpm: Tpm;
    /** The AKs' blobs, made once; each test loads what it uses (the SRK itself needs a slot while Create/Load run). */
    const akBlobs = new Map<'rsa' | 'ecc', CreatedObject & { private: Uint8Array }>();
    const transient: number[] = [];

    /** Loads a key (Create first when given a template) and registers it for the flush after the test. */
    async function loaded(what: TPMT_PUBLIC | (CreatedObject & { private: Uint8Array })): Promise<Key> {
      const created = 'private' in what ? what : await tpm.create(SRK_HANDLE, what);
      const h = await tpm.load(SRK_HANDLE, created.private, created.public);
      transient.push(h.handle);
      return { handle: h.handle, name: h.name, public: created.public, created };
    }
    const loadAk = (kind: 'rsa' | 'ecc') => loaded(akBlobs.get(kind)!);
    const otherKind = (kind: 'rsa' | 'ecc') => (kind === 'rsa' ? 'ecc' : 'rsa');

    before(async function () {
      this.timeout(120_000);
      tpm = await openTpm(swtpm().address);
      akBlobs.set('rsa', await tpm.create(SRK_HANDLE, akTemplate('rsa')));
      akBlobs.set('ecc', await tpm.create(SRK_HANDLE, akTemplate('ecc')));
      await tpm.pcrExtend(16, { hashAlg: TPM_ALG.SHA256, digest: randomBytes(32) });
    });
    afterEach(async () => {
      while (transient.length > 0) await tpm.flushContext(transient.pop()!);
      assert.deepEqual(await tpm.getLoadedHandles(), [], 'nothing left loaded');
    });
    after(async () => {
      await tpm?.close();
    });

    for (const kind of ['rsa', 'ecc'] as const) {
      describe(`${kind.toUpperCase()} AK`, () => {
        it('Quote (SHA-256 bank, PCRs 0-7, 16, 23) verifies with verifyQuote; flipped bytes, another nonce or other PCR values fail', async () => {
          const ak = await loadAk(kind);
          const indices = [0, 1, 2, 3, 4, 5, 6, 7, 16, 23];
          const values = await tpm.readPcrs(TPM_ALG.SHA256, indices);
          const nonce = randomBytes(32);
          const q = await tpm.quote(ak.handle, nonce, [{ hash: TPM_ALG.SHA256, pcrSelect: Uint8Array.of(0xff, 0x00, 0x81) }]);
          assert.equal(q.signature.sigAlg, kind === 'rsa' ? TPM_ALG.RSASSA : TPM_ALG.ECDSA);
          const pcrs = { hashAlg: TPM_ALG.SHA256, values };
          const att = verifyQuote(ak.public, q.attestBytes, q.signature, { nonce, pcrs });
          assert.deepEqual(att.qualifiedSigner, await tpm.readPublic(ak.handle).then((r) => r.qualifiedName));

          assert.throws(() => verifyQuote(ak.public, flipped(q.attestBytes, -5), q.signature, { nonce, pcrs }), expectCheck('signature'), 'a flipped byte in the attestation');
          assert.throws(() => verifyQuote(ak.public, q.attestBytes, flippedSignature(q.signature), { nonce, pcrs }), expectCheck('signature'), 'a flipped byte in the signature');
          assert.throws(() => verifyQuote(ak.public, q.attestBytes, q.signature, { nonce: flipped(nonce, 0), pcrs }), expectCheck('nonce'));
          const otherValues = new Map(values);
          otherValues.set(16, flipped(values.get(16)!, 0));
          assert.throws(() => verifyQuote(ak.public, q.attestBytes, q.signature, { nonce, pcrs: { hashAlg: TPM_ALG.SHA256, values: otherValues } }), expectCheck('pcrDigest'));
          const other = akBlobs.get(otherKind(kind))!;
          assert.throws(() => verifyQuote(other.public, q.attestBytes, q.signature, { nonce, pcrs }), expectCheck('signature'), 'the other AK did not sign it');
        });

        it('Quote of the SHA-1 bank (digested with the signing hash) verifies', async () => {
          const ak = await loadAk(kind);
          const values = await tpm.readPcrs(TPM_ALG.SHA1, [0, 16]);
          const nonce = randomBytes(20);
          const q = await tpm.quote(ak.handle, nonce, [{ hash: TPM_ALG.SHA1, pcrSelect: Uint8Array.of(0x01, 0x00, 0x01) }]);
          verifyQuote(ak.public, q.attestBytes, q.signature, { nonce, pcrs: { hashAlg: TPM_ALG.SHA1, values } });
        });

        it('Certify of a signing key verifies with verifyCertify; a flipped byte fails', async () => {
          const key = await loaded(signingKeyTemplate('ecc'));
          const ak = await loadAk(kind);
          const nonce = randomBytes(16);
          const c = await tpm.certify(key.handle, ak.handle, nonce);
          const att = verifyCertify(ak.public, c.attestBytes, c.signature, key.public, {
            nonce, attributes: { set: TPMA_OBJECT.fixedTPM | TPMA_OBJECT.sign, clear: TPMA_OBJECT.restricted },
          });
          assert.deepEqual(att.attested.name, key.name);
          assert.throws(() => verifyCertify(ak.public, flipped(c.attestBytes, -3), c.signature, key.public, { nonce }), expectCheck('signature'));
          assert.throws(() => verifyCertify(ak.public, c.attestBytes, flippedSignature(c.signature), key.public, { nonce }), expectCheck('signature'));
          const other = akBlobs.get(otherKind(kind))!;
          assert.throws(() => verifyCertify(ak.public, c.attestBytes, c.signature, other.public, { nonce }), expectCheck('name'), 'certifies this key, not another');
        });

        it('CertifyCreation of the AK itself (go-attestation) and of a new key verifies; a flipped byte fails', async () => {
          const ak = await loadAk(kind);
          const createData = rawBytes(ak.created.creationData)!;
          assert.ok(createData.length > 0, 'the exact creation data bytes are kept');
          const nonce = randomBytes(16);
          const self = await tpm.certifyCreation(ak.handle, ak.handle, ak.created.creationHash, ak.created.creationTicket, nonce);
          verifyCertifyCreation(ak.public, createData, self.attestBytes, self.signature, { nonce });
          assert.throws(() => verifyCertifyCreation(ak.public, flipped(createData, -5), self.attestBytes, self.signature), expectCheck('creationHash'));
          assert.throws(() => verifyCertifyCreation(ak.public, createData, flipped(self.attestBytes, -2), self.signature), expectCheck('signature'));
          assert.throws(() => verifyCertifyCreation(ak.public, createData, self.attestBytes, flippedSignature(self.signature)), expectCheck('signature'));

          const key = await loaded(signingKeyTemplate('ecc'));
          const c = await tpm.certifyCreation(ak.handle, key.handle, key.created.creationHash, key.created.creationTicket);
          verifyCertifyCreation(ak.public, rawBytes(key.created.creationData)!, c.attestBytes, c.signature, { certifiedPub: key.public, restricted: false });
          assert.throws(
            () => verifyCertifyCreation(ak.public, rawBytes(key.created.creationData)!, c.attestBytes, c.signature, { certifiedPub: key.public }),
            expectCheck('attributes'),
            'an unrestricted key is not accepted as an AK',
          );
        });

        it('the restricted AK signs a digest the TPM hashed (with the hashcheck ticket)', async () => {
          const ak = await loadAk(kind);
          const message = randomBytes(100);
          const { outHash, validation } = await tpm.hash(message, TPM_ALG.SHA256, TPM_RH.OWNER);
          assert.deepEqual(outHash, hashOf('sha256', message));
          const sig = await tpm.sign(ak.handle, outHash, { validation });
          assert.ok(verifySignature(ak.public, message, sig));
          assert.equal(verifySignature(ak.public, flipped(message, 0), sig), false);
        });
      });
    }

    describe('Sign with the schemes a verifier meets', () => {
      /** TPM-made unrestricted signing keys whose scheme is NULL, so Sign picks it per call. */
      function nullScheme(kind: 'rsa' | 'ecc'): TPMT_PUBLIC {
        const t = signingKeyTemplate(kind);
        if (t.type === TPM_ALG.RSA) return { ...t, parameters: { ...t.parameters, scheme: { scheme: TPM_ALG.NULL } } };
        if (t.type === TPM_ALG.ECC) return { ...t, parameters: { ...t.parameters, scheme: { scheme: TPM_ALG.NULL } } };
        throw new Error('unreachable');
      }
      const cases: { kind: 'rsa' | 'ecc'; scheme: TPMT_SIG_SCHEME; hash: 'sha256' | 'sha384' }[] = [
        { kind: 'rsa', scheme: { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 }, hash: 'sha256' },
        { kind: 'rsa', scheme: { scheme: TPM_ALG.RSAPSS, hashAlg: TPM_ALG.SHA256 }, hash: 'sha256' },
        { kind: 'rsa', scheme: { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA384 }, hash: 'sha384' },
        { kind: 'rsa', scheme: { scheme: TPM_ALG.RSAPSS, hashAlg: TPM_ALG.SHA384 }, hash: 'sha384' },
        { kind: 'ecc', scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 }, hash: 'sha256' },
        { kind: 'ecc', scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA384 }, hash: 'sha384' },
      ];
      for (const kind of ['rsa', 'ecc'] as const) {
        it(`${kind.toUpperCase()}: ${cases.filter((c) => c.kind === kind).map((c) => `${c.scheme.scheme === TPM_ALG.RSAPSS ? 'RSAPSS' : c.scheme.scheme === TPM_ALG.RSASSA ? 'RSASSA' : 'ECDSA'}-${c.hash}`).join(', ')} verify in software and with TPM2_VerifySignature`, async function () {
          this.timeout(60_000);
          const key = await loaded(nullScheme(kind));
          for (const c of cases.filter((x) => x.kind === kind)) {
            const message = randomBytes(64);
            const digest = hashOf(c.hash, message);
            const sig = await tpm.sign(key.handle, digest, { scheme: c.scheme });
            assert.equal(sig.sigAlg, c.scheme.scheme);
            assert.ok(verifySignature(key.public, message, sig), `${c.kind} ${c.scheme.scheme} ${c.hash} verifies in software`);
            assert.equal(verifySignature(key.public, message, flippedSignature(sig)), false, 'a flipped signature byte fails');
            assert.equal(verifySignature(key.public, flipped(message, 3), sig), false, 'another message fails');
            const ticket = await tpm.verifySignature(key.handle, digest, sig);
            assert.equal(ticket.tag, 0x8022, 'TPM_ST_VERIFIED ticket');
          }
        });
      }
    });
  };
}
