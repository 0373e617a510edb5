// The container image, built and checked in place: scripts/build-image.sh builds it with buildah
// (no registry: a local Debian + Node base, see the script), then working containers of it run with
// chroot isolation. chroot isolation shares the host's network (and PID) namespace, so the attestor
// inside the image serves an swtpm listening on the host's loopback, and the image's own verifier
// checks it there. Also: the three commands (tpmds-attestor, tpmds-verifier, tpmds-device-plugin, the
// last one run by manifests/device-plugin/daemonset.yaml from this image) answer --help as uid 10001,
// and the image's filesystem holds the production trees only (no dev dependencies, tests, test data,
// sources or build tools; each tree exactly its package's files and production dependencies).
//
// Needs root and buildah (scripts/setup.sh installs it); without them this test fails, it does not
// skip. TPMDS_TEST_IMAGE=NAME checks an image that is already built instead of building one.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync, writeFileSync, type Dirent } from 'node:fs';
import { get } from 'node:http';
import { join, relative } from 'node:path';
import { TPM_ALG, buildEventLog } from '@tpmds/tpm2-wire';
import { startSwtpm, type SwtpmInstance } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { REPO, bootEvents, extendLog, tempDir, withTpm } from './e2e-support.js';

const PREBUILT = process.env['TPMDS_TEST_IMAGE'];
const IMAGE = PREBUILT || 'localhost/tpmds:dev';
const BUILD_SCRIPT = join(REPO, 'scripts/build-image.sh');

interface Manifest {
  name: string;
  bin?: Record<string, string>;
  files?: string[];
  dependencies?: Record<string, string>;
}
const manifest = (file: string): Manifest => JSON.parse(readFileSync(file, 'utf8')) as Manifest;
/** The workspace packages with commands, by folder: what the Dockerfile deploys to /opt/tpmds/<folder>. */
const COMMAND_PACKAGES = new Map(
  readdirSync(join(REPO, 'packages'))
    .map((d) => [d, manifest(join(REPO, 'packages', d, 'package.json'))] as const)
    .filter(([, m]) => m.bin !== undefined),
);
/** The tpmds-* commands the manifests run from the tpmds image (`command: ["tpmds-..."]`). */
function manifestCommands(dir = join(REPO, 'manifests'), out = new Set<string>()): Set<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) manifestCommands(p, out);
    else if (e.name.endsWith('.yaml')) for (const m of readFileSync(p, 'utf8').matchAll(/command: \["(tpmds-[a-z-]+)"/g)) out.add(m[1]!);
  }
  return out;
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; never rejects for a non-zero exit (the caller asserts). */
function run(file: string, args: string[], timeoutMs = 120_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') {
        reject(new Error(`${file} ${args.join(' ')}: ${error.message}\n${stderr}`));
        return;
      }
      resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
    });
  });
}

