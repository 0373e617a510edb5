// EAR results without a TPM: the appraisal policy (format, rules, reference values, the default
// policy on each tamper case's failed checks), EAR claims, signing and verification (malformed
// tokens, wrong keys, a wrong profile, expiry, --max-age, Veraison's pre-draft spelling), and the
// CLI's `ear verify` and `run --ear-*` usage errors.
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompactSign } from 'jose';
import { runCli } from '../src/cli/cli.js';
import {
  DEFAULT_POLICY, EAR_PROFILE, EAR_PROFILE_PRE_DRAFT, EarError, PolicyError, appraisalInputFromReport, appraise, earClaims,
  parsePolicy, signEar, signingKeyFromPem, verificationKeyFromPem, verifyEar, type AppraisalCheck, type RunReport,
} from '../src/index.js';
import { matchesPattern } from '../src/ear/policy.js';

const PCR7 = 'a'.repeat(64);
const PCR8 = 'b'.repeat(64);

/** A run report as a clean run against swtpm makes it (every check the steps name, all passing). */
function cleanReport(): RunReport {
  const checks: Record<string, string[]> = {
    health: ['health'],
    ek: ['ek.keyType', 'ek.certificate', 'ek.certificate.key', 'ek.certificate.chain'],
    ak: ['ak.keyType', 'ak.certifyCreation', 'ak.attributes'],
    attest: ['attest.secret'],
    quote: ['quote.sha1', 'quote.sha256', 'eventlog.parse', 'eventlog.replay', 'eventlog.secureBoot'],
    'import-blob': ['importBlob.unsealed', 'importBlob.pcrPolicy', 'importBlob.pcrPolicyEnforced'],
    'import-signing-key': ['importSigningKey.confirmation'],
    'new-key': ['newKey.keyType', 'newKey.certify', 'newKey.publicKey', 'newKey.attributes'],
    sign: ['sign.signature'],
  };
  const pcrs: Record<string, string> = {};
  for (let i = 0; i < 24; i++) pcrs[String(i)] = '0'.repeat(64);
  pcrs['7'] = PCR7;
  pcrs['8'] = PCR8;
  return {
    ok: true, uid: 'u', kid: 'k', importKid: 'k-import', keyType: 'ecc', failed: [], warnings: [],
    quoteNonce: '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff',
    steps: Object.entries(checks).map(([step, names]) => ({ step: step as RunReport['steps'][number]['step'], title: step, ok: true, checks: names.map((name) => ({ name, ok: true, detail: 'ok' })) })),
    facts: { ekName: '000b' + '11'.repeat(32), akName: '000b' + '22'.repeat(32), pcrs: { sha256: pcrs }, secureBoot: 'enabled', eventLogEvents: 4 },
  };
}

/** The report with `name` failed (or warned); failed steps' dependants marked not run. */
function withCheck(report: RunReport, name: string, how: 'fail' | 'warn', notRun: string[] = []): RunReport {
  const r = structuredClone(report);
  for (const s of r.steps) {
    for (const c of s.checks) if (c.name === name) Object.assign(c, how === 'fail' ? { ok: false } : { warning: true });
    if (notRun.includes(s.step)) {
      s.skipped = 'not run: an earlier step failed';
      s.checks = [];
    }
    s.ok = !s.skipped && s.checks.every((c) => c.ok);
  }
  r.failed = r.steps.flatMap((s) => [...(s.skipped ? [`${s.step} (not run)`] : []), ...s.checks.filter((c) => !c.ok).map((c) => c.name)]);
  r.warnings = r.steps.flatMap((s) => s.checks.filter((c) => c.ok && c.warning).map((c) => c.name));
  r.ok = r.failed.length === 0;
  return r;
}

const REFERENCE_POLICY = parsePolicy(JSON.stringify({ ...DEFAULT_POLICY, id: 'test-policy', referenceValues: { pcrs: { sha256: { 7: PCR7, 8: [PCR7, PCR8] } } } }));

