// The short, fixed-seed variant of scripts/fuzz.ts (docs/RELIABILITY.md has the long runs): every
// decoder of the stack — tpm2-wire responses of every command, TPM2B/TPMT_PUBLIC/TPMS_ATTEST and
// other structures, the event-log parser, the go-attestation JSON and ImportBlob decoders, the
// attestor's request deserializers and the verifier's PEM/X.509 inputs — gets mutated real inputs
// and may only throw its typed errors. The per-input limit here only catches hangs (the machine
// running the tests may be loaded); the long runs hold every input to 100 ms.
import assert from 'node:assert/strict';
import { fuzz } from '../../../test/fuzz/engine.js';
import { allTargets } from '../../../test/fuzz/targets.js';

const CASES = 1500;
const SEED = 20261207;

describe('fuzz (short fixed-seed run of scripts/fuzz.ts)', function () {
  this.timeout(120_000);
  it('regression: the X.509 target, seed 1, cases 0-3,199 (case 3108 threw a RangeError from asn1js out of certificateMatchesPublic)', async () => {
    const x509 = allTargets().find((t) => t.name.startsWith('verifier X.509'))!;
    const r = await fuzz(x509, { cases: 3200, seed: 1, maxInputMs: 2000 });
    assert.deepEqual(r.failures, []);
  });

  for (const target of allTargets()) {
    it(`${target.name}: ${CASES} mutated inputs, only typed errors`, async () => {
      const r = await fuzz(target, { cases: CASES, seed: SEED, maxInputMs: 2000 });
      assert.deepEqual(r.failures, [], `${target.name}: reproduce with node --import tsx scripts/fuzz.ts --seed ${SEED} --cases ${CASES} --only '${target.name}'`);
      assert.equal(r.accepted + r.rejected, CASES);
      assert.ok(r.accepted > 0 || target.name.includes('execute'), `${target.name}: some inputs decode (the seeds are valid)`);
    });
  }
});
