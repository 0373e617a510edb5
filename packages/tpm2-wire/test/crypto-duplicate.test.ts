/**
 * Layer 7 (crypto): duplication with an outer wrapper (Part 1, 23.3) and go-tpm-tools compatible
 * import blobs (FORMATS.md "go-tpm-tools tpm.ImportBlob"): sealed data and RSA/ECC signing keys,
 * with and without a PCR policy, for RSA-2048 and P-256 EKs; the software inverse checks integrity;
 * cross-checks with `tpm2_duplicate -T none` and tpm2-pytss `utils.wrap`/`utils.unwrap`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { type KeyObject, createHash, generateKeyPairSync, sign, verify } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  TPM2B_ENCRYPTED_SECRET, TPM2B_PRIVATE, TPM2B_PUBLIC, TPM2B_SENSITIVE, TPMA_OBJECT, TPMT_PUBLIC, TPMT_SENSITIVE, TPM_ALG, TpmCryptoError,
  concatBytes, createImportBlob, duplicateObject, ekTemplateEccP256, ekTemplateRsa2048, fromHex, keyObjectToPublic, marshal,
  pcrPolicyStep, policyDigest, privateKeyFromSensitive, recoverSeed, sensitiveFromPrivateKey, toHex, u16be, u32be, unmarshal,
  unwrapDuplicate, utf8, type PcrValues,
} from '../src/index.js';

type Pair = { pub: TPMT_PUBLIC; privateKey: KeyObject };
const eks = new Map<string, Pair>();
function ek(kind: 'rsa' | 'ecc', index = 0): Pair {
  const id = `${kind}${index}`;
  if (!eks.has(id)) {
    const k = kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
    eks.set(id, { pub: keyObjectToPublic(k.publicKey, kind === 'rsa' ? ekTemplateRsa2048() : ekTemplateEccP256()), privateKey: k.privateKey });
  }
  return eks.get(id)!;
}
const integrity = (e: unknown) => e instanceof TpmCryptoError && e.reason === 'integrity';
const pcrs: PcrValues = {
  hashAlg: TPM_ALG.SHA256,
  values: new Map([[7, new Uint8Array(32).fill(7)], [0, new Uint8Array(32)], [16, fromHex('d471c0674951f0ef071aecdd42fbefa6eca6019820add0bd222d1c4e6242ce6f')]]),
};

describe('crypto: duplicateObject / unwrapDuplicate', () => {
  for (const parentKind of ['rsa', 'ecc'] as const) {
    it(`wraps an ECC key for an ${parentKind.toUpperCase()} parent and unwraps it; wrong name, parent or byte fail`, () => {
      const parent = ek(parentKind);
      const child = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const pub = keyObjectToPublic(child.publicKey);
      const sensitive = sensitiveFromPrivateKey(child.privateKey, { authValue: utf8('pw') });
      const d = duplicateObject(parent.pub, pub, sensitive);
      assert.equal(d.encryptedSeed.length, parentKind === 'rsa' ? 256 : 68);
      if (parentKind === 'rsa') assert.equal(recoverSeed(parent.privateKey, parent.pub, 'DUPLICATE', d.encryptedSeed).length, 16);
      const back = unwrapDuplicate(parent.privateKey, parent.pub, pub, d.duplicate, d.encryptedSeed);
      assert.deepEqual(marshal(TPMT_SENSITIVE, back), marshal(TPMT_SENSITIVE, sensitive));

      assert.throws(() => unwrapDuplicate(parent.privateKey, parent.pub, { ...pub, objectAttributes: pub.objectAttributes | TPMA_OBJECT.noDA }, d.duplicate, d.encryptedSeed), integrity);
      assert.throws(() => unwrapDuplicate(ek(parentKind, 1).privateKey, ek(parentKind, 1).pub, pub, d.duplicate, d.encryptedSeed), TpmCryptoError);
      for (const at of [2, 40, d.duplicate.length - 1]) {
        const bad = d.duplicate.slice();
        bad[at]! ^= 4;
        assert.throws(() => unwrapDuplicate(parent.privateKey, parent.pub, pub, bad, d.encryptedSeed), integrity);
      }
    });
  }

  it('refuses fixedTPM/fixedParent objects and mismatched areas; checks the binding when unwrapping', () => {
    const parent = ek('ecc');
    const child = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pub = keyObjectToPublic(child.publicKey);
    const sensitive = sensitiveFromPrivateKey(child.privateKey);
    assert.throws(() => duplicateObject(parent.pub, { ...pub, objectAttributes: pub.objectAttributes | TPMA_OBJECT.fixedTPM }, sensitive), /fixedTPM/);
    assert.throws(() => duplicateObject(parent.pub, pub, { ...sensitive, sensitiveType: TPM_ALG.RSA } as TPMT_SENSITIVE), /does not match/);
    // a sensitive area of another key under this public area: the outer wrapper is fine, the binding is not
    const other = sensitiveFromPrivateKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const d = duplicateObject(parent.pub, pub, other);
    assert.throws(() => unwrapDuplicate(parent.privateKey, parent.pub, pub, d.duplicate, d.encryptedSeed), /private scalar does not give the public point/);
  });
});

describe('crypto: createImportBlob (go-tpm-tools ImportBlob)', () => {
  for (const kind of ['rsa', 'ecc'] as const) {
    it(`seals data to a ${kind === 'rsa' ? 'RSA-2048' : 'P-256'} EK without PCRs: KEYEDHASH, userWithAuth, unique = SHA-256(seedValue || data)`, () => {
      const parent = ek(kind);
      const data = utf8('a secret to seal');
      const seedValue = new Uint8Array(32).fill(0xab);
      const blob = createImportBlob(parent.pub, { kind: 'sealed', data }, { seedValue });
      const pub = blob.publicArea;
      assert.equal(pub.type, TPM_ALG.KEYEDHASH);
      assert.equal(pub.nameAlg, TPM_ALG.SHA256);
      assert.equal(pub.objectAttributes, TPMA_OBJECT.userWithAuth | TPMA_OBJECT.noDA);
      assert.equal(pub.authPolicy.length, 0);
      assert.deepEqual(pub.parameters, { scheme: { scheme: TPM_ALG.NULL } });
      assert.equal(toHex(pub.unique as Uint8Array), createHash('sha256').update(seedValue).update(data).digest('hex'));
      assert.deepEqual(blob.policy, []);
      assert.equal(blob.pcrs, undefined);
      const s = unwrapDuplicate(parent.privateKey, parent.pub, pub, blob.duplicate, blob.encryptedSeed);
      assert.equal(s.sensitiveType, TPM_ALG.KEYEDHASH);
      assert.deepEqual(s.sensitive, data);
      assert.deepEqual(s.seedValue, seedValue);
      assert.equal(s.authValue.length, 0);
      // the protobuf fields go as they are: public_area = TPMT_PUBLIC, the others TPM2B contents
      assert.ok(unmarshal(TPMT_PUBLIC, marshal(TPMT_PUBLIC, pub)));
      assert.deepEqual(unmarshal(TPM2B_PRIVATE, marshal(TPM2B_PRIVATE, blob.duplicate)), blob.duplicate);
    });
  }

  it('binds sealed data to PCR values exactly as go-tpm-tools ComputePCRSessionAuth does', () => {
    const parent = ek('rsa');
    const blob = createImportBlob(parent.pub, { kind: 'sealed', data: utf8('pcr-bound') }, { pcrs });
    // SHA256(0^32 || TPM_CC_PolicyPCR || TPML_PCR_SELECTION{1, sha256, 3, bitmap} || SHA256(PCR 0 || PCR 7 || PCR 16))
    const selection = concatBytes(u32be(1), u16be(TPM_ALG.SHA256), Uint8Array.of(3, 0x81, 0x00, 0x01));
    const pcrDigest = createHash('sha256').update(pcrs.values.get(0)!).update(pcrs.values.get(7)!).update(pcrs.values.get(16)!).digest();
    const expected = createHash('sha256').update(new Uint8Array(32)).update(u32be(0x17f)).update(selection).update(pcrDigest).digest('hex');
    assert.equal(toHex(blob.publicArea.authPolicy), expected);
    assert.equal(blob.publicArea.objectAttributes, TPMA_OBJECT.adminWithPolicy | TPMA_OBJECT.noDA);
    assert.deepEqual(blob.policy, [pcrPolicyStep(pcrs)]);
    assert.equal(toHex(policyDigest(TPM_ALG.SHA256, blob.policy)), expected);
    assert.equal(blob.pcrs, pcrs);
    assert.deepEqual(unwrapDuplicate(parent.privateKey, parent.pub, blob.publicArea, blob.duplicate, blob.encryptedSeed).sensitive, utf8('pcr-bound'));
  });

  for (const [parentKind, keyKind] of [['rsa', 'rsa'], ['ecc', 'rsa'], ['rsa', 'ecc'], ['ecc', 'ecc']] as const) {
    it(`wraps a ${keyKind === 'rsa' ? 'RSA-2048' : 'P-256'} signing key for a ${parentKind.toUpperCase()} EK; the unwrapped key signs for the original public key`, () => {
      const parent = ek(parentKind);
      const key = keyKind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const blob = createImportBlob(parent.pub, { kind: 'signingKey', privateKey: key.privateKey }, keyKind === 'ecc' ? { pcrs } : {});
      const pub = blob.publicArea;
      assert.equal(pub.type, keyKind === 'rsa' ? TPM_ALG.RSA : TPM_ALG.ECC);
      assert.equal(pub.objectAttributes & (TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.decrypt | TPMA_OBJECT.restricted), 0);
      assert.ok(pub.objectAttributes & TPMA_OBJECT.sign);
      assert.ok(pub.objectAttributes & (keyKind === 'ecc' ? TPMA_OBJECT.adminWithPolicy : TPMA_OBJECT.userWithAuth));
      if (pub.type === TPM_ALG.RSA) assert.deepEqual(pub.parameters.scheme, { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 });
      if (pub.type === TPM_ALG.ECC) assert.deepEqual(pub.parameters.scheme, { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 });
      const s = unwrapDuplicate(parent.privateKey, parent.pub, pub, blob.duplicate, blob.encryptedSeed);
      const recovered = privateKeyFromSensitive(pub, s);
      const msg = utf8('uid-1234');
      assert.ok(verify('sha256', msg, key.publicKey, sign('sha256', msg, recovered)));
    });
  }

  it('refuses oversized sealed data and small RSA keys', () => {
    assert.throws(() => createImportBlob(ek('ecc').pub, { kind: 'sealed', data: new Uint8Array(129) }), /at most 128/);
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
    assert.throws(() => createImportBlob(ek('ecc').pub, { kind: 'signingKey', privateKey: small.privateKey }), /too small/);
  });
});

describe('crypto: duplication cross-checks with independent implementations', function () {
  this.timeout(20000);
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tpmds-dup-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const parentKind of ['rsa', 'ecc'] as const) {
    it(`unwraps what tpm2_duplicate -T none wraps for an ${parentKind.toUpperCase()} parent`, function () {
      if (!existsSync('/usr/bin/tpm2_duplicate')) this.skip();
      const parent = ek(parentKind);
      const child = generateKeyPairSync('rsa', { modulusLength: 2048 });
      writeFileSync(join(dir, 'parent.pub'), marshal(TPM2B_PUBLIC, parent.pub));
      writeFileSync(join(dir, 'child.pem'), child.privateKey.export({ type: 'pkcs8', format: 'pem' }));
      execFileSync('tpm2_duplicate', ['-T', 'none', '-U', join(dir, 'parent.pub'), '-G', 'rsa', '-k', join(dir, 'child.pem'),
        '-u', join(dir, 'out.pub'), '-r', join(dir, 'out.dpriv'), '-s', join(dir, 'out.seed')], { stdio: 'pipe' });
      const pub = unmarshal(TPM2B_PUBLIC, new Uint8Array(readFileSync(join(dir, 'out.pub'))));
      const dup = unmarshal(TPM2B_PRIVATE, new Uint8Array(readFileSync(join(dir, 'out.dpriv'))));
      const seed = unmarshal(TPM2B_ENCRYPTED_SECRET, new Uint8Array(readFileSync(join(dir, 'out.seed'))));
      const s = unwrapDuplicate(parent.privateKey, parent.pub, pub, dup, seed);
      assert.deepEqual(s.sensitive, sensitiveFromPrivateKey(child.privateKey).sensitive);
    });

    it(`tpm2-pytss utils.unwrap opens our duplicate and we open utils.wrap's (${parentKind.toUpperCase()} parent)`, function () {
      if (!existsSync('/usr/bin/python3')) this.skip();
      const parent = ek(parentKind);
      const child = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const pub = keyObjectToPublic(child.publicKey);
      const sensitive = sensitiveFromPrivateKey(child.privateKey, { authValue: utf8('auth') });
      const ours = duplicateObject(parent.pub, pub, sensitive);
      const script = [
        'import sys',
        'from tpm2_pytss.types import TPMT_PUBLIC, TPMT_SENSITIVE, TPM2B_PUBLIC, TPM2B_PRIVATE, TPM2B_ENCRYPTED_SECRET, TPM2B_SENSITIVE',
        'from tpm2_pytss.utils import wrap, unwrap',
        'a = [bytes.fromhex(x) for x in sys.argv[1:]]',
        'ppub, _ = TPMT_PUBLIC.unmarshal(a[0]); ppriv, _ = TPMT_SENSITIVE.unmarshal(a[1]); pub, _ = TPM2B_PUBLIC.unmarshal(a[2])',
        's = unwrap(ppub, ppriv, pub, TPM2B_PRIVATE(a[3]), TPM2B_ENCRYPTED_SECRET(a[4]))',
        'sens, _ = TPM2B_SENSITIVE.unmarshal(a[5])',
        '_, dup, seed = wrap(ppub, pub, sens)',
        'print(s.marshal().hex(), bytes(dup).hex(), bytes(seed).hex())',
      ].join('\n');
      const args = [
        marshal(TPMT_PUBLIC, parent.pub), marshal(TPMT_SENSITIVE, sensitiveFromPrivateKey(parent.privateKey)), marshal(TPM2B_PUBLIC, pub),
        ours.duplicate, ours.encryptedSeed, marshal(TPM2B_SENSITIVE, sensitive),
      ].map(toHex);
      let out: string;
      try {
        out = execFileSync('/usr/bin/python3', ['-c', script, ...args], { stdio: 'pipe' }).toString();
      } catch (e) {
        if (/No module named/.test(String((e as { stderr?: Buffer }).stderr))) this.skip();
        throw e;
      }
      const [theirUnwrap, theirDup, theirSeed] = out.trim().split(' ') as [string, string, string];
      assert.equal(theirUnwrap, toHex(marshal(TPM2B_SENSITIVE, sensitive)));
      const back = unwrapDuplicate(parent.privateKey, parent.pub, pub, fromHex(theirDup), fromHex(theirSeed));
      assert.deepEqual(marshal(TPMT_SENSITIVE, back), marshal(TPMT_SENSITIVE, sensitive));
    });
  }
});