function vectorOf(report: RunReport, policy = REFERENCE_POLICY): Record<string, number> {
  return Object.fromEntries(Object.entries(appraise(appraisalInputFromReport(report), policy).vector).map(([k, v]) => [k, v.value]));
}

describe('ear: appraisal policy', () => {
  it('a clean run with matching reference values is affirming on every claim the policy sets', () => {
    const a = appraise(appraisalInputFromReport(cleanReport()), REFERENCE_POLICY);
    assert.equal(a.status, 'affirming');
    assert.deepEqual(vectorOf(cleanReport()), { 'instance-identity': 2, configuration: 2, executables: 2, hardware: 2, 'storage-opaque': 2 });
    assert.deepEqual(a.referenceChecks.map((c) => [c.name, c.ok]), [['policy.pcr.sha256.7', true], ['policy.pcr.sha256.8', true]]);
    assert.equal(a.policyId, 'test-policy');
  });

  it('the built-in policy without reference values does not claim executables', () => {
    const a = appraise(appraisalInputFromReport(cleanReport()));
    assert.equal(a.status, 'affirming');
    assert.equal(a.vector.executables, undefined);
    assert.equal(a.policyId, 'tpmds-policy:default:1');
  });

  it('missing EK roots (chain not checked) is a warning on hardware', () => {
    const a = appraise(appraisalInputFromReport(withCheck(cleanReport(), 'ek.certificate.chain', 'warn')), REFERENCE_POLICY);
    assert.equal(a.status, 'warning');
    assert.equal(a.vector.hardware?.value, 32);
    assert.equal(a.vector['instance-identity']?.value, 2);
  });

  it('a PCR that differs from its reference value makes executables contraindicated, naming the check', () => {
    const r = cleanReport();
    r.facts.pcrs!['sha256']!['7'] = 'c'.repeat(64);
    const a = appraise(appraisalInputFromReport(r), REFERENCE_POLICY);
    assert.equal(a.status, 'contraindicated');
    assert.equal(a.vector.executables?.value, 96);
    assert.deepEqual(a.vector.executables?.failedChecks, ['policy.pcr.sha256.7']);
    assert.match(a.referenceChecks[0]!.detail!, /sha256 PCR 7 is c{64}; reference value a{64}/);
  });

  it('event-log reference values: every measured event of the PCR must have an allowed digest', () => {
    const policy = parsePolicy(JSON.stringify({ ...DEFAULT_POLICY, referenceValues: { events: { sha256: { 4: ['c1'.repeat(32), 'c2'.repeat(32)] } } } }));
    const r = cleanReport();
    r.facts.eventDigests = { sha256: { 4: ['c1'.repeat(32), 'c2'.repeat(32), 'c1'.repeat(32)] } };
    assert.equal(vectorOf(r, policy)['executables'], 2);
    r.facts.eventDigests = { sha256: { 4: ['c1'.repeat(32), 'c3'.repeat(32)] } };
    const a = appraise(appraisalInputFromReport(r), policy);
    assert.equal(a.vector.executables?.value, 96);
    assert.deepEqual(a.vector.executables?.failedChecks, ['policy.event.sha256.4']);
    assert.match(a.referenceChecks[0]!.detail!, /sha256 PCR 4: 1 of 2 event\(s\) with a digest not in the reference values: c3c3/);
    // A PCR the verified log has no events for is checked by nothing: it fails, it does not pass as "all 0 allowed".
    r.facts.eventDigests = { sha256: { 7: ['c1'.repeat(32)] } };
    const none = appraise(appraisalInputFromReport(r), policy);
    assert.equal(none.referenceChecks[0]!.ok, false);
    assert.match(none.referenceChecks[0]!.detail!, /sha256 PCR 4: no logged event explains its quoted value/);
    delete r.facts.eventDigests;
    assert.match(appraise(appraisalInputFromReport(r), policy).referenceChecks[0]!.detail!, /no event log replayed/);
    assert.throws(() => parsePolicy(JSON.stringify({ claims: {}, referenceValues: { events: { sha256: { 4: 'c1'.repeat(32) } } } })), /events\.sha256\.4 must be a list of sha256 digests of 64 hex digits/);
  });

  it('Secure Boot disabled is a warning on configuration; unknown is not claimed', () => {
    const r = cleanReport();
    r.facts.secureBoot = 'disabled';
    assert.equal(vectorOf(r)['configuration'], 32);
    r.facts.secureBoot = 'unknown';
    assert.equal(vectorOf(r)['configuration'], undefined);
  });

  // Each tamper case of the verifier (test/verify.test.ts) fails these checks; each is contraindicated on the claim it touches.
  const TAMPER_CASES: readonly { what: string; check: string; notRun?: string[]; claims: Record<string, number> }[] = [
    { what: 'EK certificate not chaining to the roots', check: 'ek.certificate.chain', claims: { hardware: 96 } },
    { what: 'EK certificate for another key', check: 'ek.certificate.key', claims: { hardware: 99 } },
    { what: 'AK CertifyCreation altered', check: 'ak.certifyCreation', notRun: ['attest', 'quote', 'import-blob', 'new-key', 'sign'], claims: { 'instance-identity': 99, hardware: 97, executables: 99, 'storage-opaque': 96 } },
    { what: 'an unrestricted AK', check: 'ak.attributes', claims: { 'instance-identity': 99 } },
    { what: 'a wrong activated secret', check: 'attest.secret', claims: { hardware: 99, 'instance-identity': 99 } },
    { what: 'a quote with another nonce, a flipped signature or another AK', check: 'quote.sha256', claims: { executables: 99, 'instance-identity': 99 } },
    { what: 'an event log that does not replay', check: 'eventlog.replay', claims: { executables: 96 } },
    { what: 'a wrong --expect-pcr', check: 'quote.expectPcr.sha256.23', claims: { executables: 96 } },
    { what: 'a blob unsealed to other bytes', check: 'importBlob.unsealed', claims: { 'storage-opaque': 96 } },
    { what: 'a PCR-bound blob unsealed with wrong PCRs', check: 'importBlob.pcrPolicyEnforced', claims: { 'storage-opaque': 96 } },
    { what: 'an imported key signing something else', check: 'importSigningKey.confirmation', claims: { 'storage-opaque': 96 } },
    { what: 'a new key not certified by the AK', check: 'newKey.certify', claims: { 'storage-opaque': 96 } },
    { what: 'a duplicable new key', check: 'newKey.attributes', claims: { 'storage-opaque': 96 } },
    { what: 'a signature that does not verify', check: 'sign.signature', claims: { 'storage-opaque': 96 } },
    { what: 'an attestor that is not serving', check: 'health', claims: { 'instance-identity': 97, hardware: 97 } },
  ];
  for (const t of TAMPER_CASES) {
    it(`tamper: ${t.what} (${t.check}) → contraindicated on ${Object.keys(t.claims).join(', ')}`, () => {
      const r = withCheck(cleanReport(), t.check, 'fail', t.notRun);
      // Extra checks a step adds (quote.expectPcr) are added when absent.
      if (!r.steps.some((s) => s.checks.some((c) => c.name === t.check))) r.steps.find((s) => s.step === 'quote')!.checks.push({ name: t.check, ok: false, detail: 'x' });
      const a = appraise(appraisalInputFromReport(r), REFERENCE_POLICY);
      assert.equal(a.status, 'contraindicated');
      for (const [claim, value] of Object.entries(t.claims)) assert.equal(vectorOf(r)[claim], value, `${claim} of ${JSON.stringify(vectorOf(r))}`);
      assert.ok(Object.values(a.vector).some((c) => c.failedChecks.includes(t.check)), 'the claim names the failed check');
    });
  }

  it('patterns: * matches any characters, everything else is literal', () => {
    assert.ok(matchesPattern('quote.sha*', 'quote.sha256'));
    assert.ok(!matchesPattern('quote.sha*', 'quote.expectPcr.sha256.1'));
    assert.ok(matchesPattern('quote[*', 'quote[0]'));
    assert.ok(!matchesPattern('ek.certificate', 'ek.certificateXchain'));
  });

  it('rules on a generic list of checks and facts (what new steps add feeds them without code)', () => {
    const checks: AppraisalCheck[] = [{ name: 'gce.ak.certificate', ok: true }, { name: 'userspace.replay', ok: false }];
    const policy = parsePolicy(JSON.stringify({
      claims: {
        'instance-identity': [{ if: { passed: ['gce.ak.*'] }, value: 'recognized_instance' }],
        'file-system': [{ if: { failed: ['userspace.*'] }, value: 'contraindicated_fs' }],
        'sourced-data': [{ if: { fact: 'cloud.provider', in: ['gce'] }, value: 2 }],
      },
    }));
    const a = appraise({ checks, facts: { cloud: { provider: 'gce' } } }, policy);
    assert.deepEqual(Object.fromEntries(Object.entries(a.vector).map(([k, v]) => [k, v.value])), { 'instance-identity': 2, 'file-system': 96, 'sourced-data': 2 });
    assert.equal(a.status, 'contraindicated');
    assert.match(a.policyId, /^tpmds-policy:sha256:[0-9a-f]{64}$/);
  });

  it('a bad policy file is refused with the problem named', () => {
    const bad: [unknown, RegExp][] = [
      ['{', /not JSON/],
      [{ claims: { hardwar: [] } }, /unknown AR4SI claim "hardwar"/],
      [{ claims: { hardware: [{ if: { failed: ['ek.*'] }, value: 'approved_rt' }] } }, /value "approved_rt" is not an AR4SI value of hardware/],
      [{ claims: { hardware: [{ if: { failed: [] }, value: 2 }] } }, /"failed" must be a non-empty list/],
      [{ claims: { hardware: [{ if: { failed: ['a'], passed: ['b'] }, value: 2 }] } }, /exactly one of failed, warned, passed/],
      [{ claims: {}, referenceValues: { pcrs: { sha256: { 24: PCR7 } } } }, /"24" is not a PCR index/],
      [{ claims: {}, referenceValues: { pcrs: { sha256: { 7: 'xyz' } } } }, /sha256\.7 must be a sha256 digest of 64 hex digits/],
      [{ claims: {}, referenceValues: { pcrs: { sha256: { 7: 'ab'.repeat(20) } } } }, /sha256\.7 must be a sha256 digest of 64 hex digits/],
      [{ claims: {}, referenceValues: { pcrs: { sha512: { 7: 'ab'.repeat(32) } } } }, /sha512\.7 must be a sha512 digest of 128 hex digits/],
      [{ claims: {}, extra: 1 }, /unknown key "extra"/],
    ];
    for (const [doc, re] of bad) assert.throws(() => parsePolicy(typeof doc === 'string' ? doc : JSON.stringify(doc), 'p.json'), (e: Error) => e instanceof PolicyError && re.test(e.message) && e.message.startsWith('p.json: '));
  });
});

