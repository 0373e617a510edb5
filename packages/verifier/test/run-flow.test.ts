// runAll's control flow with a scripted client (no TPM, no network): RPC errors become failed
// checks named `<step>.rpc`, steps whose inputs are missing are not run, an unreachable target
// stops the run, and the report's verdict lists every failure. Plus the CLI's flag handling
// that needs no attestor.
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { runCli } from '../src/cli/cli.js';
import { setClientFactory } from '../src/cli/commands/attestor-steps.js';
import {
  STEPS, formatReport, importKidFor, runAll, stepsWithDependencies, type HealthStatus, type RunReport, type VerifierRpc,
} from '../src/index.js';

function rpcError(code: number, details: string): Error {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details });
}

/** A client whose every call fails with `code`, except those given. */
function scripted(overrides: Partial<VerifierRpc> = {}, code: number = status.UNIMPLEMENTED): VerifierRpc & { calls: string[]; close(): void } {
  const calls: string[] = [];
  const fail = (name: string) => async () => {
    calls.push(name);
    throw rpcError(code, `${name} is not scripted`);
  };
  const base: VerifierRpc = {
    healthCheck: async () => {
      calls.push('healthCheck');
      return 'SERVING' as HealthStatus;
    },
    getEKCert: fail('getEKCert'),
    getAK: fail('getAK'),
    attest: fail('attest'),
    quote: fail('quote'),
    importBlob: fail('importBlob'),
    importSigningKey: fail('importSigningKey'),
    newKey: fail('newKey'),
    sign: fail('sign'),
  };
  const wrapped = Object.fromEntries(
    Object.entries(overrides).map(([k, f]) => [k, async (...a: unknown[]) => {
      calls.push(k);
      return (f as (...x: unknown[]) => unknown)(...a);
    }]),
  );
  return Object.assign({ ...base, ...wrapped }, { calls, close: () => undefined });
}

const step = (r: RunReport, name: string) => r.steps.find((s) => s.step === name)!;

describe('verify: runAll flow', () => {
  it('steps come with what they need, in run order', () => {
    assert.deepEqual(stepsWithDependencies(['sign']), ['ak', 'new-key', 'sign']);
    assert.deepEqual(stepsWithDependencies(['attest']), ['ek', 'ak', 'attest']);
    assert.deepEqual(stepsWithDependencies(['import-blob', 'health']), ['health', 'ek', 'ak', 'quote', 'import-blob']);
    assert.deepEqual(stepsWithDependencies(STEPS), [...STEPS]);
  });

  it('a failing RPC is the failed check <step>.rpc with the status; steps needing its result are not run', async () => {
    const client = scripted({ getEKCert: async () => Promise.reject(rpcError(status.NOT_FOUND, 'no EK here')) });
    const r = await runAll(client, { uid: 'u', kid: 'k' });
    assert.equal(r.ok, false);
    assert.deepEqual(step(r, 'ek').checks, [{ name: 'ek.rpc', ok: false, detail: 'GetEKCert failed: NOT_FOUND: no EK here' }]);
    assert.match(step(r, 'attest').skipped ?? '', /the EK is not available/);
    assert.match(step(r, 'import-blob').skipped ?? '', /the EK is not available/);
    assert.match(step(r, 'import-signing-key').skipped ?? '', /the EK is not available/);
    assert.deepEqual(step(r, 'ak').checks.map((c) => c.name), ['ak.rpc'], 'independent steps still run');
    assert.match(step(r, 'sign').skipped ?? '', /the new key is not available|the AK is not available/);
    assert.ok(r.failed.includes('ek.rpc') && r.failed.includes('attest (not run)'));
    assert.deepEqual(client.calls, ['healthCheck', 'getEKCert', 'getAK'], 'nothing is sent for steps that cannot be verified');
    assert.match(formatReport(r), /^FAIL: 2 of 4 checks failed, 6 step\(s\) not run:\n {2}ek\.rpc: GetEKCert failed: NOT_FOUND: no EK here$/m);
  });

  it('a malformed AK fails ak.decode and the AK-based steps are not run', async () => {
    const client = scripted({ getAK: async () => ({ ak: new TextEncoder().encode('{"Public":"not base64!"}') }) });
    const r = await runAll(client, { steps: ['sign'] });
    assert.deepEqual(r.steps.map((s) => s.step), ['ak', 'new-key', 'sign']);
    assert.equal(step(r, 'ak').checks[0]!.name, 'ak.decode');
    assert.match(step(r, 'ak').checks[0]!.detail, /Public: invalid base64/);
    assert.ok(step(r, 'new-key').skipped);
    assert.ok(!client.calls.includes('newKey'));
  });

  it('an unreachable target fails health and runs nothing else; NOT_SERVING fails health but the steps still run', async () => {
    const down = scripted({ healthCheck: async () => Promise.reject(rpcError(status.UNAVAILABLE, 'No connection established. Last error: connect ECONNREFUSED. Resolution note: ')) });
    const r = await runAll(down);
    assert.deepEqual(step(r, 'health').checks, [{ name: 'health', ok: false, detail: 'health check failed: UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED' }]);
    assert.ok(r.steps.slice(1).every((s) => s.skipped === 'not run: the target is unreachable (see health)'));
    assert.deepEqual(down.calls, ['healthCheck']);

    const sick = scripted({ healthCheck: async () => 'NOT_SERVING' as HealthStatus });
    const r2 = await runAll(sick, { steps: ['health', 'ak'] });
    assert.deepEqual(step(r2, 'health').checks, [{ name: 'health', ok: false, detail: 'verifier.Verifier is NOT_SERVING' }]);
    assert.ok(sick.calls.includes('getAK'));
  });

  it('uid and kid default to fresh UUIDs; the imported key goes to <kid>-import, within 128 characters', async () => {
    const a = await runAll(scripted(), { steps: ['health'] });
    const b = await runAll(scripted(), { steps: ['health'] });
    assert.match(a.uid, /^[0-9a-f-]{36}$/);
    assert.notEqual(a.uid, b.uid);
    assert.notEqual(a.kid, b.kid);
    assert.equal(a.importKid, `${a.kid}-import`);
    assert.equal(importKidFor('k'.repeat(128)).length, 128);
    assert.equal(a.ok, true, 'a run of passing checks is ok');
  });
});

