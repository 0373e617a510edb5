// End to end: every RPC of a real attestor (in-process, real TpmBackend) on swtpm, through the
// grpc-js client, for RSA and ECC; each payload verified with @tpmds/tpm2-wire's software crypto.
// The swtpm state has the SRK and both EKs at their persistent handles (0x81000001, 0x81010001,
// 0x81010002) and EK certificates from the harness CA; e2e-persistence covers created primaries.
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  TPMA_OBJECT,
  TPM_ALG,
  TPMT_PUBLIC,
  buildEventLog,
  certificateMatchesPublic,
  TPMS_ECC_POINT,
  createImportBlob,
  ekTemplateEccP256,
  ekTemplateRsa2048,
  hash,
  keyObjectToPublic,
  marshal,
  objectName,
  pemToDers,
  publicToSpkiDer,
  toHex,
  verifyCertificateChain,
  type ImportBlobOptions,
  type ImportPayload,
  type Tpm,
} from '@tpmds/tpm2-wire';
import { encodeImportBlob, type ImportBlob } from '@tpmds/protocol/formats';
import { readFile } from 'node:fs/promises';
import { EK_P256_HANDLE, EK_RSA_HANDLE, startSwtpm, type SwtpmInstance } from '../../tpm2-wire/test/fixtures/swtpm.js';
import {
  KEY_TYPES,
  assertLogMatchesQuote,
  bootEvents,
  checkAk,
  checkNewKey,
  checkQuote,
  ekPublicFromSpki,
  encryptedCredential,
  expectStatus,
  extendLog,
  importBlobBytes,
  startInProcess,
  tempDir,
  verifiesWith,
  withTpm,
  type CheckedAk,
  type InProcessAttestor,
  type KeyType,
} from './e2e-support.js';

const S = grpc.status;
const BANKS = [TPM_ALG.SHA1, TPM_ALG.SHA256];
const PCR = 23;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
/** Statuses allowed for a payload the TPM rejects as not made for it. */
const REJECTED = [S.INVALID_ARGUMENT, S.FAILED_PRECONDITION];

