/**
 * The package README's example is real code: this test takes the first ```ts block of README.md,
 * points its import at this checkout's sources, and runs it in a child Node process against swtpm.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startSwtpm, type SwtpmInstance } from './fixtures/swtpm.js';

const README = new URL('../README.md', import.meta.url);
const SRC = new URL('../src/index.ts', import.meta.url);
const ROOT = new URL('../../../', import.meta.url);

describe('README example @swtpm', function () {
  this.timeout(60_000);
  let s: SwtpmInstance;
  before(async function () {
    this.timeout(120_000);
    s = await startSwtpm({ transport: 'unix' });
  });
  after(async () => s?.stop());

  it('runs as printed: random bytes, a TPM signature verified in software', async () => {
    const block = /```ts\n([\s\S]*?)```/.exec(readFileSync(README, 'utf8'))?.[1];
    assert.ok(block, 'README.md has a ```ts example');
    assert.ok(block.includes("from '@tpmds/tpm2-wire'"), 'it imports the package by its name');
    const dir = mkdtempSync(join(tmpdir(), 'tpmds-readme-'));
    try {
      const file = join(dir, 'example.mts');
      writeFileSync(file, block.replace("'@tpmds/tpm2-wire'", JSON.stringify(SRC.href)));
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', file], {
        cwd: ROOT.pathname, env: { ...process.env, TPM: s.address }, timeout: 50_000,
      });
      assert.match(stdout, /^random: [0-9a-f]{32}$/m);
      assert.match(stdout, /^signature verified in software: true$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
