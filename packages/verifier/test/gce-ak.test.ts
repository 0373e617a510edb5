// Google Cloud's instance identity in real GCE certificates (go-tpm-tools test data, Apache-2.0:
// testdata/go-tpm-tools/certificates/), the cloud attestation key's checks with a software key and
// a throwaway CA, and the gce-ak step in runAll: skipped with a note in `run` when the target offers
// no key, failed when asked for by itself.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign as nodeSign, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { status } from '@grpc/grpc-js';
import { parseCertificate, pemToDers, verifyCertificateChain } from '@tpmds/tpm2-wire';
import { GceInstanceInfoError, decodeGceInstanceInfo, describeGceInstanceInfo, gceInstanceInfo, runAll, verifyGceAk, type HealthStatus, type VerifierRpc } from '../src/index.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const GTT = join(REPO, 'testdata/go-tpm-tools');
const cert = (path: string) => parseCertificate(pemToDers(readFileSync(join(GTT, path)))[0]!);
const der = (path: string) => pemToDers(readFileSync(join(GTT, path)));

describe('GCE instance identity (1.3.6.1.4.1.11129.2.1.21)', () => {
  it('decodes a real GCE EK certificate: zone, project, instance id (= its subject CN), name, security properties', () => {
    const ek = cert('certificates/pca_tpm_rsa_enc_cert.pem');
    assert.match(ek.subject, /CN=218557372616137117/);
    const info = gceInstanceInfo(ek);
    assert.deepEqual(info, {
      zone: 'us-central1-a',
      projectNumber: '117478743145',
      projectId: 'google.com:wuale-gcp-testing',
      instanceId: '218557372616137117',
      instanceName: 'cs-debug-pca',
      securityProperties: { securityVersion: '0', isProduction: true, other: { '[2]': true, '[3]': false, '[4]': false, '[5]': false } },
    });
    assert.equal(
      describeGceInstanceInfo(info!),
      'zone us-central1-a, project google.com:wuale-gcp-testing (117478743145), instance cs-debug-pca (218557372616137117), production, security version 0, [2]=true, [3]=false, [4]=false, [5]=false',
    );
  });

  it('decodes a real GCE AK (signing) certificate; instance ids above 2^53 stay exact', () => {
    const info = gceInstanceInfo(cert('certificates/uca_tpm_ecc_sign_cert.pem'));
    assert.equal(info?.instanceName, 'cs-debug');
    assert.equal(info?.instanceId, '5780156274199835632');
    assert.equal(info?.projectNumber, '117478743145');
  });

  it('the real AK certificate chains to Google\'s root through its intermediate (what --ak-roots/--ak-intermediates take)', async () => {
    const leaf = der('certificates/uca_tpm_ecc_sign_cert.pem')[0]!;
    const ok = await verifyCertificateChain(leaf, der('ca-certs/tpm_ek_root_1.cer'), der('ca-certs/tpm_ek_intermediate_3.crt'));
    assert.deepEqual(ok, { ok: true });
    assert.equal((await verifyCertificateChain(leaf, der('ca-certs/gcp_ek_ak_ca_root.crt'), der('ca-certs/tpm_ek_intermediate_3.crt'))).ok, false);
  });

  it('a certificate without the extension has none; a malformed one is an error naming the extension', () => {
    assert.equal(gceInstanceInfo(parseCertificate(der('ca-certs/tpm_ek_intermediate_3.crt')[0]!)), undefined);
    assert.throws(() => decodeGceInstanceInfo(Uint8Array.of(0x04, 0x00)), GceInstanceInfoError);
    assert.throws(() => decodeGceInstanceInfo(Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x05)), /zone is not a UTF8String/);
  });
});

