/**
 * Every command of issue 2 against swtpm, over both transports: the same suite runs on
 * `swtpm:path=SOCK` (Unix socket) and on `device:/dev/pts/N` (a raw pty in front of swtpm chardev).
 * Results are checked independently: random lengths, PCR values against a software extend, hashes and
 * signatures against Node's crypto, Names against our software computation, EK public keys against
 * the EK certificates in NV (parsed by Node's X509Certificate) and the persistent EKs, and finally
 * names and public areas against tpm2-tools (`tpm2_readpublic`). Everything loaded is flushed: the
 * suite checks after each test that no transient object is left (swtpm has 3 slots).
 */
import assert from 'node:assert/strict';
import { constants, createHash, generateKeyPairSync, sign as nodeSign, verify as nodeVerify, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  openTpm, Tpm, TpmError, TPM_ALG, TPM_CC, TPM_ECC, TPM_HT, TPM_PT, TPM_RC, TPM_RH, TPM_ST, TPMA_NV, TPMA_OBJECT,
  TPM2B_PUBLIC, marshal, rawBytes, toHex, fromHex, concatBytes, u32be, objectName, qualifiedName, nvName, hash as swHash,
  ekTemplateRsa2048, ekTemplateEccP256, srkTemplateEccP256, signingKeyTemplate, pcrSelection,
  type TPMT_PUBLIC, type TPMT_SIGNATURE, type TPMS_NV_PUBLIC,
} from '../src/index.js';
import { startSwtpm, type SwtpmInstance } from './fixtures/swtpm.js';
import { jwkOf, keyObjectOf, padTo } from './support/keys.js';

const EK_RSA = 0x81010001;
const EK_ECC = 0x81010002;
const SRK = 0x81000001;
const EK_CERT_RSA = 0x01c00002;
const EK_CERT_ECC = 0x01c0000a;
const FREE_PERSISTENT = 0x81000100;
const TEST_NV = 0x01000100;

const sha256 = (...parts: Uint8Array[]) => swHash(TPM_ALG.SHA256, ...parts);
const sha1 = (...parts: Uint8Array[]) => swHash(TPM_ALG.SHA1, ...parts);
const utf8 = (s: string) => new TextEncoder().encode(s);

