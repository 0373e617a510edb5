import assert from 'node:assert/strict';
import { TpmError } from '../../src/index.js';

/** An `assert.rejects` matcher: a TpmError whose base code (TPM_RC.*) is `base`. */
export function expectRc(base: number): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof TpmError, `expected a TpmError, got ${String(e)}`);
    assert.equal(e.base, base, `expected base 0x${base.toString(16)}, got ${e.message}`);
    return true;
  };
}
