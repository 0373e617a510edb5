// A short load run (load.ts): mixed calls of two identities on the 3-slot swtpm while idle
// connections and a slow client hold the server; `node --import tsx scripts/load.ts` is the long
// run (64 clients x 5,000 calls, 1,000 idle connections; figures in docs/RELIABILITY.md).
import assert from 'node:assert/strict';
import { startSwtpm, type SwtpmInstance } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { runLoad } from './load.js';
import { tempDir } from './e2e-support.js';

describe('hardening: load with idle connections and a slow client @swtpm', function () {
  this.timeout(180_000);
  let swtpm: SwtpmInstance;
  let dirs: ReturnType<typeof tempDir>;
  before(async () => {
    dirs = tempDir('tpmds-load-');
    swtpm = await startSwtpm({ transport: 'unix' });
  });
  after(async () => {
    await swtpm?.stop();
    dirs?.cleanup();
  });

  it('16 clients x 25 mixed calls (every RPC, two identities, RSA and ECC), 200 idle connections, a slow client: no errors, all verified, no TPM handles left', async () => {
    const r = await runLoad({ tpm: swtpm.address, dir: dirs.dir, clients: 16, calls: 25, idle: 200 });
    assert.deepEqual(r.errors, []);
    assert.equal(r.calls, 16 * 25);
    for (const rpc of ['GetEKCert', 'GetAK', 'Attest', 'Quote', 'ImportBlob', 'Sign', 'NewKey', 'ImportSigningKey', 'GetGCEEKSigningKey', 'SignGCEEK']) assert.ok((r.byRpc[rpc] ?? 0) > 0, rpc);
    // Idle connections do not starve the others (all calls above succeeded); the server may drop
    // them only for not finishing a TLS handshake in 120 s.
    assert.ok(r.idleFirstClosedAfterS === null || r.idleFirstClosedAfterS >= 100, `an idle connection was closed after ${r.idleFirstClosedAfterS} s`);
    assert.deepEqual(r.handlesAfter, [], 'no transient objects or sessions left on the TPM');
    assert.ok(r.rssEndMiB > 0);
  });
});
