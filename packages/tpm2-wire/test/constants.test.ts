import { strict as assert } from 'node:assert';
import { TPM_ALG, algName, commandName, hashAlgFromName } from '../src/index.js';

describe('constants', () => {
  it('hashAlgFromName accepts the common spellings of every hash bank', () => {
    const cases: [string, number | undefined][] = [
      ['sha1', TPM_ALG.SHA1], ['SHA-256', TPM_ALG.SHA256], ['sha384', TPM_ALG.SHA384], ['SHA512', TPM_ALG.SHA512],
      ['sha3-256', TPM_ALG.SHA3_256], ['SHA3_384', TPM_ALG.SHA3_384], ['sm3', TPM_ALG.SM3_256], ['sm3_256', TPM_ALG.SM3_256],
      ['md5', undefined], ['aes', undefined], ['', undefined],
    ];
    for (const [name, alg] of cases) assert.equal(hashAlgFromName(name), alg, name);
  });
  it('names algorithms and commands, and shows unknown ones in hex', () => {
    assert.equal(algName(TPM_ALG.SHA256), 'sha256');
    assert.equal(algName(0x7777), '0x7777');
    assert.equal(commandName(0x158), 'TPM2_Quote');
    assert.equal(commandName(0x20000000), 'command 0x20000000');
  });
});
