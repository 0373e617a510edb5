// EAR end to end: `tpmds-verifier run --ear-out` against a real `tpmds-attestor` on swtpm (clean run,
// no EK roots, a PCR off its reference value), the verifier's tamper cases on real RPC answers,
// and interop with Veraison's own `ear` crate 0.6.0 (interop/rust-ear): it verifies our tokens and
// reads them as we do, and it signs tokens `ear verify` accepts (and refuses with a wrong key).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { EFI_GLOBAL_VARIABLE_GUID, uefiVariableData, EV, TPM_ALG, buildEventLog, concatBytes, openTpm, pemToDers, toHex, utf8 } from '@tpmds/tpm2-wire';
import { AttestorClient } from '@tpmds/protocol/proto';
import {
  DEFAULT_POLICY, appraisalInputFromReport, appraise, earClaims, parsePolicy, signEar, type RunOptions, type RunReport, type VerifierRpc,
} from '../src/index.js';
import { runAll } from '../src/verify/index.js';
import { startSwtpm, type SwtpmInstance } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { REPO, runProcess, runVerifier, startAttestorProcess, type AttestorProcess } from './fixtures/processes.js';

const INTEROP_BUILD = join(REPO, 'interop/rust-ear/build.sh');
const sha256 = (data: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(data).digest());
const SECURE_BOOT_ON = uefiVariableData(EFI_GLOBAL_VARIABLE_GUID, 'SecureBoot', Uint8Array.of(1));
const BOOT_EVENTS = [
  { pcr: 7, type: EV.EV_EFI_VARIABLE_DRIVER_CONFIG, data: SECURE_BOOT_ON },
  { pcr: 7, type: EV.EV_SEPARATOR, data: new Uint8Array(4) },
  { pcr: 8, type: EV.EV_IPL, data: utf8('root=/dev/vda1 ro') },
];

/** Extends the boot events into swtpm's PCRs and returns their event log. */
async function measureBoot(tpmAddress: string): Promise<Uint8Array> {
  const tpm = await openTpm(tpmAddress);
  try {
    for (const e of BOOT_EVENTS) {
      await tpm.pcrExtend(e.pcr, [{ hashAlg: TPM_ALG.SHA1, digest: new Uint8Array(createHash('sha1').update(e.data).digest()) }, { hashAlg: TPM_ALG.SHA256, digest: sha256(e.data) }]);
    }
  } finally {
    await tpm.close();
  }
  return buildEventLog(BOOT_EVENTS, [TPM_ALG.SHA1, TPM_ALG.SHA256]);
}

/** The sha256 value of `pcr` after the boot events (PCRs start at zero). */
function expectedPcr(pcr: number): string {
  let v: Uint8Array = new Uint8Array(32);
  for (const e of BOOT_EVENTS.filter((x) => x.pcr === pcr)) v = sha256(concatBytes(v, sha256(e.data)));
  return toHex(v);
}

/** A base64 field of a go-attestation JSON document with its last byte flipped. */
function flipJsonField(json: Uint8Array, field: string): Uint8Array {
  const doc = JSON.parse(Buffer.from(json).toString('utf8')) as Record<string, string>;
  const bytes = Buffer.from(doc[field]!, 'base64');
  bytes[bytes.length - 1]! ^= 1;
  return utf8(JSON.stringify({ ...doc, [field]: bytes.toString('base64') }));
}

const flipped = (b: Uint8Array): Uint8Array => {
  const c = new Uint8Array(b);
  c[c.length - 1]! ^= 1;
  return c;
};

interface EarView {
  ok: boolean;
  status: string;
  nonce?: string[];
  submods: Record<string, { status: string; vector: Record<string, number>; policyIds: string[]; attesterClaims?: Record<string, unknown>; verifierClaims?: Record<string, unknown> }>;
}

