/**
 * Layer 7 (crypto): offline MakeCredential (Part 1, 24) and its software inverse. Known answers from
 * keylime (a fully deterministic ECC credential file; the deterministic prefix of an RSA one), round
 * trips for RSA-2048 and P-256 EKs, and cross-checks with independent implementations:
 * `tpm2_makecredential -T none` and tpm2-pytss `utils.make_credential`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { type KeyObject, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Reader, TPM2B_ENCRYPTED_SECRET, TPM2B_ID_OBJECT, TPM2B_PUBLIC, TpmCryptoError, activateCredentialSoftware, concatBytes,
  ekTemplateEccP256, ekTemplateRsa2048, fromHex, keyObjectToPublic, makeCredential, marshal, objectName, recoverSeed,
  akTemplate, toHex, u32be, unmarshal, utf8,
} from '../src/index.js';
import { TESTDATA } from './fixtures/testdata.js';

const keylime = JSON.parse(readFileSync(`${TESTDATA}keylime/keylime_inline_vectors.json`, 'utf8')) as Record<string, Record<string, string>>;
const bigHex = (dec: string, n: number) => fromHex(BigInt(dec).toString(16).padStart(2 * n, '0'));

/** tpm2-tools' credential file: u32 0xBADCC0DE, u32 version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET. */
function toolsCredentialFile(credentialBlob: Uint8Array, encryptedSecret: Uint8Array): Uint8Array {
  return concatBytes(u32be(0xbadcc0de), u32be(1), marshal(TPM2B_ID_OBJECT, credentialBlob), marshal(TPM2B_ENCRYPTED_SECRET, encryptedSecret));
}
function parseToolsCredentialFile(file: Uint8Array): { credentialBlob: Uint8Array; encryptedSecret: Uint8Array } {
  const r = new Reader(file);
  assert.equal(r.u32(), 0xbadcc0de);
  assert.equal(r.u32(), 1);
  const credentialBlob = TPM2B_ID_OBJECT.decode(r);
  const encryptedSecret = TPM2B_ENCRYPTED_SECRET.decode(r);
  r.done();
  return { credentialBlob, encryptedSecret };
}

/** Software EKs, made once per test run (RSA key generation is slow): index 0 and 1 are different keys. */
const eks = new Map<string, { pub: ReturnType<typeof keyObjectToPublic>; privateKey: KeyObject }>();
function ekPair(kind: 'rsa' | 'ecc', index = 0) {
  const id = `${kind}${index}`;
  if (!eks.has(id)) {
    const { publicKey, privateKey } = kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
    eks.set(id, { pub: keyObjectToPublic(publicKey, kind === 'rsa' ? ekTemplateRsa2048() : ekTemplateEccP256()), privateKey });
  }
  return eks.get(id)!;
}
const akName = objectName(keyObjectToPublic(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey, akTemplate('ecc')));

describe('crypto: makeCredential known answers (keylime)', () => {
  it('reproduces the deterministic ECC credential file byte for byte', () => {
    const v = keylime.makecredential_ecc_deterministic!;
    const ek = unmarshal(TPM2B_PUBLIC, fromHex(v.ek_tpm2b_public_hex!));
    const eph = bigHex(v.ephemeral_private_scalar_dec!, 32);
    const { credentialBlob, encryptedSecret } = makeCredential(ek, fromHex(v.ak_name_hex!), fromHex(v.challenge_hex!), { ephemeralPrivateKey: eph });
    assert.equal(toHex(toolsCredentialFile(credentialBlob, encryptedSecret)), v.expected_credential_hex);
    // the ephemeral public point in the file is the one keylime gives for that scalar
    const point = new Reader(encryptedSecret);
    assert.equal(toHex(point.bytesN(point.u16())), BigInt(v.ephemeral_public_x_dec!).toString(16).padStart(64, '0'));
    assert.equal(toHex(point.bytesN(point.u16())), BigInt(v.ephemeral_public_y_dec!).toString(16).padStart(64, '0'));
  });

  it('reproduces the deterministic prefix of the RSA credential file (keylime: 32-byte seed of 0x12)', () => {
    const v = keylime.makecredential_rsa_prefix!;
    const ek = unmarshal(TPM2B_PUBLIC, fromHex(v.ek_tpm2b_public_hex!));
    const { credentialBlob, encryptedSecret } = makeCredential(ek, fromHex(v.ak_name_hex!), fromHex(v.challenge_hex!), { seed: new Uint8Array(32).fill(0x12) });
    const file = toolsCredentialFile(credentialBlob, encryptedSecret);
    assert.equal(toHex(file.subarray(0, 80)), v.expected_credential_prefix80_hex);
    assert.equal(file.length, 80 + 256);
  });
});

