/**
 * Where the attestor's Sign or Quote RPC spends its CPU: runs the built attestor as deployed (the
 * launcher's node flags, mTLS, --auth mtls, info logging to a pipe) under `node --cpu-prof` on a
 * fresh swtpm, makes `--n` calls on one key from `--callers` concurrent callers, and prints the
 * functions with the most self time per call (microseconds, from the samples; the sampling itself
 * slows every call down a little).
 *
 *   pnpm build && node --import tsx packages/attestor/bench/profile.ts [--rpc sign|quote] [--key-type ecc|rsa] [--n 4000] [--callers 1] [--top 40]
 *
 * The profile stays in the printed directory for Chrome DevTools / speedscope.
 */
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { AttestorClient } from '@tpmds/protocol';
import { startSwtpm } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { TestPki } from '../test/fixtures/pki.js';
import { launcherSettings } from './launcher.js';

const flag = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt;
};
if (process.argv.includes('--help')) {
  console.log('usage: node --import tsx packages/attestor/bench/profile.ts [--rpc sign|quote] [--key-type ecc|rsa] [--n CALLS] [--callers N] [--top FUNCTIONS]');
  process.exit(0);
}
const keyType = flag('--key-type', 'ecc');
if (keyType !== 'ecc' && keyType !== 'rsa') throw new Error(`--key-type must be ecc or rsa, not ${keyType}`);
const rpc = flag('--rpc', 'sign');
if (rpc !== 'sign' && rpc !== 'quote') throw new Error(`--rpc must be sign or quote, not ${rpc}`);
const N = Number(flag('--n', '4000'));
const CALLERS = Number(flag('--callers', '1'));
const TOP = Number(flag('--top', '40'));
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

const sw = await startSwtpm({ transport: 'unix' });
const work = await mkdtemp(join(tmpdir(), 'tpmds-profile-'));
const profiles = join(work, 'profiles');
try {
  const pki = new TestPki(work);
  const server = pki.server();
  const client = pki.leaf('client', '/CN=profile-client', ['extendedKeyUsage=clientAuth']);
  const runtime = launcherSettings();
  const child = spawn(process.execPath, [
    ...runtime.nodeFlags, '--cpu-prof', '--cpu-prof-interval', '200', '--cpu-prof-dir', profiles, MAIN,
    '--listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0', '--tpm', sw.address, '--state-dir', join(work, 'state'), '--event-log', join(work, 'none'),
    '--tls-cert', server.cert, '--tls-key', server.key, '--client-ca', pki.caCert, '--auth', 'mtls', '--log-level', 'info',
  ], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...runtime.env } });
  const exited = new Promise((r) => child.once('exit', r));
  const address = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (l) => {
      if (l.includes('"attestor listening"')) resolve((JSON.parse(l) as { address: string }).address);
    });
    child.once('exit', (code) => reject(new Error(`the attestor exited (${code}) before listening`)));
  });
  const c = new AttestorClient(address, grpc.credentials.createSsl(pki.caPem, client.keyPem, client.certPem), { 'grpc.ssl_target_name_override': 'localhost' });
  await c.getAK({ uid: 'u', keyType });
  await c.newKey({ uid: 'u', kid: 'k', keyType });
  const data = new Uint8Array(64).fill(1);
  const nonce = new Uint8Array(16).fill(3);
  const call = (): Promise<unknown> => (rpc === 'sign' ? c.sign({ uid: 'u', kid: 'k', data }) : c.quote({ uid: 'u', nonce }));
  const xs: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: CALLERS }, async () => {
      while (next++ < N) {
        const t0 = performance.now();
        await call();
        xs.push(performance.now() - t0);
      }
    }),
  );
  c.close();
  child.kill('SIGTERM');
  await exited;
  xs.sort((a, b) => a - b);
  console.log(`${N} ${keyType} ${rpc} RPCs from ${CALLERS} callers under the profiler: p50 ${xs[N >> 1]?.toFixed(3)} ms, p99 ${xs[Math.floor(N * 0.99)]?.toFixed(3)} ms`);

  const file = readdirSync(profiles).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error(`no profile in ${profiles}`);
  const p = JSON.parse(readFileSync(join(profiles, file), 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  p.samples.forEach((id, i) => {
    const f = byId.get(id)?.callFrame;
    if (f === undefined) return;
    const where = f.url === '' ? '' : ` ${f.url.replace(/^.*\/(node_modules|packages)\//, '')}:${f.lineNumber + 1}`;
    const key = `${f.functionName || '(anonymous)'}${where}`;
    self.set(key, (self.get(key) ?? 0) + (p.timeDeltas[i] ?? 0));
  });
  console.log(`self time per call (us), top ${TOP}; profile: ${join(profiles, file)}`);
  for (const [k, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${(us / N).toFixed(1).padStart(8)}  ${k}`);
} finally {
  await sw.stop();
}
