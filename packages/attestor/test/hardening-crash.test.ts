// SIGKILL of the attestor process during NewKey and ImportSigningKey (crash-loop.ts): a few rounds
// here; `node --import tsx scripts/faults.ts` runs 50 (figures in docs/RELIABILITY.md).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startSwtpm, type SwtpmInstance } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { crashLoop } from './crash-loop.js';
import { tempDir } from './e2e-support.js';

describe('hardening: SIGKILL of the attestor during NewKey/ImportSigningKey @swtpm', function () {
  this.timeout(120_000);
  let swtpm: SwtpmInstance;
  let dirs: ReturnType<typeof tempDir>;
  before(async () => {
    dirs = tempDir('tpmds-crash-');
    swtpm = await startSwtpm({ transport: 'unix' });
  });
  after(async () => {
    await swtpm?.stop();
    dirs?.cleanup();
  });

  it('5 kills at random points: no partial or unreadable record, temp files removed at the next start, every key whose RPC returned OK signs', async () => {
    let x = 7;
    const random = (): number => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const r = await crashLoop({ tpm: swtpm.address, stateDir: join(dirs.dir, 'state'), rounds: 5, random });
    assert.deepEqual(r.unreadable, []);
    assert.deepEqual(r.lost, []);
    assert.equal(r.rounds, 5);
    assert.ok(r.okKeys > 0 && r.interrupted > 0, `${r.okKeys} keys made, ${r.interrupted} calls cut by the kills`);
  });
});
