import assert from 'node:assert/strict';
import {
  TPMA_SESSION, TPM_ALG, TPM_CC, TPM_RH, hash, openTransport, signingKeyTemplate, srkTemplateEccP256, verifySignature, Tpm,
} from '../src/index.js';
import { withSwtpm } from './fixtures/swtpm.js';
import { RecordingTransport } from './fixtures/recording-transport.js';

describe('Tpm client: Names for cpHash without a ReadPublic per command @swtpm', function () {
  this.timeout(60_000);
  const swtpm = withSwtpm();

  it('uses the names Load returned, forgets them on flush, and is right when a handle is reused', async () => {
    const rec = new RecordingTransport(await openTransport(swtpm().address));
    const tpm = new Tpm(rec);
    try {
      const srk = await tpm.createPrimary(TPM_RH.OWNER, srkTemplateEccP256());
      const s = await tpm.startAuthSession({ salt: { handle: srk.handle, public: srk.public } });
      s.with(TPMA_SESSION.encrypt);
      const digest = hash(TPM_ALG.SHA256, new Uint8Array([7]));
      const readPublics = () => rec.exchanges.filter((x) => x.code === TPM_CC.ReadPublic).length;

      const sign = async (handle: number, pub: Parameters<typeof verifySignature>[0]) => {
        const sig = await tpm.sign(handle, digest, { sessions: [s] }); // the HMAC session covers the key's name
        assert.ok(verifySignature(pub, new Uint8Array([7]), sig));
      };
      const a = await tpm.create(srk.handle, signingKeyTemplate('ecc'));
      const b = await tpm.create(srk.handle, signingKeyTemplate('ecc'));
      const ha = (await tpm.load(srk.handle, a.private, a.public)).handle;
      const before = readPublics();
      for (let i = 0; i < 3; i++) await sign(ha, a.public);
      assert.equal(readPublics(), before, 'no ReadPublic: the name came from Load');

      // B is saved, both are flushed, and B comes back by ContextLoad, on A's old handle:
      // a name remembered for that handle would be A's, and the session's HMAC would not verify.
      const hb = (await tpm.load(srk.handle, b.private, b.public)).handle;
      const ctx = await tpm.contextSave(hb);
      await tpm.flushContext(hb);
      await tpm.flushContext(ha);
      const hb2 = await tpm.contextLoad(ctx);
      assert.equal(hb2, ha, 'the TPM reused the handle (else this test proves less)');
      await sign(hb2, b.public);
      await tpm.flushContext(hb2);
      await tpm.flushContext(s.handle);
      await tpm.flushContext(srk.handle);
    } finally {
      await tpm.close();
    }
  });
});
