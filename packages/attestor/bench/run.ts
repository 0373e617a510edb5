/**
 * Attestor benchmarks: a Sign / Quote RPC end to end (gRPC over a Unix socket,
 * key load, TPM command, flush, response) against the raw TPM command it
 * wraps, both measured in this run on the same swtpm. Ratios, not absolute times.
 *
 *   pnpm bench [--iterations N]
 */
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TPM_ALG, TPM_RH, akTemplate, hash, openTpm, pcrSelection, signingKeyTemplate, srkTemplateEccP256 } from '@tpmds/tpm2-wire';
import { AttestorClient } from '@tpmds/protocol';
import { AttestorMetrics, Logger, createBackend, defaultConfig, startAttestor } from '../src/index.js';
import { startSwtpm } from '../../tpm2-wire/test/fixtures/swtpm.js';

const iterations = Number(process.argv[process.argv.indexOf('--iterations') + 1]) || 100;

async function median(n: number, f: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < Math.min(10, n); i++) await f();
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await f();
    xs.push(performance.now() - t0);
  }
  xs.sort((a, b) => a - b);
  return xs[Math.floor(xs.length / 2)]!;
}

const sw = await startSwtpm({ transport: 'unix' });
const work = await mkdtemp(join(tmpdir(), 'tpmds-bench-'));
const rows: { name: string; raw: number; ours: number }[] = [];
try {
  // Raw TPM times for the commands the RPCs wrap (one loaded key each, as the attestor uses them).
  const tpm = await openTpm(sw.address);
  const srk = await tpm.createPrimary(TPM_RH.OWNER, srkTemplateEccP256());
  const k = await tpm.create(srk.handle, signingKeyTemplate('ecc'));
  const key = await tpm.load(srk.handle, k.private, k.public);
  const digest = hash(TPM_ALG.SHA256, new Uint8Array(64));
  const rawSign = await median(iterations, () => tpm.sign(key.handle, digest));
  await tpm.flushContext(key.handle);
  const a = await tpm.create(srk.handle, akTemplate('ecc'));
  const ak = await tpm.load(srk.handle, a.private, a.public);
  const banks = await tpm.getActivePcrBanks();
  const all = Array.from({ length: 24 }, (_, i) => i);
  const rawQuote = await median(iterations, async () => {
    for (const b of banks) await tpm.quote(ak.handle, new Uint8Array(16), pcrSelection(b, all));
  });
  await tpm.flushContext(ak.handle);
  await tpm.flushContext(srk.handle);
  await tpm.close();

  const config = {
    ...defaultConfig(), listen: `unix:${join(work, 'a.sock')}`, tpm: sw.address, stateDir: join(work, 'state'),
    eventLog: join(work, 'none'), insecure: true, healthListen: '127.0.0.1:0', logLevel: 'error' as const,
  };
  const logger = new Logger('error');
  const metrics = new AttestorMetrics();
  const attestor = await startAttestor(config, await createBackend(config, metrics, logger), { logger, metrics });
  const client = new AttestorClient(attestor.address, grpc.credentials.createInsecure());
  try {
    await client.getAK({ uid: 'bench', keyType: 'ecc' });
    await client.newKey({ uid: 'bench', kid: 'k', keyType: 'ecc' });
    const data = new Uint8Array(64);
    const rpcSign = await median(iterations, () => client.sign({ uid: 'bench', kid: 'k', data }));
    const rpcQuote = await median(iterations, () => client.quote({ uid: 'bench', nonce: new Uint8Array(16) }));
    rows.push({ name: 'Sign RPC (ECDSA P-256) vs raw TPM2_Sign', raw: rawSign, ours: rpcSign });
    rows.push({ name: `Quote RPC (${banks.length} banks, 24 PCRs) vs raw TPM2_Quote per bank`, raw: rawQuote, ours: rpcQuote });
  } finally {
    client.close();
    await attestor.close();
  }
} finally {
  await sw.stop();
  await rm(work, { recursive: true, force: true });
}

console.log(`\ntpmds-attestor benchmarks (median of ${iterations}; ratio = RPC time / raw TPM command time in this run)\n`);
console.log('operation'.padEnd(58) + 'raw ms'.padStart(9) + 'RPC ms'.padStart(9) + 'ratio'.padStart(8));
for (const r of rows) console.log(r.name.padEnd(58) + r.raw.toFixed(3).padStart(9) + r.ours.toFixed(3).padStart(9) + `${(r.ours / r.raw).toFixed(2)}x`.padStart(8));
