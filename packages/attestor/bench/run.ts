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
 *   The gRPC callers of both servers run in a worker thread (bench/callers.ts). Throughput rows
 *   also give the CPU per call of this process and of swtpm, and the rate the cores allow at it.
 * Part 2 (the built attestor as child processes, started with the runtime settings of its launcher
 * bin/tpmds-attestor.js, as deployed; a second swtpm lets two run side by side): NewKey and a first
 * GetAK cold (--key-pool 0) and from the pool (--key-pool rsa=3,ecc=3), calls alternating; then
 * Sign latency and the RSS over 2 x 10,000 Sign RPCs (with --compare-runtime also under node's
 * defaults, side by side).
 *
 *   pnpm build && pnpm bench [--rounds R] [--n N] [--throughput-calls N] [--rss-rpcs N] [--compare-runtime]
 */
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
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
import { launcherSettings } from './launcher.js';

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
/** Part 2 also runs the attestor under node's defaults (without the launcher's settings), side by side. */
const COMPARE_RUNTIME = process.argv.includes('--compare-runtime');
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
      rows.push([
        keyType === 'rsa' ? 'RSA-2048' : 'ECC P-256', ms(p50(rw)), ms(p99(rw)), ms(p50(mn)), ms(p99(mn)), ms(p50(at)), ms(p99(at)),
        ratio(p50(at), p50(mn)), ratio(p50(mn), p50(rw)), ratio(p99(rw), p50(rw)), ratio(p99(mn), p50(mn)), ratio(p99(at), p50(at)),
      ]);

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

  // ---- part 2: the built attestor as processes, started as deployed (the launcher's settings) ----
  type Runtime = 'deployed' | 'node defaults';
  interface Memory {
    /** VmRSS, and its parts RssAnon (heap, stacks, malloc) and RssFile (mapped files: mostly the node binary). */
    rss: number;
    anon: number;
    file: number;
  }
  interface AttestorProcess {
    client: AttestorClient;
    close: () => Promise<void>;
    /** TPM2_Create commands the process ran so far (its metrics). */
    creates: () => Promise<number>;
    poolFull: () => Promise<void>;
    memory: () => Memory;
  }
  interface ProcessMemory {
    runtime: Runtime;
    p50: number;
    p99: number;
    start: Memory;
    rounds: { perSecond: number; peak: number; end: Memory }[];
    idle: Memory;
  }
  let keyCreation: { pooledNewKey: Record<string, number[]>; pooledGetAk: Record<string, number[]>; creations: number; requestPathCreates: number } | undefined;
  const memory: ProcessMemory[] = [];
  const deployed = launcherSettings();
  /** A second swtpm: two attestor processes side by side, each with a TPM of its own (neither flushes the other's objects). */
  const sw2 = await startSwtpm({ transport: 'unix' });
  try {
    const POOL = 3;
    const CREATIONS = 9; // swtpm's RSA key generation varies 10x from call to call (its prime search): a median of 9
    // Key creation: a cold attestor (no pool) on one swtpm and a pooled one on the other, calls alternating.
    const cold = await startAttestorProcess({ name: 'cold', tpm: sw2.address, pool: 'rsa=0,ecc=0', runtime: 'deployed' });
    const pooled = await startAttestorProcess({ name: 'pooled', tpm: sw.address, pool: `rsa=${POOL},ecc=${POOL}`, runtime: 'deployed' });
    const pooledNewKey: Record<string, number[]> = { rsa: [], ecc: [] };
    const pooledGetAk: Record<string, number[]> = { rsa: [], ecc: [] };
    const requestPathCreates: number[] = [];
    try {
      await pooled.poolFull();
      for (const keyType of ['ecc', 'rsa'] as const) {
        // Not counted: the cold attestor's first GetAK and NewKey of the type create and load its SRK.
        await cold.client.getAK({ uid: `warm-${keyType}`, keyType });
        await cold.client.newKey({ uid: `warm-${keyType}`, kid: 'k', keyType });
        // Each pooled call with the pool full, as when keys are asked for now and then (a call
        // right behind another waits for the Create that refills the pool); each NewKey on the AK
        // the GetAK before it made, in both attestors.
        for (let i = 0; i < CREATIONS; i++) {
          coldGetAk[keyType]!.push(...(await latencies(1, () => cold.client.getAK({ uid: `cold-${keyType}-${i}`, keyType }))));
          let creates = await pooled.creates();
          pooledGetAk[keyType]!.push(...(await latencies(1, () => pooled.client.getAK({ uid: `pooled-${keyType}-${i}`, keyType }))));
          requestPathCreates.push((await pooled.creates()) - creates); // 0 unless the refill started meanwhile
          await pooled.poolFull();
          coldNewKey[keyType]!.push(...(await latencies(1, () => cold.client.newKey({ uid: `cold-${keyType}-${i}`, kid: 'k', keyType }))));
          creates = await pooled.creates();
          pooledNewKey[keyType]!.push(...(await latencies(1, () => pooled.client.newKey({ uid: `pooled-${keyType}-${i}`, kid: 'k', keyType }))));
          requestPathCreates.push((await pooled.creates()) - creates);
          await pooled.poolFull();
        }
      }
    } finally {
      await cold.close();
      await pooled.close();
    }
    keyCreation = { pooledNewKey, pooledGetAk, creations: CREATIONS, requestPathCreates: requestPathCreates.reduce((x, y) => x + y, 0) };

    // Sign latency and RSS: the attestor as deployed (and, with --compare-runtime, beside it one
    // under node's defaults), no pool, one ECC key; Sign latency in alternating rounds, then
    // 2 x RSS_RPCS Sign RPCs (8 callers) on each in turn.
    const runtimes: Runtime[] = COMPARE_RUNTIME ? ['deployed', 'node defaults'] : ['deployed'];
    const procs = new Map<Runtime, AttestorProcess>();
    try {
      for (const [i, runtime] of runtimes.entries()) {
        const p = await startAttestorProcess({ name: runtime, tpm: i === 0 ? sw.address : sw2.address, pool: 'rsa=0,ecc=0', runtime });
        procs.set(runtime, p);
        await p.client.getAK({ uid: 'rss', keyType: 'ecc' });
        await p.client.newKey({ uid: 'rss', kid: 'k', keyType: 'ecc' });
      }
      const sign = (p: AttestorProcess) => (i: number) => p.client.sign({ uid: 'rss', kid: 'k', data: new Uint8Array([i & 255]) });
      const lat = new Map<Runtime, number[]>(runtimes.map((r) => [r, []]));
      for (const p of procs.values()) await latencies(30, sign(p)); // warm-up
      for (let r = 0; r < ROUNDS; r++) {
        // Each round in the other order: neither process is always the one right after the other.
        const order = [...procs];
        if (r % 2 === 1) order.reverse();
        for (const [runtime, p] of order) lat.get(runtime)!.push(...(await latencies(N, sign(p))));
      }
      for (const [runtime, p] of procs) {
        const m: ProcessMemory = { runtime, p50: p50(lat.get(runtime)!), p99: p99(lat.get(runtime)!), start: p.memory(), rounds: [], idle: p.memory() };
        for (let round = 0; round < 2; round++) {
          let peak = 0;
          const sample = setInterval(() => (peak = Math.max(peak, p.memory().rss)), 100);
          const perSecond = await throughput(8, RSS_RPCS, sign(p));
          clearInterval(sample);
          const end = p.memory();
          m.rounds.push({ perSecond, peak: Math.max(peak, end.rss), end });
        }
        memory.push(m);
      }
      await new Promise((r) => setTimeout(r, 3000));
      for (const m of memory) m.idle = procs.get(m.runtime)!.memory();
    } finally {
      for (const p of procs.values()) await p.close();
    }
  } finally {
    await sw2.stop();
  }

  /** An attestor process: the built attestor with `pool` on `tpm`, mTLS, info logging to a pipe, a fresh state directory. */
  async function startAttestorProcess(o: { name: string; tpm: string; pool: string; runtime: Runtime }): Promise<AttestorProcess> {
    const stateDir = join(work, `state-${o.name}`);
    // As deployed: node with the launcher's flags and environment (the launcher itself would run
    // whichever node is on PATH). 'node defaults': the same attestor without them.
    const settings = o.runtime === 'deployed' ? deployed : { env: {}, nodeFlags: [] };
    const child = spawn(process.execPath, [
      ...settings.nodeFlags, ATTESTOR_MAIN,
      '--listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0', '--tpm', o.tpm, '--state-dir', stateDir,
      '--event-log', join(work, 'no-event-log'), '--tls-cert', server.cert, '--tls-key', server.key, '--client-ca', pki.caCert, '--auth', 'mtls',
      '--key-pool', o.pool, '--log-level', 'info',
    ], { stdio: ['ignore', 'pipe', 'inherit'], env: { PATH: process.env['PATH'] ?? '', ...settings.env } });
    const exited = new Promise((r) => child.once('exit', r));
    const close = async (): Promise<void> => {
      client?.close();
      child.kill('SIGTERM');
      await exited;
    };
    let client: AttestorClient | undefined;
    try {
      const listening = await new Promise<{ address: string; healthAddress: string }>((resolve, reject) => {
        const rl = createInterface({ input: child.stdout });
        rl.on('line', (l) => {
          if (!l.startsWith('{')) return;
          const line = JSON.parse(l) as { msg?: string; level?: string; address?: string; healthAddress?: string };
          if (line.level === 'warn' || line.level === 'error') console.error(`attestor (${o.name}) ${line.level}: ${line.msg}`);
          if (line.msg === 'attestor listening') resolve({ address: line.address as string, healthAddress: line.healthAddress as string });
        });
        child.once('exit', (code) => reject(new Error(`the attestor (${o.name}) exited (${code}) before listening`)));
      });
      const metricsText = (): Promise<string> =>
        new Promise((resolve, reject) => {
          get(`http://${listening.healthAddress}/metrics`, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve(body));
          }).on('error', reject);
        });
      const c = (client = new AttestorClient(listening.address, clientCreds, NAME));
      await c.getEKCert('ecc'); // the TLS handshake and the TPM connection, not counted
      const sizes = o.pool.split(',').map((x) => Number(x.split('=')[1] ?? 0));
      const poolTarget = 2 * sizes.reduce((x, y) => x + y, 0); // a signing key and an AK of each
      const poolDir = join(stateDir, 'pool');
      return {
        client: c,
        close,
        creates: async () => Number(/tpmds_tpm_command_duration_seconds_count\{command="TPM2_Create"\} (\d+)/.exec(await metricsText())?.[1] ?? 0),
        // Until every pooled key is on disk (its Create done and its file written and fsynced).
        poolFull: async () => {
          while (readdirSync(poolDir).filter((f) => f.endsWith('.json')).length < poolTarget) await new Promise((r) => setTimeout(r, 20));
        },
        memory: () => {
          const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
          const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) / 1024;
          return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
        },
      };
    } catch (e) {
      await close();
      throw e;
    }
  }

  // ---- report ----------------------------------------------------------------------
  say(`tpmds-attestor benchmarks: one swtpm, ${ROUNDS} alternating rounds of ${N} calls per contender (p50/p99 in ms; ratios are what matter)`);
  say();
  say('| Sign | raw TPM2_Sign p50 | raw p99 | minimal gRPC p50 | minimal p99 | attestor p50 | attestor p99 | attestor/minimal (p50) | minimal/raw (p50) | raw p99/p50 | minimal p99/p50 | attestor p99/p50 |');
  say('|---|---|---|---|---|---|---|---|---|---|---|---|');
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
  if (keyCreation) {
    const { pooledNewKey, pooledGetAk, creations } = keyCreation;
    say(`| key creation (p50 ms; ${creations} calls each, cold and pooled alternating) | RSA-2048 | ECC P-256 |`);
    say('|---|---|---|');
    say(`| NewKey cold (--key-pool 0) | ${ms(p50(coldNewKey['rsa']!))} | ${ms(p50(coldNewKey['ecc']!))} |`);
    say(`| NewKey from the pool (--key-pool rsa=3,ecc=3) | ${ms(p50(pooledNewKey['rsa']!))} | ${ms(p50(pooledNewKey['ecc']!))} |`);
    say(`| NewKey cold / pooled | ${ratio(p50(coldNewKey['rsa']!), p50(pooledNewKey['rsa']!))} | ${ratio(p50(coldNewKey['ecc']!), p50(pooledNewKey['ecc']!))} |`);
    say(`| GetAK first call, cold | ${ms(p50(coldGetAk['rsa']!))} | ${ms(p50(coldGetAk['ecc']!))} |`);
    say(`| GetAK first call, from the pool | ${ms(p50(pooledGetAk['rsa']!))} | ${ms(p50(pooledGetAk['ecc']!))} |`);
    say(`| GetAK cold / pooled | ${ratio(p50(coldGetAk['rsa']!), p50(pooledGetAk['rsa']!))} | ${ratio(p50(coldGetAk['ecc']!), p50(pooledGetAk['ecc']!))} |`);
    say(`TPM2_Create during the pooled calls: ${keyCreation.requestPathCreates} (a pooled call creates no key)`);
    say();
  }
  const mb = (x: number | undefined): string => `${(x ?? NaN).toFixed(1)} MB`;
  const mem = (m: Memory): string => `${mb(m.rss)} (anon ${mb(m.anon)}, file ${mb(m.file)})`;
  say(`| attestor process (--key-pool 0, ECC P-256 Sign) | ${memory.map((m) => (m.runtime === 'deployed' ? `as deployed: ${launcherSettings().text}` : 'node defaults')).join(' | ')} |`);
  say(`|---|${memory.map(() => '---|').join('')}`);
  say(`| Sign p50 / p99 (1 caller, ${ROUNDS} alternating rounds of ${N}) | ${memory.map((m) => `${ms(m.p50)} / ${ms(m.p99)} ms`).join(' | ')} |`);
  say(`| RSS after start-up, GetAK, NewKey and those Signs | ${memory.map((m) => mem(m.start)).join(' | ')} |`);
  for (const [i, label] of [`Sign RPCs 1-${RSS_RPCS} (8 callers)`, `Sign RPCs ${RSS_RPCS + 1}-${2 * RSS_RPCS}`].entries()) {
    say(`| ${label}: calls/s | ${memory.map((m) => m.rounds[i]!.perSecond.toFixed(0)).join(' | ')} |`);
    say(`| ${label}: RSS peak / at the end | ${memory.map((m) => `${mb(m.rounds[i]!.peak)} / ${mem(m.rounds[i]!.end)}`).join(' | ')} |`);
  }
  say(`| RSS 3 s idle after that | ${memory.map((m) => mem(m.idle)).join(' | ')} |`);
  say(`| growth over the second ${RSS_RPCS}: at the end / peak | ${memory.map((m) => `${(m.rounds[1]!.end.rss - m.rounds[0]!.end.rss).toFixed(1)} / ${(m.rounds[1]!.peak - m.rounds[0]!.peak).toFixed(1)} MB`).join(' | ')} |`);
  say(`Total bench time: ${((performance.now() - started) / 1000).toFixed(0)} s`);
} finally {
  await sw.stop();
  await rm(work, { recursive: true, force: true });
}
