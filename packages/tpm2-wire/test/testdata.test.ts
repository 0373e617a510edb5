/**
 * The repository stands alone: no tracked file refers to a folder beside the checkout, and every
 * third-party file in testdata/ is accounted for in testdata/README.md (source, commit, licence).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TESTDATA } from './fixtures/testdata.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
// Built from parts so that this file does not match itself.
const FORBIDDEN = [['..', 'shared'].join('/'), ['', 'work', 'shared'].join('/')];

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

/** README sections: `## dir/` heading -> the text up to the next `## ` heading. */
function sections(readme: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of readme.split(/^## /m).slice(1)) {
    const heading = /^(\S+)\/\s*\n/.exec(part);
    if (heading) out.set(heading[1]!, part);
  }
  return out;
}

describe('repository: stands alone', () => {
  it('no tracked file refers to the shared folder beside our own checkouts', function () {
    let tracked: string[];
    try {
      tracked = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter(Boolean);
    } catch {
      this.skip(); // not a git checkout (e.g. an unpacked tarball)
    }
    assert.ok(tracked.length > 50, `git ls-files listed ${tracked.length} files`);
    const offenders: string[] = [];
    for (const f of tracked) {
      if (f.split('/').includes('node_modules') || !existsSync(join(ROOT, f))) continue;
      const text = readFileSync(join(ROOT, f), 'latin1');
      for (const needle of FORBIDDEN) if (text.includes(needle)) offenders.push(`${f}: ${needle}`);
    }
    assert.deepEqual(offenders, []);
  });

  it('testdata/README.md lists every file in testdata/, in its upstream\'s section, beside a licence file', () => {
    const readme = readFileSync(join(TESTDATA, 'README.md'), 'utf8');
    const bySection = sections(readme);
    const files = filesUnder(TESTDATA).filter((f) => f !== 'README.md');
    assert.ok(files.length > 40, `testdata/ holds ${files.length} files`);
    const unlisted: string[] = [];
    for (const f of files) {
      const [dir, ...rest] = f.split('/');
      const section = bySection.get(dir!);
      assert.ok(section, `testdata/README.md has no "## ${dir}/" section (for ${f})`);
      if (!section.includes(`\`${rest.join('/')}\``)) unlisted.push(f);
    }
    assert.deepEqual(unlisted, [], 'files in testdata/ that its README does not list');
    for (const [dir, section] of bySection) {
      assert.ok(existsSync(join(TESTDATA, dir, 'LICENSE')), `testdata/${dir}/LICENSE`);
      assert.match(section, /@ `[0-9a-f]{40}`/, `the ${dir}/ section names the upstream commit`);
      assert.match(section, /Licence: \S+/, `the ${dir}/ section names the licence`);
    }
  });

  it('every file the README\'s tables list exists', () => {
    const missing: string[] = [];
    for (const [dir, section] of sections(readFileSync(join(TESTDATA, 'README.md'), 'utf8'))) {
      for (const row of section.split('\n').filter((l) => l.startsWith('| `'))) {
        const firstCell = row.split('|')[1]!;
        for (const [, name] of firstCell.matchAll(/`([^`]+)`/g)) {
          if (!existsSync(join(TESTDATA, dir, name!))) missing.push(`${dir}/${name}`);
        }
      }
    }
    assert.deepEqual(missing, []);
  });
});
