/**
 * Policy calculator (Part 3, 23): known answers for PolicySecret(TPM_RH_ENDORSEMENT) (the TCG EK
 * policy), PolicyAuthValue/PolicyPassword and PolicyPCR (values published in systemd's
 * src/test/test-tpm2.c), PolicyAuthValue + PolicyCommandCode(NV_ChangeAuth) (a published NV-space
 * policy value), the PolicyOR formula, the stepwise calculator, and PCR selection helpers.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  EK_POLICY_SHA256, PolicyCalculator, PolicyError, TPML_PCR_SELECTION, TPM_ALG, TPM_CC, TPM_RH, fromHex, handleName,
  marshal, pcrPolicyStep, pcrSelection, pcrValuesDigest, policyDigest, toHex, u32be, type PolicyStep,
} from '../src/index.js';

const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

describe('policy: known answers', () => {
  it('PolicySecret(TPM_RH_ENDORSEMENT) from zero is the TCG EK policy', () => {
    const ek: PolicyStep = { type: 'PolicySecret', authObjectName: handleName(TPM_RH.ENDORSEMENT) };
    assert.deepEqual(policyDigest(TPM_ALG.SHA256, [ek]), EK_POLICY_SHA256);
    assert.equal(toHex(handleName(TPM_RH.ENDORSEMENT)), '4000000b');
    // an explicit empty policyRef is the same policy; a non-empty one is not
    assert.deepEqual(policyDigest(TPM_ALG.SHA256, [{ ...ek, policyRef: new Uint8Array(0) }]), EK_POLICY_SHA256);
    assert.notDeepEqual(policyDigest(TPM_ALG.SHA256, [{ ...ek, policyRef: Uint8Array.of(1) }]), EK_POLICY_SHA256);
  });

  it('PolicyAuthValue and PolicyPassword give the same digests', () => {
    const once = '8fcd2169ab92694e0c633f1ab772842b8241bbc20288981fc7ac1eddc1fddb0e';
    const twice = '759ebd5ed65100e0b4aa2d04b4b789c2672d92ecc9cdda4b5fa16a303132e008';
    assert.equal(toHex(policyDigest(TPM_ALG.SHA256, [{ type: 'PolicyAuthValue' }])), once);
    assert.equal(toHex(policyDigest(TPM_ALG.SHA256, [{ type: 'PolicyPassword' }])), once);
    assert.equal(toHex(policyDigest(TPM_ALG.SHA256, [{ type: 'PolicyPassword' }, { type: 'PolicyAuthValue' }])), twice);
  });

  it('PolicyAuthValue then PolicyCommandCode(NV_ChangeAuth)', () => {
    const d = policyDigest(TPM_ALG.SHA256, [{ type: 'PolicyAuthValue' }, { type: 'PolicyCommandCode', code: TPM_CC.NV_ChangeAuth }]);
    assert.equal(toHex(d), '363ac945b6457c47c31f3355dba0db27de8db213d6250c6bf79685003f9fe7ab');
  });

  it('PolicyPCR over SHA-256 PCRs 4, 7, 8 and over 0-15 (continuing from a previous digest)', () => {
    const v = (h: string) => fromHex(h);
    const three = new Map([
      [4, v('368f85b3013041dfe203faaa364f00b07c5da7b1e5f1dbf2efb06fa6b9bd92de')],
      [7, v('aa1154c9e0a774854ccbed4c8ce7e9b906b3d700a1a8db1772d0341a62dbe51b')],
      [8, v('cfde439a2c06af3479ca6bdc60429b90553d65300c5cfcc40004a08c6b5ad81a')],
    ]);
    const step = pcrPolicyStep({ hashAlg: TPM_ALG.SHA256, values: three });
    const c = new PolicyCalculator(TPM_ALG.SHA256);
    assert.equal(toHex(c.update(step).digest), '76532a0e16f7e6bf6b02918c11f75d99d729fab0cc81d0df2c4284a2c4fe6e05');
    assert.equal(toHex(c.update(step).digest), '97e64bcabb64c1fa4b726528644926c8029f5b4458b0575c98c04fe225629a0b');

    const sixteen = [
      '2124793cbbe60c3a8637d3b84a5d054e87c351e1469a285acc04755e8b204dec', 'bf7592f18adcfdc549fc0b94939f5069a24697f9cff4a0dca29014767b97559d',
      '4b00cff9dee3a364979b2dc241b34568a8ad49fcf2713df259e47dff8875feed', '3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969',
      '368f85b3013041dfe203faaa364f00b07c5da7b1e5f1dbf2efb06fa6b9bd92de', 'c97c40369691c8e4aa78fb3a52655cd193b780a838b8e23f5f476576919db5e5',
      '3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969', 'aa1154c9e0a774854ccbed4c8ce7e9b906b3d700a1a8db1772d0341a62dbe51b',
      'cfde439a2c06af3479ca6bdc60429b90553d65300c5cfcc40004a08c6b5ad81a', '9c2bac22ef5ec84fcdb71c3ebf776cba1247e5da980e5ee08e45666a2edf0b8b',
      '9885873f4d7348199ad286f8f2476d4f866940950f6f9fb9f945ed352dbdcbd2', '42400ab950d21aa79d12cc4fdef67d1087a39ad64900619831c0974dbae54e44',
      '767d064382e56ca1ad3bdcc6bc596112e6c2008b593d3570d24c2bfa64c4628c', '30c16133175959408c9745d8dafadef5daf4b39cb2be04df0d60089bd46d3cc4',
      'e3991b7ddd47be7e92726a832d6874c5349b52b789fa0db8b558c69fea29574e', '852dae3ecb992bdeb13d6002fefeeffdd90feca8b378d56681ef2c885d0e5137',
    ];
    const all = pcrPolicyStep({ hashAlg: TPM_ALG.SHA256, values: new Map(sixteen.map((h, i) => [i, v(h)])) });
    c.reset();
    assert.equal(toHex(c.update(all).digest), '22be4f1674f792d6345cea9427701068f0e8d9f42755dcc0e927e545a68f9c13');
    assert.equal(toHex(c.update(all).digest), '7481fd1b116078eb3ac2456e4ad542c9b46b9b8eb891335771ca8e7c8f8e4415');
  });
});

describe('policy: formulas and the calculator', () => {
  it('PolicyOR resets to zero and hashes the concatenated branches (Part 3, 23.6)', () => {
    const a = policyDigest(TPM_ALG.SHA256, [{ type: 'PolicyAuthValue' }]);
    const b = EK_POLICY_SHA256;
    const expected = sha256(new Uint8Array(32), u32be(0x171), a, b);
    // the digest before PolicyOR does not matter: the TPM checked it is one of the branches
    assert.deepEqual(policyDigest(TPM_ALG.SHA256, [{ type: 'PolicyAuthValue' }, { type: 'PolicyOR', branches: [a, b] }]), expected);
    assert.deepEqual(policyDigest(TPM_ALG.SHA256, [{ type: 'PolicyOR', branches: [a, b] }]), expected);
    assert.throws(() => policyDigest(TPM_ALG.SHA256, [{ type: 'PolicyOR', branches: [a] }]), PolicyError);
    assert.throws(() => policyDigest(TPM_ALG.SHA256, [{ type: 'PolicyOR', branches: Array(9).fill(a) }]), /2 to 8/);
    assert.throws(() => policyDigest(TPM_ALG.SHA256, [{ type: 'PolicyOR', branches: [a, a.subarray(1)] }]), /31 bytes/);
  });

  it('PolicySecret with a policyRef, PolicyCommandCode and PolicyPCR follow Part 3 exactly', () => {
    const name = fromHex('000b' + 'ab'.repeat(32));
    const ref = Uint8Array.of(9, 9);
    const zero = new Uint8Array(32);
    assert.deepEqual(policyDigest(TPM_ALG.SHA256, [{ type: 'PolicySecret', authObjectName: name, policyRef: ref }]), sha256(sha256(zero, u32be(0x151), name), ref));
    assert.deepEqual(policyDigest(TPM_ALG.SHA256, [{ type: 'PolicyCommandCode', code: TPM_CC.Unseal }]), sha256(zero, u32be(0x16c), u32be(0x15e)));
    const sel = pcrSelection(TPM_ALG.SHA1, [23]);
    const pcrDigest = sha256(Uint8Array.of(1));
    assert.deepEqual(policyDigest(TPM_ALG.SHA256, [{ type: 'PolicyPCR', selection: sel, pcrDigest }]), sha256(zero, u32be(0x17f), marshal(TPML_PCR_SELECTION, sel), pcrDigest));
  });

  it('works with SHA-1 and SHA-384 sessions; digest is a copy; reset restarts', () => {
    assert.equal(policyDigest(TPM_ALG.SHA1, [{ type: 'PolicyAuthValue' }]).length, 20);
    assert.equal(policyDigest(TPM_ALG.SHA384, [{ type: 'PolicyAuthValue' }]).length, 48);
    const c = new PolicyCalculator(TPM_ALG.SHA256);
    assert.deepEqual(c.digest, new Uint8Array(32));
    const d = c.update({ type: 'PolicyAuthValue' }).digest;
    d.fill(0);
    assert.notDeepEqual(c.digest, d);
    assert.deepEqual(c.reset().digest, new Uint8Array(32));
    assert.throws(() => new PolicyCalculator(TPM_ALG.NULL), /unknown hash|not supported/);
    assert.throws(() => c.update({ type: 'PolicyPCR', selection: pcrSelection(TPM_ALG.SHA256, [0]), pcrDigest: new Uint8Array(20) }), /20 bytes/);
    assert.throws(() => c.update({ type: 'PolicySecret', authObjectName: new Uint8Array(0) }), PolicyError);
    assert.throws(() => c.update({ type: 'PolicyBogus' } as unknown as PolicyStep), /unknown policy step/);
  });
});

describe('policy: PCR selection helpers', () => {
  it('builds TPML_PCR_SELECTION with a 3-byte minimum bitmap', () => {
    assert.equal(toHex(marshal(TPML_PCR_SELECTION, pcrSelection(TPM_ALG.SHA256, [0, 7, 16]))), '00000001' + '000b' + '03' + '810001');
    assert.equal(toHex(marshal(TPML_PCR_SELECTION, pcrSelection(TPM_ALG.SHA1, []))), '00000001' + '0004' + '03' + '000000');
    assert.equal(toHex(marshal(TPML_PCR_SELECTION, pcrSelection(TPM_ALG.SHA256, [23, 24]))), '00000001' + '000b' + '04' + '00008001');
    assert.throws(() => pcrSelection(TPM_ALG.SHA256, [-1]), PolicyError);
    assert.throws(() => pcrSelection(TPM_ALG.SHA256, [1.5]), PolicyError);
  });

  it('hashes PCR values in ascending index order whatever the map order', () => {
    const a = new Uint8Array(32).fill(1);
    const b = new Uint8Array(32).fill(2);
    const expected = sha256(a, b);
    assert.deepEqual(pcrValuesDigest(TPM_ALG.SHA256, new Map([[10, b], [2, a]])), expected);
    assert.deepEqual(pcrValuesDigest(TPM_ALG.SHA256, new Map([[2, a], [10, b]])), expected);
  });

  it('pcrPolicyStep checks value sizes and needs at least one PCR', () => {
    assert.throws(() => pcrPolicyStep({ hashAlg: TPM_ALG.SHA256, values: new Map([[0, new Uint8Array(20)]]) }), /20 bytes/);
    assert.throws(() => pcrPolicyStep({ hashAlg: TPM_ALG.SHA256, values: new Map() }), /at least one/);
    const s = pcrPolicyStep({ hashAlg: TPM_ALG.SHA1, values: new Map([[0, new Uint8Array(20)]]) }, TPM_ALG.SHA384);
    assert.equal(s.pcrDigest.length, 48);
    assert.equal(s.selection[0]!.hash, TPM_ALG.SHA1);
  });
});
