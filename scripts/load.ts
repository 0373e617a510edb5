// The long load run of docs/RELIABILITY.md (packages/attestor/test/load.ts): the built attestor
// on a fresh 3-slot swtpm with mTLS and two identities. Needs `pnpm build`.
//
//   node --import tsx scripts/load.ts [--clients 64] [--calls 5000] [--idle 1000]
import { mkdtempSync, rmSync } from 'node:fs';
import { runLoad } from '../packages/attestor/test/load.js';
import { startSwtpm } from '../packages/tpm2-wire/test/fixtures/swtpm.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : Number(process.argv[i + 1]);
};
const dir = mkdtempSync('/tmp/tpmds-load-');
const swtpm = await startSwtpm({ transport: 'unix' });
try {
  const r = await runLoad({ tpm: swtpm.address, dir, clients: arg('clients', 64), calls: arg('calls', 5000), idle: arg('idle', 1000), log: (l) => console.log(l) });
  console.log(JSON.stringify(r, null, 1));
  // Idle connections may be closed by the server only for not finishing a TLS handshake (Node: 120 s).
  const ok = r.errors.length === 0 && r.handlesAfter.length === 0 && (r.idleFirstClosedAfterS === null || r.idleFirstClosedAfterS >= 100);
  console.log(
    `${ok ? 'ok' : 'FAIL'}: ${r.clients} clients x ${r.callsPerClient} calls = ${r.calls} calls in ${(r.elapsedMs / 1000).toFixed(0)} s (${r.callsPerSecond}/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, max ${r.maxMs} ms), ` +
      `${r.errors.length} errors, ${r.idleStillOpen}/${r.idleConnections} idle connections open at the end (first closed by the server after ${r.idleFirstClosedAfterS ?? '-'} s), slow client with ${r.slowClientStreams} stalled streams, ` +
      `RSS ${r.rssStartMiB}/${r.rssPeakMiB}/${r.rssEndMiB} MiB (start/peak/end), TPM handles after: ${r.handlesAfter.length}`,
  );
  process.exitCode = ok ? 0 : 1;
} finally {
  await swtpm.stop();
  rmSync(dir, { recursive: true, force: true });
}
