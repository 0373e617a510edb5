/**
 * The package README's example is real code: this test takes the first ```ts block of README.md,
 * points its import at this checkout's sources, and runs it in a child Node process.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const README = new URL('../README.md', import.meta.url);
const SRC = new URL('../src/index.ts', import.meta.url);
const ROOT = new URL('../../../', import.meta.url);

describe('README example (@tpmds/protocol)', function () {
  this.timeout(60_000);

  it('runs as printed: an ImportBlob round trip, a FormatError for a bad payload', async () => {
    const block = /```ts\n([\s\S]*?)```/.exec(readFileSync(README, 'utf8'))?.[1];
    assert.ok(block, 'README.md has a ```ts example');
    assert.ok(block.includes("from '@tpmds/protocol'"), 'it imports the package by its name');
    const dir = mkdtempSync(join(tmpdir(), 'tpmds-readme-'));
    try {
      const file = join(dir, 'example.mts');
      writeFileSync(file, block.replace("'@tpmds/protocol'", JSON.stringify(SRC.href)));
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', file], {
        cwd: ROOT.pathname, timeout: 50_000,
      });
      assert.match(stdout, /^import blob round trip: true$/m);
      assert.match(stdout, /^rejected: true$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