describe('ear: tokens', () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ed = generateKeyPairSync('ed25519');
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = (k: KeyObject) => k.export({ type: k.type === 'private' ? 'pkcs8' : 'spki', format: 'pem' }).toString();
  const claimsOf = (report = cleanReport(), policy = REFERENCE_POLICY) => earClaims(report, appraise(appraisalInputFromReport(report), policy), { build: 'tpmds-verifier test', now: Math.floor(Date.now() / 1000) });
  const signRaw = (payload: unknown, key: KeyObject, alg = 'ES256') => new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg, typ: 'JWT' }).sign(key);

  it('claims as draft-ietf-rats-ear-04 names them: profile, iat, verifier id, base64url nonce, one submod with status, vector, policy ids, attester claims', () => {
    const c = claimsOf();
    assert.equal(c.eat_profile, 'tag:ietf.org,2026:rats/ear#04');
    assert.deepEqual(c.ear_verifier_id, { developer: 'tpmds', build: 'tpmds-verifier test' });
    assert.equal(c.eat_nonce, Buffer.from(cleanReport().quoteNonce!, 'hex').toString('base64url'));
    const name = `tpm:000b${'11'.repeat(32)}`;
    assert.deepEqual(Object.keys(c.submods), [name]);
    const s = c.submods[name]!;
    assert.equal(s.ear_status, 'affirming');
    assert.deepEqual(s.ear_appraisal_policy_ids, ['test-policy']);
    assert.deepEqual(Object.keys(s.ear_attester_claims!), ['tpm_ek_name', 'tpm_ak_name', 'tpm_key_type', 'tpm_pcr_digests', 'tpm_pcrs', 'tpm_secure_boot', 'tpm_event_log_events']);
    assert.equal(s.ear_attester_claims!['tpm_secure_boot'], 'enabled');
    assert.match((s.ear_attester_claims!['tpm_pcr_digests'] as Record<string, string>)['sha256']!, /^[0-9a-f]{64}$/);
    assert.deepEqual(s.ear_verifier_claims, { tpmds_checks_failed: [], tpmds_checks_warned: [] });
  });

  for (const [alg, pair] of [['ES256', ec], ['EdDSA', ed]] as const) {
    it(`${alg}: the key type read from the PEM picks the algorithm; the token verifies with the public key`, async () => {
      const signer = signingKeyFromPem(pem(pair.privateKey), 'k.pem');
      assert.equal(signer.alg, alg);
      const token = await signEar(claimsOf(), signer.key, signer.alg);
      const header = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as Record<string, unknown>;
      assert.deepEqual(header, { alg, typ: 'JWT' });
      const v = await verifyEar(token, verificationKeyFromPem(pem(pair.publicKey)).key);
      assert.equal(v.alg, alg);
      assert.equal(v.status, 'affirming');
      assert.equal(v.spelling, 'draft');
    });
  }

  it('RSA and P-384 keys are refused, naming the key type', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    assert.throws(() => signingKeyFromPem(pem(rsa.privateKey), 'k.pem'), /k\.pem: an rsa key; the signing key must be EC P-256 \(ES256\) or Ed25519 \(EdDSA\)/);
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    assert.throws(() => signingKeyFromPem(pem(p384.privateKey), 'k.pem'), /an EC secp384r1 key/);
    assert.throws(() => signingKeyFromPem('garbage', 'k.pem'), /k\.pem: not a PEM private key/);
  });

  it('refused, naming the problem: malformed, wrong key, altered, wrong profile, expired, too old, bad claims', async () => {
    const key = ec.privateKey;
    const good = claimsOf();
    const token = await signEar(good, key, 'ES256');
    const pub = ec.publicKey;
    const refuse = async (t: string, re: RegExp, k: KeyObject = pub, opts = {}) => {
      await assert.rejects(verifyEar(t, k, opts), (e: Error) => e instanceof EarError && re.test(e.message));
    };
    await refuse('not a token', /malformed token: not a JWS compact serialization/);
    await refuse('a.b', /malformed token/);
    await refuse(token, /the signature does not verify with this key/, other.publicKey);
    await refuse(token, /signed with "ES256", but the key is for EdDSA/, ed.publicKey);
    const [h, p, s] = token.split('.') as [string, string, string];
    const altered = Buffer.from(JSON.stringify({ ...good, ear_verifier_id: { developer: 'x', build: 'y' } })).toString('base64url');
    await refuse(`${h}.${altered}.${s}`, /the signature does not verify/);
    await refuse(`${h}.${p}.${s.slice(0, -4)}AAAA`, /the signature does not verify/);
    await refuse(await signRaw({ ...good, eat_profile: 'tag:example.com,2024:other' }, key), /eat_profile "tag:example.com,2024:other" is not an EAR profile/);
    const now = Math.floor(Date.now() / 1000);
    await refuse(await signRaw({ ...good, exp: now - 10 }, key), /the token expired 1\d s ago/);
    await refuse(await signRaw({ ...good, iat: now - 3600 }, key), /the token is too old: issued 3600 s ago .* --max-age is 60 s/, pub, { maxAgeSeconds: 60, now });
    await refuse(await signRaw({ ...good, submods: {} }, key), /submods: missing or empty/);
    await refuse(await signRaw({ ...good, iat: undefined }, key), /iat: missing/);
    await refuse(await signRaw({ ...good, eat_nonce: 'abc' }, key), /eat_nonce: 2 bytes; a nonce has 8 to 64/);
    const name = Object.keys(good.submods)[0]!;
    await refuse(await signRaw({ ...good, submods: { [name]: { ...good.submods[name], ear_status: 'fine' } } }, key), /ear_status: "fine" is not a trust tier/);
    await refuse(await signRaw({ ...good, submods: { [name]: { ...good.submods[name], ear_trustworthiness_vector: { hardwar: 2 } } } }, key), /unknown claim "hardwar"/);
    await refuse(await signRaw({ ...good, ear_status: 'affirming', submods: { [name]: { ...good.submods[name], ear_status: 'warning' } } }, key), /ear_status affirming is better than the worst submod status warning/);
    await refuse(await signRaw(['not', 'an', 'object'], key), /the payload is not a JSON object/);
  });

  it('reads Veraison\'s pre-draft spelling (ear.verifier-id, ear.status, ear.trustworthiness-vector, ear.appraisal-policy-id)', async () => {
    const token = await signRaw({
      eat_profile: EAR_PROFILE_PRE_DRAFT, iat: 1666529184,
      'ear.verifier-id': { build: 'vsts 0.0.1', developer: 'https://veraison-project.org' },
      eat_nonce: 'lnYR4ZLdWnhBfrzJ',
      submods: { test: { 'ear.status': 'warning', 'ear.trustworthiness-vector': { hardware: 32, 'instance-identity': 2 }, 'ear.appraisal-policy-id': 'policy://test/01234' } },
    }, ec.privateKey);
    const v = await verifyEar(token, ec.publicKey);
    assert.equal(v.spelling, 'pre-draft');
    assert.equal(v.profile, EAR_PROFILE_PRE_DRAFT);
    assert.equal(v.status, 'warning');
    assert.deepEqual(v.submods['test'], { status: 'warning', vector: { hardware: 32, 'instance-identity': 2 }, policyIds: ['policy://test/01234'] });
    assert.notEqual(EAR_PROFILE, EAR_PROFILE_PRE_DRAFT);
  });
});

