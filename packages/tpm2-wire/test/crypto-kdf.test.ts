/**
 * Layer 7 (crypto): KDFa and KDFe (Part 1, 11.4.10.2-3) against every case of the go-tpm test vectors
 * (github.com/chrisfenner/tpm-test-vectors, validated against the TCG reference implementation).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { TPM_ALG, TpmCryptoError, fromHex, kdfa, kdfe, toHex, utf8 } from '../src/index.js';
import { TESTDATA } from './fixtures/testdata.js';

const vectors = (name: string) => JSON.parse(readFileSync(`${TESTDATA}go-tpm-testvectors/${name}`, 'utf8')) as Record<string, string & number>[];

describe('crypto: KDFa', () => {
  const cases = vectors('kdfa.json');
  it(`matches all ${cases.length} go-tpm KDFa vectors (SHA-1/256/384/512, odd bit lengths)`, () => {
    assert.equal(cases.length, 100);
    for (const v of cases) {
      const out = kdfa(v.HashAlg, fromHex(v.Key), v.Label, fromHex(v.ContextU), fromHex(v.ContextV), v.Bits);
      assert.equal(toHex(out), v.Result, v.Name);
    }
  });

  it('adds the label terminator once, masks odd lengths and allows 0 bits', () => {
    const key = utf8('key');
    const u = utf8('u');
    assert.deepEqual(kdfa(TPM_ALG.SHA256, key, 'STORAGE', u, new Uint8Array(0), 128), kdfa(TPM_ALG.SHA256, key, 'STORAGE\0', u, new Uint8Array(0), 128));
    const full = kdfa(TPM_ALG.SHA256, key, 'X', u, u, 16);
    const odd = kdfa(TPM_ALG.SHA256, key, 'X', u, u, 13);
    assert.equal(odd.length, 2);
    assert.ok(odd[0]! < 0x20);
    assert.equal(kdfa(TPM_ALG.SHA256, key, 'X', u, u, 0).length, 0);
    assert.equal(full.length, 2);
    assert.throws(() => kdfa(TPM_ALG.SHA256, key, 'X', u, u, -8), TpmCryptoError);
    assert.throws(() => kdfa(TPM_ALG.NULL, key, 'X', u, u, 8), /not supported/);
  });
});

describe('crypto: KDFe', () => {
  const cases = vectors('kdfe.json');
  it(`matches all ${cases.length} go-tpm KDFe vectors`, () => {
    assert.equal(cases.length, 100);
    for (const v of cases) {
      const out = kdfe(v.HashAlg, fromHex(v.Z), v.Label, fromHex(v.ContextU), fromHex(v.ContextV), v.Bits);
      assert.equal(toHex(out), v.Result, v.Name);
    }
  });
});
