/**
 * The npm package as a user gets it: `pnpm pack` makes the tarball, which is installed into an empty
 * project outside the workspace (no workspace links), and the README's example is type-checked there by
 * tsc (strict, NodeNext, lib check on) against the shipped .d.ts, then run with node against swtpm.
 * The README's Install section states the tarball's size and dependency counts; this test keeps them true.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startSwtpm, type SwtpmInstance } from './fixtures/swtpm.js';

const PKG = fileURLToPath(new URL('../', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
const README = readFileSync(join(PKG, 'README.md'), 'utf8');
const exec = promisify(execFile);

async function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  try {
    return (await exec(cmd, args, { cwd, env, timeout: 60_000, maxBuffer: 16 << 20 })).stdout;
  } catch (e) {
    const err = e as Error & { stdout?: string; stderr?: string };
    throw new Error(`${cmd} ${args.join(' ')} failed in ${cwd}: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
  }
}

/** Unique name@version of every package below `tree` in `pnpm list --json` output. */
function closure(tree: { dependencies?: Record<string, { version: string; dependencies?: unknown }> }, seen = new Set<string>()): Set<string> {
  for (const [name, dep] of Object.entries(tree.dependencies ?? {})) {
    seen.add(`${name}@${dep.version}`);
    closure(dep as Parameters<typeof closure>[0], seen);
  }
  return seen;
}

describe('npm package: the packed tarball in an empty project @swtpm', function () {
  this.timeout(120_000);
  let work: string;
  let tarball: string;
  let entries: string[];
  let manifest: { name: string; exports: Record<string, Record<string, string>>; dependencies: Record<string, string> };
  let swtpm: Promise<SwtpmInstance>;

  before(async function () {
    swtpm = startSwtpm({ transport: 'unix' });
    swtpm.catch(() => {}); // awaited (and reported) by the test that needs it
    work = mkdtempSync(join(tmpdir(), 'tpmds-pack-'));
    await run('pnpm', ['pack', '--pack-destination', work], PKG); // prepack: tsc -b, so dist is current
    const tgz = readdirSync(work).filter((f) => f.endsWith('.tgz'));
    assert.equal(tgz.length, 1, `one tarball in ${work}: ${tgz.join(', ')}`);
    tarball = join(work, tgz[0]!);
    entries = (await run('tar', ['-tzf', tarball], work)).split('\n').filter(Boolean);
    manifest = JSON.parse(await run('tar', ['-xzOf', tarball, 'package/package.json'], work));
  });
  after(async () => {
    await (await swtpm?.catch(() => undefined))?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('holds dist (.js with .d.ts beside each), package.json with an exports map, README.md and LICENSE; no tests, sources or maps', () => {
    for (const f of entries) assert.ok(f.startsWith('package/'), f);
    const files = entries.map((f) => f.slice('package/'.length));
    for (const f of ['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts']) assert.ok(files.includes(f), `${f} is in the tarball`);
    const js = files.filter((f) => f.endsWith('.js'));
    assert.ok(js.length > 20, `${js.length} .js files`);
    for (const f of js) {
      assert.ok(f.startsWith('dist/'), `${f} is under dist/`);
      assert.ok(files.includes(f.replace(/\.js$/, '.d.ts')), `${f} has its .d.ts`);
    }
    const strays = files.filter((f) => /(^|\/)(test|tests|src|bench|node_modules)\/|\.test\.|\.map$|\.tsbuildinfo$|(?<!\.d)\.ts$/.test(f));
    assert.deepEqual(strays, []);
    assert.equal(manifest.name, '@tpmds/tpm2-wire');
    const root = manifest.exports['.']!;
    assert.ok(root.types && root.import, 'exports["."] has types and import');
    for (const target of [root.types, root.import]) assert.ok(files.includes(target!.replace(/^\.\//, '')), `${target} is in the tarball`);
    for (const [name, range] of Object.entries(manifest.dependencies)) assert.doesNotMatch(range, /^(workspace|file|link):/, name);
  });

  it('installs into an empty project, type-checks the README example against the shipped .d.ts, and runs it against swtpm', async () => {
    const project = join(work, 'project');
    const block = /```ts\n([\s\S]*?)```/.exec(README)?.[1];
    assert.ok(block?.includes("from '@tpmds/tpm2-wire'"), 'README.md has a ```ts example that imports the package by its name');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    // The workspace's store has every dependency after setup, so no network is needed; a CI machine
    // whose store lacks one may fetch it. --ignore-workspace: never join a workspace above TMPDIR.
    const typesNode = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).devDependencies['@types/node'] as string;
    const store = (await run('pnpm', ['store', 'path'], ROOT)).trim();
    const add = ['add', '--ignore-workspace', '--store-dir', store, tarball, `@types/node@${typesNode}`];
    await run('pnpm', [...add, '--offline'], project).catch(() => run('pnpm', [...add, '--prefer-offline'], project));

    const installed = realpathSync(join(project, 'node_modules/@tpmds/tpm2-wire'));
    assert.ok(installed.startsWith(realpathSync(project)), `installed from the tarball, not linked to the workspace: ${installed}`);
    assert.ok(statSync(join(installed, 'LICENSE')).isFile());

    const deps = closure(JSON.parse(await run('pnpm', ['list', '--json', '--depth', 'Infinity'], project))[0].dependencies['@tpmds/tpm2-wire']);
    const stated = /(\d+)\s+runtime\s+dependencies\s+\((\d+)\s+packages\s+in\s+all/.exec(README);
    assert.ok(stated, 'README.md states "N runtime dependencies (M packages in all"');
    assert.equal(Object.keys(manifest.dependencies).length, Number(stated[1]), 'runtime dependencies as stated in README.md');
    assert.equal(deps.size, Number(stated[2]), `packages in all as stated in README.md: ${[...deps].join(', ')}`);
    const kB = /about\s+(\d+)\s+kB\s+packed/.exec(README);
    assert.ok(kB, 'README.md states "about N kB packed"');
    const size = statSync(tarball).size / 1000;
    assert.ok(Math.abs(size - Number(kB[1])) <= Number(kB[1]) * 0.25, `tarball is ${size.toFixed(0)} kB, README.md says about ${kB[1]} kB`);

    writeFileSync(join(project, 'example.ts'), block!);
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', types: ['node'], skipLibCheck: false, noEmitOnError: true, outDir: 'out' },
      files: ['example.ts'],
    }));
    await run(process.execPath, [TSC, '-p', project], project);

    const s = await swtpm;
    const stdout = await run(process.execPath, [join(project, 'out/example.js')], project, { ...process.env, TPM: s.address });
    assert.match(stdout, /^random: [0-9a-f]{32}$/m);
    assert.match(stdout, /^signature verified in software: true$/m);
  });
});