describe('tpmds-verifier ear verify, run --ear-* usage', () => {
  let dir: string;
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const other = generateKeyPairSync('ed25519');
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tpmds-ear-'));
    writeFileSync(join(dir, 'pub.pem'), ec.publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(join(dir, 'key.pem'), ec.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(dir, 'other.pem'), other.publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(join(dir, 'rsa.pem'), generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(dir, 'bad-policy.json'), '{"claims": {"hardwar": []}}');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const code = await runCli(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
    return { code, stdout, stderr };
  }

  it('prints the appraisal readably or as JSON; exit 0 only with the signer\'s key', async () => {
    const report = cleanReport();
    const token = await signEar(earClaims(report, appraise(appraisalInputFromReport(report), REFERENCE_POLICY), { build: 'b' }), ec.privateKey, 'ES256');
    writeFileSync(join(dir, 'ear.jwt'), token + '\n');
    const ok = await cli(['ear', 'verify', join(dir, 'ear.jwt'), '--key', join(dir, 'pub.pem')]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^signature {2}ok \(ES256\)$/m);
    assert.match(ok.stdout, /^status {5}affirming$/m);
    assert.match(ok.stdout, /^ {4}hardware {10} {2}2 {2}genuine_hw/m);
    assert.match(ok.stdout, /^ {4}tpm_ek_name {11}000b1111/m);
    assert.match(ok.stdout, /^ {4}tpm_pcrs {14}sha256: 24 PCRs \(values with --json\)$/m);
    const json = await cli(['ear', 'verify', join(dir, 'ear.jwt'), '--key', join(dir, 'pub.pem'), '--json']);
    const doc = JSON.parse(json.stdout) as { ok: boolean; status: string; claims: { eat_profile: string } };
    assert.equal(doc.ok, true);
    assert.equal(doc.claims.eat_profile, EAR_PROFILE);
    const wrong = await cli(['ear', 'verify', join(dir, 'ear.jwt'), '--key', join(dir, 'other.pem')]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /signed with "ES256", but the key is for EdDSA/);
    writeFileSync(join(dir, 'bad.jwt'), 'garbage');
    const bad = await cli(['ear', 'verify', join(dir, 'bad.jwt'), '--key', join(dir, 'pub.pem'), '--json']);
    assert.equal(bad.code, 1);
    assert.deepEqual(JSON.parse(bad.stdout), { ok: false, error: 'malformed token: not a JWS compact serialization (three base64url parts separated by dots)' });
    const claims = earClaims(report, appraise(appraisalInputFromReport(report), REFERENCE_POLICY), { build: 'b', now: Math.floor(Date.now() / 1000) - 600 });
    writeFileSync(join(dir, 'old.jwt'), await signEar(claims, ec.privateKey, 'ES256'));
    assert.equal((await cli(['ear', 'verify', join(dir, 'old.jwt'), '--key', join(dir, 'pub.pem'), '--max-age', '3600'])).code, 0);
    const old = await cli(['ear', 'verify', join(dir, 'old.jwt'), '--key', join(dir, 'pub.pem'), '--max-age', '60']);
    assert.equal(old.code, 1);
    assert.match(old.stderr, /^tpmds-verifier ear verify: the token is too old: issued 6\d\d s ago .*--max-age is 60 s$/m);
  });

  it('ear default-policy prints the built-in policy, which parses as a --policy file', async () => {
    const r = await cli(['ear', 'default-policy']);
    assert.equal(r.code, 0);
    assert.deepEqual(parsePolicy(r.stdout), DEFAULT_POLICY);
  });

  it('usage errors exit 2 and name the flag', async () => {
    const cases: [string[], RegExp][] = [
      [['ear', 'verify', 'x.jwt'], /--key is required/],
      [['ear', 'check', 'x.jwt', '--key', 'k'], /unknown action "check"/],
      [['ear', 'verify'], /missing TOKEN/],
      [['ear', 'verify', 'x.jwt', '--key', join(dir, 'pub.pem'), '--max-age', '1h'], /--max-age "1h": expected a whole number of seconds/],
      [['ear', 'verify', join(dir, 'nope.jwt'), '--key', join(dir, 'pub.pem')], /TOKEN .*nope\.jwt: cannot read \(no such file\)/],
      [['run', '--target', 'unix:/x', '--insecure', '--ear-out', join(dir, 'o.jwt')], /--ear-out needs --ear-key/],
      [['run', '--target', 'unix:/x', '--insecure', '--ear-key', join(dir, 'key.pem')], /--ear-key needs --ear-out/],
      [['run', '--target', 'unix:/x', '--insecure', '--policy', join(dir, 'bad-policy.json')], /--policy needs --ear-out/],
      [['run', '--target', 'unix:/x', '--insecure', '--ear-out', join(dir, 'o.jwt'), '--ear-key', join(dir, 'rsa.pem')], /--ear-key .*rsa\.pem: an rsa key/],
      // An --ear-out that cannot be written is a usage error before the run (it would lose the run's report after it).
      [['run', '--target', 'unix:/x', '--insecure', '--ear-out', join(dir, 'no-such-dir', 'o.jwt'), '--ear-key', join(dir, 'key.pem')], /--ear-out .*no-such-dir\/o\.jwt: cannot write \(ENOENT\)/],
      [['run', '--target', 'unix:/x', '--insecure', '--ear-out', dir, '--ear-key', join(dir, 'key.pem')], /--ear-out .*: cannot write \(it is a directory\)/],
      [['run', '--target', 'unix:/x', '--insecure', '--ear-out', join(dir, 'o.jwt'), '--ear-key', join(dir, 'key.pem'), '--policy', join(dir, 'bad-policy.json')], /--policy .*bad-policy\.json: unknown AR4SI claim "hardwar"/],
    ];
    for (const [argv, re] of cases) {
      const r = await cli(argv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
  });
});
