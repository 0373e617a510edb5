// End to end: keys survive an attestor restart, a TPM power cycle under a running attestor and a
// swtpm restart (outage = UNAVAILABLE, then the attestor reconnects by itself); the key store holds
// no plaintext key material; the TPM is left with nothing loaded. This TPM has no persistent SRK
// and no persistent P-256 EK (evicted before the attestor starts), so the attestor creates those
// primaries once, keeps their saved contexts, and must recover them after the TPM is reset.
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, unlinkSync } from 'node:fs';
import { httpGet } from './helpers.js';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { TPM_ALG, TPM_RH, certificateMatchesPublic, hash, objectName, toHex, type TPMT_PUBLIC } from '@tpmds/tpm2-wire';
import {
  EK_P256_CERT_NV,
  EK_P256_HANDLE,
  EK_RSA_HANDLE,
  SRK_HANDLE,
  SWTPM_CTRL,
  provisionSwtpmState,
  startSwtpm,
  type ProvisionedState,
  type SwtpmInstance,
} from '../../tpm2-wire/test/fixtures/swtpm.js';
import {
  KEY_TYPES,
  checkAk,
  checkNewKey,
  checkQuote,
  ekPublicFromSpki,
  encryptedCredential,
  expectStatus,
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

const httpStatus = async (address: string, path: string): Promise<number> => (await httpGet(address, path)).status;

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

describe('attestor e2e: keys survive restarts, a TPM power cycle and a swtpm restart @swtpm', function () {
  this.timeout(60_000);
  let state: ProvisionedState;
  let swtpm: SwtpmInstance;
  let dirs: ReturnType<typeof tempDir>;
  let att: InProcessAttestor;
  /** A stable TPM address: symlinks to the socket (and its .ctrl) of whichever swtpm runs now. */
  let tpmAddress: string;
  let stateDir: string;
  const aks = new Map<KeyType, CheckedAk>();
  const eks = new Map<KeyType, TPMT_PUBLIC>();
  /** uid/kid -> public key of every key made in this run. */
  const keys = new Map<string, KeyObject>();
  /** Private key material of the imported keys: must never reach the key store. */
  const privateParts: Uint8Array[] = [];

  function pointAt(instance: SwtpmInstance): void {
    const sock = instance.address.replace(/^swtpm:path=/, '');
    for (const [link, target] of [[join(dirs.dir, 'tpm', 'sock'), sock], [join(dirs.dir, 'tpm', 'sock.ctrl'), `${sock}.ctrl`]] as const) {
      try {
        unlinkSync(link);
      } catch {
        // first time
      }
      symlinkSync(target, link);
    }
  }

  const start = () => startInProcess({ tpm: tpmAddress, stateDir, eventLog: join(dirs.dir, 'no-event-log') });

  before(async function () {
    this.timeout(120_000);
    dirs = tempDir();
    mkdirSync(join(dirs.dir, 'tpm'));
    tpmAddress = `swtpm:path=${join(dirs.dir, 'tpm', 'sock')}`;
    stateDir = join(dirs.dir, 'state');
    state = await provisionSwtpmState();
    swtpm = await startSwtpm({ state, transport: 'unix' });
    pointAt(swtpm);
    await withTpm(tpmAddress, async (tpm) => {
      eks.set('rsa', (await tpm.readPublic(EK_RSA_HANDLE)).public);
      eks.set('ecc', (await tpm.readPublic(EK_P256_HANDLE)).public);
      await tpm.evictControl(TPM_RH.OWNER, SRK_HANDLE, SRK_HANDLE);
      await tpm.evictControl(TPM_RH.OWNER, EK_P256_HANDLE, EK_P256_HANDLE);
      assert.deepEqual(await tpm.getHandles(0x81000000), [EK_RSA_HANDLE, 0x81010016]);
      await tpm.pcrExtend(PCR, BANKS.map((alg) => ({ hashAlg: alg, digest: hash(alg, enc('persistence')) })));
    });
    att = await start();
  });

  after(async function () {
    this.timeout(30_000);
    await att?.stop();
    await swtpm?.stop();
    await state?.dispose();
    dirs?.cleanup();
  });

  it('makes AKs, new keys and imported keys (created SRK and P-256 EK); the key store holds no plaintext key material', async () => {
    const pcr23 = new Map<number, Uint8Array>();
    for (const kt of KEY_TYPES) {
      const uid = `p-${kt}`;
      const res = await att.client.getEKCert(kt);
      const ek = ekPublicFromSpki(res.ekPub, kt);
      assert.equal(toHex(objectName(ek)), toHex(objectName(eks.get(kt)!)), `the ${kt} EK (re-created from its template when not persistent)`);
      assert.ok(certificateMatchesPublic(res.ekCert, ek), 'the NV certificate matches');
      const ak = checkAk((await att.client.getAK({ uid, keyType: kt })).ak, kt);
      aks.set(kt, ak);
      const nk = await att.client.newKey({ uid, kid: 'made', keyType: 'ecc' });
      keys.set(`${uid}/made`, checkNewKey(nk, ak, 'ecc').key);
      // An imported key of the EK's own type.
      const priv = kt === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey : generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const jwk = priv.export({ format: 'jwk' });
      for (const part of [jwk.d, jwk.p, jwk.q, jwk.dp, jwk.dq, jwk.qi]) if (part) privateParts.push(new Uint8Array(Buffer.from(part, 'base64url')));
      const r = await att.client.importSigningKey({ uid, kid: 'imported', encryptedSigningKey: importBlobBytes(ek, { kind: 'signingKey', privateKey: priv }) });
      const pub = createPublicKey(priv);
      assert.ok(verifiesWith(pub, enc(uid), r.confirmation));
      keys.set(`${uid}/imported`, pub);
      // And one bound to PCR 23 as it is now (read through a quote).
      const nonce = new Uint8Array(randomBytes(8));
      const q = checkQuote((await att.client.quote({ uid, nonce })).platformAttestation, ak, nonce, BANKS);
      pcr23.set(0, q.pcrs.get(TPM_ALG.SHA256)!.get(PCR)!);
      const bound = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const pcrs = { hashAlg: TPM_ALG.SHA256, values: new Map([[PCR, pcr23.get(0)!]]) };
      await att.client.importSigningKey({ uid, kid: 'pcr-bound', encryptedSigningKey: importBlobBytes(ek, { kind: 'signingKey', privateKey: bound }, { pcrs }) });
      keys.set(`${uid}/pcr-bound`, createPublicKey(bound));
    }
    assert.ok(!pcr23.get(0)!.every((b) => b === 0), 'PCR 23 was extended');

    assert.equal(statSync(stateDir).mode & 0o777, 0o700, '--state-dir is private');
    const files = filesUnder(stateDir);
    assert.ok(files.length >= 2 + 3 * 2, `one file per key (${files.length})`);
    for (const f of files) {
      const bytes = readFileSync(f);
      const text = bytes.toString('latin1');
      for (const part of privateParts) {
        const b = Buffer.from(part);
        assert.ok(!bytes.includes(b), `${f} holds private key bytes`);
        for (const form of [b.toString('hex'), b.toString('hex').toUpperCase(), b.toString('base64').slice(0, 24), b.toString('base64url').slice(0, 24)]) {
          assert.ok(!text.includes(form), `${f} holds private key material (encoded)`);
        }
      }
    }
  });

  async function everyKeySigns(except: string[] = []): Promise<void> {
    for (const [ref, key] of keys) {
      if (except.includes(ref)) continue;
      const [uid, kid] = ref.split('/') as [string, string];
      const data = new Uint8Array(randomBytes(40));
      assert.ok(verifiesWith(key, data, (await att.client.sign({ uid, kid, data })).signed), `${ref} signs`);
    }
  }

  async function akWorks(kt: KeyType): Promise<void> {
    const uid = `p-${kt}`;
    const ak = aks.get(kt)!;
    assert.equal(toHex((await att.client.getAK({ uid, keyType: kt })).ak), toHex(ak.raw), `the ${kt} AK is the same`);
    const nonce = new Uint8Array(randomBytes(32));
    checkQuote((await att.client.quote({ uid, nonce })).platformAttestation, ak, nonce, BANKS);
    for (const ekType of KEY_TYPES) {
      const secret = new Uint8Array(randomBytes(32));
      const ek = ekPublicFromSpki((await att.client.getEKCert(ekType)).ekPub, ekType);
      assert.equal(toHex((await att.client.attest({ uid, encryptedCredentials: encryptedCredential(ek, ak.name, secret) })).secret), toHex(secret));
    }
  }

  it('after an attestor restart on the same --state-dir: same AKs, every key signs, quotes and activation work', async () => {
    await att.stop();
    att = await start();
    for (const kt of KEY_TYPES) await akWorks(kt);
    await everyKeySigns();
  });

  it('after a TPM power cycle under the running attestor: the next RPCs work without a restart; the PCR-bound key is FAILED_PRECONDITION', async () => {
    await swtpm.powerCycle(); // CMD_INIT: PCRs reset, transient objects and sessions gone, Startup needed
    await everyKeySigns(['p-rsa/pcr-bound', 'p-ecc/pcr-bound']);
    for (const kt of KEY_TYPES) await akWorks(kt);
    for (const kt of KEY_TYPES) {
      const e = await expectStatus(att.client.sign({ uid: `p-${kt}`, kid: 'pcr-bound', data: enc('x') }), S.FAILED_PRECONDITION, 'PCR 23 was reset');
      assert.match(e.details, /PCR/);
    }
    const nonce = enc('after the cycle');
    const q = checkQuote((await att.client.quote({ uid: 'p-ecc', nonce })).platformAttestation, aks.get('ecc')!, nonce, BANKS);
    assert.ok(q.pcrs.get(TPM_ALG.SHA256)!.get(PCR)!.every((b) => b === 0), 'PCR 23 was reset by the power cycle');
    // A second cycle right after a flow (the saved primary contexts were refreshed in between).
    await swtpm.powerCycle();
    await everyKeySigns(['p-rsa/pcr-bound', 'p-ecc/pcr-bound']);
  });

  it('swtpm down: RPCs are UNAVAILABLE (never INTERNAL) and /readyz is 503; swtpm back on the same state: the attestor reconnects by itself', async () => {
    // A crash: swtpm exits without TPM2_Shutdown.
    await swtpm.controlRequest(SWTPM_CTRL.CMD_SHUTDOWN).catch(() => undefined);
    await swtpm.stop();
    await Promise.all([
      att.client.sign({ uid: 'p-ecc', kid: 'made', data: enc('x') }),
      att.client.quote({ uid: 'p-rsa', nonce: enc('n') }),
      att.client.getEKCert('ecc'),
      att.client.newKey({ uid: 'p-ecc', kid: 'during-outage', keyType: 'ecc' }),
    ].map((p) => expectStatus(p, S.UNAVAILABLE, 'TPM down')));
    assert.equal(await httpStatus(att.running.healthAddress, '/readyz'), 503);
    assert.equal(await httpStatus(att.running.healthAddress, '/healthz'), 200);

    swtpm = await startSwtpm({ state, transport: 'unix' });
    pointAt(swtpm);
    assert.equal(await httpStatus(att.running.healthAddress, '/readyz'), 200);
    await everyKeySigns(['p-rsa/pcr-bound', 'p-ecc/pcr-bound']);
    for (const kt of KEY_TYPES) await akWorks(kt);
    await expectStatus(att.client.sign({ uid: 'p-ecc', kid: 'during-outage', data: enc('x') }), S.NOT_FOUND, 'nothing was stored during the outage');
    const metrics = att.metrics.render();
    assert.doesNotMatch(metrics, /code="(INTERNAL|UNKNOWN)"/);
    assert.match(metrics, /tpmds_rpc_requests_total\{method="Sign",code="UNAVAILABLE"\} 1/);
  });

  it('after all that the TPM holds no transient objects or sessions', async () => {
    await att.stop();
    const handles = await withTpm(tpmAddress, (tpm) => tpm.getLoadedHandles());
    assert.deepEqual(handles.map((h) => `0x${h.toString(16)}`), []);
    await withTpm(tpmAddress, async (tpm) => {
      // The attestor made no primary key persistent on its own.
      assert.deepEqual(await tpm.getHandles(0x81000000), [EK_RSA_HANDLE, 0x81010016]);
    });
  });
});

describe('attestor e2e: a TPM power cycle on the device transport (no simulator control channel) @swtpm', function () {
  this.timeout(60_000);
  let swtpm: SwtpmInstance;
  let dirs: ReturnType<typeof tempDir>;
  let att: InProcessAttestor;
  let eccEkName: Uint8Array;

  before(async function () {
    this.timeout(120_000);
    dirs = tempDir();
    swtpm = await startSwtpm({ transport: 'device' });
    // This TPM has no P-256 EK certificate.
    await withTpm(swtpm.address, async (tpm) => {
      await tpm.nvUndefineSpace(TPM_RH.PLATFORM, EK_P256_CERT_NV);
      eccEkName = (await tpm.readPublic(EK_P256_HANDLE)).name;
    });
    att = await startInProcess({ tpm: swtpm.address, stateDir: join(dirs.dir, 'state'), eventLog: join(dirs.dir, 'none') });
  });

  after(async function () {
    this.timeout(30_000);
    await att?.stop();
    await swtpm?.stop();
    dirs?.cleanup();
  });

  it('the attestor sends TPM2_Startup itself after the reset (TPM_RC_INITIALIZE) and the call succeeds', async () => {
    const ak = checkAk((await att.client.getAK({ uid: 'dev', keyType: 'ecc' })).ak, 'ecc');
    const { key } = checkNewKey(await att.client.newKey({ uid: 'dev', kid: 'k', keyType: 'ecc' }), ak, 'ecc');
    await swtpm.powerCycle();
    assert.ok(verifiesWith(key, enc('after'), (await att.client.sign({ uid: 'dev', kid: 'k', data: enc('after') })).signed));
    const nonce = enc('after the reset');
    checkQuote((await att.client.quote({ uid: 'dev', nonce })).platformAttestation, ak, nonce, BANKS);
    await swtpm.powerCycle();
    const ecc = await att.client.getEKCert('ecc');
    assert.equal(ecc.ekCert.length, 0, 'no certificate: an empty ekCert');
    assert.equal(toHex(objectName(ekPublicFromSpki(ecc.ekPub, 'ecc'))), toHex(eccEkName));
    const ek = ekPublicFromSpki((await att.client.getEKCert('rsa')).ekPub, 'rsa');
    const secret = new Uint8Array(randomBytes(32));
    assert.equal(toHex((await att.client.attest({ uid: 'dev', encryptedCredentials: encryptedCredential(ek, ak.name, secret) })).secret), toHex(secret));
    assert.doesNotMatch(att.metrics.render(), /code="(INTERNAL|UNKNOWN|UNAVAILABLE)"/);
    await att.stop();
    assert.deepEqual(await withTpm(swtpm.address, (tpm) => tpm.getLoadedHandles()), []);
  });
});

for (const transport of ['unix', 'device'] as const) {
  describe(`attestor e2e: TPM power cycles in the middle of RPCs (${transport} transport) @swtpm`, function () {
    this.timeout(60_000);
    let swtpm: SwtpmInstance;
    let dirs: ReturnType<typeof tempDir>;
    let att: InProcessAttestor;

    before(async function () {
      this.timeout(120_000);
      dirs = tempDir();
      swtpm = await startSwtpm({ transport });
      att = await startInProcess({ tpm: swtpm.address, stateDir: join(dirs.dir, 'state'), eventLog: join(dirs.dir, 'none') });
    });

    after(async function () {
      this.timeout(30_000);
      await att?.stop();
      await swtpm?.stop();
      dirs?.cleanup();
    });

    it('calls in flight when the TPM resets are run again from the start: they succeed with results that verify (at worst UNAVAILABLE), never INTERNAL', async () => {
      // Only noDA keys are authorized here, so the abrupt cycles cannot lead to a DA lockout.
      const ak = checkAk((await att.client.getAK({ uid: 'mid', keyType: 'ecc' })).ak, 'ecc');
      const { key } = checkNewKey(await att.client.newKey({ uid: 'mid', kid: 'k', keyType: 'ecc' }), ak, 'ecc');
      const outcomes: PromiseSettledResult<unknown>[] = [];
      for (let i = 0; i < 25; i++) {
        const n = new Uint8Array([i, 1, 2]);
        const calls = [
          att.client.quote({ uid: 'mid', nonce: n }).then((r) => checkQuote(r.platformAttestation, ak, n, BANKS)),
          att.client.sign({ uid: 'mid', kid: 'k', data: n }).then((r) => assert.ok(verifiesWith(key, n, r.signed), 'signature')),
          att.client.newKey({ uid: 'mid', kid: `k${i}`, keyType: 'ecc' }).then((r) => checkNewKey(r, ak, 'ecc')),
        ];
        await new Promise((r) => setTimeout(r, Math.random() * 5));
        await swtpm.powerCycle();
        outcomes.push(...(await Promise.allSettled(calls)));
      }
      const failures = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason as grpc.ServiceError);
      for (const f of failures) assert.equal(f.code, S.UNAVAILABLE, `${grpc.status[f.code] ?? ''} ${f.details ?? String(f)}`);
      assert.ok(failures.length <= outcomes.length / 4, `${failures.length} of ${outcomes.length} calls failed`);
      // Nothing stays loaded.
      await att.stop();
      assert.deepEqual(await withTpm(swtpm.address, (tpm) => tpm.getLoadedHandles()), []);
    });
  });
}
