// The tpmds-attestor process: flags, environment, exit codes and graceful SIGTERM shutdown.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { AttestorClient } from '@tpmds/protocol/proto';
import { runAttestor } from '../src/cli.js';
import { FLAGS, envName } from '../src/config.js';
import { tempDir } from './helpers.js';

const PKG = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const REPO = resolve(PKG, '../..');
const MAIN_TS = join(PKG, 'src/main.ts');
const NODE_ARGS = ['--import', 'tsx', MAIN_TS];
/** The environment without any TPMDS_* of the caller. */
const cleanEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TPMDS_')) env[k] = v;
  return { ...env, ...extra };
};

/** Runs the program in-process (help and configuration errors return before anything starts). */
async function runInProcess(args: string[], env: Record<string, string> = {}): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const status = await runAttestor(args, env, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  });
  return { status, stdout, stderr };
}

/** Spawns the attestor and resolves once it logged "attestor listening" (with its log lines so far). */
function spawnAttestor(env: Record<string, string>): Promise<{ child: ChildProcess; lines: Record<string, unknown>[]; address: string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, NODE_ARGS, { cwd: REPO, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  return new Promise((resolveStart, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        buf = buf.slice(nl + 1);
        lines.push(line);
        if (line['msg'] === 'attestor listening') resolveStart({ child, lines, address: String(line['address']), exited });
      }
    });
    void exited.then((code) => reject(new Error(`attestor exited early (${code}): ${stderr}`)));
  });
}

describe('tpmds-attestor process', function () {
  this.timeout(60000);

  it('--help lists every flag with its env variable and default, exit 0', async () => {
    const r = await runInProcess(['--help']);
    assert.equal(r.status, 0, r.stderr);
    for (const f of FLAGS) {
      assert.ok(r.stdout.includes(f.flag), f.flag);
      assert.ok(r.stdout.includes(envName(f.flag)), envName(f.flag));
    }
    assert.match(r.stdout, /--health-listen ADDR[\s\S]*default: 0\.0\.0\.0:8080/);
  });

  it('the bin shim runs the built attestor (when built)', function () {
    if (!existsSync(join(PKG, 'dist/main.js'))) this.skip();
    const r = spawnSync(join(PKG, 'bin/tpmds-attestor.js'), ['--version'], { encoding: 'utf8', env: cleanEnv() });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^tpmds-attestor \d+\.\d+\.\d+/);
  });

  it('a bad flag value exits 2 with an error naming the flag', async () => {
    const r = await runInProcess(['--insecure', '--log-level', 'chatty']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^tpmds-attestor: --log-level: expected debug, info, warn or error, got "chatty"/);
    const noTls = await runInProcess([]);
    assert.equal(noTls.status, 2);
    assert.match(noTls.stderr, /--tls-cert: no TLS configured/);
    const badEnv = await runInProcess([], { TPMDS_INSECURE: 'perhaps' });
    assert.equal(badEnv.status, 2);
    assert.match(badEnv.stderr, /TPMDS_INSECURE: expected true or false/);
  });

  it('configured from TPMDS_* only, it serves; SIGTERM lets an in-flight call finish, then exits 0', async () => {
    const state = tempDir();
    const { child, lines, address, exited } = await spawnAttestor({
      TPMDS_INSECURE: '1',
      TPMDS_LISTEN: '127.0.0.1:0',
      TPMDS_HEALTH_LISTEN: '127.0.0.1:0',
      TPMDS_STATE_DIR: join(state.dir, 'state'),
      TPMDS_EVENT_LOG: join(state.dir, 'no-event-log'),
      TPMDS_LOG_LEVEL: 'debug',
      TPMDS_FAKE_BACKEND: '1',
      TPMDS_FAKE_LATENCY_MS: '1500',
    });
    const client = new AttestorClient(address, grpc.credentials.createInsecure());
    try {
      assert.ok(lines.some((l) => l['level'] === 'warn' && String(l['msg']).startsWith('INSECURE MODE')));
      assert.ok(existsSync(join(state.dir, 'state', 'ak')) === false, 'the fake backend keeps nothing on disk');
      await client.waitForReady(5000);
      const inflight = client.getAK({ uid: 'in-flight' });
      await new Promise((r) => setTimeout(r, 400));
      const t0 = Date.now();
      child.kill('SIGTERM');
      const res = await inflight;
      assert.ok(res.ak.length > 0, 'the in-flight call completed');
      assert.equal(await exited, 0);
      assert.ok(Date.now() - t0 < 10000);
      const msgs = lines.map((l) => l['msg']);
      assert.ok(msgs.includes('signal received: stopping'));
      assert.ok(msgs.includes('attestor stopped'));
      assert.ok(msgs.indexOf('rpc') < msgs.indexOf('attestor stopped'), 'the call was logged before the stop');
      const late = new AttestorClient(address, grpc.credentials.createInsecure());
      await assert.rejects(late.getAK({ uid: 'too-late' }, { deadline: Date.now() + 1000 }));
      late.close();
    } finally {
      client.close();
      if (child.exitCode === null) child.kill('SIGKILL');
      state.cleanup();
    }
  });
});