describe('crypto: makeCredential / activateCredentialSoftware', () => {
  for (const kind of ['rsa', 'ecc'] as const) {
    it(`round-trips for a ${kind === 'rsa' ? 'RSA-2048' : 'P-256'} EK and fails for another name, EK or a flipped byte`, () => {
      const ek = ekPair(kind);
      const secret = utf8('0123456789abcdef0123456789abcdef');
      const made = makeCredential(ek.pub, akName, secret);
      // FORMATS.md: RSA-2048 EK with SHA-256 gives 70- and 258-byte TPM2B values (68 and 256 without the size)
      assert.equal(made.credentialBlob.length, 2 + 32 + 2 + 32);
      assert.equal(made.encryptedSecret.length, kind === 'rsa' ? 256 : 68);
      if (kind === 'rsa') assert.equal(recoverSeed(ek.privateKey, ek.pub, 'IDENTITY', made.encryptedSecret).length, 16);
      assert.deepEqual(activateCredentialSoftware(ek.privateKey, ek.pub, akName, made.credentialBlob, made.encryptedSecret), secret);

      const integrity = (e: unknown) => e instanceof TpmCryptoError && e.reason === 'integrity';
      const otherName = akName.slice();
      otherName[5]! ^= 1;
      assert.throws(() => activateCredentialSoftware(ek.privateKey, ek.pub, otherName, made.credentialBlob, made.encryptedSecret), integrity);
      const other = ekPair(kind, 1);
      assert.throws(() => activateCredentialSoftware(other.privateKey, other.pub, akName, made.credentialBlob, made.encryptedSecret), TpmCryptoError);
      for (const at of [3, made.credentialBlob.length - 1]) {
        const bad = made.credentialBlob.slice();
        bad[at]! ^= 0x40;
        assert.throws(() => activateCredentialSoftware(ek.privateKey, ek.pub, akName, bad, made.encryptedSecret), integrity);
      }
    });
  }

  it('checks the secret size and the EK', () => {
    const ek = ekPair('ecc');
    assert.throws(() => makeCredential(ek.pub, akName, new Uint8Array(33)), /1 to 32 bytes/);
    assert.throws(() => makeCredential(ek.pub, akName, new Uint8Array(0)), TpmCryptoError);
    assert.throws(() => makeCredential(ek.pub, new Uint8Array(0), new Uint8Array(8)), /name/);
    const noSym = { ...ek.pub, parameters: { ...ek.pub.parameters, symmetric: { algorithm: 0x0010 } } } as typeof ek.pub;
    assert.throws(() => makeCredential(noSym, akName, new Uint8Array(8)), (e: unknown) => e instanceof TpmCryptoError && e.reason === 'unsupported');
  });
});

describe('crypto: makeCredential cross-checks with independent implementations', function () {
  this.timeout(20000);
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tpmds-cred-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const kind of ['rsa', 'ecc'] as const) {
    it(`our activateCredentialSoftware accepts tpm2_makecredential -T none output (${kind})`, function () {
      if (!existsSync('/usr/bin/tpm2_makecredential')) this.skip();
      const ek = ekPair(kind);
      const secret = utf8(`secret for ${kind}`);
      writeFileSync(join(dir, 'ek.pub'), marshal(TPM2B_PUBLIC, ek.pub));
      writeFileSync(join(dir, 'secret'), secret);
      // tpm2-tools 5.4 takes the name as hex on the command line
      execFileSync('tpm2_makecredential', ['-T', 'none', '-u', join(dir, 'ek.pub'), '-s', join(dir, 'secret'), '-n', toHex(akName), '-o', join(dir, 'cred')], { stdio: 'pipe' });
      const { credentialBlob, encryptedSecret } = parseToolsCredentialFile(new Uint8Array(readFileSync(join(dir, 'cred'))));
      assert.deepEqual(activateCredentialSoftware(ek.privateKey, ek.pub, akName, credentialBlob, encryptedSecret), secret);
    });

    it(`our activateCredentialSoftware accepts tpm2-pytss utils.make_credential output (${kind})`, function () {
      if (!existsSync('/usr/bin/python3')) this.skip();
      const ek = ekPair(kind);
      const secret = utf8(`pytss secret ${kind}`);
      const script = [
        'import sys',
        'from tpm2_pytss.types import TPM2B_PUBLIC, TPM2B_NAME',
        'from tpm2_pytss.utils import make_credential',
        'pub, _ = TPM2B_PUBLIC.unmarshal(bytes.fromhex(sys.argv[1]))',
        'cred, sec = make_credential(pub, bytes.fromhex(sys.argv[2]), TPM2B_NAME(bytes.fromhex(sys.argv[3])))',
        'print(bytes(cred).hex(), bytes(sec).hex())',
      ].join('\n');
      let out: string;
      try {
        out = execFileSync('/usr/bin/python3', ['-c', script, toHex(marshal(TPM2B_PUBLIC, ek.pub)), toHex(secret), toHex(akName)], { stdio: 'pipe' }).toString();
      } catch (e) {
        if (/No module named/.test(String((e as { stderr?: Buffer }).stderr))) this.skip();
        throw e;
      }
      const [cred, sec] = out.trim().split(' ') as [string, string];
      assert.deepEqual(activateCredentialSoftware(ek.privateKey, ek.pub, akName, fromHex(cred), fromHex(sec)), secret);
    });
  }
});
