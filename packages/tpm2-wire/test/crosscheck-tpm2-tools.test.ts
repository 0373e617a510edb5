// Cross-checks of the TPM flows of issue 3 against tpm2-tools 5.4, an independent implementation:
// - `tpm2_makecredential -T none` output is accepted by our ActivateCredential (RSA and P-256 EK);
// - a quote made by our library passes `tpm2_checkquote` (RSA and ECC AKs), a flipped byte does not;
// - a key wrapped offline by `tpm2_duplicate -T none` imports through our library and signs;
// - the reverse: our `duplicateObject` output imports with `tpm2_import`, and we load and use it.
// swtpm serves one client at a time: our Tpm is closed before a tool talks to the TPM.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Reader,
  TPM2B_ENCRYPTED_SECRET,
  TPM2B_ID_OBJECT,
  TPM2B_PRIVATE,
  TPM2B_PUBLIC,
  TPMA_OBJECT,
  TPM_ALG,
  TPM_RH,
  TPMT_SIGNATURE,
  akTemplate,
  duplicateObject,
  keyObjectToPublic,
  marshal,
  openTpm,
  publicToPem,
  sensitiveFromPrivateKey,
  signatureToDer,
  toHex,
  unmarshal,
  type TPMT_PUBLIC,
  type Tpm,
} from '../src/index.js';
import { EK_P256_HANDLE, EK_RSA_HANDLE, SRK_HANDLE, withSwtpm, type SwtpmInstance } from './fixtures/swtpm.js';

/** Runs an offline tpm2-tools program (`-T none` is part of `args` where the tool needs it). */
function tool(file: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.TPM2TOOLS_TCTI;
    execFile(file, args, { env, timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) reject(Object.assign(new Error(`${file} ${args.join(' ')} failed: ${error.message}\n${stderr}`), { stderr }));
      else resolve({ stdout, stderr });
    });
  });
}

/** tpm2-tools' credential file (tpm2_makecredential -o): magic 0xBADCC0DE, version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET. */
function parseCredentialFile(bytes: Uint8Array): { credentialBlob: Uint8Array; encryptedSecret: Uint8Array } {
  const r = new Reader(bytes);
  assert.equal(r.u32('magic'), 0xbadcc0de, 'tpm2-tools credential file magic');
  assert.equal(r.u32('version'), 1);
  const credentialBlob = TPM2B_ID_OBJECT.decode(r);
  const encryptedSecret = TPM2B_ENCRYPTED_SECRET.decode(r);
  r.done('credential file');
  return { credentialBlob, encryptedSecret };
}

function signatureVerifies(publicKey: KeyObject, message: Uint8Array, sig: TPMT_SIGNATURE): boolean {
  if (sig.sigAlg === TPM_ALG.RSASSA) return nodeVerify('sha256', message, publicKey, sig.sig);
  if (sig.sigAlg === TPM_ALG.ECDSA) return nodeVerify('sha256', message, { key: publicKey, dsaEncoding: 'der' }, signatureToDer(sig));
  throw new Error(`unexpected signature algorithm 0x${sig.sigAlg.toString(16)}`);
}

const sha256 = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());

describe('cross-checks with tpm2-tools 5.4 @swtpm', function () {
  this.timeout(120_000);
  const swtpm = withSwtpm();
  describe('one swtpm', crosscheckTests(swtpm));
});