describe('verifyGceAk', () => {
  let dir: string;
  let key: { publicKey: KeyObject; privateKey: KeyObject };
  let caPem: Uint8Array;
  let certDer: Uint8Array;
  const pem = (k: KeyObject) => new TextEncoder().encode(k.export({ format: 'pem', type: 'spki' }) as string);

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tpmds-gce-ak-'));
    key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const ossl = (...a: string[]) => execFileSync('openssl', a, { cwd: dir, stdio: 'pipe' });
    ossl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'ca.key');
    ossl('req', '-x509', '-new', '-key', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=ak-ca');
    writeFileSync(join(dir, 'ak.pub.pem'), pem(key.publicKey));
    const ext = readFileSync(join(GTT, 'certificates/pca_tpm_rsa_enc_cert.pem'));
    const gce = Buffer.from(parseCertificate(pemToDers(ext)[0]!).pkijs.extensions!.find((e) => e.extnID === '1.3.6.1.4.1.11129.2.1.21')!.extnValue.valueBlock.valueHexView).toString('hex');
    writeFileSync(join(dir, 'ext'), `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n1.3.6.1.4.1.11129.2.1.21=DER:${gce}\n`);
    ossl('x509', '-new', '-force_pubkey', 'ak.pub.pem', '-subj', '/CN=ak', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-extfile', 'ext', '-days', '2', '-outform', 'DER', '-out', 'ak.der');
    caPem = readFileSync(join(dir, 'ca.pem'));
    certDer = readFileSync(join(dir, 'ak.der'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const nonce = new Uint8Array(32).fill(3);
  const sig = () => new Uint8Array(nodeSign('sha256', nonce, { key: key.privateKey, dsaEncoding: 'der' }));

  it('passes: key, signature over the nonce, certificate for the key, chain, instance facts', async () => {
    const r = await verifyGceAk({ public: pem(key.publicKey), cert: certDer }, nonce, sig(), { keyType: 'ecc', roots: pemToDers(caPem), intermediates: [] });
    assert.ok(r.ok, JSON.stringify(r.checks, null, 1));
    assert.deepEqual(r.checks.map((c) => c.name), ['gceAk.public', 'gceAk.signature', 'gceAk.certificate', 'gceAk.certificate.key', 'gceAk.certificate.chain', 'gceAk.instance']);
    assert.equal(r.value?.instance?.instanceName, 'cs-debug-pca');
    assert.equal(r.value?.chainVerified, true);
  });

  it('fails a signature by another key, a certificate for another key, an unknown root; warns without roots', async () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const bad = await verifyGceAk({ public: pem(other.publicKey), cert: certDer }, nonce, sig(), { keyType: 'ecc', roots: [certDer], intermediates: [] });
    const failed = bad.checks.filter((c) => !c.ok).map((c) => c.name);
    assert.deepEqual(failed, ['gceAk.signature', 'gceAk.certificate.key', 'gceAk.certificate.chain']);
    const instance = bad.checks.find((c) => c.name === 'gceAk.instance');
    assert.equal(instance?.warning, true, 'unverified instance facts are a warning');
    // A certificate for another key that does chain: neither it nor its instance facts count as verified.
    const chainsButOtherKey = await verifyGceAk({ public: pem(other.publicKey), cert: certDer }, nonce, new Uint8Array(nodeSign('sha256', nonce, { key: other.privateKey, dsaEncoding: 'der' })), { keyType: 'ecc', roots: pemToDers(caPem), intermediates: [] });
    assert.deepEqual(chainsButOtherKey.checks.filter((c) => !c.ok).map((c) => c.name), ['gceAk.certificate.key']);
    assert.equal(chainsButOtherKey.value?.chainVerified, false);
    assert.equal(chainsButOtherKey.checks.find((c) => c.name === 'gceAk.instance')?.warning, true);
    const noRoots = await verifyGceAk({ public: pem(key.publicKey), cert: certDer }, nonce, sig(), { keyType: 'ecc', roots: [], intermediates: [] });
    assert.ok(noRoots.ok);
    assert.ok(noRoots.checks.find((c) => c.name === 'gceAk.certificate.chain')?.warning);
    const wrongType = await verifyGceAk({ public: pem(key.publicKey), cert: new Uint8Array(0) }, nonce, sig(), { keyType: 'rsa', roots: [], intermediates: [] });
    assert.deepEqual(wrongType.checks.filter((c) => !c.ok).map((c) => c.name), ['gceAk.keyType']);
    const noCert = await verifyGceAk({ public: pem(key.publicKey), cert: new Uint8Array(0) }, nonce, sig(), { keyType: 'ecc', roots: pemToDers(caPem), intermediates: [] });
    assert.deepEqual(noCert.checks.filter((c) => !c.ok).map((c) => c.name), ['gceAk.certificate'], 'roots given but no certificate');
  });

  it('runAll: a target without the key is skipped with a note in run, fails when the step is required; a target with one is verified', async () => {
    const rpcError = (code: number, details: string) => Object.assign(new Error(details), { code, details });
    const client = (over: Partial<VerifierRpc>): VerifierRpc => ({
      healthCheck: async () => 'SERVING' as HealthStatus,
      getEKCert: async () => { throw rpcError(status.UNIMPLEMENTED, 'x'); },
      getAK: async () => { throw rpcError(status.UNIMPLEMENTED, 'x'); },
      attest: async () => { throw rpcError(status.UNIMPLEMENTED, 'x'); },
      quote: async () => { throw rpcError(status.UNIMPLEMENTED, 'x'); },
      importBlob: async () => { throw rpcError(status.UNIMPLEMENTED, 'x'); },
      importSigningKey: async () => { throw rpcError(status.UNIMPLEMENTED, 'x'); },
      newKey: async () => { throw rpcError(status.UNIMPLEMENTED, 'x'); },
      sign: async () => { throw rpcError(status.UNIMPLEMENTED, 'x'); },
      ...over,
    });
    for (const code of [status.UNIMPLEMENTED, status.FAILED_PRECONDITION]) {
      const absent = client({ getGCEEKSigningKey: async () => { throw rpcError(code, 'this TPM has no cloud attestation-key template (NV 0x01c10001)'); }, signGCEEK: async () => ({ signed: new Uint8Array(0) }) });
      const run = await runAll(absent, { steps: ['gce-ak'] });
      assert.ok(run.ok, 'skipped with a note');
      assert.match(run.steps.at(-1)!.checks[0]!.detail, /offers no cloud attestation key .*: step skipped/);
      assert.deepEqual(run.warnings, ['gceAk.offered']);
      const required = await runAll(absent, { steps: ['gce-ak'], requireGceAk: true });
      assert.deepEqual(required.failed, ['gceAk.offered']);
    }
    const broken = await runAll(client({ getGCEEKSigningKey: async () => { throw rpcError(status.INTERNAL, 'boom'); }, signGCEEK: async () => ({ signed: new Uint8Array(0) }) }), { steps: ['gce-ak'] });
    assert.deepEqual(broken.failed, ['gceAk.rpc'], 'any other error fails');
    assert.equal(broken.steps.at(-1)!.checks[0]!.detail, 'GetGCEEKSigningKey failed: INTERNAL: boom');
    let sent: Uint8Array | undefined;
    const present = client({
      getGCEEKSigningKey: async () => ({ public: pem(key.publicKey), cert: certDer }),
      signGCEEK: async ({ data }) => {
        sent = data;
        return { signed: new Uint8Array(nodeSign('sha256', data, { key: key.privateKey, dsaEncoding: 'der' })) };
      },
    });
    const ok = await runAll(present, { steps: ['gce-ak'], keyType: 'ecc', akRoots: pemToDers(caPem) });
    assert.ok(ok.ok, JSON.stringify(ok.steps, null, 1));
    assert.equal(sent?.length, 32, 'a fresh 32-byte nonce');
    assert.equal(ok.facts.gceInstance?.source, 'gce-ak');
    assert.equal(ok.facts.gceInstance?.verified, true);
    assert.equal(ok.facts.gceAk?.certificate?.subject, 'CN=ak');
  });
});
