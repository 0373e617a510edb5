// The Go interop suite (interop/go): Go clients built from the real go-attestation and
// go-tpm-tools, against this attestor on swtpm. This test starts swtpm (with a measured boot and
// its event log) and the attestor (--auth mtls with TLS: the Go client is a caller with a
// certificate), then runs `go test` in each Go module with the address in TPMDS_INTEROP_*; the Go
// tests do the checking. On a machine without Go it is skipped with one line saying so.
//
// The swtpm is also provisioned like a GCE vTPM (the cloud attestation key's RSA and ECC templates,
// an RSA certificate from a test CA; fixtures/cloud-ak.ts) and the Go client is allowed SignGCEEK
// (--allow-node-key), so the suite checks GetGCEEKSigningKey and SignGCEEK the way the seed's
// client does with -signUsingEK; TPMDS_INTEROP_GCE_CA hands it that CA.
//
// TPMDS_INTEROP_RECORD=1 npx mocha packages/attestor/test/go-interop.test.ts rewrites the shared
// vectors in interop/vectors/ from this run (see that folder's README).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TPM_ALG, buildEventLog } from '@tpmds/tpm2-wire';
import { startSwtpm, type SwtpmInstance } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { trackProcess, untrackProcesses } from '../../../test/support/processes.js';
import { REPO, bootEvents, extendLog, startWithConfig, tempDir, withTpm, type ConfiguredAttestor } from './e2e-support.js';
import { CLOUD_AK_NV, issueCloudAkCertificate, provisionCloudAkTemplate, writePlatformNv } from './fixtures/cloud-ak.js';
import { TestPki } from './fixtures/pki.js';

const INTEROP = join(REPO, 'interop/go');
const VECTORS = join(REPO, 'interop/vectors');

/** The Go toolchain: `go` on PATH, else the official install location; undefined without Go. */
function findGo(): string | undefined {
  for (const candidate of ['go', '/usr/local/go/bin/go']) {
    const r = spawnSync(candidate, ['version'], { encoding: 'utf8' });
    if (r.status === 0) return candidate;
  }
  return undefined;
}

interface GoRun {
  code: number | null;
  output: string;
}

/** `go test` in `dir`, asynchronously (the attestor answering it runs in this process). */
function goTest(go: string, dir: string, env: NodeJS.ProcessEnv): Promise<GoRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(go, ['test', '-count=1', '-v', './...'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const tracked = child.pid === undefined ? undefined : trackProcess(child.pid);
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      if (tracked) untrackProcesses([tracked]);
      resolve({ code, output });
    });
  });
}

/** The lines of `go test -v` output worth keeping in the mocha log: each package's result and the suite's t.Log lines. */
function summary(output: string): string {
  return output
    .split('\n')
    .filter((l) => /^(ok|FAIL)\s/.test(l) || /^\S+\.go:\d+:/.test(l.trim()))
    .map((l) => l.trim())
    .join('\n');
}

describe('Go clients (go-attestation, go-tpm-tools) against the attestor on swtpm @swtpm @go', function () {
  // The first run on a machine downloads the Go modules (through the module proxy, into the Go
  // caches) and compiles them: minutes. Warm, each module's run takes a few seconds.
  this.timeout(15 * 60_000);
  let go: string | undefined;
  let swtpm: SwtpmInstance;
  let dirs: ReturnType<typeof tempDir>;
  let att: ConfiguredAttestor;
  let env: NodeJS.ProcessEnv;

  before(async function () {
    this.timeout(120_000);
    go = findGo();
    if (go === undefined) {
      console.log('    go-interop: Go not found, skipping the Go interop tests (interop/go)');
      this.skip();
    }
    dirs = tempDir('tpmds-go-');
    swtpm = await startSwtpm({ transport: 'unix' });
    const banks = [TPM_ALG.SHA1, TPM_ALG.SHA256];
    const eventLog = buildEventLog(bootEvents(), banks);
    const eventLogPath = join(dirs.dir, 'binary_bios_measurements');
    writeFileSync(eventLogPath, eventLog);
    // The cloud attestation key (GetGCEEKSigningKey, SignGCEEK): both templates, a certificate for the RSA key only.
    const gceCa = new TestPki(dirs.dir, 'cloud-ak-ca');
    await withTpm(swtpm.address, async (tpm) => {
      await extendLog(tpm, eventLog);
      const rsaAk = await provisionCloudAkTemplate(tpm, 'rsa');
      await provisionCloudAkTemplate(tpm, 'ecc');
      await writePlatformNv(tpm, CLOUD_AK_NV.rsa.certificate, issueCloudAkCertificate(dirs.dir, rsaAk, { cert: gceCa.caCert, key: gceCa.caKey }));
    });

    const pki = new TestPki(dirs.dir, 'client-ca');
    const server = pki.server('grpc-server');
    const identity = 'spiffe://tpmds.test/go-interop';
    const client = pki.leaf('go-client', '/CN=go-client', [`subjectAltName=URI:${identity}`, 'extendedKeyUsage=clientAuth']);
    att = await startWithConfig(
      { insecure: false, tlsCert: server.cert, tlsKey: server.key, clientCa: pki.caCert, auth: 'mtls', eventLog: eventLogPath, allowNodeKey: [identity] },
      swtpm,
      join(dirs.dir, 'state'),
    );
    env = {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TPMDS_INTEROP_'))),
      TPMDS_INTEROP_ADDR: att.running.address,
      TPMDS_INTEROP_CA: pki.caCert,
      TPMDS_INTEROP_CERT: client.cert,
      TPMDS_INTEROP_KEY: client.key,
      TPMDS_INTEROP_EVENT_LOG: eventLogPath,
      TPMDS_INTEROP_GCE_CA: gceCa.caCert,
    };
  });

  after(async function () {
    this.timeout(30_000);
    await att?.stop();
    await swtpm?.stop();
    dirs?.cleanup();
  });

  const modules = [
    { dir: INTEROP, what: 'go-attestation v0.5.1 and go-tpm-tools v0.4.5 (interop/go)', records: true },
    { dir: join(INTEROP, 'latest'), what: "go-attestation's newest release (interop/go/latest)", records: false },
  ];
  for (const m of modules) {
    it(`${m.what}: every RPC, and the shared vectors`, async () => {
      assert.ok(existsSync(join(m.dir, 'go.mod')));
      const record = m.records && process.env['TPMDS_INTEROP_RECORD'] ? { TPMDS_INTEROP_RECORD: VECTORS } : {};
      const run = await goTest(go!, m.dir, { ...env, ...record });
      assert.equal(run.code, 0, `go test in ${m.dir} failed:\n${run.output}`);
      assert.match(run.output, /--- PASS: TestInterop\/attestor\b/, `the live tests did not run:\n${run.output}`);
      assert.match(run.output, /--- PASS: TestInterop\/attestor\/GetGCEEKSigningKey\+SignGCEEK\b/, `the cloud attestation key was not checked:\n${run.output}`);
      console.log(summary(run.output).replace(/^/gm, '      '));
    });
  }
});
