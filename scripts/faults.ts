// The long fault run of docs/RELIABILITY.md: SIGKILL of the tpmds-attestor process during
// NewKey/ImportSigningKey, --rounds times (default 50) at random points, on one swtpm and one
// --state-dir (packages/attestor/test/crash-loop.ts). Needs `pnpm build` (it runs the built binary).
//
//   node --import tsx scripts/faults.ts [--rounds N]
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { crashLoop } from '../packages/attestor/test/crash-loop.js';
import { startSwtpm } from '../packages/tpm2-wire/test/fixtures/swtpm.js';

const i = process.argv.indexOf('--rounds');
const rounds = i === -1 ? 50 : Number(process.argv[i + 1]);
const dir = mkdtempSync('/tmp/tpmds-faults-');
const swtpm = await startSwtpm({ transport: 'unix' });
try {
  const r = await crashLoop({ tpm: swtpm.address, stateDir: join(dir, 'state'), rounds, maxDelayMs: 2000, log: (l) => console.log(l) });
  console.log(JSON.stringify(r, null, 1));
  const ok = r.unreadable.length === 0 && r.lost.length === 0;
  console.log(
    `${ok ? 'ok' : 'FAIL'}: ${r.rounds} SIGKILLs in ${(r.elapsedMs / 1000).toFixed(0)} s; ${r.okKeys} keys returned OK and all ${r.lost.length === 0 ? 'sign' : 'but ' + r.lost.length + ' sign'}; ` +
      `${r.interrupted} calls cut; ${r.storedWithoutReply} keys stored without a reply; ${r.tempFilesLeft} temp files left by kills, all removed at the next start; ${r.unreadable.length} unreadable records`,
  );
  process.exitCode = ok ? 0 : 1;
} finally {
  await swtpm.stop();
  rmSync(dir, { recursive: true, force: true });
}