async function buildah(args: string[], timeoutMs?: number): Promise<string> {
  const r = await run('buildah', args, timeoutMs);
  assert.equal(r.code, 0, `buildah ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout.trim();
}

/** `buildah run` in a working container of the image, as the image's user, chroot isolation. */
const inImage = (ctr: string, argv: string[], timeoutMs?: number): Promise<Ran> =>
  run('buildah', ['run', '--isolation', 'chroot', ctr, '--', ...argv], timeoutMs);

/** Every path below `root` (relative, '/'-separated), without following symlinks. */
function walk(root: string, dir = root, out: string[] = []): string[] {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    out.push(relative(root, p));
    if (e.isDirectory()) walk(root, p, out);
  }
  return out;
}

/** Host PIDs of the processes below `pid` (chroot isolation: no PID namespace). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const c of children.get(queue.shift()!) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

/** Polls http://ADDRESS/readyz until 200 (health is NOT_SERVING until the first readiness check). */
async function waitReady(healthAddress: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await new Promise<number>((resolve) => {
      get(`http://${healthAddress}/readyz`, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', () => resolve(0));
    });
    if (status === 200) return;
    if (Date.now() > deadline) throw new Error(`the attestor at ${healthAddress} was not ready within ${timeoutMs} ms (last /readyz status ${status})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const cmdline = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0/g, ' ');
  } catch {
    return '';
  }
};

describe('container image @image @swtpm', function () {
  const containers: string[] = [];
  let ctr = '';
  let rootfs = '';

  before(async function () {
    this.timeout(30 * 60_000);
    assert.equal(process.getuid?.(), 0, 'the image test needs root (buildah with chroot isolation)');
    const which = await run('sh', ['-c', 'command -v buildah']);
    assert.equal(which.code, 0, 'buildah is not installed: run scripts/setup.sh (it installs buildah and mmdebstrap)');
    if (!PREBUILT) {
      const started = Date.now();
      const b = await run('bash', [BUILD_SCRIPT, '--tag', IMAGE], 25 * 60_000);
      assert.equal(b.code, 0, `scripts/build-image.sh failed (exit ${b.code}):\n${(b.stdout + b.stderr).slice(-6000)}`);
      const summary = b.stdout.split('\n').filter((l) => l.startsWith('::: image '));
      process.stderr.write(`      ${summary.join(' ')} (test build ${Math.round((Date.now() - started) / 1000)} s)\n`);
    }
    ctr = await buildah(['from', '--pull=never', '--name', `tpmds-image-test-${process.pid}`, IMAGE]);
    containers.push(ctr);
    rootfs = await buildah(['mount', ctr]);
  });

  after(async function () {
    this.timeout(60_000);
    for (const c of containers) {
      await run('buildah', ['umount', c]);
      await run('buildah', ['rm', c]);
    }
  });

  it('is configured to run tpmds-attestor as uid 10001', async () => {
    const { config } = (JSON.parse(await buildah(['inspect', '--type', 'image', IMAGE])) as {
      OCIv1: { config: { User?: string; Entrypoint?: string[] } };
    }).OCIv1;
    assert.equal(config.User, '10001:10001');
    assert.deepEqual(config.Entrypoint, ['tpmds-attestor']);
    const id = await inImage(ctr, ['id']);
    assert.equal(id.code, 0, id.stderr);
    assert.match(id.stdout, /^uid=10001\(tpmds\) gid=10001\(tpmds\)/);
  });

  it('tpmds-attestor --help, tpmds-verifier --help and tpmds-device-plugin --help', async () => {
    const a = await inImage(ctr, ['tpmds-attestor', '--help']);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /^tpmds-attestor \d+\.\d+\.\d+: gRPC access to this node's TPM/);
    assert.match(a.stdout, /--tpm ADDR/);
    const v = await inImage(ctr, ['tpmds-verifier', '--help']);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /^usage: tpmds-verifier <command>/);
    assert.match(v.stdout, /run +walk an attestor through every RPC/);
    const d = await inImage(ctr, ['tpmds-device-plugin', '--help']);
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stdout, /^tpmds-device-plugin \d+\.\d+\.\d+\n\nKubernetes device plugin \(kubelet API v1beta1\)/);
    assert.match(d.stdout, /--resource-name NAME/);
  });

  it('links every command of the workspace packages, and every tpmds-* command the manifests run, into /usr/local/bin', () => {
    const expected = new Map<string, string>();
    for (const [dir, m] of COMMAND_PACKAGES) {
      for (const [name, file] of Object.entries(m.bin!)) expected.set(name, join('/opt/tpmds', dir, file));
    }
    for (const name of ['tpmds-attestor', 'tpmds-verifier', 'tpmds-device-plugin', ...manifestCommands()]) {
      assert.ok(expected.has(name), `${name} is no workspace package's command`);
    }
    const linked = new Map(
      readdirSync(join(rootfs, 'usr/local/bin'))
        .filter((n) => n.startsWith('tpmds-'))
        .map((n) => [n, readlinkSync(join(rootfs, 'usr/local/bin', n))] as const),
    );
    assert.deepEqual(new Map([...linked].sort()), new Map([...expected].sort()));
  });

  it('holds the production trees only: no dev dependencies, tests, test data, sources or build tools', () => {
    const paths = walk(rootfs);
    for (const p of ['attestor/bin/tpmds-attestor.js', 'verifier/bin/tpmds-verifier.js', 'device-plugin/bin/tpmds-device-plugin.js']) {
      assert.ok(paths.includes(`opt/tpmds/${p}`), `opt/tpmds/${p} is missing`);
    }
    // One tree per package with a command, each holding its package's "files", its manifest,
    // pnpm's deploy metadata and, at the top of node_modules, exactly its production dependencies
    // (the device plugin's tree: no yaml or @types/google-protobuf, its dev ones).
    assert.deepEqual(readdirSync(join(rootfs, 'opt/tpmds')).sort(), [...COMMAND_PACKAGES.keys()].sort());
    for (const [dir, m] of COMMAND_PACKAGES) {
      const tree = join(rootfs, 'opt/tpmds', dir);
      const allowed = new Set([...(m.files ?? []).filter((f) => !f.startsWith('!')), 'package.json', 'node_modules', 'pnpm-lock.yaml', 'pnpm-workspace.yaml']);
      assert.deepEqual(readdirSync(tree).filter((f) => !allowed.has(f)), [], `${dir}: files outside its package's "files"`);
      const top = readdirSync(join(tree, 'node_modules'))
        .filter((n) => !n.startsWith('.'))
        .flatMap((n) => (n.startsWith('@') ? readdirSync(join(tree, 'node_modules', n)).map((s) => `${n}/${s}`) : [n]));
      assert.deepEqual(top.sort(), Object.keys(m.dependencies ?? {}).sort(), `${dir}: node_modules holds exactly its production dependencies`);
    }
    const bad = (what: string, re: RegExp) => {
      const hits = paths.filter((p) => re.test(p));
      assert.deepEqual(hits.slice(0, 20), [], `${what} in the image`);
    };
    const devDeps = 'typescript|mocha|tsx|fast-check|esbuild|@esbuild|protoc-gen-ts|@types\\+mocha|@types\\/mocha|@types\\+google-protobuf|@types\\/google-protobuf';
    bad('dev dependencies', new RegExp(`(^|/)node_modules/(\\.pnpm/)?(${devDeps})([@/]|$)`));
    bad('test files', /\.(test|spec)\.[cm]?[jt]sx?$/);
    bad('test data or fixtures', /(^|\/)(testdata|test-data|fixtures|vectors)(\/|$)/);
    bad('tests, benchmarks, scripts or TypeScript sources of the tpmds packages', /(^opt\/tpmds\/[^/]+|@tpmds\/[^/]+)\/(test|bench|scripts|src)(\/|$)/);
    bad('TypeScript sources of the tpmds packages', /^(opt\/tpmds\/[^/]+\/(?!node_modules\/)|.*\/node_modules\/@tpmds\/).*(?<!\.d)\.[cm]?ts$/);
    bad('compilers, build tools or package managers', /^(usr\/(local\/)?(s?bin)\/(cc|c\+\+|gcc[-0-9.]*|g\+\+[-0-9.]*|clang[-0-9.]*|make|cmake|ld|as|python3?|npm|npx|pnpm|corepack|yarn|apt|apt-get|dpkg)|usr\/include\/.*|usr\/local\/lib\/node_modules|pnpm|src)$/);
  });

  describe('the attestor in the image serves an swtpm on the host loopback', () => {
    let swtpm: SwtpmInstance | undefined;
    let dirs: ReturnType<typeof tempDir> | undefined;
    let attestor: ChildProcess | undefined;
    let attestorOut = '';
    let exited: Promise<number | null> | undefined;
    let address = '';
    let healthAddress = '';

    before(async function () {
      this.timeout(180_000);
      dirs = tempDir('tpmds-image-');
      swtpm = await startSwtpm({ transport: 'tcp', pcrBanks: ['sha256'] });
      assert.match(swtpm.address, /^swtpm:host=127\.0\.0\.1,port=\d+$/);
      const eventLog = buildEventLog(bootEvents(), [TPM_ALG.SHA256]);
      await withTpm(swtpm.address, (tpm) => extendLog(tpm, eventLog));
      // The inputs the run needs, copied into the working container (not the image): the
      // firmware event log the PCRs were extended with, and the EK CA certificates.
      writeFileSync(join(dirs.dir, 'event.log'), eventLog);
      for (const [file, into] of [
        [join(dirs.dir, 'event.log'), '/tmp/in/event.log'],
        [swtpm.caRootPem, '/tmp/in/ek-root.pem'],
        [swtpm.caIntermediatePem, '/tmp/in/ek-intermediate.pem'],
      ] as const) {
        await buildah(['copy', '--chmod', '0644', ctr, file, into]);
      }

      attestor = spawn(
        'buildah',
        [
          'run', '--isolation', 'chroot', ctr, '--',
          'tpmds-attestor',
          '--tpm', swtpm.address,
          '--listen', '127.0.0.1:0',
          '--health-listen', '127.0.0.1:0',
          '--state-dir', '/tmp/tpmds-state',
          '--event-log', '/tmp/in/event.log',
          '--insecure',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      exited = new Promise((resolve) => attestor!.on('exit', (code) => resolve(code)));
      attestor.stderr!.on('data', (d: Buffer) => (attestorOut += d.toString()));
      address = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the attestor in the image did not start within 60 s:\n${attestorOut}`)), 60_000);
        attestor!.stdout!.on('data', (d: Buffer) => {
          attestorOut += d.toString();
          for (const line of attestorOut.split('\n')) {
            if (!line.startsWith('{')) continue;
            const l = JSON.parse(line) as Record<string, unknown>;
            if (l['msg'] === 'attestor listening') {
              clearTimeout(timer);
              healthAddress = String(l['healthAddress']);
              resolve(String(l['address']));
            }
          }
        });
        void exited!.then((code) => {
          clearTimeout(timer);
          reject(new Error(`the attestor in the image exited (${code}) before listening:\n${attestorOut}`));
        });
      });
      // Like a readiness probe: the verifier's health step wants SERVING, which follows the first
      // TPM readiness check after "attestor listening".
      await waitReady(healthAddress);
    });

    after(async function () {
      this.timeout(60_000);
      if (attestor && attestor.exitCode === null && attestor.signalCode === null) attestor.kill('SIGKILL');
      await exited;
      await swtpm?.stop();
      dirs?.cleanup();
    });

    it("the image's tpmds-verifier run --json: every check passed; SIGTERM stops the attestor with exit 0", async function () {
      this.timeout(180_000);
      assert.match(address, /^127\.0\.0\.1:\d+$/);
      // A second working container of the same image runs the verifier (the first one is busy).
      const vctr = await buildah(['from', '--pull=never', '--name', `tpmds-image-verifier-${process.pid}`, IMAGE]);
      containers.push(vctr);
      await buildah(['copy', '--chmod', '0644', vctr, swtpm!.caRootPem, '/tmp/in/ek-root.pem']);
      await buildah(['copy', '--chmod', '0644', vctr, swtpm!.caIntermediatePem, '/tmp/in/ek-intermediate.pem']);
      const v = await inImage(vctr, [
        'tpmds-verifier', 'run', '--target', address, '--insecure', '--json',
        '--ek-roots', '/tmp/in/ek-root.pem', '--ek-intermediates', '/tmp/in/ek-intermediate.pem',
      ], 150_000);
      let report: { ok: boolean; failed: string[]; warnings: string[]; steps: { step: string; skipped?: string; checks: { name: string; ok: boolean; detail: string }[] }[] };
      try {
        report = JSON.parse(v.stdout) as typeof report;
      } catch {
        assert.fail(`tpmds-verifier printed no JSON report (exit ${v.code}):\n${v.stdout}\n${v.stderr}\nattestor:\n${attestorOut}`);
      }
      const failedChecks = report.steps.flatMap((s) => s.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`));
      assert.deepEqual({ ok: report.ok, failed: report.failed, failedChecks }, { ok: true, failed: [], failedChecks: [] }, `report:\n${v.stdout}`);
      assert.equal(v.code, 0);
      assert.deepEqual(report.steps.filter((s) => s.skipped).map((s) => s.step), [], 'every step ran');
      assert.deepEqual(
        report.steps.map((s) => s.step),
        ['health', 'ek', 'ak', 'attest', 'quote', 'import-blob', 'import-signing-key', 'new-key', 'sign', 'gce-ak'],
      );
      assert.ok(report.steps.every((s) => s.checks.length > 0));
      // The EK chain and the event log were checked; the only warnings allowed: the test's event
      // log carries no Secure Boot state, and this swtpm has no cloud attestation-key template.
      assert.deepEqual(report.warnings.filter((w) => w !== 'eventlog.secureBoot' && w !== 'gceAk.offered'), [], 'warnings');

      // Graceful stop: SIGTERM to the attestor's node process (a host PID under chroot isolation).
      const pids = descendants(attestor!.pid!).filter((p) => /^(\S*\/)?node .*tpmds-attestor/.test(cmdline(p)));
      assert.equal(pids.length, 1, `one attestor process below buildah run: ${pids.map(cmdline).join(' | ')}`);
      process.kill(pids[0]!, 'SIGTERM');
      assert.equal(await exited, 0, `attestor exit status:\n${attestorOut}`);
      assert.match(attestorOut, /"msg":"attestor stopped"/);
    });
  });
});
