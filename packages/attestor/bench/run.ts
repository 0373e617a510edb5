/**
 * Attestor benchmarks on one swtpm, as ratios measured side by side in this run (these machines
 * are shared and noisy: absolute times mean little). See BENCH.md for the table and how to read it.
 *
 * Part 1 (in this process, alternating rounds on one TPM connection):
 *   raw      TPM2_Sign on a loaded key through tpm2-wire (no gRPC);
 *   minimal  bench/minimal-server.ts: grpc-js Sign server, same proto, same TLS transport, key kept
 *            loaded, SHA-256 + TPM2_Sign only;
 *   attestor the attestor as deployed: mTLS + --auth mtls, info logging (JSON lines to a null
 *            sink), metrics, key store, TPM queue, object cache.
 * Part 2 (the built attestor as a child process): NewKey and a first GetAK cold (--key-pool 0) and
 * from the pool (--key-pool rsa=3,ecc=3), and the pooled process's RSS over 2 x 10,000 Sign RPCs.
 *
 *   pnpm build && pnpm bench [--rounds R] [--n N] [--rss-rpcs N]
 */
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { get } from 'node:http';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  TPM_ALG, TPM_RH, akTemplate, commandName, hash, openTpm, openTransport, pcrSelection, signingKeyTemplate, srkTemplateEccP256,
  type TPMS_CONTEXT, type Tpm, type Transport,
} from '@tpmds/tpm2-wire';
import { AttestorClient } from '@tpmds/protocol';
import { AttestorMetrics, Logger, defaultConfig, startAttestor } from '../src/index.js';
import { KeyStore } from '../src/keystore.js';
import { TpmBackend } from '../src/tpm-backend.js';
import { AttestorTpm } from '../src/tpm/attestor-tpm.js';
import { startSwtpm } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { TestPki } from '../test/fixtures/pki.js';
import { startMinimalSignServer, type MinimalKey } from './minimal-server.js';
import type { CallerJob } from './callers.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) || dflt : dflt;
};
const ROUNDS = arg('--rounds', 5);
const N = arg('--n', 200);
const RSS_RPCS = arg('--rss-rpcs', 10_000);
/** Sign RPCs per throughput measurement (at least 30 per caller). */
const THROUGHPUT_CALLS = arg('--throughput-calls', 1000);
const CORES = availableParallelism();
/** NODE_OPTIONS of the attestor process (default none, as deployed), e.g. --node-options --max-semi-space-size=2. */
const CHILD_NODE_OPTIONS = process.argv.includes('--node-options') ? (process.argv[process.argv.indexOf('--node-options') + 1] ?? '') : '';
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const ATTESTOR_MAIN = join(REPO, 'packages/attestor/dist/main.js');

// ---- statistics ----------------------------------------------------------------

const pct = (xs: readonly number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const p50 = (xs: readonly number[]): number => pct(xs, 50);
const p99 = (xs: readonly number[]): number => pct(xs, 99);

async function latencies(n: number, f: (i: number) => Promise<unknown>): Promise<number[]> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await f(i);
    xs.push(performance.now() - t0);
  }
  return xs;
}

/** Calls per second with `clients` callers each calling `f` in a loop, `total` calls in all. */
async function throughput(clients: number, total: number, f: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < total) await f(next++);
    }),
  );
  return total / ((performance.now() - t0) / 1000);
}

/** CPU time (ms) of this process (all threads) and of swtpm (`pid`), from /proc: clock ticks of 10 ms. */
const cpuMs = (pid: number): { bench: number; swtpm: number } => {
  const u = process.cpuUsage();
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on: utime is 14, stime 15
  return { bench: (u.user + u.system) / 1000, swtpm: ((Number(f[11]) + Number(f[12])) * 1000) / 100 };
};

// ---- the run -------------------------------------------------------------------

const lines: string[] = [];
const say = (s = ''): void => {
  lines.push(s);
  console.log(s);
};
const ms = (x: number): string => x.toFixed(3);
const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}x`;

if (!existsSync(ATTESTOR_MAIN)) {
  console.error(`${ATTESTOR_MAIN} is missing: run \`pnpm build\` first`);
  process.exit(1);
}