function crosscheckTests(swtpm: () => SwtpmInstance) {
  return function () {
    let dir: string;
    let tpm: Tpm | undefined;
    const ekPub = new Map<number, TPMT_PUBLIC>();

    /** Our client, opened on demand; `release()` closes it so that a tpm2-tools program can connect. */
    async function client(): Promise<Tpm> {
      tpm ??= await openTpm(swtpm().address);
      return tpm;
    }
    async function release(): Promise<void> {
      const t = tpm;
      tpm = undefined;
      await t?.close();
    }

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'tpmds-crosscheck-'));
      const t = await client();
      for (const h of [EK_RSA_HANDLE, EK_P256_HANDLE]) ekPub.set(h, (await t.readPublic(h)).public);
    });
    afterEach(async () => {
      const t = await client();
      assert.deepEqual(await t.getLoadedHandles(), [], 'no objects or sessions left loaded');
    });
    after(async () => {
      await release();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    for (const [label, ek] of [['RSA-2048', EK_RSA_HANDLE], ['ECC P-256', EK_P256_HANDLE]] as const) {
      it(`tpm2_makecredential -T none (${label} EK) -> our ActivateCredential returns the secret`, async () => {
        const t = await client();
        const ak = await t.create(SRK_HANDLE, akTemplate('ecc'));
        const akh = await t.load(SRK_HANDLE, ak.private, ak.public);
        try {
          const secret = randomBytes(32);
          const f = (n: string) => join(dir, `mc-${ek.toString(16)}-${n}`);
          await writeFile(f('ek.pub'), marshal(TPM2B_PUBLIC, ekPub.get(ek)!));
          await writeFile(f('secret'), secret);
          // tpm2-tools 5.4 takes the object name (-n) as a hex string, not a file.
          await tool('tpm2_makecredential', ['-T', 'none', '-u', f('ek.pub'), '-s', f('secret'), '-n', toHex(akh.name), '-o', f('cred')]);
          const cred = parseCredentialFile(new Uint8Array(await readFile(f('cred'))));

          const policy = await t.startAuthSession({ type: 'policy' });
          try {
            await t.policySecret(TPM_RH.ENDORSEMENT, policy);
            const got = await t.activateCredential(akh.handle, ek, cred.credentialBlob, cred.encryptedSecret, { sessions: [undefined, policy] });
            assert.deepEqual(got, new Uint8Array(secret));
          } finally {
            await t.flushContext(policy.handle);
          }
        } finally {
          await t.flushContext(akh.handle);
        }
      });
    }

    for (const kind of ['rsa', 'ecc'] as const) {
      it(`a quote by our library (${kind.toUpperCase()} AK) passes tpm2_checkquote; a flipped byte does not`, async () => {
        const t = await client();
        const ak = await t.create(SRK_HANDLE, akTemplate(kind));
        const akh = await t.load(SRK_HANDLE, ak.private, ak.public);
        // Seven PCRs: tpm2_checkquote 5.4 reading a values-only PCR file (-f with -l) drops the 8th
        // digest of a bank (its TPML_DIGEST rollover is off by one), so 8 or more never verify.
        const indices = [0, 1, 2, 3, 7, 16, 23];
        const nonce = randomBytes(20);
        let q;
        let values;
        try {
          await t.pcrExtend(23, { hashAlg: TPM_ALG.SHA256, digest: randomBytes(32) });
          values = await t.readPcrs(TPM_ALG.SHA256, indices);
          q = await t.quote(akh.handle, nonce, [{ hash: TPM_ALG.SHA256, pcrSelect: Uint8Array.of(0x8f, 0x00, 0x81) }]);
        } finally {
          await t.flushContext(akh.handle);
        }
        const f = (n: string) => join(dir, `q-${kind}-${n}`);
        await writeFile(f('ak.pem'), publicToPem(ak.public));
        await writeFile(f('msg'), q.attestBytes);
        await writeFile(f('sig'), marshal(TPMT_SIGNATURE, q.signature));
        // PCR values without selection information (tpm2_pcrread -o form), interpreted by -l.
        await writeFile(f('pcrs'), Buffer.concat(indices.map((i) => values.get(i)!)));
        const args = ['-u', f('ak.pem'), '-m', f('msg'), '-s', f('sig'), '-f', f('pcrs'), '-l', `sha256:${indices.join(',')}`, '-g', 'sha256', '-q', toHex(nonce)];
        const ok = await tool('tpm2_checkquote', args);
        assert.match(ok.stdout, /pcrs:/, 'tpm2_checkquote printed the verified PCRs');

        await writeFile(f('msg-bad'), Buffer.from(q.attestBytes.map((b, i) => (i === q.attestBytes.length - 3 ? b ^ 1 : b))));
        await assert.rejects(tool('tpm2_checkquote', args.map((a) => (a === f('msg') ? f('msg-bad') : a))), 'a flipped byte in the message is rejected');
        await assert.rejects(tool('tpm2_checkquote', args.map((a) => (a === toHex(nonce) ? toHex(randomBytes(20)) : a))), 'another nonce is rejected');
        const otherPcrs = Buffer.concat(indices.map((i) => values.get(i)!));
        otherPcrs[otherPcrs.length - 1]! ^= 1;
        await writeFile(f('pcrs-bad'), otherPcrs);
        await assert.rejects(tool('tpm2_checkquote', args.map((a) => (a === f('pcrs') ? f('pcrs-bad') : a))), 'other PCR values are rejected');
      });
    }

    for (const [label, parent] of [['RSA SRK', SRK_HANDLE], ['P-256 EK', EK_P256_HANDLE]] as const) {
      it(`tpm2_duplicate -T none wraps a P-256 key for the ${label}; it imports through our library and signs`, async () => {
        const t = await client();
        const parentPub = parent === SRK_HANDLE ? (await t.readPublic(SRK_HANDLE)).public : ekPub.get(parent)!;
        const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
        const f = (n: string) => join(dir, `dup-${parent.toString(16)}-${n}`);
        await writeFile(f('parent.pub'), marshal(TPM2B_PUBLIC, parentPub));
        await writeFile(f('key.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
        await tool('tpm2_duplicate', ['-T', 'none', '-U', f('parent.pub'), '-k', f('key.pem'), '-G', 'ecc', '-u', f('dup.pub'), '-r', f('dup.priv'), '-s', f('dup.seed')]);
        const pub = unmarshal(TPM2B_PUBLIC, new Uint8Array(await readFile(f('dup.pub'))));
        const duplicate = unmarshal(TPM2B_PRIVATE, new Uint8Array(await readFile(f('dup.priv'))));
        const seed = unmarshal(TPM2B_ENCRYPTED_SECRET, new Uint8Array(await readFile(f('dup.seed'))));
        assert.equal(pub.type, TPM_ALG.ECC);
        assert.ok(pub.objectAttributes & TPMA_OBJECT.sign, 'tpm2_duplicate made a signing key');

        const policy = parent === SRK_HANDLE ? undefined : await t.startAuthSession({ type: 'policy' });
        try {
          if (policy) await t.policySecret(TPM_RH.ENDORSEMENT, policy);
          const outPrivate = await t.import(parent, pub, duplicate, seed, { sessions: [policy] });
          if (policy) await t.policySecret(TPM_RH.ENDORSEMENT, policy);
          const h = await t.load(parent, outPrivate, pub, { sessions: [policy] });
          try {
            const message = randomBytes(40);
            const sig = await t.sign(h.handle, sha256(message), { scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 } });
            assert.ok(signatureVerifies(publicKey, message, sig), 'the imported key is the Node key');
          } finally {
            await t.flushContext(h.handle);
          }
        } finally {
          if (policy) await t.flushContext(policy.handle);
        }
      });
    }

    it('our duplicateObject output imports with tpm2_import under the SRK; we load the result and sign', async () => {
      let t = await client();
      const srkPub = (await t.readPublic(SRK_HANDLE)).public;
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const template = keyObjectToPublic(privateKey);
      const publicArea: TPMT_PUBLIC = { ...template, objectAttributes: TPMA_OBJECT.sign | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.noDA };
      const dup = duplicateObject(srkPub, publicArea, sensitiveFromPrivateKey(privateKey));
      const f = (n: string) => join(dir, `imp-${n}`);
      await writeFile(f('dup.pub'), marshal(TPM2B_PUBLIC, publicArea));
      await writeFile(f('dup.priv'), marshal(TPM2B_PRIVATE, dup.duplicate));
      await writeFile(f('dup.seed'), marshal(TPM2B_ENCRYPTED_SECRET, dup.encryptedSeed));

      await release();
      await swtpm().tpm2('tpm2_import', ['-C', `0x${SRK_HANDLE.toString(16)}`, '-u', f('dup.pub'), '-i', f('dup.priv'), '-s', f('dup.seed'), '-r', f('key.priv')]);
      const outPrivate = unmarshal(TPM2B_PRIVATE, new Uint8Array(await readFile(f('key.priv'))));

      t = await client();
      const h = await t.load(SRK_HANDLE, outPrivate, publicArea);
      try {
        const message = randomBytes(40);
        const sig = await t.sign(h.handle, sha256(message));
        assert.ok(signatureVerifies(publicKey, message, sig));
      } finally {
        await t.flushContext(h.handle);
      }
    });
  };
}
