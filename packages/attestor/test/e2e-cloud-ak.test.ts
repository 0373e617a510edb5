// The cloud attestation key (GetGCEEKSigningKey, SignGCEEK) end to end: a real attestor on a
// swtpm provisioned like Google Cloud's vTPM (templates in NV 0x01c10001 / 0x01c10003, a
// certificate from a test CA in NV 0x01c10000), the key stable across attestor restarts, a TPM
// power cycle and a swtpm restart; FAILED_PRECONDITION without a template; SignGCEEK only for
// identities named by --allow-node-key (k8s TokenReview stand-in).
import assert from 'node:assert/strict';
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { AttestorClient } from '@tpmds/protocol/proto';
import { publicToSpkiDer, toHex, type TPMT_PUBLIC } from '@tpmds/tpm2-wire';
import { provisionSwtpmState, startSwtpm, type ProvisionedState, type SwtpmInstance } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { expectStatus, startWithConfig, tempDir, withTpm, type ConfiguredAttestor } from './e2e-support.js';
import { CLOUD_AK_NV, issueCloudAkCertificate, provisionCloudAkTemplate, removePlatformNv, writePlatformNv, type CloudKeyType } from './fixtures/cloud-ak.js';
import { TestPki } from './fixtures/pki.js';
import { TokenReviewStandIn } from './fixtures/tokenreview-standin.js';
import type { AttestorConfig } from '../src/config.js';

const S = grpc.status;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function pemKey(pem: Uint8Array): KeyObject {
  const text = new TextDecoder().decode(pem);
  assert.match(text, /^-----BEGIN PUBLIC KEY-----\n/);
  return createPublicKey(text);
}

const spkiHex = (k: KeyObject): string => toHex(new Uint8Array(k.export({ format: 'der', type: 'spki' })));

