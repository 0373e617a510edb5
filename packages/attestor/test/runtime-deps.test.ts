import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../../..', import.meta.url));

/** Every directory of a production dependency of the three packages (pnpm's resolved tree). */
function productionPackages(): string[] {
  const out = execFileSync('pnpm', ['-r', 'ls', '--prod', '--depth', 'Infinity', '--parseable'], { cwd: repo, encoding: 'utf8' });
  return [...new Set(out.split('\n').filter((l) => l.includes('node_modules')))];
}

function hasNativeFile(dir: string, depth = 0): string | undefined {
  if (depth > 4) return undefined;
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules') continue;
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) {
      const found = hasNativeFile(p, depth + 1);
      if (found) return found;
    } else if (name.endsWith('.node') || name === 'binding.gyp') {
      return p;
    }
  }
  return undefined;
}

/** Packages whose install scripts pnpm is told never to run (`allowBuilds: { name: false }` in pnpm-workspace.yaml). */
function deniedBuilds(): Set<string> {
  const yaml = readFileSync(join(repo, 'pnpm-workspace.yaml'), 'utf8');
  return new Set([...yaml.matchAll(/^\s+([@\w./-]+):\s*false\s*$/gm)].map((m) => m[1]!));
}

describe('runtime dependency tree', () => {
  it('has no native code: no addons, no binding.gyp, no install scripts that run', function () {
    this.timeout(60_000);
    const pkgs = productionPackages();
    assert.ok(pkgs.length > 10, `expected the production tree, got ${pkgs.length} packages`);
    const denied = deniedBuilds();
    const problems: string[] = [];
    for (const dir of pkgs) {
      if (!existsSync(join(dir, 'package.json'))) continue;
      const pj = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; scripts?: Record<string, string>; gypfile?: boolean };
      for (const s of ['preinstall', 'install', 'postinstall']) if (pj.scripts?.[s] && !denied.has(pj.name ?? '')) problems.push(`${pj.name}: ${s} script`);
      if (pj.gypfile) problems.push(`${pj.name}: gypfile`);
      const native = hasNativeFile(dir);
      if (native) problems.push(`${pj.name}: ${native}`);
    }
    assert.deepEqual(problems, []);
  });
});
