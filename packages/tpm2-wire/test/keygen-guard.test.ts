// test/support/keygen-guard.mjs (loaded by .mocharc.json) replaces generateKeyPairSync in every
// test process, so a test cannot hit Node 20's deadlock when it exports a freshly generated key.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/** The .ts files under `dir` (recursively), skipping generated code and dependencies. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' || e.name === 'dist' || e.name === 'gen' ? [] : sources(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

describe('test harness: the key-generation guard', () => {
  it('generateKeyPairSync as tests import it generates to DER and reads the keys back; asked-for encodings pass through', () => {
    assert.match(generateKeyPairSync.toString(), /privateKeyEncoding: \{ type: 'pkcs8', format: 'der' \}/, 'the guard of test/support/keygen-guard.mjs is not loaded');
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    assert.equal(publicKey.type, 'public');
    assert.equal(privateKey.type, 'private');
    assert.equal(privateKey.export({ format: 'jwk' }).crv, 'P-256');
    const pem = generateKeyPairSync('ed25519', { publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
    assert.match(pem.publicKey, /BEGIN PUBLIC KEY/);
  });

  it('outside the tests, which the guard does not cover, every key generation asks for encoded keys (no KeyObject to export)', () => {
    const files = [...readdirSync(join(REPO, 'packages')).flatMap((p) => sources(join(REPO, 'packages', p, 'src'))), ...sources(join(REPO, 'scripts'))];
    const bare: string[] = [];
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(/generateKeyPair(?:Sync|Async)?\(/g)) {
        const call = text.slice(m.index, text.indexOf(');', m.index));
        if (!call.includes('privateKeyEncoding')) bare.push(`${f.slice(REPO.length)}: ${call.split('\n')[0]}`);
      }
    }
    assert.ok(files.length > 50, `${files.length} source files read`);
    assert.deepEqual(bare, [], 'generate straight to DER or PEM (see test/support/keygen-guard.mjs)');
  });
});
