// End to end: `tpmds-verifier run` (and the step subcommands) as processes against a real
// `tpmds-attestor` process on swtpm, RSA and ECC, plaintext over a Unix socket and mTLS over TCP.
// The attestor serves a firmware event log whose events were extended into swtpm's PCRs, so the
// replay and the Secure Boot state are exercised too.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EFI_GLOBAL_VARIABLE_GUID, uefiVariableData, EV, TPM_ALG, buildEventLog, concatBytes, openTpm, toHex, utf8 } from '@tpmds/tpm2-wire';
import type { RunReport } from '../src/verify/index.js';
import { startSwtpm, type SwtpmInstance } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { TestPki } from '../../attestor/test/fixtures/pki.js';
import { CLOUD_AK_NV, issueCloudAkCertificate, provisionCloudAkTemplate, writePlatformNv } from '../../attestor/test/fixtures/cloud-ak.js';
import { TokenReviewStandIn } from '../../attestor/test/fixtures/tokenreview-standin.js';
import { runVerifier, startAttestorProcess, type AttestorProcess } from './fixtures/processes.js';

const sha = (alg: string, data: Uint8Array): Uint8Array => new Uint8Array(createHash(alg).update(data).digest());

/** Extends a small boot log (Secure Boot enabled, a separator, two IPL events) into the TPM and returns the log. */
async function measureBoot(tpmAddress: string): Promise<Uint8Array> {
  const secureBoot = uefiVariableData(EFI_GLOBAL_VARIABLE_GUID, 'SecureBoot', Uint8Array.of(1));
  const events = [
    { pcr: 7, type: EV.EV_EFI_VARIABLE_DRIVER_CONFIG, data: secureBoot },
    { pcr: 7, type: EV.EV_SEPARATOR, data: new Uint8Array(4) },
    { pcr: 8, type: EV.EV_IPL, data: utf8('root=/dev/vda1 ro') },
    { pcr: 9, type: EV.EV_IPL, data: utf8('/boot/initrd.img') },
  ];
  const tpm = await openTpm(tpmAddress);
  try {
    for (const e of events) await tpm.pcrExtend(e.pcr, [{ hashAlg: TPM_ALG.SHA1, digest: sha('sha1', e.data) }, { hashAlg: TPM_ALG.SHA256, digest: sha('sha256', e.data) }]);
  } finally {
    await tpm.close();
  }
  return buildEventLog(events, [TPM_ALG.SHA1, TPM_ALG.SHA256]);
}

/** The expected sha256 value of PCR 7 after `measureBoot`. */
function pcr7(): string {
  const secureBoot = uefiVariableData(EFI_GLOBAL_VARIABLE_GUID, 'SecureBoot', Uint8Array.of(1));
  let v: Uint8Array = new Uint8Array(32);
  for (const d of [sha('sha256', secureBoot), sha('sha256', new Uint8Array(4))]) v = sha('sha256', concatBytes(v, d));
  return toHex(v);
}

function failLines(stdout: string): string[] {
  return stdout.split('\n').filter((l) => /^\s+FAIL\s/.test(l));
}