describe('EAR from tpmds-verifier run against a tpmds-attestor on swtpm @swtpm', function () {
  this.timeout(300_000);
  let swtpm: SwtpmInstance;
  let attestor: AttestorProcess;
  let dir: string;
  let ekFlags: string[];
  const file = (name: string) => join(dir, name);
  const tokens: Record<string, { token: string; alg: 'ES256' | 'EdDSA'; pub: string; status: string }> = {};

  before(async () => {
    swtpm = await startSwtpm();
    dir = mkdtempSync(join(tmpdir(), 'tpmds-ear-run-'));
    writeFileSync(file('binary_bios_measurements'), await measureBoot(swtpm.address));
    attestor = await startAttestorProcess([
      '--insecure', '--listen', `unix:${file('grpc.sock')}`, '--tpm', swtpm.address, '--state-dir', file('state'),
      '--health-listen', '127.0.0.1:0', '--event-log', file('binary_bios_measurements'), '--log-level', 'info',
    ]);
    ekFlags = ['--ek-roots', swtpm.caRootPem, '--ek-intermediates', swtpm.caIntermediatePem];
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const ed = generateKeyPairSync('ed25519');
    writeFileSync(file('ec.pem'), ec.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(file('ec.pub.pem'), ec.publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(file('ec.pub.jwk'), JSON.stringify(ec.publicKey.export({ format: 'jwk' })));
    writeFileSync(file('ed.pem'), ed.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(file('ed.pub.pem'), ed.publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(file('ed.pub.jwk'), JSON.stringify(ed.publicKey.export({ format: 'jwk' })));
    const events = { sha256: { 7: BOOT_EVENTS.filter((e) => e.pcr === 7).map((e) => toHex(sha256(e.data))) } };
    const policy = (pcr8: string) => JSON.stringify({ ...DEFAULT_POLICY, id: 'tpmds-test-policy:1', referenceValues: { pcrs: { sha256: { 7: expectedPcr(7), 8: pcr8 } }, events } }, null, 2);
    writeFileSync(file('policy.json'), policy(expectedPcr(8)));
    writeFileSync(file('policy-pcr8-off.json'), policy('ee'.repeat(32)));
  });
  after(async () => {
    await attestor?.stop();
    await swtpm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function earVerify(token: string, pub: string): Promise<EarView> {
    const r = await runVerifier(['ear', 'verify', token, '--key', pub, '--json']);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as EarView;
  }

  it('a clean run with the policy\'s reference values: an ES256 EAR, affirming on every claim the policy sets; the --json report carries its claims', async () => {
    const r = await runVerifier(['run', '--target', attestor.address, '--insecure', ...ekFlags, '--key-type', 'ecc', '--json', '--ear-out', file('clean.jwt'), '--ear-key', file('ec.pem'), '--policy', file('policy.json')]);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}\n${attestor.log()}`);
    const report = JSON.parse(r.stdout) as RunReport & { ear: { file: string; alg: string; claims: { eat_nonce: string; submods: Record<string, unknown> } } };
    assert.equal(report.ear.alg, 'ES256');
    const v = await earVerify(file('clean.jwt'), file('ec.pub.pem'));
    assert.equal(v.status, 'affirming');
    const name = `tpm:${report.facts.ekName}`;
    const s = v.submods[name]!;
    assert.deepEqual(s.vector, { 'instance-identity': 2, configuration: 2, executables: 2, hardware: 2, 'storage-opaque': 2 });
    assert.deepEqual(s.policyIds, ['tpmds-test-policy:1']);
    assert.deepEqual(v.nonce, [Buffer.from(report.quoteNonce!, 'hex').toString('base64url')]);
    assert.equal(report.ear.claims.eat_nonce, v.nonce![0]);
    assert.deepEqual(report.ear.claims.submods[name], (JSON.parse(Buffer.from(readFileSync(file('clean.jwt'), 'utf8').split('.')[1]!, 'base64url').toString()) as { submods: Record<string, unknown> }).submods[name]);
    const a = s.attesterClaims!;
    assert.equal(a['tpm_ek_name'], report.facts.ekName);
    assert.equal(a['tpm_ak_name'], report.facts.akName);
    assert.equal(a['tpm_secure_boot'], 'enabled');
    assert.deepEqual(report.facts.eventDigests!['sha256']!['8'], [toHex(sha256(BOOT_EVENTS[2]!.data))]);
    // Only PCRs whose events replay to a verified quote: the ones the log extends, nothing else.
    assert.deepEqual(Object.keys(report.facts.eventDigests!['sha256']!).sort(), [...new Set(BOOT_EVENTS.map((e) => String(e.pcr)))].sort());
    // tpm_pcr_digests is the quote's own pcrDigest.
    for (const bank of ['sha1', 'sha256']) {
      const quoteDetail = report.steps.find((x) => x.step === 'quote')!.checks.find((c) => c.name === `quote.${bank}`)!.detail;
      assert.match(quoteDetail, new RegExp(`pcrDigest ${(a['tpm_pcr_digests'] as Record<string, string>)[bank]}$`), bank);
    }
    tokens['clean'] = { token: file('clean.jwt'), alg: 'ES256', pub: 'ec.pub', status: 'affirming' };
  });

  it('without EK roots (Ed25519 key, built-in policy, --ear-submod): warning, hardware unsafe_hw', async () => {
    const r = await runVerifier(['run', '--target', attestor.address, '--insecure', '--key-type', 'ecc', '--ear-out', file('noroots.jwt'), '--ear-key', file('ed.pem'), '--ear-submod', 'node-a']);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^EAR: warning \(node-a, policy tpmds-policy:default:1, EdDSA\) written to /m);
    assert.match(r.stdout, /^ {2}hardware {10} 32 {2}unsafe_hw/m);
    const v = await earVerify(file('noroots.jwt'), file('ed.pub.pem'));
    assert.equal(v.status, 'warning');
    assert.deepEqual(Object.keys(v.submods), ['node-a']);
    assert.equal(v.submods['node-a']!.vector['hardware'], 32);
    assert.equal(v.submods['node-a']!.vector['executables'], undefined, 'no reference values: executables not claimed');
    tokens['noroots'] = { token: file('noroots.jwt'), alg: 'EdDSA', pub: 'ed.pub', status: 'warning' };
  });

  it('a PCR that differs from the policy\'s reference value: executables contraindicated, naming the check (the run itself passes)', async () => {
    const r = await runVerifier(['run', '--target', attestor.address, '--insecure', ...ekFlags, '--key-type', 'ecc', '--ear-out', file('pcr8.jwt'), '--ear-key', file('ec.pem'), '--policy', file('policy-pcr8-off.json')]);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^EAR: contraindicated /m);
    assert.match(r.stdout, /^ {2}executables: policy\.pcr\.sha256\.8$/m);
    const v = await earVerify(file('pcr8.jwt'), file('ec.pub.pem'));
    const s = Object.values(v.submods)[0]!;
    assert.equal(v.status, 'contraindicated');
    assert.equal(s.vector['executables'], 96);
    assert.deepEqual(s.verifierClaims!['tpmds_checks_failed'], ['policy.pcr.sha256.8']);
    tokens['pcr8'] = { token: file('pcr8.jwt'), alg: 'ES256', pub: 'ec.pub', status: 'contraindicated' };
  });

  // The verifier's tamper cases, on real answers of the attestor altered in flight.
  const TAMPER: readonly { what: string; alter?: (c: VerifierRpc) => Partial<VerifierRpc>; opts?: (roots: RunOptions) => RunOptions; claim: string; value: number; check: string }[] = [
    { what: 'EK chain without its intermediate', opts: (o) => ({ ...o, ekIntermediates: [] }), claim: 'hardware', value: 96, check: 'ek.certificate.chain' },
    { what: 'AK CertifyCreation signature flipped', alter: (c) => ({ getAK: async (r, o) => ({ ak: flipJsonField((await c.getAK(r, o)).ak, 'CreateSignature') }) }), claim: 'instance-identity', value: 99, check: 'ak.certifyCreation' },
    { what: 'activated secret altered', alter: (c) => ({ attest: async (r, o) => ({ secret: flipped((await c.attest(r, o)).secret) }) }), claim: 'hardware', value: 99, check: 'attest.secret' },
    { what: 'quote made for another nonce', alter: (c) => ({ quote: (r, o) => c.quote({ ...r, nonce: new Uint8Array(randomBytes(32)) }, o) }), claim: 'executables', value: 99, check: 'quote.sha256' },
    { what: 'unsealed blob altered', alter: (c) => ({ importBlob: async (r, o) => ({ decryptedKey: flipped((await c.importBlob(r, o)).decryptedKey) }) }), claim: 'storage-opaque', value: 96, check: 'importBlob.unsealed' },
    { what: 'imported key confirmation altered', alter: (c) => ({ importSigningKey: async (r, o) => ({ confirmation: flipped((await c.importSigningKey(r, o)).confirmation) }) }), claim: 'storage-opaque', value: 96, check: 'importSigningKey.confirmation' },
    { what: 'new key certification flipped', alter: (c) => ({ newKey: async (r, o) => { const k = await c.newKey(r, o); return { ...k, keyCertification: flipJsonField(k.keyCertification, 'CreateSignature') }; } }), claim: 'storage-opaque', value: 96, check: 'newKey.certify' },
    { what: 'signature flipped', alter: (c) => ({ sign: async (r, o) => ({ signed: flipped((await c.sign(r, o)).signed) }) }), claim: 'storage-opaque', value: 96, check: 'sign.signature' },
  ];
  for (const t of TAMPER) {
    it(`tamper: ${t.what} → contraindicated, ${t.claim} ${t.value} (${t.check})`, async () => {
      const client = new AttestorClient(attestor.address, grpc.credentials.createInsecure());
      try {
        const methods = ['healthCheck', 'getEKCert', 'getAK', 'attest', 'quote', 'importBlob', 'importSigningKey', 'newKey', 'sign'] as const;
        const real = Object.fromEntries(methods.map((m) => [m, (client[m] as (...a: unknown[]) => unknown).bind(client)])) as unknown as VerifierRpc;
        const altered: VerifierRpc = { ...real, ...(t.alter?.(real) ?? {}) };
        const roots = pemToDers(new Uint8Array(readFileSync(swtpm.caRootPem)));
        const inter = pemToDers(new Uint8Array(readFileSync(swtpm.caIntermediatePem)));
        const base: RunOptions = { keyType: 'ecc', ekRoots: roots, ekIntermediates: inter };
        const report = await runAll(altered, t.opts ? t.opts(base) : base);
        assert.ok(report.failed.includes(t.check), `${t.check} failed: ${report.failed.join(', ')}`);
        const policy = parsePolicy(readFileSync(file('policy.json'), 'utf8'));
        const a = appraise(appraisalInputFromReport(report), policy);
        assert.equal(a.status, 'contraindicated');
        assert.equal(a.vector[t.claim as 'hardware']?.value, t.value, JSON.stringify(a.vector));
        assert.ok(a.vector[t.claim as 'hardware']!.failedChecks.includes(t.check));
        if (t.check === 'quote.sha256') {
          // Signed like `run` does, for the interop check below.
          const token = await signEar(earClaims(report, a, { build: 'tpmds-verifier test' }), createPrivateKey(readFileSync(file('ec.pem'))), 'ES256');
          writeFileSync(file('tampered.jwt'), token);
          tokens['tampered'] = { token: file('tampered.jwt'), alg: 'ES256', pub: 'ec.pub', status: 'contraindicated' };
        }
      } finally {
        client.close();
      }
    });
  }

  describe('interop with Veraison\'s ear crate 0.6.0 (interop/rust-ear)', function () {
    this.timeout(1_200_000);
    let program: string;

    before(async function () {
      const built = await new Promise<{ code: number; stdout: string; stderr: string }>((res) => {
        execFile('bash', [INTEROP_BUILD], { cwd: REPO, maxBuffer: 16 << 20 }, (err, stdout, stderr) => res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
      });
      if (built.code === 3) {
        process.stderr.write(`      ${built.stderr.trim()}\n`);
        this.skip();
      }
      assert.equal(built.code, 0, `interop/rust-ear/build.sh failed:\n${built.stderr}`);
      program = built.stdout.trim();
    });

    const rust = (args: string[]) => runProcess(program, args);

    it('verifies the tokens tpmds-verifier wrote (clean → affirming, no roots → warning, PCR off and tampered → contraindicated) and reads them as `ear verify` does', async function () {
      assert.deepEqual(Object.keys(tokens).sort(), ['clean', 'noroots', 'pcr8', 'tampered'], 'the runs above made their tokens');
      for (const [what, t] of Object.entries(tokens)) {
        const r = await rust(['verify', t.token, file(`${t.pub}.jwk`), t.alg]);
        assert.equal(r.status, 0, `${what}: ${r.stderr}`);
        const theirs = JSON.parse(r.stdout) as { eat_profile: string; eat_nonce: string | null; worst_submod_status: string; submods: Record<string, { ear_status: string; ear_trustworthiness_vector: Record<string, number>; ear_appraisal_policy_ids: string[]; ear_attester_claims: Record<string, unknown>; ear_verifier_claims: Record<string, unknown> }> };
        const ours = await earVerify(t.token, file(`${t.pub}.pem`));
        assert.equal(theirs.eat_profile, 'tag:ietf.org,2026:rats/ear#04');
        assert.equal(theirs.worst_submod_status, t.status, what);
        assert.equal(ours.status, t.status, what);
        assert.deepEqual(theirs.eat_nonce === null ? undefined : [theirs.eat_nonce], ours.nonce, `${what}: nonce`);
        assert.deepEqual(Object.keys(theirs.submods), Object.keys(ours.submods));
        for (const [name, s] of Object.entries(theirs.submods)) {
          const o = ours.submods[name]!;
          assert.equal(s.ear_status, o.status, `${what} ${name}: status`);
          assert.deepEqual(s.ear_trustworthiness_vector, o.vector, `${what} ${name}: vector`);
          assert.deepEqual(s.ear_appraisal_policy_ids, o.policyIds);
          assert.deepEqual(s.ear_attester_claims, o.attesterClaims);
          assert.deepEqual(s.ear_verifier_claims, o.verifierClaims);
        }
      }
      const wrong = await rust(['verify', tokens['clean']!.token, file('ed.pub.jwk'), 'EdDSA']);
      assert.notEqual(wrong.status, 0, 'the crate refuses our token with another key');
    });

    it('signs tokens (ES256 and EdDSA) that `ear verify` accepts with its key and refuses with another', async () => {
      const nonce = randomBytes(32).toString('base64url');
      for (const [alg, key, other] of [['ES256', 'ec', 'ed'], ['EdDSA', 'ed', 'ec']] as const) {
        const made = await rust(['sign', file(`${key}.pem`), alg, 'tpm:rust', nonce]);
        assert.equal(made.status, 0, made.stderr);
        writeFileSync(file(`rust-${alg}.jwt`), made.stdout);
        const v = await earVerify(file(`rust-${alg}.jwt`), file(`${key}.pub.pem`));
        assert.equal(v.status, 'affirming');
        assert.deepEqual(v.nonce, [nonce]);
        assert.deepEqual(v.submods['tpm:rust']!.vector, { 'instance-identity': 2, hardware: 2 });
        const refused = await runVerifier(['ear', 'verify', file(`rust-${alg}.jwt`), '--key', file(`${other}.pub.pem`)]);
        assert.equal(refused.status, 1);
        assert.match(refused.stderr, /but the key is for/);
        const sameType = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey : generateKeyPairSync('ed25519').publicKey;
        writeFileSync(file('stranger.pub.pem'), sameType.export({ type: 'spki', format: 'pem' }));
        const stranger = await runVerifier(['ear', 'verify', file(`rust-${alg}.jwt`), '--key', file('stranger.pub.pem')]);
        assert.equal(stranger.status, 1);
        assert.match(stranger.stderr, /the signature does not verify with this key/);
      }
    });
  });
});
