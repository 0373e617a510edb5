import { strict as assert } from 'node:assert';
import { TPM_ALG, TPM_RH, openTpm, srkTemplateEccP256, type Tpm } from '../src/index.js';
import { withSwtpm } from './fixtures/swtpm.js';

describe('simulator transports @swtpm', function () {
  this.timeout(60_000);
  const swtpm = withSwtpm({ transport: 'tcp' });

  it('mssim: speaks Microsoft-simulator framing (swtpm accepts it on its data port)', async () => {
    const port = /port=(\d+)/.exec(swtpm().address)![1];
    const tpm = await openTpm(`mssim:host=127.0.0.1,port=${port}`);
    try {
      const r = await tpm.getRandom(100);
      assert.equal(r.length, 100);
      assert.deepEqual(await tpm.getActivePcrBanks(), [TPM_ALG.SHA1, TPM_ALG.SHA256]);
      // A multi-kilobyte exchange (CreatePrimary's response) through the MS frame.
      const srk = await tpm.createPrimary(TPM_RH.OWNER, srkTemplateEccP256());
      await tpm.flushContext(srk.handle);
    } finally {
      await tpm.close();
    }
  });

  it('counts the start-ups it does itself, so callers can tell their objects are gone', async () => {
    const tpm: Tpm = await openTpm(swtpm().address);
    try {
      const before = tpm.transport.startups;
      assert.equal(before, 0);
      await swtpm().powerCycle();
      await tpm.getRandom(8); // TPM_RC_INITIALIZE -> Startup(CLEAR) -> resent, transparently
      assert.equal(tpm.transport.startups, before + 1);
      await tpm.getRandom(8);
      assert.equal(tpm.transport.startups, before + 1, 'no further start-up while the TPM runs');
    } finally {
      await tpm.close();
    }
  });
});