describe('attestor e2e: every RPC through gRPC on swtpm @swtpm', function () {
  this.timeout(60_000);
  let swtpm: SwtpmInstance;
  let dirs: ReturnType<typeof tempDir>;
  let att: InProcessAttestor;
  let eventLogPath: string;
  const eventLog = buildEventLog(bootEvents(), BANKS);
  /** The EKs read from their persistent handles before the attestor started. */
  const persistentEk = new Map<KeyType, { public: TPMT_PUBLIC; name: Uint8Array }>();
  /** PCR 23 (SHA-256 bank) as extended before the attestor started. */
  let pcr23: Uint8Array;
  /** Every PCR of both banks before the attestor started (nothing extends them afterwards). */
  const pcrValues = new Map<number, Map<number, Uint8Array>>();
  const aks = new Map<KeyType, CheckedAk>();
  /** Secrets that crossed the RPCs: none may appear in the logs. */
  const secrets: Uint8Array[] = [];

  before(async function () {
    this.timeout(120_000);
    dirs = tempDir();
    swtpm = await startSwtpm({ transport: 'unix' });
    eventLogPath = join(dirs.dir, 'binary_bios_measurements');
    writeFileSync(eventLogPath, eventLog);
    await withTpm(swtpm.address, async (tpm) => {
      for (const [kt, h] of [['rsa', EK_RSA_HANDLE], ['ecc', EK_P256_HANDLE]] as const) {
        const rp = await tpm.readPublic(h);
        persistentEk.set(kt, { public: rp.public, name: rp.name });
      }
      await extendLog(tpm, eventLog);
      await tpm.pcrExtend(PCR, BANKS.map((alg) => ({ hashAlg: alg, digest: hash(alg, enc('tpmds e2e pcr 23')) })));
      for (const alg of BANKS) pcrValues.set(alg, await tpm.readPcrs(alg));
      pcr23 = pcrValues.get(TPM_ALG.SHA256)!.get(PCR)!;
    });
    att = await startInProcess({ tpm: swtpm.address, stateDir: join(dirs.dir, 'state'), eventLog: eventLogPath });
  });

  after(async function () {
    this.timeout(30_000);
    await att?.stop();
    await swtpm?.stop();
    dirs?.cleanup();
  });

  /** The EK as GetEKCert returns it, rebuilt into a TPMT_PUBLIC. */
  async function ekOf(kt: KeyType): Promise<TPMT_PUBLIC> {
    return ekPublicFromSpki((await att.client.getEKCert(kt)).ekPub, kt);
  }

  for (const kt of KEY_TYPES) {
    const other: KeyType = kt === 'rsa' ? 'ecc' : 'rsa';
    const uid = `pod-${kt}`;

    describe(`${kt.toUpperCase()}`, () => {
      it(`GetEKCert(${kt}): ekPub is the persistent EK; the certificate matches it and chains to the harness CA`, async () => {
        const res = await att.client.getEKCert(kt);
        const want = persistentEk.get(kt)!;
        assert.equal(toHex(res.ekPub), toHex(publicToSpkiDer(want.public)));
        // Rebuilt with the TCG template, the EK has the persistent key's name: what MakeCredential and
        // import blobs are made for.
        const ek = ekPublicFromSpki(res.ekPub, kt);
        assert.equal(toHex(objectName(ek)), toHex(want.name));
        assert.ok(res.ekCert.length > 0, 'the EK has a certificate');
        assert.ok(certificateMatchesPublic(res.ekCert, ek), 'the certificate is for ekPub');
        const roots = pemToDers(await readFile(swtpm.caRootPem, 'utf8'));
        const intermediates = pemToDers(await readFile(swtpm.caIntermediatePem, 'utf8'));
        const chain = await verifyCertificateChain(res.ekCert, roots, intermediates);
        assert.ok(chain.ok, chain.error);
        const wrongCa = await verifyCertificateChain(res.ekCert, pemToDers(await readFile(swtpm.caRootPem, 'utf8')));
        assert.ok(!wrongCa.ok || intermediates.length === 0, 'the root alone, without the intermediate, does not build the chain');
        if (kt === 'rsa') {
          for (const r of [await att.client.getEKCert(''), await att.client.getEK(''), await att.client.getEK('rsa')]) {
            assert.equal(toHex(r.ekPub), toHex(res.ekPub), 'keyType "" and GetEK mean the RSA EK');
            assert.equal(toHex(r.ekCert), toHex(res.ekCert));
          }
        }
      });

      it(`GetAK(${kt}): creation certified by the AK itself, go-attestation's AK; idempotent; the other keyType is ALREADY_EXISTS`, async () => {
        const first = await att.client.getAK({ uid, keyType: kt });
        const ak = checkAk(first.ak, kt);
        aks.set(kt, ak);
        const again = await att.client.getAK({ uid, keyType: kt === 'rsa' ? '' : kt });
        assert.equal(toHex(again.ak), toHex(first.ak), 'the same AK for the same uid');
        const e = await expectStatus(att.client.getAK({ uid, keyType: other }), S.ALREADY_EXISTS, 'GetAK with the other keyType');
        assert.match(e.details, new RegExp(uid));
        // Still the same AK afterwards.
        assert.equal(toHex((await att.client.getAK({ uid, keyType: kt })).ak), toHex(first.ak));
      });

      it(`Attest(${kt} AK): the secret made for the ${kt} EK and for the ${other} EK comes back; other names and foreign EKs are refused`, async () => {
        const ak = aks.get(kt)!;
        for (const ekType of [kt, other]) {
          const secret = new Uint8Array(randomBytes(32));
          secrets.push(secret);
          const r = await att.client.attest({ uid, encryptedCredentials: encryptedCredential(await ekOf(ekType), ak.name, secret) });
          assert.equal(toHex(r.secret), toHex(secret), `credential made for the ${ekType} EK`);
        }
        // Made for another AK name (the other uid's AK, or a name that names nothing).
        const ek = await ekOf(kt);
        const wrongNames = [objectName(keyObjectToPublic(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey)), ak.name.map((b, i) => (i === ak.name.length - 1 ? b ^ 1 : b))];
        for (const name of wrongNames) {
          await expectStatus(att.client.attest({ uid, encryptedCredentials: encryptedCredential(ek, name, new Uint8Array(32).fill(1)) }), REJECTED, 'credential for another AK name');
        }
        // Made for an EK of another TPM (a software key with the EK template).
        for (const ekType of KEY_TYPES) {
          const foreign = softwareEk(ekType);
          await expectStatus(att.client.attest({ uid, encryptedCredentials: encryptedCredential(foreign, ak.name, new Uint8Array(32).fill(2)) }), REJECTED, `credential for a foreign ${ekType} EK`);
        }
        // No AK for this uid.
        await expectStatus(att.client.attest({ uid: `no-ak-${kt}`, encryptedCredentials: encryptedCredential(ek, ak.name, new Uint8Array(32)) }), S.NOT_FOUND);
      });

      it(`Quote(${kt} AK): nonce 1..48 bytes, one verified quote per active bank, the event log is the file and replays to the quoted PCRs`, async () => {
        const ak = aks.get(kt)!;
        for (const size of [1, 20, 48]) {
          const nonce = new Uint8Array(randomBytes(size));
          const q = checkQuote((await att.client.quote({ uid, nonce })).platformAttestation, ak, nonce, BANKS);
          assert.equal(toHex(q.eventLog), toHex(eventLog), 'EventLog is the --event-log file, byte for byte');
          const compared = assertLogMatchesQuote(q.eventLog, q.pcrs);
          assert.ok(compared >= 2 * 9, `replayed ${compared} PCR values against the quote`);
          assert.equal(toHex(q.pcrs.get(TPM_ALG.SHA256)!.get(PCR)!), toHex(pcr23), 'PCR 23 as extended');
          // PCRs nobody extended are zero in every bank.
          assert.ok(q.pcrs.get(TPM_ALG.SHA1)!.get(12)!.every((b) => b === 0));
        }
        for (const bad of [new Uint8Array(0), new Uint8Array(49)]) {
          const e = await expectStatus(att.client.quote({ uid, nonce: bad }), S.INVALID_ARGUMENT, `nonce of ${bad.length} bytes`);
          assert.match(e.details, /nonce/);
        }
        await expectStatus(att.client.quote({ uid: `no-ak-${kt}`, nonce: new Uint8Array(8) }), S.NOT_FOUND);
      });

      it(`ImportBlob(${kt} EK): sealed data with and without a PCR 23 policy comes back; a wrong PCR value is FAILED_PRECONDITION`, async () => {
        const ek = await ekOf(kt);
        const data = new Uint8Array(randomBytes(48));
        secrets.push(data);
        const plain = await att.client.importBlob({ uid, encryptedKey: importBlobBytes(ek, { kind: 'sealed', data }) });
        assert.equal(toHex(plain.decryptedKey), toHex(data));

        const bound = new Uint8Array(randomBytes(32));
        secrets.push(bound);
        const pcrs = { hashAlg: TPM_ALG.SHA256, values: new Map([[PCR, pcr23]]) };
        const r = await att.client.importBlob({ uid, encryptedKey: importBlobBytes(ek, { kind: 'sealed', data: bound }, { pcrs }) });
        assert.equal(toHex(r.decryptedKey), toHex(bound), 'bound to the current PCR 23 value');

        // Several PCRs given out of order (the policy hashes them ascending), and the SHA-1 bank.
        const several = { hashAlg: TPM_ALG.SHA256, values: new Map([[PCR, pcr23], [7, pcrValues.get(TPM_ALG.SHA256)!.get(7)!], [0, pcrValues.get(TPM_ALG.SHA256)!.get(0)!]]) };
        const sha1 = { hashAlg: TPM_ALG.SHA1, values: new Map([[PCR, pcrValues.get(TPM_ALG.SHA1)!.get(PCR)!], [4, pcrValues.get(TPM_ALG.SHA1)!.get(4)!]]) };
        for (const p of [several, sha1]) {
          const d = new Uint8Array(randomBytes(128)); // the most a sealed object holds
          secrets.push(d);
          assert.equal(toHex((await att.client.importBlob({ uid, encryptedKey: importBlobBytes(ek, { kind: 'sealed', data: d }, { pcrs: p }) })).decryptedKey), toHex(d));
        }

        const wrong = { hashAlg: TPM_ALG.SHA256, values: new Map([[PCR, hash(TPM_ALG.SHA256, enc('not the value'))]]) };
        const e = await expectStatus(att.client.importBlob({ uid, encryptedKey: importBlobBytes(ek, { kind: 'sealed', data: bound }, { pcrs: wrong }) }), S.FAILED_PRECONDITION, 'wrong PCR value');
        assert.match(e.details, /PCR/);
        // A blob whose authPolicy names other values than the PCRs it carries (PolicyPCR passes, Unseal does not).
        const lying = importBlobParts(ek, { kind: 'sealed', data: bound }, { pcrs: wrong });
        const honestPcrs = { hash: TPM_ALG.SHA256, pcrs: new Map([[PCR, pcr23]]) };
        await expectStatus(att.client.importBlob({ uid, encryptedKey: encodeImportBlob({ ...lying, pcrs: honestPcrs }) }), S.FAILED_PRECONDITION, 'policy for other values');
      });

      it(`ImportBlob(${kt} EK): blobs for another TPM, TPM-level garbage and undecodable bytes are refused, never INTERNAL/UNAVAILABLE`, async () => {
        const data = enc('for another TPM');
        const foreign = importBlobBytes(softwareEk(kt), { kind: 'sealed', data });
        await expectStatus(att.client.importBlob({ uid, encryptedKey: foreign }), REJECTED, 'blob for a software EK');
        // Well-formed protobuf, a real sealed-object public area, random seed and duplicate.
        const good = importBlobParts(await ekOf(kt), { kind: 'sealed', data });
        const seed = kt === 'rsa' ? new Uint8Array(randomBytes(256)) : eccPoint(randomBytes(32), randomBytes(32));
        await expectStatus(att.client.importBlob({ uid, encryptedKey: encodeImportBlob({ ...good, encryptedSeed: seed }) }), REJECTED, 'random seed');
        const dup = good.duplicate.slice();
        dup[dup.length - 1]! ^= 0x55;
        await expectStatus(att.client.importBlob({ uid, encryptedKey: encodeImportBlob({ ...good, duplicate: dup }) }), REJECTED, 'tampered duplicate');
        await expectStatus(att.client.importBlob({ uid, encryptedKey: encodeImportBlob({ ...good, encryptedSeed: new Uint8Array(100) }) }), S.INVALID_ARGUMENT, 'a seed of no EK shape');
        await expectStatus(att.client.importBlob({ uid, encryptedKey: encodeImportBlob({ ...good, publicArea: new Uint8Array([0, 8, 0, 11, 1]) }) }), S.INVALID_ARGUMENT, 'truncated publicArea');
        for (const garbage of [new Uint8Array(randomBytes(200)), enc('not a protobuf at all'), new Uint8Array([0xff, 0xff, 0xff])]) {
          await expectStatus(att.client.importBlob({ uid, encryptedKey: garbage }), S.INVALID_ARGUMENT, 'garbage bytes');
        }
        // A signing key sent to ImportBlob, sealed data sent to ImportSigningKey.
        const key = importBlobBytes(await ekOf(kt), { kind: 'signingKey', privateKey: eccKey() });
        await expectStatus(att.client.importBlob({ uid, encryptedKey: key }), S.INVALID_ARGUMENT, 'a key to ImportBlob');
        await expectStatus(att.client.importSigningKey({ uid, kid: 'sealed', encryptedSigningKey: importBlobBytes(await ekOf(kt), { kind: 'sealed', data }) }), S.INVALID_ARGUMENT, 'sealed data to ImportSigningKey');
        // Keys Sign could never use are refused before any TPM work, naming why.
        const usable = createImportBlob(await ekOf(kt), { kind: 'signingKey', privateKey: eccKey() });
        const withPublic = (pub: TPMT_PUBLIC): Uint8Array => encodeImportBlob({ publicArea: marshal(TPMT_PUBLIC, pub), duplicate: usable.duplicate, encryptedSeed: usable.encryptedSeed });
        const restricted = { ...usable.publicArea, objectAttributes: usable.publicArea.objectAttributes | TPMA_OBJECT.restricted } as TPMT_PUBLIC;
        const sha384 = { ...usable.publicArea, parameters: { ...usable.publicArea.parameters, scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA384 } } } as TPMT_PUBLIC;
        await assert.rejects(att.client.importSigningKey({ uid, kid: 'restricted', encryptedSigningKey: withPublic(restricted) }), (e: grpc.ServiceError) => e.code === S.INVALID_ARGUMENT && /is restricted/.test(e.details));
        await assert.rejects(att.client.importSigningKey({ uid, kid: 'sha384', encryptedSigningKey: withPublic(sha384) }), (e: grpc.ServiceError) => e.code === S.INVALID_ARGUMENT && /own scheme is ecdsa-sha384; Sign needs NULL or ecdsa-sha256/.test(e.details));
        // The TPM is fine afterwards.
        const ok = await att.client.importBlob({ uid, encryptedKey: importBlobBytes(await ekOf(kt), { kind: 'sealed', data }) });
        assert.equal(toHex(ok.decryptedKey), toHex(data));
      });

      it(`ImportSigningKey(${kt} EK): Node RSA and ECC keys; the confirmation and Sign verify with the original public key; never overwritten`, async () => {
        const ek = await ekOf(kt);
        for (const [kid, privateKey] of [[`imp-rsa`, rsaKey()], [`imp-ecc`, eccKey()]] as const) {
          const blob = importBlobBytes(ek, { kind: 'signingKey', privateKey });
          const r = await att.client.importSigningKey({ uid, kid, encryptedSigningKey: blob });
          const pub = publicOf(privateKey);
          signers.set(`${uid}/${kid}`, pub);
          assert.ok(verifiesWith(pub, enc(uid), r.confirmation), `${kid}: confirmation over SHA-256(uid)`);
          const data = new Uint8Array(randomBytes(100));
          assert.ok(verifiesWith(pub, data, (await att.client.sign({ uid, kid, data })).signed), `${kid}: Sign`);
          await expectStatus(att.client.importSigningKey({ uid, kid, encryptedSigningKey: blob }), S.ALREADY_EXISTS, 'same uid/kid');
          const other = importBlobBytes(ek, { kind: 'signingKey', privateKey: eccKey() });
          await expectStatus(att.client.importSigningKey({ uid, kid, encryptedSigningKey: other }), S.ALREADY_EXISTS, 'another key, same uid/kid');
          // The stored key is still the first one.
          assert.ok(verifiesWith(pub, data, (await att.client.sign({ uid, kid, data })).signed));
        }
        // A key bound to the current PCR 23 value signs while PCR 23 holds it.
        const bound = eccKey();
        const pcrs = { hashAlg: TPM_ALG.SHA256, values: new Map([[PCR, pcr23]]) };
        const r = await att.client.importSigningKey({ uid, kid: 'imp-pcr', encryptedSigningKey: importBlobBytes(ek, { kind: 'signingKey', privateKey: bound }, { pcrs }) });
        assert.ok(verifiesWith(publicOf(bound), enc(uid), r.confirmation));
        signers.set(`${uid}/imp-pcr`, publicOf(bound));
        assert.ok(verifiesWith(publicOf(bound), enc('x'), (await att.client.sign({ uid, kid: 'imp-pcr', data: enc('x') })).signed));
        // Bound to a value PCR 23 does not hold: refused, nothing stored.
        const wrong = { hashAlg: TPM_ALG.SHA256, values: new Map([[PCR, new Uint8Array(32)]]) };
        await expectStatus(att.client.importSigningKey({ uid, kid: 'imp-wrong-pcr', encryptedSigningKey: importBlobBytes(ek, { kind: 'signingKey', privateKey: eccKey() }, { pcrs: wrong }) }), S.FAILED_PRECONDITION);
        await expectStatus(att.client.sign({ uid, kid: 'imp-wrong-pcr', data: enc('x') }), S.NOT_FOUND, 'a refused import stores nothing');
        // A signing key for another TPM.
        await expectStatus(att.client.importSigningKey({ uid, kid: 'imp-foreign', encryptedSigningKey: importBlobBytes(softwareEk(kt), { kind: 'signingKey', privateKey: eccKey() }) }), REJECTED, 'foreign EK');
        await expectStatus(att.client.sign({ uid, kid: 'imp-foreign', data: enc('x') }), S.NOT_FOUND);
      });

      it(`NewKey + Sign (${kt} AK): certified by the AK, the PEM key is the certified key, signatures verify; ALREADY_EXISTS, NOT_FOUND`, async () => {
        const ak = aks.get(kt)!;
        const types: KeyType[] = kt === 'rsa' ? ['rsa', 'ecc'] : ['ecc'];
        for (const keyType of types) {
          const kid = `new-${keyType}`;
          const res = await att.client.newKey({ uid, kid, keyType });
          const { key } = checkNewKey(res, ak, keyType);
          signers.set(`${uid}/${kid}`, key);
          for (const data of [enc('hello'), new Uint8Array(0), new Uint8Array(randomBytes(4000))]) {
            const sig = (await att.client.sign({ uid, kid, data })).signed;
            assert.ok(verifiesWith(key, data, sig), `${kid} signature over ${data.length} bytes`);
            if (keyType === 'ecc') assert.equal(sig[0], 0x30, 'ECDSA signatures are ASN.1 DER');
            else assert.equal(sig.length, 256, 'RSA-2048 PKCS#1 v1.5');
          }
          await expectStatus(att.client.newKey({ uid, kid, keyType }), S.ALREADY_EXISTS, 'same kid');
          await expectStatus(att.client.newKey({ uid, kid, keyType: keyType === 'rsa' ? 'ecc' : 'rsa' }), S.ALREADY_EXISTS, 'same kid, other type');
          // The stored key is unchanged.
          assert.ok(verifiesWith(key, enc('again'), (await att.client.sign({ uid, kid, data: enc('again') })).signed));
        }
        await expectStatus(att.client.newKey({ uid: `no-ak-${kt}`, kid: 'k', keyType: 'ecc' }), S.NOT_FOUND, 'uid without AK');
        await expectStatus(att.client.sign({ uid, kid: 'no-such-kid', data: enc('x') }), S.NOT_FOUND, 'unknown kid');
        await expectStatus(att.client.sign({ uid: `no-ak-${kt}`, kid: 'new-ecc', data: enc('x') }), S.NOT_FOUND, 'unknown uid');
      });
    });
  }

  describe('TPM discipline', () => {
    it('10 parallel Sign + Quote calls all succeed on the 3-slot simulator; racing GetAK/NewKey/ImportSigningKey calls of one uid/kid make one key', async () => {
      const nonce = new Uint8Array(randomBytes(16));
      const rsa = aks.get('rsa')!;
      const ecc = aks.get('ecc')!;
      const calls: Promise<void>[] = [];
      for (let i = 0; i < 10; i++) {
        const [uid, kid] = (['pod-rsa/new-rsa', 'pod-rsa/new-ecc', 'pod-ecc/new-ecc'] as const)[i % 3]!.split('/') as [string, string];
        const data = enc(`parallel ${i}`);
        calls.push(att.client.sign({ uid, kid, data }).then((r) => assert.ok(verifiesWith(signerKey(uid, kid), data, r.signed), `sign ${i}`)));
        const [quid, qak] = i % 2 === 0 ? ['pod-rsa', rsa] : ['pod-ecc', ecc];
        calls.push(att.client.quote({ uid: quid, nonce }).then((r) => void checkQuote(r.platformAttestation, qak, nonce, BANKS)));
      }
      const settled = Promise.allSettled(calls);
      const race = await Promise.all(Array.from({ length: 4 }, () => att.client.getAK({ uid: 'pod-race', keyType: 'ecc' })));
      // Racing creators of one kid: exactly one wins, the others are ALREADY_EXISTS.
      const ek = await ekOf('ecc');
      const outcomes = await Promise.allSettled([
        ...Array.from({ length: 3 }, () => att.client.newKey({ uid: 'pod-race', kid: 'raced', keyType: 'ecc' })),
        ...Array.from({ length: 3 }, () => att.client.importSigningKey({ uid: 'pod-race', kid: 'raced', encryptedSigningKey: importBlobBytes(ek, { kind: 'signingKey', privateKey: eccKey() }) })),
      ]);
      for (const r of await settled) if (r.status === 'rejected') throw r.reason;
      assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1, 'one creator of pod-race/raced wins');
      for (const o of outcomes) if (o.status === 'rejected') assert.equal((o.reason as grpc.ServiceError).code, S.ALREADY_EXISTS);
      for (const r of race) assert.equal(toHex(r.ak), toHex(race[0]!.ak), 'concurrent GetAKs of one uid get one AK');
      checkAk(race[0]!.ak, 'ecc');
      // Racing GetAKs of one uid with different key types: one AK; the loser must not get an AK
      // of the type it did not ask for.
      const mixed = await Promise.allSettled([att.client.getAK({ uid: 'pod-mixed', keyType: 'rsa' }), att.client.getAK({ uid: 'pod-mixed', keyType: 'ecc' })]);
      assert.equal(mixed.filter((o) => o.status === 'fulfilled').length, 1, 'one of them gets the AK');
      mixed.forEach((o, i) => {
        const kt: KeyType = i === 0 ? 'rsa' : 'ecc';
        if (o.status === 'fulfilled') checkAk(o.value.ak, kt);
        else assert.equal((o.reason as grpc.ServiceError).code, S.ALREADY_EXISTS, `the ${kt} request lost the race`);
      });
    });

    it('logs name no secret: credential secrets and unsealed data appear nowhere in the log lines', () => {
      assert.ok(secrets.length >= 8);
      const text = att.log.text;
      assert.ok(att.log.lines.some((l) => l['msg'] === 'rpc' && l['method'] === 'ImportBlob'), 'RPCs are logged');
      for (const s of secrets) {
        for (const form of [toHex(s), Buffer.from(s).toString('base64'), Buffer.from(s).toString('base64url').slice(0, 40)]) {
          assert.ok(!text.includes(form), 'a secret appears in the log');
        }
      }
    });

    it('after the flow the TPM holds no transient objects or sessions; a restarted attestor on the same --state-dir has the same keys; a missing event log is sent empty', async () => {
      const akBefore = new Map<KeyType, string>();
      for (const kt of KEY_TYPES) akBefore.set(kt, toHex((await att.client.getAK({ uid: `pod-${kt}`, keyType: kt })).ak));
      const keep = new Map<string, KeyObject>();
      for (const ref of ['pod-rsa/new-rsa', 'pod-ecc/new-ecc', 'pod-rsa/imp-rsa', 'pod-ecc/imp-ecc', 'pod-ecc/imp-pcr']) {
        const [uid, kid] = ref.split('/') as [string, string];
        keep.set(ref, signerKey(uid, kid));
      }
      const metrics = att.metrics.render();
      assert.match(metrics, /tpmds_tpm_command_duration_seconds_count\{command="TPM2_Quote"\} [1-9]/);
      assert.match(metrics, /tpmds_rpc_requests_total\{method="ImportBlob",code="FAILED_PRECONDITION"\} [1-9]/);
      assert.doesNotMatch(metrics, /code="(INTERNAL|UNAVAILABLE|UNKNOWN)"/, 'no RPC failed with INTERNAL or UNAVAILABLE');
      await att.stop();

      const handles = await withTpm(swtpm.address, (tpm: Tpm) => tpm.getLoadedHandles());
      assert.deepEqual(handles.map((h) => `0x${h.toString(16)}`), [], 'no transient objects or sessions left on the TPM');

      att = await startInProcess({ tpm: swtpm.address, stateDir: join(dirs.dir, 'state'), eventLog: join(dirs.dir, 'no-such-log') });
      for (const kt of KEY_TYPES) {
        const again = await att.client.getAK({ uid: `pod-${kt}`, keyType: kt });
        assert.equal(toHex(again.ak), akBefore.get(kt), `the ${kt} AK after an attestor restart`);
      }
      for (const [ref, key] of keep) {
        const [uid, kid] = ref.split('/') as [string, string];
        assert.ok(verifiesWith(key, enc(ref), (await att.client.sign({ uid, kid, data: enc(ref) })).signed), `${ref} signs after the restart`);
      }
      const nonce = enc('no log');
      const q = checkQuote((await att.client.quote({ uid: 'pod-ecc', nonce })).platformAttestation, aks.get('ecc')!, nonce, BANKS);
      assert.equal(q.eventLog.length, 0, 'a missing event log file is an empty EventLog');
      await att.client.quote({ uid: 'pod-ecc', nonce });
      const warnings = att.log.lines.filter((l) => l['level'] === 'warn' && /event log/.test(String(l['msg'])));
      assert.equal(warnings.length, 1, 'the missing log is warned about once');
    });
  });

});