async function rejectsTpm(p: Promise<unknown>): Promise<TpmError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof TpmError, `expected TpmError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a TpmError');
}

/** A signing key template with scheme NULL, so any compatible scheme can be given to TPM2_Sign. */
function anySchemeSigningTemplate(keyType: 'rsa' | 'ecc'): TPMT_PUBLIC {
  const t = signingKeyTemplate(keyType);
  if (t.type === TPM_ALG.RSA) return { ...t, parameters: { ...t.parameters, scheme: { scheme: TPM_ALG.NULL } } };
  if (t.type === TPM_ALG.ECC) return { ...t, parameters: { ...t.parameters, scheme: { scheme: TPM_ALG.NULL } } };
  throw new Error('unreachable');
}

/** TPMT_PUBLIC of a software key, for LoadExternal (no fixedTPM/fixedParent: not a TPM key). */
function externalPublic(key: KeyObject): TPMT_PUBLIC {
  const j = key.export({ format: 'jwk' });
  const b = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));
  const common = { nameAlg: TPM_ALG.SHA256, objectAttributes: TPMA_OBJECT.sign | TPMA_OBJECT.userWithAuth, authPolicy: new Uint8Array(0) };
  if (j.kty === 'RSA') {
    return { ...common, type: TPM_ALG.RSA, parameters: { symmetric: { algorithm: TPM_ALG.NULL }, scheme: { scheme: TPM_ALG.NULL }, keyBits: 2048, exponent: 0 }, unique: b(j.n!) };
  }
  return {
    ...common, type: TPM_ALG.ECC, unique: { x: b(j.x!), y: b(j.y!) },
    parameters: { symmetric: { algorithm: TPM_ALG.NULL }, scheme: { scheme: TPM_ALG.NULL }, curveID: TPM_ECC.NIST_P256, kdf: { scheme: TPM_ALG.NULL } },
  };
}

/** Verify a TPMT_SIGNATURE over `message` with Node's crypto (independently of the library's crypto layer). */
function verifyInSoftware(pub: TPMT_PUBLIC, message: Uint8Array, sig: TPMT_SIGNATURE): boolean {
  const key = keyObjectOf(pub);
  switch (sig.sigAlg) {
    case TPM_ALG.RSASSA:
      return nodeVerify('sha256', message, key, sig.sig);
    case TPM_ALG.RSAPSS:
      return nodeVerify('sha256', message, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, sig.sig);
    case TPM_ALG.ECDSA:
      return nodeVerify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, concatBytes(padTo(sig.signatureR, 32), padTo(sig.signatureS, 32)));
    default:
      throw new Error(`unexpected signature algorithm ${sig.sigAlg}`);
  }
}

/** The public key of a certificate vs a TPMT_PUBLIC, compared as JWK numbers. */
function assertCertMatches(der: Uint8Array, pub: TPMT_PUBLIC): X509Certificate {
  const cert = new X509Certificate(Buffer.from(der));
  const fromCert = cert.publicKey.export({ format: 'jwk' });
  const fromTpm = jwkOf(pub);
  if (fromTpm.kty === 'RSA') {
    assert.equal(fromCert.kty, 'RSA');
    assert.equal(fromCert.n, fromTpm.n, 'RSA modulus');
    assert.equal(fromCert.e, fromTpm.e, 'RSA exponent');
  } else {
    assert.equal(fromCert.crv, fromTpm.crv);
    assert.equal(fromCert.x, fromTpm.x, 'EC x');
    assert.equal(fromCert.y, fromTpm.y, 'EC y');
  }
  return cert;
}

function commandSuite(transport: 'unix' | 'device'): void {
  describe(`commands over ${transport === 'unix' ? 'swtpm:path= (Unix socket)' : 'device: (pty in front of swtpm chardev)'} @swtpm`, function () {
    this.timeout(60_000);
    let s: SwtpmInstance;
    let tpm: Tpm;
    const sent = new Map<number, number>();
    const count = (cc: number) => sent.get(cc) ?? 0;
    const open = async () => {
      tpm = await openTpm(s.address, { onCommand: (cc) => sent.set(cc, count(cc) + 1) });
    };
    /** What we read through our stack, for the comparison with tpm2-tools at the end. */
    const ours = new Map<number, { name: Uint8Array; qualifiedName: Uint8Array; tpm2bPublic: Uint8Array }>();
    let srkEcc: { handle: number; name: Uint8Array; public: TPMT_PUBLIC } | undefined;

    before(async function () {
      this.timeout(120_000);
      s = await startSwtpm({ transport });
      assert.ok(s.address.startsWith(transport === 'unix' ? 'swtpm:path=' : 'device:/dev/pts/'), s.address);
      await open();
    });
    after(async function () {
      this.timeout(60_000);
      if (srkEcc) await tpm?.flushContext(srkEcc.handle).catch(() => undefined);
      await tpm?.close();
      await s?.stop();
    });
    afterEach(async function () {
      if (!tpm || this.currentTest?.title.includes('tpm2-tools')) return;
      const transients = await tpm.getHandles(0x80000000);
      const expected = srkEcc ? [srkEcc.handle] : [];
      assert.deepEqual(transients, expected, 'every transient object the test loaded was flushed');
    });

    /** A parent for Create/Load: an ECC P-256 storage primary under the owner hierarchy (fast to make). */
    async function parent(): Promise<{ handle: number; name: Uint8Array; public: TPMT_PUBLIC }> {
      if (!srkEcc) {
        const p = await tpm.createPrimary(TPM_RH.OWNER, srkTemplateEccP256());
        srkEcc = { handle: p.handle, name: p.name, public: p.public };
      }
      return srkEcc;
    }

    // ---- start-up, self test, random ----

    it('Startup on a started TPM returns TPM_RC_INITIALIZE', async () => {
      const e = await rejectsTpm(tpm.startup());
      assert.equal(e.rc, TPM_RC.INITIALIZE);
      assert.equal(e.command, TPM_CC.Startup);
      assert.match(e.message, /^TPM2_Startup failed with 0x100: TPM_RC_INITIALIZE/);
    });

    it('SelfTest (full and incremental)', async () => {
      await tpm.selfTest(true);
      await tpm.selfTest(false);
    });

    it('GetRandom returns exactly n bytes, looping past 64', async () => {
      assert.equal((await tpm.getRandom(0)).length, 0);
      for (const n of [1, 32, 48, 64, 65, 200]) assert.equal((await tpm.getRandom(n)).length, n);
      const before = count(TPM_CC.GetRandom);
      const big = await tpm.getRandom(1000);
      assert.equal(big.length, 1000);
      assert.ok(count(TPM_CC.GetRandom) - before >= 16, 'at most 64 bytes per TPM2_GetRandom');
      assert.ok(new Set(big).size > 200, 'looks random');
      assert.notDeepEqual(await tpm.getRandom(32), await tpm.getRandom(32));
      await assert.rejects(tpm.getRandom(-1), RangeError);
    });

    it('StirRandom', async () => {
      await tpm.stirRandom(utf8('some entropy from the caller'));
      await tpm.stirRandom(new Uint8Array(128).fill(7));
    });

    // ---- capabilities ----

    it('GetCapability: algorithms, commands, curves', async () => {
      const algs = new Set((await tpm.getAlgorithms()).map((a) => a.alg));
      for (const a of [TPM_ALG.RSA, TPM_ALG.ECC, TPM_ALG.SHA1, TPM_ALG.SHA256, TPM_ALG.SHA384, TPM_ALG.AES, TPM_ALG.CFB, TPM_ALG.RSASSA, TPM_ALG.RSAPSS, TPM_ALG.ECDSA, TPM_ALG.KEYEDHASH, TPM_ALG.HMAC]) {
        assert.ok(algs.has(a), `algorithm 0x${a.toString(16)}`);
      }
      const commands = new Set(await tpm.getCommands());
      assert.ok(commands.size > 80, `${commands.size} commands`);
      for (const cc of [TPM_CC.Startup, TPM_CC.Shutdown, TPM_CC.SelfTest, TPM_CC.GetRandom, TPM_CC.StirRandom, TPM_CC.GetCapability, TPM_CC.PCR_Read,
        TPM_CC.PCR_Extend, TPM_CC.ReadPublic, TPM_CC.CreatePrimary, TPM_CC.Create, TPM_CC.Load, TPM_CC.LoadExternal, TPM_CC.FlushContext,
        TPM_CC.ContextSave, TPM_CC.ContextLoad, TPM_CC.EvictControl, TPM_CC.NV_ReadPublic, TPM_CC.NV_Read, TPM_CC.Hash, TPM_CC.Sign,
        TPM_CC.VerifySignature, TPM_CC.DictionaryAttackLockReset]) {
        assert.ok(commands.has(cc), `command 0x${cc.toString(16)}`);
      }
      const curves = await tpm.getEccCurves();
      assert.ok(curves.includes(TPM_ECC.NIST_P256) && curves.includes(TPM_ECC.NIST_P384), String(curves));
    });

    it('GetCapability: handles (persistent EKs and SRK, EK certificate indices, no transients)', async () => {
      const persistent = await tpm.getHandles(0x81000000);
      for (const h of [EK_RSA, EK_ECC, SRK]) assert.ok(persistent.includes(h), `0x${h.toString(16)} in ${persistent.map((x) => x.toString(16))}`);
      assert.ok(persistent.every((h) => h >>> 24 === TPM_HT.PERSISTENT));
      const nv = await tpm.getHandles(0x01000000);
      assert.ok(nv.includes(EK_CERT_RSA) && nv.includes(EK_CERT_ECC), nv.map((x) => x.toString(16)).join(','));
      assert.deepEqual(await tpm.getHandles(0x80000000), []);
    });

    it('GetCapability: properties', async () => {
      const props = await tpm.getProperties();
      assert.equal(props.get(TPM_PT.FAMILY_INDICATOR), 0x322e3000, '"2.0"');
      assert.equal(props.get(TPM_PT.PCR_COUNT), 24);
      assert.ok(props.has(TPM_PT.MANUFACTURER));
      assert.ok(props.has(TPM_PT.NV_BUFFER_MAX));
      assert.ok(props.has(TPM_PT.HR_TRANSIENT_AVAIL), 'variable (0x2xx) properties come too');
      assert.equal(await tpm.getProperty(TPM_PT.PCR_COUNT), 24);
      assert.equal(await tpm.getProperty(TPM_PT.NV_BUFFER_MAX), props.get(TPM_PT.NV_BUFFER_MAX));
    });

    it('GetCapability: PCR banks (sha1 and sha256 active, as provisioned)', async () => {
      const banks = await tpm.getPcrBanks();
      const sha256Bank = banks.find((b) => b.hash === TPM_ALG.SHA256);
      assert.equal(toHex(sha256Bank!.pcrSelect), 'ffffff');
      assert.deepEqual((await tpm.getActivePcrBanks()).sort((a, b) => a - b), [TPM_ALG.SHA1, TPM_ALG.SHA256]);
    });

    // ---- PCRs ----

    it('PCR_Read, PCR_Extend (equals a software extend in each bank), PCR_Reset', async () => {
      const pcr = 16;
      const before256 = (await tpm.readPcrs(TPM_ALG.SHA256, [pcr])).get(pcr)!;
      const before1 = (await tpm.readPcrs(TPM_ALG.SHA1, [pcr])).get(pcr)!;
      const d256 = sha256(utf8('event A'));
      const d1 = sha1(utf8('event A'));
      await tpm.pcrExtend(pcr, [{ hashAlg: TPM_ALG.SHA1, digest: d1 }, { hashAlg: TPM_ALG.SHA256, digest: d256 }]);
      const after256 = (await tpm.readPcrs(TPM_ALG.SHA256, [pcr])).get(pcr)!;
      assert.equal(toHex(after256), toHex(sha256(before256, d256)));
      assert.equal(toHex((await tpm.readPcrs(TPM_ALG.SHA1, [pcr])).get(pcr)!), toHex(sha1(before1, d1)));

      const raw = await tpm.pcrRead(pcrSelection(TPM_ALG.SHA256, [0, 16, 23]));
      assert.deepEqual(raw.pcrSelectionOut, [{ hash: TPM_ALG.SHA256, pcrSelect: fromHex('010081') }]);
      assert.equal(raw.pcrValues.length, 3);
      assert.equal(toHex(raw.pcrValues[1]!), toHex(after256));

      const all = await tpm.readPcrs(TPM_ALG.SHA256);
      assert.equal(all.size, 24, 'readPcrs loops until all 24 are read (the TPM returns at most 8 per call)');

      await tpm.pcrReset(pcr);
      assert.equal(toHex((await tpm.readPcrs(TPM_ALG.SHA256, [pcr])).get(pcr)!), '00'.repeat(32));
    });

    // ---- objects: ReadPublic, Names ----

    it('ReadPublic: Names and qualified Names computed in software equal the TPM\'s', async () => {
      for (const [handle, hierarchy] of [[EK_RSA, TPM_RH.ENDORSEMENT], [EK_ECC, TPM_RH.ENDORSEMENT], [SRK, TPM_RH.OWNER]] as const) {
        const r = await tpm.readPublic(handle);
        assert.equal(toHex(objectName(r.public)), toHex(r.name));
        assert.equal(toHex(qualifiedName(r.public.nameAlg, u32be(hierarchy), r.name)), toHex(r.qualifiedName), 'QN = H(hierarchy handle || Name)');
        const tpm2b = marshal(TPM2B_PUBLIC, r.public);
        assert.deepEqual(tpm2b.subarray(2), rawBytes(r.public), 'the exact bytes received are kept');
        ours.set(handle, { name: r.name, qualifiedName: r.qualifiedName, tpm2bPublic: tpm2b });
      }
    });

    it('ReadPublic of an absent persistent handle throws TpmError 0x18B naming TPM_RC_HANDLE and handle 1', async () => {
      const e = await rejectsTpm(tpm.readPublic(0x81000bad));
      assert.equal(e.rc, 0x18b);
      assert.equal(e.base, TPM_RC.HANDLE);
      assert.equal(e.command, TPM_CC.ReadPublic);
      assert.match(e.message, /TPM_RC_HANDLE/);
      assert.match(e.message, /handle 1/);
    });

    // ---- EKs: CreatePrimary from the TCG templates vs the EK certificates and the persistent EKs ----

    for (const keyType of ['rsa', 'ecc'] as const) {
      it(`CreatePrimary ${keyType.toUpperCase()} EK from the TCG template equals the EK certificate's key and the persistent EK`, async () => {
        const template = keyType === 'rsa' ? ekTemplateRsa2048() : ekTemplateEccP256();
        const ek = await tpm.createPrimary(TPM_RH.ENDORSEMENT, template);
        try {
          assert.equal(ek.handle >>> 24, TPM_HT.TRANSIENT);
          assert.equal(toHex(objectName(ek.public)), toHex(ek.name), 'Name computed in software = the TPM\'s');
          assert.equal(ek.public.objectAttributes, template.objectAttributes);
          assert.equal(toHex(ek.creationHash), toHex(sha256(rawBytes(ek.creationData)!)), 'creationHash = H(TPMS_CREATION_DATA as received)');

          const der = await tpm.readEkCertificate(keyType);
          assert.ok(der, 'the EK certificate is in NV');
          const cert = assertCertMatches(der, ek.public);
          const onDisk = readFileSync(keyType === 'rsa' ? s.state.ekCertRsaDer : s.state.ekCertP256Der);
          assert.equal(toHex(der), onDisk.toString('hex'), 'byte-identical to what was written to NV (padding trimmed)');
          const ca = new X509Certificate(readFileSync(s.caIntermediatePem));
          assert.ok(cert.verify(ca.publicKey), 'issued by the local CA');

          const persistent = await tpm.readPublic(keyType === 'rsa' ? EK_RSA : EK_ECC);
          assert.deepEqual(jwkOf(persistent.public), jwkOf(ek.public));
          assert.equal(toHex(persistent.name), toHex(ek.name), 'same template, same seed: same Name');
        } finally {
          await tpm.flushContext(ek.handle);
        }
      });
    }

    // ---- Create, Load, Sign (verified in software), VerifySignature ----

    for (const keyType of ['ecc', 'rsa'] as const) {
      it(`Create + Load a ${keyType.toUpperCase()} signing key; Sign with explicit schemes, verified with Node crypto; VerifySignature`, async function () {
        this.timeout(60_000); // RSA key generation on swtpm: 0.3-1.3 s
        const p = await parent();
        const created = await tpm.create(p.handle, anySchemeSigningTemplate(keyType));
        assert.ok(created.private.length > 0);
        assert.equal(toHex(created.creationData.parentName), toHex(p.name));
        assert.equal(toHex(created.creationHash), toHex(sha256(rawBytes(created.creationData)!)));
        const key = await tpm.load(p.handle, created.private, created.public);
        try {
          assert.equal(toHex(key.name), toHex(objectName(created.public)), 'Load returns the Name we compute');
          const message = utf8(`message signed by the ${keyType} key`);
          const digest = sha256(message);
          const schemes = keyType === 'rsa' ? [TPM_ALG.RSASSA, TPM_ALG.RSAPSS] : [TPM_ALG.ECDSA];
          for (const scheme of schemes) {
            const sig = await tpm.sign(key.handle, digest, { scheme: { scheme, hashAlg: TPM_ALG.SHA256 } });
            assert.equal(sig.sigAlg, scheme);
            assert.ok(verifyInSoftware(created.public, message, sig), `${scheme.toString(16)} signature verifies in software`);
            assert.ok(!verifyInSoftware(created.public, utf8('another message'), sig));
            const ticket = await tpm.verifySignature(key.handle, digest, sig);
            assert.equal(ticket.tag, TPM_ST.VERIFIED);
            const bad = await rejectsTpm(tpm.verifySignature(key.handle, sha256(utf8('tampered')), sig));
            assert.equal(bad.base, TPM_RC.SIGNATURE);
          }
          const wrong = await rejectsTpm(tpm.sign(key.handle, digest, { scheme: { scheme: keyType === 'rsa' ? TPM_ALG.ECDSA : TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 } }));
          assert.equal(wrong.command, TPM_CC.Sign);
        } finally {
          await tpm.flushContext(key.handle);
        }
      });
    }

    it('LoadExternal of software keys (RSA, ECC); VerifySignature of software signatures', async () => {
      for (const type of ['rsa', 'ec'] as const) {
        const { publicKey, privateKey } = type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
        const pub = externalPublic(publicKey);
        const loaded = await tpm.loadExternal(pub);
        try {
          assert.equal(toHex(loaded.name), toHex(objectName(pub)), 'LoadExternal returns the Name we compute');
          const message = utf8(`software-signed ${type}`);
          const digest = sha256(message);
          const sig: TPMT_SIGNATURE = type === 'rsa'
            ? { sigAlg: TPM_ALG.RSASSA, hash: TPM_ALG.SHA256, sig: new Uint8Array(nodeSign('sha256', message, privateKey)) }
            : (() => {
              const raw = new Uint8Array(nodeSign('sha256', message, { key: privateKey, dsaEncoding: 'ieee-p1363' }));
              return { sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, signatureR: raw.slice(0, 32), signatureS: raw.slice(32) };
            })();
          const ticket = await tpm.verifySignature(loaded.handle, digest, sig);
          assert.equal(ticket.tag, TPM_ST.VERIFIED);
          assert.equal(ticket.hierarchy, TPM_RH.NULL);
          const e = await rejectsTpm(tpm.verifySignature(loaded.handle, sha256(utf8('other')), sig));
          assert.equal(e.base, TPM_RC.SIGNATURE);
        } finally {
          await tpm.flushContext(loaded.handle);
        }
      }
    });

    // ---- contexts, persistence ----

    it('ContextSave / FlushContext / ContextLoad keeps the object usable', async () => {
      const p = await parent();
      const created = await tpm.create(p.handle, signingKeyTemplate('ecc'));
      const key = await tpm.load(p.handle, created.private, created.public);
      const ctx = await tpm.contextSave(key.handle);
      assert.equal(ctx.savedHandle, 0x80000000, 'Part 1, 30.3: savedHandle of a (non-stClear) object');
      assert.equal(ctx.hierarchy, TPM_RH.OWNER);
      assert.ok(ctx.contextBlob.length > 0);
      await tpm.flushContext(key.handle);
      const gone = await rejectsTpm(tpm.readPublic(key.handle));
      assert.equal(gone.rc, TPM_RC.REFERENCE_H0);
      const again = await tpm.contextLoad(ctx);
      try {
        assert.equal(again >>> 24, TPM_HT.TRANSIENT);
        assert.equal(toHex((await tpm.readPublic(again)).name), toHex(key.name));
        const digest = sha256(utf8('after context load'));
        const sig = await tpm.sign(again, digest);
        assert.ok(verifyInSoftware(created.public, utf8('after context load'), sig));
      } finally {
        await tpm.flushContext(again);
      }
    });

    it('EvictControl: persist a primary at 0x81000100, use it, evict it', async () => {
      const p = await parent();
      await tpm.evictControl(TPM_RH.OWNER, p.handle, FREE_PERSISTENT);
      try {
        assert.ok((await tpm.getHandles(0x81000000)).includes(FREE_PERSISTENT));
        const r = await tpm.readPublic(FREE_PERSISTENT);
        assert.equal(toHex(r.name), toHex(p.name));
        const created = await tpm.create(FREE_PERSISTENT, signingKeyTemplate('ecc'));
        const key = await tpm.load(FREE_PERSISTENT, created.private, created.public);
        await tpm.flushContext(key.handle);
      } finally {
        await tpm.evictControl(TPM_RH.OWNER, FREE_PERSISTENT, FREE_PERSISTENT);
      }
      assert.ok(!(await tpm.getHandles(0x81000000)).includes(FREE_PERSISTENT));
      const e = await rejectsTpm(tpm.readPublic(FREE_PERSISTENT));
      assert.equal(e.rc, 0x18b);
    });

    // ---- NV ----

    it('NV_ReadPublic: the NV Name computed in software equals the TPM\'s', async () => {
      for (const index of [EK_CERT_RSA, EK_CERT_ECC]) {
        const { nvPublic, nvName: name } = await tpm.nvReadPublic(index);
        assert.equal(nvPublic.nvIndex, index);
        assert.equal(toHex(nvName(nvPublic)), toHex(name));
        assert.ok(nvPublic.attributes & TPMA_NV.WRITTEN);
        assert.ok(nvPublic.dataSize > 300);
      }
    });

    it('NV_Read is chunked by TPM_PT_NV_BUFFER_MAX (a 2 KiB index written with NV_Write in chunks)', async () => {
      const bufferMax = (await tpm.getProperty(TPM_PT.NV_BUFFER_MAX))!;
      const size = Math.min(2048, (await tpm.getProperty(TPM_PT.NV_INDEX_MAX)) ?? 2048);
      assert.ok(size > bufferMax, `index (${size}) larger than NV_BUFFER_MAX (${bufferMax})`);
      const pub: TPMS_NV_PUBLIC = {
        nvIndex: TEST_NV, nameAlg: TPM_ALG.SHA256, authPolicy: new Uint8Array(0), dataSize: size,
        attributes: TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD | TPMA_NV.AUTHWRITE | TPMA_NV.AUTHREAD | TPMA_NV.NO_DA,
      };
      await tpm.nvDefineSpace(TPM_RH.OWNER, pub);
      try {
        const content = new Uint8Array(size).map((_, i) => (i * 7 + 3) & 0xff);
        for (let at = 0; at < size; at += bufferMax) await tpm.nvWrite(TPM_RH.OWNER, TEST_NV, content.subarray(at, at + bufferMax), at);
        const reads = count(TPM_CC.NV_Read);
        const back = await tpm.nvRead(TEST_NV);
        assert.equal(count(TPM_CC.NV_Read) - reads, Math.ceil(size / bufferMax));
        assert.equal(toHex(back), toHex(content));
        const middle = await tpm.nvRead(TEST_NV, { offset: bufferMax - 10, size: 30, authHandle: TPM_RH.OWNER });
        assert.equal(toHex(middle), toHex(content.subarray(bufferMax - 10, bufferMax + 20)));
        const { nvPublic, nvName: name } = await tpm.nvReadPublic(TEST_NV);
        assert.ok(nvPublic.attributes & TPMA_NV.WRITTEN);
        assert.equal(toHex(nvName(nvPublic)), toHex(name));
      } finally {
        await tpm.nvUndefineSpace(TPM_RH.OWNER, TEST_NV);
      }
      assert.ok(!(await tpm.getHandles(0x01000000)).includes(TEST_NV));
    });

    it('NV_Read of the EK certificates (readEkCertificate) gives the DER written at provisioning', async () => {
      for (const [keyType, file] of [['rsa', s.state.ekCertRsaDer], ['ecc', s.state.ekCertP256Der]] as const) {
        const der = await tpm.readEkCertificate(keyType);
        assert.equal(toHex(der!), readFileSync(file).toString('hex'));
      }
    });

    // ---- hashing, DA ----

    it('Hash equals Node\'s hash; the ticket is a HASHCHECK for the owner hierarchy', async () => {
      for (const [alg, name] of [[TPM_ALG.SHA256, 'sha256'], [TPM_ALG.SHA1, 'sha1'], [TPM_ALG.SHA384, 'sha384']] as const) {
        const data = utf8('abc');
        const r = await tpm.hash(data, alg);
        assert.equal(toHex(r.outHash), createHash(name).update(data).digest('hex'));
        assert.equal(r.validation.tag, TPM_ST.HASHCHECK);
        assert.equal(r.validation.hierarchy, TPM_RH.OWNER);
      }
      const max = (await tpm.getProperty(TPM_PT.INPUT_BUFFER)) ?? 1024;
      const big = new Uint8Array(max).fill(0x61);
      assert.equal(toHex((await tpm.hash(big, TPM_ALG.SHA256)).outHash), createHash('sha256').update(big).digest('hex'));
      const nullTicket = await tpm.hash(utf8('abc'), TPM_ALG.SHA256, TPM_RH.NULL);
      assert.equal(nullTicket.validation.hierarchy, TPM_RH.NULL);
      assert.equal(nullTicket.validation.digest.length, 0);
    });

    it('DictionaryAttackLockReset (empty lockout auth)', async () => {
      await tpm.dictionaryAttackLockReset();
      const lockoutCounter = await tpm.getProperty(TPM_PT.LOCKOUT_COUNTER);
      assert.equal(lockoutCounter, 0);
    });

    // ---- cross-check with tpm2-tools, then Shutdown ----

    it('names and public areas agree with tpm2-tools (tpm2_readpublic)', async function () {
      this.timeout(60_000);
      assert.equal(ours.size, 3, 'the ReadPublic test ran first');
      if (srkEcc) {
        await tpm.flushContext(srkEcc.handle);
        srkEcc = undefined;
      }
      await tpm.close(); // swtpm (and the pty) serve one client at a time
      const dir = mkdtempSync(join(tmpdir(), 'tpmds-readpublic-'));
      try {
        for (const [handle, o] of ours) {
          const file = join(dir, `${handle.toString(16)}.pub`);
          const { stdout } = await s.tpm2('tpm2_readpublic', ['-c', `0x${handle.toString(16)}`, '-o', file]);
          const yaml = stdout.toString();
          assert.equal(/^name: ([0-9a-f]+)$/m.exec(yaml)?.[1], toHex(o.name), `Name of 0x${handle.toString(16)}`);
          assert.equal(/^qualified name: ([0-9a-f]+)$/m.exec(yaml)?.[1], toHex(o.qualifiedName), `qualified Name of 0x${handle.toString(16)}`);
          assert.equal(readFileSync(file).toString('hex'), toHex(o.tpm2bPublic), `TPM2B_PUBLIC of 0x${handle.toString(16)}`);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
        await open();
      }
    });

    it('Shutdown(STATE), then the TPM comes back after a power cycle', async () => {
      await tpm.shutdown();
      await s.powerCycle();
      if (transport === 'device') {
        const e = await rejectsTpm(tpm.getRandom(4));
        assert.equal(e.rc, TPM_RC.INITIALIZE);
        await tpm.startup();
      }
      assert.equal((await tpm.getRandom(4)).length, 4);
      const e = await rejectsTpm(tpm.shutdown(0x7777));
      assert.equal(e.command, TPM_CC.Shutdown);
    });
  });
}

commandSuite('unix');
commandSuite('device');