describe('cloud attestation key (GetGCEEKSigningKey, SignGCEEK) on swtpm @swtpm', function () {
  this.timeout(120_000);
  let dirs: ReturnType<typeof tempDir>;
  let state: ProvisionedState;
  let swtpm: SwtpmInstance;
  let pki: TestPki;
  const made = new Map<CloudKeyType, TPMT_PUBLIC>();
  let rsaCert: Uint8Array;
  const attestors: ConfiguredAttestor[] = [];
  const clients: AttestorClient[] = [];

  /** A new attestor on the swtpm; the earlier ones stop first (swtpm serves one connection at a time). */
  const start = async (config: Partial<AttestorConfig> = {}): Promise<{ att: ConfiguredAttestor; client: AttestorClient }> => {
    for (const a of attestors) await a.stop();
    const att = await startWithConfig(config, swtpm, join(dirs.dir, `state-${attestors.length}`));
    attestors.push(att);
    const client = new AttestorClient(att.running.address, grpc.credentials.createInsecure());
    clients.push(client);
    return { att, client };
  };

  before(async function () {
    this.timeout(180_000);
    dirs = tempDir('tpmds-cloud-ak-');
    pki = new TestPki(dirs.dir, 'cloud-ak-ca');
    state = await provisionSwtpmState();
    swtpm = await startSwtpm({ state, transport: 'unix' });
    await withTpm(swtpm.address, async (tpm) => {
      for (const kt of ['rsa', 'ecc'] as const) made.set(kt, await provisionCloudAkTemplate(tpm, kt));
      rsaCert = issueCloudAkCertificate(dirs.dir, made.get('rsa')!, { cert: pki.caCert, key: pki.caKey });
      await writePlatformNv(tpm, CLOUD_AK_NV.rsa.certificate, rsaCert);
    });
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') for (const a of attestors) for (const l of a.log.raw) if (l.includes('errorId')) process.stderr.write(l);
  });
  after(async function () {
    this.timeout(60_000);
    for (const c of clients) c.close();
    for (const a of attestors) await a.stop().catch(() => undefined);
    await swtpm?.stop();
    await state?.dispose();
    dirs?.cleanup();
  });

  it('GetGCEEKSigningKey returns the key made from the NV template (PEM PKIX) and its certificate from NV; ECC without a certificate', async () => {
    const { client } = await start();
    const rsa = await client.getGCEEKSigningKey();
    assert.equal(spkiHex(pemKey(rsa.public)), toHex(publicToSpkiDer(made.get('rsa')!)));
    assert.equal(toHex(rsa.cert), toHex(rsaCert), 'the certificate exactly as written to NV 0x01c10000');
    const ecc = await client.getGCEEKSigningKey('ecc');
    const key = pemKey(ecc.public);
    assert.equal(key.asymmetricKeyType, 'ec');
    assert.equal(spkiHex(key), toHex(publicToSpkiDer(made.get('ecc')!)));
    assert.equal(ecc.cert.length, 0, 'no certificate in NV 0x01c10002');
  });

  it('SignGCEEK signs SHA-256(data): RSASSA-PKCS1-v1_5 and ECDSA (DER), verified with the returned keys', async () => {
    const { client } = await start();
    for (const keyType of ['rsa', 'ecc'] as const) {
      const key = pemKey((await client.getGCEEKSigningKey(keyType)).public);
      // 5000 bytes: more than one TPM2_Hash takes (a hash sequence).
      for (const data of [enc('foo'), new Uint8Array(0), new Uint8Array(1024).fill(7), new Uint8Array(5000).fill(9)]) {
        const { signed } = await client.signGCEEK({ data, keyType });
        assert.ok(verify('sha256', data, key, signed), `${keyType} signature over ${data.length} bytes verifies`);
      }
    }
    // The seed's request: data only (keyType "" = RSA).
    const { signed } = await client.signGCEEK({ data: enc('foo') });
    assert.ok(verify('sha256', enc('foo'), pemKey((await client.getGCEEKSigningKey()).public), signed));
  });

  it('refuses what a restricted attestation key must not sign: INVALID_ARGUMENT', async () => {
    const { client } = await start();
    const err = await expectStatus(client.signGCEEK({ data: Uint8Array.of(0xff, 0x54, 0x43, 0x47, 0x80, 0x18) }), S.INVALID_ARGUMENT);
    assert.match(err.details, /TPM_GENERATED_VALUE/);
    // Data the TPM would hash a KiB at a time for longer than a call should hold the queue.
    const big = await expectStatus(client.signGCEEK({ data: new Uint8Array(64 * 1024 + 1) }), S.INVALID_ARGUMENT);
    assert.match(big.details, /data is 65537 bytes; SignGCEEK signs at most 65536/);
    assert.ok((await client.signGCEEK({ data: new Uint8Array(64 * 1024).fill(0x41) })).signed.length > 0, '64 KiB is signed');
  });

  it('the public key is the same after an attestor restart, a TPM power cycle and a swtpm restart', async () => {
    const first = await start();
    const before = { rsa: spkiHex(pemKey((await first.client.getGCEEKSigningKey()).public)), ecc: spkiHex(pemKey((await first.client.getGCEEKSigningKey('ecc')).public)) };
    await first.att.stop();
    const second = await start();
    assert.equal(spkiHex(pemKey((await second.client.getGCEEKSigningKey()).public)), before.rsa);
    await swtpm.powerCycle({ orderly: false, startup: false });
    for (const kt of ['rsa', 'ecc'] as const) {
      const { signed } = await second.client.signGCEEK({ data: enc('after a power cycle'), keyType: kt });
      assert.ok(verify('sha256', enc('after a power cycle'), createPublicKey({ key: Buffer.from(publicToSpkiDer(made.get(kt)!)), format: 'der', type: 'spki' }), signed));
    }
    await second.att.stop();
    await swtpm.stop();
    swtpm = await startSwtpm({ state, transport: 'unix' });
    const third = await start();
    assert.equal(spkiHex(pemKey((await third.client.getGCEEKSigningKey()).public)), before.rsa);
    assert.equal(spkiHex(pemKey((await third.client.getGCEEKSigningKey('ecc')).public)), before.ecc);
    await third.att.stop();
  });

  describe('--auth k8s: SignGCEEK only for --allow-node-key identities', () => {
    let api: TokenReviewStandIn;
    let kpki: TestPki;
    let reviewerFile: string;
    before(async () => {
      kpki = new TestPki(dirs.dir, 'kube-ca');
      api = new TokenReviewStandIn(kpki.server('apiserver'));
      await api.start();
      reviewerFile = join(dirs.dir, 'attestor-token');
      writeFileSync(reviewerFile, api.reviewer());
    });
    after(async () => api?.stop());

    it('an allowed identity signs; another gets PERMISSION_DENIED for SignGCEEK but may read the public key', async () => {
      const { att } = await start({
        auth: 'k8s', kubeApi: api.url, kubeCa: kpki.caCert, kubeTokenFile: reviewerFile, nodeName: 'node-1', tokenCacheSeconds: 0,
        allowNodeKey: ['node-tools/workload'],
      });
      const token = (ns: string): string => api.issue({ namespace: ns, serviceAccount: 'workload', audiences: ['tpmds'], pod: { name: `${ns}-0`, node: 'node-1' } });
      const as = (ns: string): AttestorClient => {
        const t = token(ns);
        const c = new AttestorClient(att.running.address, grpc.credentials.createInsecure(), undefined, { bearerToken: () => t });
        clients.push(c);
        return c;
      };
      const allowed = as('node-tools');
      const other = as('team-b');
      const key = pemKey((await allowed.getGCEEKSigningKey()).public);
      assert.ok(verify('sha256', enc('x'), key, (await allowed.signGCEEK({ data: enc('x') })).signed));
      const denied = await expectStatus(other.signGCEEK({ data: enc('x') }), S.PERMISSION_DENIED);
      assert.match(denied.details, /--allow-node-key/);
      assert.equal(spkiHex(pemKey((await other.getGCEEKSigningKey()).public)), spkiHex(key), 'the public key is public');
      assert.match(att.metrics.render(), /tpmds_auth_failures_total\{reason="node_key_not_allowed"\} 1/);
      await att.stop();
    });

    it('without --allow-node-key nobody may sign', async () => {
      const { att } = await start({ auth: 'k8s', kubeApi: api.url, kubeCa: kpki.caCert, kubeTokenFile: reviewerFile, nodeName: 'node-1', tokenCacheSeconds: 0 });
      const t = api.issue({ namespace: 'node-tools', serviceAccount: 'workload', audiences: ['tpmds'], pod: { name: 'p', node: 'node-1' } });
      const c = new AttestorClient(att.running.address, grpc.credentials.createInsecure(), undefined, { bearerToken: () => t });
      clients.push(c);
      await expectStatus(c.signGCEEK({ data: enc('x') }), S.PERMISSION_DENIED);
      await att.stop();
    });
  });

  it('--auth mtls: --allow-node-key names certificate identities exactly', async () => {
    const mtls = new TestPki(dirs.dir, 'client-ca');
    const server = mtls.server('grpc-server');
    const signer = mtls.leaf('signer', '/CN=ignored', ['subjectAltName=URI:spiffe://example.org/ns/tools/sa/signer', 'extendedKeyUsage=clientAuth']);
    const other = mtls.leaf('builder', '/CN=builder', ['extendedKeyUsage=clientAuth']);
    const { att } = await start({ insecure: false, tlsCert: server.cert, tlsKey: server.key, clientCa: mtls.caCert, auth: 'mtls', allowNodeKey: ['spiffe://example.org/ns/tools/sa/signer'] });
    const as = (leaf: { keyPem: Buffer; certPem: Buffer }): AttestorClient => {
      const c = new AttestorClient(att.running.address, grpc.credentials.createSsl(mtls.caPem, leaf.keyPem, leaf.certPem), { 'grpc.ssl_target_name_override': 'localhost' });
      clients.push(c);
      return c;
    };
    const key = pemKey((await as(signer).getGCEEKSigningKey()).public);
    assert.ok(verify('sha256', enc('m'), key, (await as(signer).signGCEEK({ data: enc('m') })).signed));
    await expectStatus(as(other).signGCEEK({ data: enc('m') }), S.PERMISSION_DENIED);
    await att.stop();
  });

  describe('a TPM without the template (runs last: removes it)', () => {
    it('a TPM without the template: FAILED_PRECONDITION naming the NV index, for both RPCs', async () => {
      await withTpm(swtpm.address, async (tpm) => {
        for (const kt of ['rsa', 'ecc'] as const) await removePlatformNv(tpm, CLOUD_AK_NV[kt].template);
      });
      const { client } = await start();
      const e1 = await expectStatus(client.getGCEEKSigningKey(), S.FAILED_PRECONDITION);
      assert.equal(e1.details, 'this TPM has no cloud attestation-key template (NV 0x01c10001)');
      const e2 = await expectStatus(client.signGCEEK({ data: enc('x') }), S.FAILED_PRECONDITION);
      assert.equal(e2.details, 'this TPM has no cloud attestation-key template (NV 0x01c10001)');
      const e3 = await expectStatus(client.getGCEEKSigningKey('ecc'), S.FAILED_PRECONDITION);
      assert.equal(e3.details, 'this TPM has no cloud attestation-key template (NV 0x01c10003)');
      for (const a of attestors) await a.stop();
      const held = await withTpm(swtpm.address, (tpm) => tpm.getLoadedHandles());
      assert.deepEqual(held, [], 'every key, hash sequence and session was flushed');
    });
  });
});
