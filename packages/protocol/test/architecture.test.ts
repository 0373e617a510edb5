/**
 * Guards the shape of the workspace: the attestor and the verifier both stand on @tpmds/protocol and
 * @tpmds/tpm2-wire and never on each other, the packages depend on each other without cycles, and no
 * module under packages/<pkg>/src takes part in an import cycle.
 * Imports are read with TypeScript's own pre-processor (comments and strings are not imports;
 * `import type`, `export ... from` and `import()` are).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PACKAGES = join(ROOT, 'packages');

interface PackageJson {
  name: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

function packageDirs(): string[] {
  return readdirSync(PACKAGES)
    .map((name) => join(PACKAGES, name))
    .filter((dir) => existsSync(join(dir, 'package.json')));
}

function packageJson(dir: string): PackageJson {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageJson;
}

function tsFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return tsFiles(p);
    return p.endsWith('.ts') && !p.endsWith('.d.ts') ? [p] : [];
  });
}

/** Every module specifier a file names: static imports and re-exports (type-only too) and import(). */
function specifiers(file: string): string[] {
  return ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles.map((f) => f.fileName);
}

/** The .ts file a relative NodeNext specifier ('./x.js', '../y/index.js', './z') points at. */
function resolveRelative(from: string, spec: string): string | undefined {
  const base = resolve(dirname(from), spec);
  const candidates = [base.replace(/\.js$/, '.ts'), base, `${base}.ts`, join(base, 'index.ts')];
  return candidates.find((c) => c.endsWith('.ts') && existsSync(c) && statSync(c).isFile());
}

/** Cycles in a directed graph, each as the path that closes it (first node repeated at the end). */
function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      const s = state.get(next);
      if (s === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (s === undefined) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of [...graph.keys()].sort()) if (!state.has(node)) visit(node);
  return cycles;
}

/** Relative-import graph of every packages/<pkg>/src/**.ts file, keyed by repository-relative path. */
function sourceImportGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const dir of packageDirs()) {
    for (const file of tsFiles(join(dir, 'src'))) {
      const edges: string[] = [];
      for (const spec of specifiers(file)) {
        if (!spec.startsWith('.')) continue;
        const target = resolveRelative(file, spec);
        assert.ok(target, `${relative(ROOT, file)} imports '${spec}', which names no .ts file`);
        edges.push(relative(ROOT, target));
      }
      graph.set(relative(ROOT, file), edges);
    }
  }
  return graph;
}

const byName = new Map(packageDirs().map((dir) => [packageJson(dir).name, dir]));
const deps = (name: string): string[] => Object.keys(packageJson(byName.get(name)!).dependencies ?? {});

describe('architecture', () => {
  it('finds cycles and names them (the walk itself)', () => {
    const g = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts', 'd.ts']],
      ['c.ts', ['a.ts']],
      ['d.ts', []],
      ['e.ts', ['e.ts']],
    ]);
    assert.deepEqual(findCycles(g), [['a.ts', 'b.ts', 'c.ts', 'a.ts'], ['e.ts', 'e.ts']]);
    assert.deepEqual(findCycles(new Map([['a.ts', ['b.ts']], ['b.ts', []]])), []);
  });

  it('has no import cycle in any packages/*/src', () => {
    const graph = sourceImportGraph();
    assert.ok(graph.size > 50, `expected the sources of every package, found ${graph.size} files`);
    const cycles = findCycles(graph).map((c) => c.join(' -> '));
    assert.deepEqual(cycles, [], `import cycles:\n  ${cycles.join('\n  ')}`);
  });

  it('the attestor and the verifier both stand on @tpmds/protocol and @tpmds/tpm2-wire, never on each other', () => {
    for (const name of ['@tpmds/attestor', '@tpmds/verifier']) {
      assert.ok(deps(name).includes('@tpmds/protocol'), `${name} depends on @tpmds/protocol`);
      assert.ok(deps(name).includes('@tpmds/tpm2-wire'), `${name} depends on @tpmds/tpm2-wire`);
    }
    assert.ok(!deps('@tpmds/attestor').includes('@tpmds/verifier'), '@tpmds/attestor must not depend on @tpmds/verifier');
    assert.ok(!deps('@tpmds/verifier').includes('@tpmds/attestor'), '@tpmds/verifier must not depend on @tpmds/attestor');
    assert.deepEqual(
      deps('@tpmds/protocol').filter((d) => d.startsWith('@tpmds/')),
      [],
      '@tpmds/protocol is the contract: it depends on no other workspace package',
    );
  });

  it('no packages/attestor/src file imports @tpmds/verifier', () => {
    const offenders = tsFiles(join(PACKAGES, 'attestor/src'))
      .filter((file) => specifiers(file).some((s) => s === '@tpmds/verifier' || s.startsWith('@tpmds/verifier/')))
      .map((file) => relative(ROOT, file));
    assert.deepEqual(offenders, []);
  });

  it('each package imports only the workspace packages it declares, and they form no cycle', () => {
    const graph = new Map<string, string[]>();
    const undeclared: string[] = [];
    for (const [name, dir] of byName) {
      const declared = deps(name).filter((d) => d.startsWith('@tpmds/'));
      graph.set(name, declared);
      for (const file of tsFiles(join(dir, 'src'))) {
        for (const spec of specifiers(file)) {
          const m = /^(@tpmds\/[^/]+)/.exec(spec);
          if (m && m[1] !== name && !declared.includes(m[1]!)) undeclared.push(`${relative(ROOT, file)} imports ${spec}`);
        }
      }
    }
    assert.deepEqual(undeclared, [], 'imports of workspace packages missing from "dependencies"');
    assert.deepEqual(findCycles(graph).map((c) => c.join(' -> ')), []);
  });
});
