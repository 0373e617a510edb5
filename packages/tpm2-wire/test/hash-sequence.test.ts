/**
 * Tpm.hashData on swtpm: one TPM2_Hash up to TPM_PT_INPUT_BUFFER, a hash sequence (HashSequenceStart,
 * SequenceUpdate, SequenceComplete) beyond it; digests against Node's SHA-256, tickets a restricted
 * key (an AK) accepts for TPM2_Sign, the null ticket for data that begins with TPM_GENERATED_VALUE,
 * and nothing left loaded.
 */
import assert from 'node:assert/strict';
import { createHash, verify } from 'node:crypto';
import { TPM_ALG, TPM_PT, TPM_RH, akTemplate, openTpm, publicToKeyObject, signatureToDer, toHex, type Tpm } from '../src/index.js';
import { withSwtpm } from './fixtures/swtpm.js';

describe('Tpm.hashData: TPM2_Hash and hash sequences @swtpm', function () {
  this.timeout(60_000);
  const swtpm = withSwtpm();
  let tpm: Tpm;
  before(async () => {
    tpm = await openTpm(swtpm().address);
  });
  after(async () => tpm?.close());

  it('digests data of every length like SHA-256, with a ticket of the hierarchy asked for', async () => {
    const max = (await tpm.getProperty(TPM_PT.INPUT_BUFFER)) ?? 1024;
    for (const n of [0, 1, max, max + 1, 3 * max, 5000]) {
      const data = new Uint8Array(n).map((_, i) => (i * 7) & 0xff);
      let sequences = 0;
      const r = await tpm.hashData(data, TPM_ALG.SHA256, TPM_RH.OWNER, { beforeSequence: async () => void sequences++ });
      assert.equal(sequences, n > max ? 1 : 0, `${n} bytes: beforeSequence only before a sequence`);
      assert.equal(toHex(r.outHash), createHash('sha256').update(data).digest('hex'), `${n} bytes`);
      assert.equal(r.validation.tag, 0x8024);
      assert.equal(r.validation.hierarchy, TPM_RH.OWNER, `${n} bytes: a real ticket`);
    }
    assert.deepEqual(await tpm.getLoadedHandles(), [], 'sequence objects are gone');
  });

  it('its tickets let a restricted key sign; data that begins with TPM_GENERATED_VALUE gets the null ticket', async () => {
    const ak = await tpm.createPrimary(TPM_RH.OWNER, akTemplate('ecc'));
    try {
      for (const n of [10, 4000]) {
        const data = new Uint8Array(n).fill(0x41);
        const h = await tpm.hashData(data, TPM_ALG.SHA256);
        const sig = await tpm.sign(ak.handle, h.outHash, { validation: h.validation });
        assert.ok(verify('sha256', data, { key: publicToKeyObject(ak.public), dsaEncoding: 'der' }, signatureToDer(sig)), `${n} bytes`);
        const generated = data.slice();
        generated.set([0xff, 0x54, 0x43, 0x47]);
        assert.equal((await tpm.hashData(generated, TPM_ALG.SHA256)).validation.hierarchy, TPM_RH.NULL, `${n} bytes from TPM_GENERATED_VALUE`);
      }
    } finally {
      await tpm.flushContext(ak.handle);
    }
  });
});