describe('tpmds-verifier run against a tpmds-attestor on swtpm @swtpm', function () {
  this.timeout(180_000);
  let swtpm: SwtpmInstance;
  let attestor: AttestorProcess;
  let dir: string;
  let ekFlags: string[];

  before(async () => {
    swtpm = await startSwtpm();
    dir = mkdtempSync(join(tmpdir(), 'tpmds-verifier-run-'));
    writeFileSync(join(dir, 'binary_bios_measurements'), await measureBoot(swtpm.address));
    attestor = await startAttestorProcess([
      '--insecure', '--listen', `unix:${join(dir, 'grpc.sock')}`, '--tpm', swtpm.address, '--state-dir', join(dir, 'state'),
      '--health-listen', '127.0.0.1:0', '--event-log', join(dir, 'binary_bios_measurements'), '--log-level', 'info',
    ]);
    ekFlags = ['--ek-roots', swtpm.caRootPem, '--ek-intermediates', swtpm.caIntermediatePem];
  });
  after(async () => {
    await attestor?.stop();
    await swtpm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('rsa: every check passes (EK chain, AK, Attest, quotes + event log, imports, NewKey, Sign), exit 0', async () => {
    const r = await runVerifier(['run', '--target', attestor.address, '--insecure', ...ekFlags, '--key-type', 'rsa']);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}\n${attestor.log()}`);
    assert.deepEqual(failLines(r.stdout), []);
    assert.match(r.stdout, /^PASS: all \d+ checks passed \(warnings: gceAk\.offered\)$/m, 'no cloud attestation-key template on this swtpm: a note');
    for (const check of ['health', 'ek.certificate.chain', 'ak.certifyCreation', 'attest.secret', 'quote.sha1', 'quote.sha256', 'eventlog.replay',
      'importBlob.unsealed', 'importBlob.pcrPolicy', 'importBlob.pcrPolicyEnforced', 'importSigningKey.confirmation', 'newKey.certify', 'sign.signature']) {
      assert.match(r.stdout, new RegExp(`^  ok    ${check.replace(/\./g, '\\.')}\\s`, 'm'), `${check} is reported ok`);
    }
    assert.match(r.stdout, /eventlog\.secureBoot\s+Secure Boot enabled/);
  });

  it('ecc with --json: exactly one JSON document on stdout, every check ok, progress on stderr', async () => {
    const r = await runVerifier(['run', '--target', attestor.address, '--insecure', ...ekFlags, '--key-type', 'ecc', '--json', '--uid', 'ecc-pod', '--kid', 'k1']);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const report = JSON.parse(r.stdout) as RunReport;
    assert.equal(report.ok, true);
    assert.equal(report.keyType, 'ecc');
    assert.deepEqual([report.uid, report.kid, report.importKid], ['ecc-pod', 'k1', 'k1-import']);
    assert.deepEqual(report.steps.map((s) => s.step), ['health', 'ek', 'ak', 'attest', 'quote', 'import-blob', 'import-signing-key', 'new-key', 'sign', 'gce-ak']);
    assert.deepEqual(report.warnings, ['gceAk.offered'], 'this swtpm has no cloud attestation-key template: the step is skipped with a note');
    assert.deepEqual(report.steps.flatMap((s) => s.checks).filter((c) => !c.ok), []);
    assert.deepEqual(report.failed, []);
    assert.equal(report.facts.secureBoot, 'enabled');
    assert.equal(report.facts.pcrs?.['sha256']?.['7'], pcr7());
    assert.match(report.facts.ekCertificate?.issuer ?? '', /swtpm-localca/);
    assert.match(r.stderr, /^sign: ok$/m);
    assert.ok(!r.stdout.includes('INSECURE'), 'nothing but the document on stdout');
  });

  it('a wrong --expect-pcr fails with exit 1, naming the check and the values; the right one passes', async () => {
    const r = await runVerifier(['quote', '--target', attestor.address, '--insecure', '--expect-pcr', `7:${pcr7()}`, '--expect-pcr', `23:${'ff'.repeat(32)}`]);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.deepEqual(failLines(r.stdout).map((l) => l.trim().split(/\s+/)[1]), ['quote.expectPcr.sha256.23']);
    assert.match(r.stdout, /^  ok    quote\.expectPcr\.sha256\.7\s/m);
    assert.match(r.stdout, /^FAIL: 1 of \d+ checks failed:\n  quote\.expectPcr\.sha256\.23: sha256 PCR 23 is 0{64}; f{64} expected$/m);
  });

  it('usage errors exit 2 and name the flag', async () => {
    const cases: [string[], RegExp][] = [
      [['run', '--target', attestor.address, '--insecure', '--bogus'], /unknown flag --bogus/],
      [['run', '--insecure'], /--target is required/],
      [['run', '--target', attestor.address, '--insecure', '--ca', swtpm.caRootPem], /--ca and --insecure/],
      [['run', '--target', attestor.address, '--insecure', '--key-type', 'dsa'], /--key-type "dsa"/],
      [['run', '--target', attestor.address, '--insecure', '--expect-pcr', '7:abc'], /--expect-pcr "7:abc"/],
      [['run', '--target', attestor.address, '--insecure', '--ek-roots', join(dir, 'missing.pem')], /--ek-roots .*missing\.pem: cannot read/],
      [['ek', '--target', attestor.address, '--insecure', '--uid', 'x'], /unknown flag --uid/],
    ];
    for (const [args, message] of cases) {
      const r = await runVerifier(args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stdout, '');
    }
  });

  it('subcommands run what they need: sign makes and checks a key; new-key for the same uid/kid then fails with ALREADY_EXISTS', async () => {
    const sign = await runVerifier(['sign', '--target', attestor.address, '--insecure', '--uid', 'sub-pod', '--kid', 'sub-key', '--json']);
    assert.equal(sign.status, 0, sign.stdout + sign.stderr);
    assert.deepEqual((JSON.parse(sign.stdout) as RunReport).steps.map((s) => s.step), ['health', 'ak', 'new-key', 'sign']);
    const again = await runVerifier(['new-key', '--target', attestor.address, '--insecure', '--uid', 'sub-pod', '--kid', 'sub-key']);
    assert.equal(again.status, 1);
    assert.match(again.stdout, /FAIL {2}newKey\.rpc\s+NewKey failed: ALREADY_EXISTS/);
    const attest = await runVerifier(['attest', '--target', attestor.address, '--insecure', '--key-type', 'ecc', '--uid', 'sub-pod-ecc', ...ekFlags]);
    assert.equal(attest.status, 0, attest.stdout);
    assert.match(attest.stdout, /ok {4}attest\.secret/);
  });

  it('an unreachable target fails the health check with exit 1 and runs nothing else', async () => {
    const r = await runVerifier(['run', '--target', `unix:${join(dir, 'nobody.sock')}`, '--insecure']);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /FAIL {2}health\s+health check failed: UNAVAILABLE/);
    assert.match(r.stdout, /9 step\(s\) not run/);
  });
});

/** A throwaway P-256 PKI made with openssl: CA, a server certificate for localhost, a client certificate. */
function makePki(dir: string): void {
  const ossl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const key = (n: string): void => ossl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${n}.key`);
  key('ca');
  ossl('req', '-x509', '-new', '-key', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=tpmds test CA');
  for (const [n, ext] of [['server', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'], ['client', 'extendedKeyUsage=clientAuth\n']] as const) {
    key(n);
    ossl('req', '-new', '-key', `${n}.key`, '-out', `${n}.csr`, '-subj', `/CN=${n}`);
    writeFileSync(join(dir, `${n}.ext`), ext);
    ossl('x509', '-req', '-in', `${n}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${n}.pem`, '-days', '1', '-extfile', `${n}.ext`);
  }
}

describe('tpmds-verifier run over mTLS @swtpm', function () {
  this.timeout(180_000);
  let swtpm: SwtpmInstance;
  let attestor: AttestorProcess;
  let dir: string;

  before(async () => {
    swtpm = await startSwtpm();
    dir = mkdtempSync(join(tmpdir(), 'tpmds-verifier-tls-'));
    makePki(dir);
    attestor = await startAttestorProcess([
      '--listen', '127.0.0.1:0', '--tls-cert', join(dir, 'server.pem'), '--tls-key', join(dir, 'server.key'), '--client-ca', join(dir, 'ca.pem'),
      '--tpm', swtpm.address, '--state-dir', join(dir, 'state'), '--health-listen', '127.0.0.1:0', '--event-log', join(dir, 'none'), '--log-level', 'info',
    ]);
  });
  after(async () => {
    await attestor?.stop();
    await swtpm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('--ca with --client-cert/--client-key passes; without the client certificate the attestor is unreachable', async () => {
    const target = attestor.address.replace(/^(?:127\.0\.0\.1|0\.0\.0\.0)/, 'localhost');
    const tls = ['--ca', join(dir, 'ca.pem'), '--client-cert', join(dir, 'client.pem'), '--client-key', join(dir, 'client.key')];
    const noLog = await runVerifier(['quote', '--target', target, ...tls]);
    assert.equal(noLog.status, 1, 'no event log file: the quote step fails');
    assert.match(noLog.stdout, /^  FAIL  eventlog\s+the attestor sent no event log; quotes cannot be explained \(the attestor says: .*none: no such file/m);
    const ok = await runVerifier(['run', '--target', target, ...tls, '--allow-missing-eventlog', '--ek-roots', swtpm.caRootPem, '--ek-intermediates', swtpm.caIntermediatePem]);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /^  warn  eventlog\s/m, 'with --allow-missing-eventlog: a warning');
    const noClient = await runVerifier(['ek', '--target', target, '--ca', join(dir, 'ca.pem')]);
    assert.equal(noClient.status, 1);
    assert.match(noClient.stdout, /FAIL {2}health/);
    const half = await runVerifier(['ek', '--target', target, '--ca', join(dir, 'ca.pem'), '--client-cert', join(dir, 'client.pem')]);
    assert.equal(half.status, 2);
    assert.match(half.stderr, /--client-cert needs --client-key/);
  });
});

describe('tpmds-verifier run --token-file against an attestor with --auth k8s @swtpm', function () {
  this.timeout(180_000);
  let swtpm: SwtpmInstance;
  let attestor: AttestorProcess;
  let api: TokenReviewStandIn;
  let dir: string;
  let target: string;

  before(async () => {
    swtpm = await startSwtpm();
    dir = mkdtempSync(join(tmpdir(), 'tpmds-verifier-k8s-'));
    const pki = new TestPki(dir, 'kube-ca');
    api = new TokenReviewStandIn(pki.server('apiserver'));
    await api.start();
    writeFileSync(join(dir, 'attestor-token'), api.reviewer());
    writeFileSync(join(dir, 'pod-token'), api.issue({ namespace: 'team-a', serviceAccount: 'verifier', audiences: ['tpmds'], pod: { name: 'verify-1', node: 'node-1' } }) + '\n');
    attestor = await startAttestorProcess([
      '--insecure', '--listen', `unix:${join(dir, 'grpc.sock')}`, '--tpm', swtpm.address, '--state-dir', join(dir, 'state'),
      '--health-listen', '127.0.0.1:0', '--event-log', join(dir, 'none'), '--log-level', 'info',
      '--auth', 'k8s', '--kube-api', api.url, '--kube-ca', pki.caCert, '--kube-token-file', join(dir, 'attestor-token'), '--node-name', 'node-1',
    ]);
    target = attestor.address;
  });
  after(async () => {
    await attestor?.stop();
    await api?.stop();
    await swtpm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('with the pod token (--token-file or TPMDS_TOKEN_FILE) every check passes; without it the attestor says UNAUTHENTICATED', async () => {
    const ek = ['--ek-roots', swtpm.caRootPem, '--ek-intermediates', swtpm.caIntermediatePem];
    const ok = await runVerifier(['run', '--target', target, '--insecure', '--token-file', join(dir, 'pod-token'), '--key-type', 'ecc', '--allow-missing-eventlog', ...ek]);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    const viaEnv = await runVerifier(['sign', '--target', target, '--insecure'], { TPMDS_TOKEN_FILE: join(dir, 'pod-token') });
    assert.equal(viaEnv.status, 0, viaEnv.stdout + viaEnv.stderr);
    assert.match(attestor.log(), /"identity":"system:serviceaccount:team-a:verifier"/);
    assert.ok(!attestor.log().includes(readFileSync(join(dir, 'pod-token'), 'utf8').trim()), 'the token is never logged');
    const anonymous = await runVerifier(['ek', '--target', target, '--insecure', ...ek]);
    assert.equal(anonymous.status, 1);
    assert.match(anonymous.stdout, /UNAUTHENTICATED/);
    const missing = await runVerifier(['ek', '--target', target, '--insecure', '--token-file', join(dir, 'absent')]);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /--token-file .*absent: cannot read \(no such file\)/);
  });
});

describe('tpmds-verifier gce-ak against an attestor on a swtpm provisioned like a GCE vTPM @swtpm', function () {
  this.timeout(180_000);
  let swtpm: SwtpmInstance;
  let attestor: AttestorProcess;
  let dir: string;
  let pki: TestPki;

  before(async () => {
    swtpm = await startSwtpm();
    dir = mkdtempSync(join(tmpdir(), 'tpmds-verifier-gce-'));
    pki = new TestPki(dir, 'ak-ca');
    const tpm = await openTpm(swtpm.address);
    try {
      const rsa = await provisionCloudAkTemplate(tpm, 'rsa');
      await provisionCloudAkTemplate(tpm, 'ecc');
      await writePlatformNv(tpm, CLOUD_AK_NV.rsa.certificate, issueCloudAkCertificate(dir, rsa, { cert: pki.caCert, key: pki.caKey }));
    } finally {
      await tpm.close();
    }
    attestor = await startAttestorProcess([
      '--insecure', '--listen', `unix:${join(dir, 'grpc.sock')}`, '--tpm', swtpm.address, '--state-dir', join(dir, 'state'),
      '--health-listen', '127.0.0.1:0', '--event-log', join(dir, 'none'), '--log-level', 'info',
    ]);
  });
  after(async () => {
    await attestor?.stop();
    await swtpm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('gce-ak: the signature over a fresh nonce verifies, the certificate chains to --ak-roots, the instance facts are printed', async () => {
    const r = await runVerifier(['gce-ak', '--target', attestor.address, '--insecure', '--ak-roots', pki.caCert]);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}\n${attestor.log()}`);
    for (const check of ['gceAk.public', 'gceAk.signature', 'gceAk.certificate', 'gceAk.certificate.key', 'gceAk.certificate.chain']) {
      assert.match(r.stdout, new RegExp(`^  ok    ${check.replace(/\./g, '\\.')}\\s`, 'm'), `${check} is reported ok`);
    }
    assert.match(r.stdout, /^  ok    gceAk\.instance\s+GCE instance: zone us-central1-a, project google\.com:wuale-gcp-testing \(117478743145\), instance cs-debug-pca \(218557372616137117\)/m);
    const wrongRoot = await runVerifier(['gce-ak', '--target', attestor.address, '--insecure', '--ak-roots', swtpm.caRootPem]);
    assert.equal(wrongRoot.status, 1);
    assert.deepEqual(failLines(wrongRoot.stdout).map((l) => l.trim().split(/\s+/)[1]), ['gceAk.certificate.chain']);
  });

  it('run --json --key-type ecc: the ECC key signs; it has no certificate (a warning); the report carries the key', async () => {
    const r = await runVerifier(['run', '--target', attestor.address, '--insecure', '--key-type', 'ecc', '--json', '--allow-missing-eventlog', '--ek-roots', swtpm.caRootPem, '--ek-intermediates', swtpm.caIntermediatePem]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout) as RunReport;
    const step = report.steps.find((s) => s.step === 'gce-ak')!;
    assert.deepEqual(step.checks.map((c) => [c.name, c.ok]), [['gceAk.public', true], ['gceAk.signature', true], ['gceAk.certificate', true]]);
    assert.equal(report.facts.gceAk?.keyType, 'ecc');
    assert.match(report.facts.gceAk?.spkiSha256 ?? '', /^[0-9a-f]{64}$/);
  });

  it('gce-ak against a target without the template fails (exit 1): FAILED_PRECONDITION naming the NV index', async () => {
    const plain = await startSwtpm();
    const other = await startAttestorProcess([
      '--insecure', '--listen', `unix:${join(dir, 'plain.sock')}`, '--tpm', plain.address, '--state-dir', join(dir, 'plain-state'),
      '--health-listen', '127.0.0.1:0', '--event-log', join(dir, 'none'), '--log-level', 'info',
    ]);
    try {
      const r = await runVerifier(['gce-ak', '--target', other.address, '--insecure']);
      assert.equal(r.status, 1, r.stdout);
      assert.match(r.stdout, /FAIL {2}gceAk\.offered\s+the target offers no cloud attestation key \(FAILED_PRECONDITION: this TPM has no cloud attestation-key template \(NV 0x01c10001\)\)/);
    } finally {
      await other.stop();
      await plain.stop();
    }
  });
});
