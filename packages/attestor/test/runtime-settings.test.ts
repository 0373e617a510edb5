// The attestor's runtime settings (memory: README.md, "Memory") live in one place, the
// `#!/usr/bin/env -S ...` line of bin/tpmds-attestor.js. Checked here: running that file applies
// exactly what bench/launcher.ts reads from it (so `pnpm bench` measures the attestor as
// deployed); the image runs it as its entry point; no manifest runs the attestor another way or
// sets the same knobs beside it; the container's memory limit leaves room above the V8 heap limit;
// the README names every setting.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { LAUNCHER, launcherSettings } from '../bench/launcher.js';
import { REPO } from './e2e-support.js';
import { tempDir } from './helpers.js';

/** Every YAML document under manifests/ (bases, overlays and their patches), with its file. */
function manifestDocs(dir = join(REPO, 'manifests'), out: { file: string; doc: Record<string, any> }[] = []): { file: string; doc: Record<string, any> }[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) manifestDocs(p, out);
    else if (e.name.endsWith('.yaml')) for (const d of parseAllDocuments(readFileSync(p, 'utf8'))) out.push({ file: p.slice(REPO.length + 1), doc: d.toJS() as Record<string, any> });
  }
  return out;
}

/** Kubernetes quantity (Mi, Gi, M, G or bytes) in MiB. */
function mib(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Mi|Gi|M|G)?$/.exec(q);
  assert.ok(m, `unsupported quantity ${q}`);
  const n = Number(m[1]);
  return m[2] === 'Gi' ? n * 1024 : m[2] === 'Mi' ? n : m[2] === 'G' ? (n * 1e9) / 2 ** 20 : m[2] === 'M' ? (n * 1e6) / 2 ** 20 : n / 2 ** 20;
}

describe('the attestor runtime settings (bin/tpmds-attestor.js)', () => {
  const settings = launcherSettings();

  it('are what running the launcher applies: its node flags and environment, as the benchmark reads them', function () {
    this.timeout(30_000);
    const dir = tempDir();
    try {
      // Loaded before the attestor's own code (NODE_OPTIONS --import), it reports and exits.
      const probe = join(dir.dir, 'probe.mjs');
      writeFileSync(
        probe,
        "import v8 from 'node:v8';\n" +
          'process.stdout.write(JSON.stringify({ execArgv: process.execArgv, env: process.env, heapLimit: v8.getHeapStatistics().heap_size_limit }));\n' +
          'process.exit(0);\n',
      );
      const r = spawnSync(LAUNCHER, ['--version'], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '', NODE_OPTIONS: `--import ${probe}` } });
      assert.equal(r.status, 0, r.stderr);
      const seen = JSON.parse(r.stdout) as { execArgv: string[]; env: Record<string, string>; heapLimit: number };
      assert.deepEqual(seen.execArgv, settings.nodeFlags);
      for (const [name, value] of Object.entries(settings.env)) assert.equal(seen.env[name], value, name);
      const oldSpace = Number(/^--max-old-space-size=(\d+)$/.exec(settings.nodeFlags.find((f) => f.startsWith('--max-old-space-size=')) ?? '')?.[1]);
      assert.ok(oldSpace > 0, 'the launcher bounds the V8 old space (--max-old-space-size)');
      assert.ok(seen.heapLimit < (oldSpace + 64) * 2 ** 20, `V8's heap limit ${seen.heapLimit} follows --max-old-space-size=${oldSpace}`);
    } finally {
      dir.cleanup();
    }
  });

  it('the image runs the launcher as its entry point and sets none of them itself', () => {
    const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    assert.match(runtime, /^ENTRYPOINT \["tpmds-attestor"\]$/m);
    // tpmds-attestor is linked to the attestor package's "bin" entry: the launcher.
    const bin = (JSON.parse(readFileSync(join(REPO, 'packages/attestor/package.json'), 'utf8')) as { bin: Record<string, string> }).bin;
    assert.equal(bin['tpmds-attestor'], './bin/tpmds-attestor.js');
    for (const name of ['NODE_OPTIONS', ...Object.keys(settings.env)]) assert.doesNotMatch(dockerfile, new RegExp(`^(ENV|ARG)\\b.*\\b${name}\\b`, 'm'), `the Dockerfile sets ${name}`);
  });

  it('no manifest runs the attestor another way or sets them beside it; its memory limit leaves room above the V8 heap limit', () => {
    const knobs = ['NODE_OPTIONS', ...Object.keys(settings.env), ...settings.nodeFlags.map((f) => f.replace(/=.*/, ''))];
    let attestors = 0;
    for (const { file, doc } of manifestDocs()) {
      const text = JSON.stringify(doc);
      for (const k of knobs) assert.ok(!text.includes(k), `${file} sets ${k}: the attestor's runtime settings belong on the launcher line only`);
      for (const c of (doc?.spec?.template?.spec?.containers ?? []) as Record<string, any>[]) {
        if (c['name'] !== 'attestor') continue;
        attestors++;
        assert.ok(c['command'] === undefined || JSON.stringify(c['command']) === '["tpmds-attestor"]', `${file}: the attestor container's command bypasses the launcher`);
        assert.ok(!(c['args'] ?? []).some((a: string) => /node|\.js$/.test(a)), `${file}: the attestor container's args run node`);
        const limit = c['resources']?.['limits']?.['memory'] as string | undefined;
        if (limit !== undefined) {
          const oldSpace = Number(/=(\d+)$/.exec(settings.nodeFlags.find((f) => f.startsWith('--max-old-space-size=')) ?? '')?.[1]);
          // Beside the V8 old space: the mapped node binary (~45 MB), new space, code, malloc and buffers.
          assert.ok(oldSpace + 128 <= mib(limit), `${file}: memory limit ${limit} leaves less than 128 MiB above --max-old-space-size=${oldSpace}`);
        }
      }
    }
    assert.ok(attestors >= 1, 'the attestor DaemonSet was found');
  });

  it('the README names every setting', () => {
    const readme = readFileSync(join(REPO, 'packages/attestor/README.md'), 'utf8');
    for (const s of [...Object.entries(settings.env).map(([k, v]) => `${k}=${v}`), ...settings.nodeFlags]) assert.ok(readme.includes(s), `README.md does not mention ${s}`);
  });
});