/** Public keys of every key the attestor holds, by "uid/kid" (filled as keys are made). */
const signers = new Map<string, KeyObject>();

function signerKey(uid: string, kid: string): KeyObject {
  const k = signers.get(`${uid}/${kid}`);
  if (!k) throw new Error(`no key recorded for ${uid}/${kid}`);
  return k;
}

function rsaKey(): KeyObject {
  return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
}

function eccKey(): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
}

function publicOf(k: KeyObject): KeyObject {
  return createPublicKey(k);
}

/** The EK of another TPM: a software key in the TCG EK template. */
function softwareEk(kt: KeyType): TPMT_PUBLIC {
  const key = kt === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey : generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
  return keyObjectToPublic(key, kt === 'rsa' ? ekTemplateRsa2048() : ekTemplateEccP256());
}

/** createImportBlob's result as the protobuf's fields (to tamper with before encoding). */
function importBlobParts(ek: TPMT_PUBLIC, payload: ImportPayload, opts: ImportBlobOptions = {}): ImportBlob {
  const b = createImportBlob(ek, payload, opts);
  return {
    publicArea: marshal(TPMT_PUBLIC, b.publicArea),
    duplicate: b.duplicate,
    encryptedSeed: b.encryptedSeed,
    ...(b.pcrs ? { pcrs: { hash: b.pcrs.hashAlg, pcrs: new Map(b.pcrs.values) } } : {}),
  };
}

/** A marshalled TPMS_ECC_POINT. */
function eccPoint(x: Uint8Array, y: Uint8Array): Uint8Array {
  return marshal(TPMS_ECC_POINT, { x, y });
}