describe('tpmds-verifier: flags that need no attestor', () => {
  async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const code = await runCli(args, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) });
    return { code, stdout, stderr };
  }

  it('--help of run and of every step lists its flags; the tool help lists every subcommand', async () => {
    const top = await cli(['--help']);
    for (const s of ['run', 'ek', 'ak', 'attest', 'quote', 'import-blob', 'import-signing-key', 'new-key', 'sign']) assert.match(top.stdout, new RegExp(`^  ${s}\\s`, 'm'));
    const run = await cli(['run', '--help']);
    assert.equal(run.code, 0);
    for (const f of ['--target', '--ca', '--insecure', '--client-cert', '--client-key', '--ek-roots', '--ek-intermediates', '--expect-pcr', '--uid', '--kid', '--key-type', '--json']) {
      assert.ok(run.stdout.includes(f), f);
    }
    const quote = await cli(['quote', '--help']);
    assert.match(quote.stdout, /--expect-pcr IDX:HEX/);
    assert.ok(!quote.stdout.includes('--ek-roots'), 'quote does not read the EK roots');
  });

  it('usage errors exit 2 before connecting', async () => {
    const prev = setClientFactory(() => {
      throw new Error('must not connect');
    });
    try {
      const cases: [string[], RegExp][] = [
        [['run', '--target', 'x:1', '--insecure', '--client-cert', 'a', '--client-key', 'b'], /need TLS/],
        [['run', '--target', 'no-port', '--insecure'], /--target "no-port": expected HOST:PORT or unix:\/path/],
        [['run', '--target', 'x:1', '--insecure', '--uid', '../etc'], /--uid "\.\.\/etc"/],
        [['run', '--target', 'x:1', '--insecure', '--kid', 'a..b'], /--kid "a\.\.b"/],
        [['run', '--target', 'x:1', '--insecure', '--key-type', 'ecc', '--key-type', 'rsa'], /--key-type given more than once/],
        [['run', '--target', 'x:1', '--insecure', '--expect-pcr', `1:${'00'.repeat(32)}`, '--expect-pcr', `1:${'11'.repeat(32)}`], /two values/],
        [['run', '--target', 'x:1', '--insecure', 'extra'], /unexpected argument "extra"/],
      ];
      for (const [args, message] of cases) {
        const r = await cli(args);
        assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, message);
      }
    } finally {
      setClientFactory(prev);
    }
  });

  it('the CLI turns a failed check into exit 1, with one JSON document on stdout and the failed checks on stderr (scripted attestor)', async () => {
    const prev = setClientFactory(() => scripted());
    try {
      const bad = await cli(['ak', '--target', 'unix:/nowhere', '--insecure', '--json']);
      assert.equal(bad.code, 1);
      const report = JSON.parse(bad.stdout) as RunReport;
      assert.deepEqual(report.failed, ['ak.rpc']);
      assert.match(bad.stderr, /^FAIL: ak\.rpc$/m);
    } finally {
      setClientFactory(prev);
    }
  });
});