const started = performance.now();
const sw = await startSwtpm({ transport: 'unix' });
/** `run`'s rate and the CPU each of its `calls` cost this process (servers and callers) and swtpm, in ms. */
const cpuPerCall = async (calls: number, run: () => Promise<number>): Promise<{ rate: number; benchMs: number; swtpmMs: number }> => {
  const before = cpuMs(sw.pid);
  const rate = await run();
  const after = cpuMs(sw.pid);
  return { rate, benchMs: (after.bench - before.bench) / calls, swtpmMs: (after.swtpm - before.swtpm) / calls };
};
const work = await mkdtemp(join(tmpdir(), 'tpmds-bench-'));
try {
  const pki = new TestPki(work);
  const server = pki.server();
  const client = pki.leaf('client', '/CN=bench-client', ['extendedKeyUsage=clientAuth']);
  const serverCreds = (): grpc.ServerCredentials => grpc.ServerCredentials.createSsl(pki.caPem, [{ cert_chain: server.certPem, private_key: server.keyPem }], true);
  const clientCreds = grpc.credentials.createSsl(pki.caPem, client.keyPem, client.certPem);
  const NAME = { 'grpc.ssl_target_name_override': 'localhost' };
  // The callers of part 1 (Sign, Quote) run in a worker thread (bench/callers.ts), as deployed callers
  // are other processes: the servers' event loop serves, it does not also call.
  const callers = new Worker(
    `import('tsx/esm/api').then((tsx) => tsx.register()).then(() => import(${JSON.stringify(new URL('./callers.ts', import.meta.url).href)}))`,
    { eval: true }, // a worker does not inherit the --import tsx of this process
  );
  let pending = Promise.resolve<unknown>(null);
  const ask = <T>(job: CallerJob): Promise<T> => {
    const answer = pending.then(
      () =>
        new Promise<T>((resolve, reject) => {
          callers.once('message', (m: { result?: T; error?: string }) => (m.error === undefined ? resolve(m.result as T) : reject(new Error(`callers: ${m.error}`))));
          callers.postMessage(job);
        }),
    );
    pending = answer.catch(() => null);
    return answer;
  };
  const connect = (name: string, address: string): Promise<unknown> =>
    ask({ op: 'connect', name, address, caPem: pki.caPem.toString(), keyPem: client.keyPem.toString(), certPem: client.certPem.toString(), targetName: 'localhost' });

  // ---- part 1: raw, minimal and attestor share one TPM connection, taking turns -------
  let observe: ((cc: number, ms: number) => void) | undefined;
  const shared = await openTransport(sw.address, { onCommand: (cc, t) => observe?.(cc, t) });
  const borrowed = (): Transport => ({ send: (c) => shared.send(c), close: () => Promise.resolve(), get startups() { return shared.startups; } });
  const raw: Tpm = await openTpm(undefined, { transport: borrowed() });
  // The raw/minimal keys: made now, saved, and loaded (ContextLoad) one at a time into the TPM's third slot.
  const srk = await raw.createPrimary(TPM_RH.OWNER, srkTemplateEccP256());
  const saved = new Map<string, TPMS_CONTEXT>();
  for (const [name, template] of [['rsa', signingKeyTemplate('rsa')], ['ecc', signingKeyTemplate('ecc')], ['ak', akTemplate('ecc')]] as const) {
    const c = await raw.create(srk.handle, template);
    const l = await raw.load(srk.handle, c.private, c.public);
    saved.set(name, await raw.contextSave(l.handle));
    await raw.flushContext(l.handle);
  }
  await raw.flushContext(srk.handle);

  const metrics = new AttestorMetrics();
  const devNull = { write: () => true };
  const logger = new Logger('info', devNull);
  // The attestor may keep 2 objects loaded: the third slot of swtpm is the raw/minimal key's.
  const attestorTpm = new AttestorTpm(sw.address, {
    openTransport: () => Promise.resolve(borrowed()),
    objectSlots: 2,
    reclaim: false, // the raw/minimal key is not a leftover
    queue: { onDepth: (d) => metrics.setTpmQueueDepth(d), onWait: (m, s) => metrics.observeTpmQueueWait(m, s), onReject: (r) => metrics.countTpmQueueRejected(r) },
  });
  const config = {
    ...defaultConfig(),
    listen: '127.0.0.1:0', healthListen: '127.0.0.1:0', tpm: sw.address, stateDir: join(work, 'state'), eventLog: join(work, 'no-event-log'), userspaceLog: join(work, 'no-userspace-log'),
    tlsCert: server.cert, tlsKey: server.key, clientCa: pki.caCert, auth: 'mtls' as const, logLevel: 'info' as const,
  };
  const backend = new TpmBackend(attestorTpm, await KeyStore.open(config.stateDir), {});
  const attestor = await startAttestor(config, backend, { logger, metrics });
  const ac = new AttestorClient(attestor.address, clientCreds, NAME);
  const attestorObserve = (cc: number, t: number): void => metrics.observeTpmCommand(commandName(cc), t / 1000);
  await connect('attestor', attestor.address);

  const data = new Uint8Array(64).fill(1);
  const digest = hash(TPM_ALG.SHA256, data);
  const rows: string[][] = [];
  const throughputRows: string[][] = [];
  let quoteLine = '';
  const coldNewKey: Record<string, number[]> = { rsa: [], ecc: [] };
  const coldGetAk: Record<string, number[]> = { rsa: [], ecc: [] };
  try {
    for (const keyType of ['rsa', 'ecc'] as const) {
      // The raw/minimal key: loaded for this key type's part, in the TPM's third slot.
      observe = undefined;
      const loaded = { handle: await raw.contextLoad(saved.get(keyType) as TPMS_CONTEXT) };
      const keys = new Map<string, MinimalKey>([['k', { handle: loaded.handle, keyType }]]);
      const minimal = await startMinimalSignServer(raw, keys, '127.0.0.1:0', serverCreds());
      await connect('minimal', minimal.address);
      observe = attestorObserve;
      await ac.getAK({ uid: `bench-${keyType}`, keyType });
      await ac.newKey({ uid: `bench-${keyType}`, kid: 'k', keyType });
      const scheme = keyType === 'ecc' ? { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 } : { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 };
      const uid = { minimal: 'u', attestor: `bench-${keyType}` };
      const contenders: Record<'raw' | 'minimal' | 'attestor', { latencies: (n: number) => Promise<number[]>; observe?: (cc: number, t: number) => void }> = {
        raw: { latencies: (n) => latencies(n, () => raw.sign(loaded.handle, digest, { scheme })) },
        minimal: { latencies: (n) => ask({ op: 'latencies', name: 'minimal', uid: uid.minimal, kid: 'k', n }) },
        attestor: { latencies: (n) => ask({ op: 'latencies', name: 'attestor', uid: uid.attestor, kid: 'k', n }), observe: attestorObserve },
      };
      const lat: Record<string, number[]> = { raw: [], minimal: [], attestor: [] };
      for (const x of Object.values(contenders)) {
        observe = x.observe;
        await x.latencies(30); // warm-up
      }
      for (let r = 0; r < ROUNDS; r++) {
        for (const [name, x] of Object.entries(contenders)) {
          observe = x.observe;
          lat[name]!.push(...(await x.latencies(N)));
        }
      }
      const [rw, mn, at] = [lat['raw']!, lat['minimal']!, lat['attestor']!];
      rows.push([keyType === 'rsa' ? 'RSA-2048' : 'ECC P-256', ms(p50(rw)), ms(p50(mn)), ms(p99(mn)), ms(p50(at)), ms(p99(at)), ratio(p50(at), p50(mn)), ratio(p50(mn), p50(rw)), ratio(p99(at), p50(at))]);

      // Throughput at 1, 8 and 32 callers, against the TPM-bound rate 1 / raw p50.
      const bound = 1000 / p50(rw);
      for (const clients of [1, 8, 32]) {
        const total = Math.max(THROUGHPUT_CALLS, clients * 30);
        observe = undefined;
        const m = await cpuPerCall(total, () => ask<number>({ op: 'throughput', name: 'minimal', uid: uid.minimal, kid: 'k', callers: clients, total }));
        observe = attestorObserve;
        const a = await cpuPerCall(total, () => ask<number>({ op: 'throughput', name: 'attestor', uid: uid.attestor, kid: 'k', callers: clients, total }));
        // What this machine's cores allow at the CPU a call costs even the minimal server (its process, callers included, and swtpm).
        const ceiling = (CORES * 1000) / (m.benchMs + m.swtpmMs);
        throughputRows.push([
          keyType === 'rsa' ? 'RSA-2048' : 'ECC P-256', String(clients), bound.toFixed(0), m.rate.toFixed(0), a.rate.toFixed(0), (m.rate / bound).toFixed(2), (a.rate / bound).toFixed(2),
          `${ms(m.benchMs)} + ${ms(m.swtpmMs)}`, `${ms(a.benchMs)} + ${ms(a.swtpmMs)}`, (Math.min(ceiling, bound) / bound).toFixed(2),
        ]);
      }
      await ask({ op: 'disconnect', name: 'minimal' });
      await minimal.close();
      observe = undefined;
      await raw.flushContext(loaded.handle);
    }

    // Quote: the RPC against the raw commands it needs (TPM2_Quote per bank + the PCR reads), and
    // against the quotes alone (what the attestor sends while its kept PCR values are current).
    observe = undefined;
    const ak = { handle: await raw.contextLoad(saved.get('ak') as TPMS_CONTEXT) };
    const banks = await raw.getActivePcrBanks();
    const all = Array.from({ length: 24 }, (_, i) => i);
    const nonce = new Uint8Array(16).fill(3);
    const rawQuotesAlone = async (): Promise<void> => {
      for (const b of banks) await raw.quote(ak.handle, nonce, pcrSelection(b, all));
    };
    const rawQuote = async (): Promise<void> => {
      await rawQuotesAlone();
      for (const b of banks) await raw.readPcrs(b, all);
    };
    const rpcQuotes = (n: number): Promise<number[]> => ask({ op: 'quoteLatencies', name: 'attestor', uid: 'bench-ecc', nonce, n });
    const q: Record<string, number[]> = { raw: [], quotes: [], rpc: [] };
    for (let r = 0; r < ROUNDS; r++) {
      observe = undefined;
      q['raw']!.push(...(await latencies(Math.ceil(N / 4), rawQuote)));
      q['quotes']!.push(...(await latencies(Math.ceil(N / 4), rawQuotesAlone)));
      observe = attestorObserve;
      q['rpc']!.push(...(await rpcQuotes(Math.ceil(N / 4))));
    }
    observe = undefined;
    await raw.flushContext(ak.handle);
    quoteLine = `| Quote (${banks.length} banks, 24 PCRs) | ${ms(p50(q['raw']!))} | ${ms(p50(q['rpc']!))} | ${ms(p99(q['rpc']!))} | ${ratio(p50(q['rpc']!), p50(q['raw']!))} | ${ms(p50(q['quotes']!))} | ${ratio(p50(q['rpc']!), p50(q['quotes']!))} |`;
  } finally {
    await ask({ op: 'close' }).catch(() => undefined);
    await callers.terminate();
    ac.close();
    await attestor.close();
    await raw.close();
    await shared.close();
  }

  // ---- part 2: the built attestor as a process: NewKey/GetAK cold (no pool) and pooled, RSS ----
  const POOL = 3;
  /** Runs the built attestor with `--key-pool pool` on a fresh state directory while `body` runs. */
  const withAttestorProcess = async (pool: string, body: (p: { client: AttestorClient; poolMade: (n: number) => Promise<void>; rss: () => number }) => Promise<void>): Promise<void> => {
    const child = spawn(process.execPath, [
      ATTESTOR_MAIN, '--listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0', '--tpm', sw.address, '--state-dir', join(work, `state-${pool}`),
      '--event-log', join(work, 'no-event-log'), '--tls-cert', server.cert, '--tls-key', server.key, '--client-ca', pki.caCert, '--auth', 'mtls',
      '--key-pool', pool, '--log-level', 'info',
    ], { stdio: ['ignore', 'pipe', 'inherit'], env: { PATH: process.env['PATH'] ?? '', NODE_OPTIONS: CHILD_NODE_OPTIONS } });
    const exited = new Promise((r) => child.once('exit', r));
    try {
      const listening = await new Promise<{ address: string; healthAddress: string }>((resolve, reject) => {
        const rl = createInterface({ input: child.stdout });
        rl.on('line', (l) => {
          if (!l.startsWith('{')) return;
          const o = JSON.parse(l) as { msg?: string; level?: string; address?: string; healthAddress?: string };
          if (o.level === 'warn' || o.level === 'error') console.error(`attestor ${o.level}: ${o.msg}`);
          if (o.msg === 'attestor listening') resolve({ address: o.address as string, healthAddress: o.healthAddress as string });
        });
        child.once('exit', (code) => reject(new Error(`the attestor exited (${code}) before listening`)));
      });
      const metricsText = (): Promise<string> =>
        new Promise((resolve, reject) => {
          get(`http://${listening.healthAddress}/metrics`, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve(body));
          }).on('error', reject);
        });
      const creates = async (): Promise<number> => Number(/tpmds_tpm_command_duration_seconds_count\{command="TPM2_Create"\} (\d+)/.exec(await metricsText())?.[1] ?? 0);
      const client = new AttestorClient(listening.address, clientCreds, NAME);
      try {
        await client.getEKCert('ecc'); // the TLS handshake and the TPM connection, not counted
        await body({
          client,
          // Wait until the attestor made `n` keys in all (the pool makes them when the TPM is idle).
          poolMade: async (n) => {
            while ((await creates()) < n) await new Promise((r) => setTimeout(r, 50));
          },
          rss: () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024,
        });
      } finally {
        client.close();
      }
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  };

  // Cold: no pool. A first GetAK and NewKey of each type, not counted, load the SRK and the AK.
  await withAttestorProcess('rsa=0,ecc=0', async ({ client }) => {
    for (const keyType of ['ecc', 'rsa'] as const) {
      await client.getAK({ uid: `warm-${keyType}`, keyType });
      await client.newKey({ uid: `warm-${keyType}`, kid: 'k', keyType });
      for (let i = 0; i < 3; i++) coldGetAk[keyType]!.push(...(await latencies(1, () => client.getAK({ uid: `cold-${keyType}-${i}`, keyType }))));
      for (let i = 0; i < 5; i++) coldNewKey[keyType]!.push(...(await latencies(1, () => client.newKey({ uid: `cold-${keyType}-0`, kid: `k${i}`, keyType }))));
    }
  });

  const pooledNewKey: Record<string, number[]> = { rsa: [], ecc: [] };
  const pooledGetAk: Record<string, number[]> = { rsa: [], ecc: [] };
  /** RSS: [after start-up, peak during the first RPCs, after them, peak during the second, after them and 3 s idle]. */
  const rssAt: number[] = [];
  await withAttestorProcess(`rsa=${POOL},ecc=${POOL}`, async ({ client: pc, poolMade, rss }) => {
    let made = 4 * POOL;
    await poolMade(made);
    // Each call takes a pooled key; wait for its replacement before the next (NewKey is rare:
    // a call right behind another would wait for the RSA Create that refills the pool).
    for (const keyType of ['ecc', 'rsa'] as const) {
      for (let i = 0; i < POOL; i++) {
        pooledGetAk[keyType]!.push(...(await latencies(1, () => pc.getAK({ uid: `pooled-${keyType}-${i}`, keyType }))));
        await poolMade(++made);
        pooledNewKey[keyType]!.push(...(await latencies(1, () => pc.newKey({ uid: `pooled-${keyType}-${i}`, kid: 'k', keyType }))));
        await poolMade(++made);
      }
    }
    rssAt.push(rss());
    for (let round = 0; round < 2; round++) {
      let peak = 0;
      const sample = setInterval(() => (peak = Math.max(peak, rss())), 100);
      await throughput(8, RSS_RPCS, (i) => pc.sign({ uid: 'pooled-ecc-0', kid: 'k', data: new Uint8Array([i & 255]) }));
      clearInterval(sample);
      rssAt.push(Math.max(peak, rss()), rss());
    }
    await new Promise((r) => setTimeout(r, 3000));
    rssAt.push(rss());
  });

  // ---- report ----------------------------------------------------------------------
  say(`tpmds-attestor benchmarks: one swtpm, ${ROUNDS} alternating rounds of ${N} calls per contender (p50/p99 in ms; ratios are what matter)`);
  say();
  say('| Sign | raw TPM2_Sign p50 | minimal gRPC p50 | minimal p99 | attestor p50 | attestor p99 | attestor/minimal (p50) | minimal/raw (p50) | attestor p99/p50 |');
  say('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) say(`| ${r.join(' | ')} |`);
  say();
  say(`| Sign throughput | callers | TPM-bound (1/raw p50) /s | minimal /s | attestor /s | minimal/bound | attestor/bound | CPU ms/call, minimal: bench process + swtpm | CPU ms/call, attestor | ${CORES}-core ceiling at minimal's CPU / bound |`);
  say('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of throughputRows) say(`| ${r.join(' | ')} |`);
  say();
  // The last two columns: the TPM commands alone that an attestor whose kept PCR values are current sends.
  say('| Quote | raw Quote per bank + PCR reads p50 | attestor p50 | attestor p99 | attestor/raw | raw Quote per bank alone p50 | attestor/raw Quotes alone |');
  say('|---|---|---|---|---|---|---|');
  say(quoteLine);
  say();
  say('| key creation (p50 ms) | RSA-2048 | ECC P-256 |');
  say('|---|---|---|');
  say(`| NewKey cold (--key-pool 0, 5 calls) | ${ms(p50(coldNewKey['rsa']!))} | ${ms(p50(coldNewKey['ecc']!))} |`);
  say(`| NewKey from the pool (${POOL} calls) | ${ms(p50(pooledNewKey['rsa']!))} | ${ms(p50(pooledNewKey['ecc']!))} |`);
  say(`| cold / pooled | ${ratio(p50(coldNewKey['rsa']!), p50(pooledNewKey['rsa']!))} | ${ratio(p50(coldNewKey['ecc']!), p50(pooledNewKey['ecc']!))} |`);
  say(`| GetAK first call, cold (--key-pool 0, 3 calls) | ${ms(p50(coldGetAk['rsa']!))} | ${ms(p50(coldGetAk['ecc']!))} |`);
  say(`| GetAK first call, from the pool (${POOL} calls) | ${ms(p50(pooledGetAk['rsa']!))} | ${ms(p50(pooledGetAk['ecc']!))} |`);
  say();
  const mb = (x: number | undefined): string => `${(x ?? NaN).toFixed(1)} MB`;
  say(`| attestor process RSS${CHILD_NODE_OPTIONS ? ` (NODE_OPTIONS=${CHILD_NODE_OPTIONS})` : ''} | |`);
  say('|---|---|');
  say(`| after start-up, pool fill and the key-creation calls | ${mb(rssAt[0])} |`);
  say(`| Sign RPCs 1-${RSS_RPCS} (8 callers): peak / at the end | ${mb(rssAt[1])} / ${mb(rssAt[2])} |`);
  say(`| Sign RPCs ${RSS_RPCS + 1}-${2 * RSS_RPCS}: peak / at the end | ${mb(rssAt[3])} / ${mb(rssAt[4])} |`);
  say(`| 3 s idle after that | ${mb(rssAt[5])} |`);
  say(`| peak growth over the second ${RSS_RPCS} | ${(rssAt[3]! - rssAt[1]!).toFixed(1)} MB |`);
  say(`Total bench time: ${((performance.now() - started) / 1000).toFixed(0)} s`);
} finally {
  await sw.stop();
  await rm(work, { recursive: true, force: true });
}
