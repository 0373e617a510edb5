// The verify library against real TPM output: every payload below is made on swtpm with
// @tpmds/tpm2-wire the way the attestor makes it (test/verify-fixtures.ts), then checked; each
// tampered payload must fail with the check that names what is wrong.
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  EV, TPMA_OBJECT, TPM_ALG, TpmError, akTemplate, buildEventLog, concatBytes, ekTemplateEccP256, ekTemplateRsa2048, keyObjectToPublic, objectName, openTpm, parseGuid, pemToDers,
  signingKeyTemplate, toHex, utf8, buildUserspaceLog, parseUserspaceLog, phaseRecord, type TPMT_PUBLIC, type Tpm,
} from '@tpmds/tpm2-wire';
import { decodePlatformParameters, encodeAttestationParameters, encodePlatformParameters } from '../src/formats/index.js';
import {
  decodePublicArea, ekPublicFromSpki, expectedPcrMap, makeChallenge, makeImportBlob, makeSigningKeyImport, verifyAk, verifyAttest, verifyEk,
  verifyImportBlob, verifyImportSigningKey, verifyNewKey, verifyPlatform, verifySign, type Check, type StepResult,
} from '../src/verify/index.js';
import { withSwtpm } from '../../tpm2-wire/test/fixtures/swtpm.js';
import {
  activate, ekHandle, ekResponse, importAndConfirm, importAndUnseal, makeAk, newKey, platform, signWith, type KeyBlob,
} from './verify-fixtures.js';

const flip = (b: Uint8Array, at = -1): Uint8Array => {
  const c = b.slice();
  c[at < 0 ? c.length + at : at]! ^= 0x01;
  return c;
};
const sha = (alg: 'sha1' | 'sha256', ...parts: Uint8Array[]): Uint8Array => {
  const h = createHash(alg);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

/** Asserts every check passed, showing the failures otherwise. */
function allOk(r: StepResult<unknown>, allowWarnings: string[] = []): void {
  const bad = r.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
  assert.deepEqual(bad, [], 'every check passes');
  assert.equal(r.ok, true);
  const warnings = r.checks.filter((c) => c.warning).map((c) => c.name);
  assert.deepEqual(warnings.filter((w) => !allowWarnings.includes(w)), [], 'no unexpected warnings');
}

/** Asserts that exactly the named checks failed (and returns the first, for its detail). */
function failsWith(r: StepResult<unknown>, names: string[], detail?: RegExp): Check {
  assert.equal(r.ok, false, 'the step fails');
  const failed = r.checks.filter((c) => !c.ok);
  assert.deepEqual(failed.map((c) => c.name).sort(), [...names].sort(), `failed checks: ${failed.map((c) => `${c.name}: ${c.detail}`).join(' | ')}`);
  if (detail) assert.match(failed[0]!.detail, detail);
  return failed[0]!;
}

for (const keyType of ['rsa', 'ecc'] as const) {
  describe(`verify: each step with payloads made on swtpm, ${keyType} @swtpm`, function () {
    this.timeout(120_000);
    const swtpm = withSwtpm();
    let tpm: Tpm;
    let roots: Uint8Array[];
    let intermediates: Uint8Array[];
    let ek: { ekPub: Uint8Array; ekCert: Uint8Array };
    let ekPublic: TPMT_PUBLIC;
    let ak: { json: Uint8Array; key: KeyBlob; parts: Record<'public' | 'createData' | 'createAttestation' | 'createSignature', Uint8Array> };
    let akPublic: TPMT_PUBLIC;

    before(async () => {
      tpm = await openTpm(swtpm().address);
      roots = pemToDers(readFileSync(swtpm().caRootPem, 'utf8'));
      intermediates = pemToDers(readFileSync(swtpm().caIntermediatePem, 'utf8'));
      ek = await ekResponse(tpm, keyType);
      ekPublic = ekPublicFromSpki(ek.ekPub, keyType);
      ak = await makeAk(tpm, keyType);
      akPublic = ak.key.public;
    });
    after(async () => {
      await tpm?.close();
    });

    describe('verifyEk', () => {
      it('a TPM EK and its certificate pass: decodes, right type, certifies this key, chains to the CA root', async () => {
        const r = await verifyEk(ek, { roots, intermediates, keyType });
        allOk(r);
        assert.deepEqual(r.checks.map((c) => c.name), ['ek.public', 'ek.keyType', 'ek.certificate', 'ek.certificate.key', 'ek.certificate.chain']);
        // The EK rebuilt from the SPKI in the TCG template is the TPM's EK, name and all.
        assert.deepEqual(objectName(r.value!.ekPublic), (await tpm.readPublic(ekHandle(keyType))).name);
      });

      it('without --ek-roots the chain is not checked: a warning, not a failure', async () => {
        const r = await verifyEk(ek, { roots: [], intermediates: [], keyType });
        allOk(r, ['ek.certificate.chain']);
        assert.match(r.checks.find((c) => c.name === 'ek.certificate.chain')!.detail, /no --ek-roots given, chain not checked/);
      });

      it('a chain without the intermediate, or to another root, fails ek.certificate.chain', async () => {
        failsWith(await verifyEk(ek, { roots, intermediates: [], keyType }), ['ek.certificate.chain'], /does not chain/);
        const other = await ekResponse(tpm, keyType === 'rsa' ? 'ecc' : 'rsa');
        failsWith(await verifyEk(ek, { roots: [other.ekCert], intermediates, keyType }), ['ek.certificate.chain']);
      });

      it('the certificate of the other EK fails ek.certificate.key; the wrong key type fails ek.keyType', async () => {
        const other = await ekResponse(tpm, keyType === 'rsa' ? 'ecc' : 'rsa');
        failsWith(await verifyEk({ ekPub: ek.ekPub, ekCert: other.ekCert }, { roots, intermediates, keyType }), ['ek.certificate.key'], /another key/);
        failsWith(await verifyEk(ek, { roots, intermediates, keyType: keyType === 'rsa' ? 'ecc' : 'rsa' }), ['ek.keyType']);
      });

      it('no certificate: a failure with --ek-roots, a warning without; garbage SPKI fails ek.public', async () => {
        failsWith(await verifyEk({ ekPub: ek.ekPub, ekCert: new Uint8Array(0) }, { roots, intermediates, keyType }), ['ek.certificate'], /no EK certificate/);
        allOk(await verifyEk({ ekPub: ek.ekPub, ekCert: new Uint8Array(0) }, { roots: [], intermediates: [], keyType }), ['ek.certificate']);
        failsWith(await verifyEk({ ekPub: flip(ek.ekPub, 3), ekCert: ek.ekCert }, { roots, intermediates, keyType }), ['ek.public']);
        failsWith(await verifyEk({ ekPub: ek.ekPub, ekCert: flip(ek.ekCert, 1) }, { roots, intermediates, keyType }), ['ek.certificate']);
      });
    });

    describe('verifyAk', () => {
      it('the AK of go-attestation passes: CertifyCreation by itself, attributes, type', async () => {
        const r = verifyAk(ak.json, keyType);
        allOk(r);
        assert.deepEqual(r.checks.map((c) => c.name), ['ak.decode', 'ak.keyType', 'ak.certifyCreation', 'ak.attributes']);
        const loadedName = await tpm.load(0x81000001, ak.key.private, ak.key.public);
        await tpm.flushContext(loadedName.handle);
        assert.deepEqual(r.value!.akName, loadedName.name, 'akName is the name the TPM gives the AK');
      });

      it('a flipped byte in CreateAttestation, CreateSignature or CreateData fails ak.certifyCreation', () => {
        const variant = (k: keyof typeof ak.parts, at = -1) => encodeAttestationParameters({ ...ak.parts, [k]: flip(ak.parts[k], at), useTCSDActivationFormat: false });
        failsWith(verifyAk(variant('createAttestation'), keyType), ['ak.certifyCreation'], /^signature check failed/);
        failsWith(verifyAk(variant('createSignature'), keyType), ['ak.certifyCreation'], /^signature check failed/);
        failsWith(verifyAk(variant('createData'), keyType), ['ak.certifyCreation'], /creationHash|decode/);
      });

      it('another key\'s Public fails ak.certifyCreation (the attestation is not its signature nor its name)', async () => {
        const other = await makeAk(tpm, keyType);
        const json = encodeAttestationParameters({ ...ak.parts, public: other.parts.public, useTCSDActivationFormat: false });
        failsWith(verifyAk(json, keyType), ['ak.certifyCreation'], /signature/);
      });

      it('an unrestricted signing key certifying its own creation fails ak.attributes and ak.certifyCreation', async () => {
        const notAk = await makeAk(tpm, keyType, signingKeyTemplate(keyType));
        const c = failsWith(verifyAk(notAk.json, keyType), ['ak.attributes', 'ak.certifyCreation']);
        assert.match(c.detail + verifyAk(notAk.json, keyType).checks.map((x) => x.detail).join(), /restricted/);
      });

      it('the other key type fails ak.keyType; garbage fails ak.decode', () => {
        failsWith(verifyAk(ak.json, keyType === 'rsa' ? 'ecc' : 'rsa'), ['ak.keyType']);
        failsWith(verifyAk(utf8('{"Public":"AAAA"'), keyType), ['ak.decode'], /JSON/);
        failsWith(verifyAk(utf8('{"Public":null}'), keyType), ['ak.decode'], /Public/);
      });
    });

    describe('makeChallenge / verifyAttest', () => {
      it('ActivateCredential on the TPM returns the secret of the challenge', async () => {
        const ch = makeChallenge(ekPublic, akPublic);
        const json = JSON.parse(Buffer.from(ch.encryptedCredentials).toString('utf8')) as Record<string, string>;
        const credential = Buffer.from(json['Credential']!, 'base64');
        const secret = Buffer.from(json['Secret']!, 'base64');
        assert.equal(credential.readUInt16BE(0), credential.length - 2, 'Credential carries its TPM2B size');
        assert.equal(secret.readUInt16BE(0), secret.length - 2, 'Secret carries its TPM2B size');
        if (keyType === 'rsa') assert.deepEqual([credential.length, secret.length], [70, 258], 'FORMATS.md sizes for an RSA-2048 EK');
        const back = await activate(tpm, ak.key, keyType, ch.encryptedCredentials);
        allOk(verifyAttest(ch, back));
      });

      it('a different secret fails attest.secret (and the detail shows no secret)', () => {
        const ch = makeChallenge(ekPublic, akPublic);
        const c = failsWith(verifyAttest(ch, flip(ch.secret)), ['attest.secret'], /differs/);
        assert.ok(!c.detail.includes(toHex(ch.secret)));
        failsWith(verifyAttest(ch, ch.secret.subarray(1)), ['attest.secret'], /31 bytes/);
      });

      it('a challenge for another AK does not activate (the TPM checks the name)', async () => {
        const other = await makeAk(tpm, keyType);
        const ch = makeChallenge(ekPublic, other.key.public);
        await assert.rejects(activate(tpm, ak.key, keyType, ch.encryptedCredentials), TpmError);
      });
    });

    describe('verifyPlatform', () => {
      it('the quotes of every active bank verify; an empty event log fails, naming it, unless allowed', async () => {
        const nonce = randomBytes(32);
        const json = await platform(tpm, ak.key, nonce);
        const r = verifyPlatform(json, { akPublic, nonce, allowMissingEventLog: true });
        allOk(r, ['eventlog']);
        assert.deepEqual(r.checks.map((c) => c.name), ['quote.decode', 'quote.ak', 'quote.pcrs', 'quote.sha1', 'quote.sha256', 'eventlog']);
        assert.match(r.checks.at(-1)!.detail, /allowed by --allow-missing-eventlog/);
        assert.deepEqual([...r.value!.pcrs.keys()].sort((a, b) => a - b), [TPM_ALG.SHA1, TPM_ALG.SHA256]);
        failsWith(verifyPlatform(json, { akPublic, nonce }), ['eventlog'], /^the attestor sent no event log; quotes cannot be explained; .*--allow-missing-eventlog/);
        const said = failsWith(verifyPlatform(json, { akPublic, nonce, eventLogProblem: '/sys/x: permission denied (EACCES)' }), ['eventlog']);
        assert.match(said.detail, /\(the attestor says: \/sys\/x: permission denied \(EACCES\)\)/);
        // --expect-pcr checks still run when the missing log is allowed.
        failsWith(verifyPlatform(json, { akPublic, nonce, allowMissingEventLog: true, expectedPcrs: expectedPcrMap([`16:${'ab'.repeat(32)}`]) }), ['quote.expectPcr.sha256.16']);
      });

      it('another nonce, a changed PCR value, a flipped signature or another AK fail the quote check', async () => {
        const nonce = randomBytes(32);
        const json = await platform(tpm, ak.key, nonce);
        failsWith(verifyPlatform(json, { akPublic, nonce: randomBytes(32), allowMissingEventLog: true }), ['quote.sha1', 'quote.sha256'], /^nonce check failed/);
        const p = decodePlatformParameters(json);
        const pcr = p.pcrs!.findIndex((x) => x.digestAlg === 5 && x.index === 4);
        p.pcrs![pcr] = { ...p.pcrs![pcr]!, digest: flip(p.pcrs![pcr]!.digest!) };
        failsWith(verifyPlatform(encodePlatformParameters(p), { akPublic, nonce, allowMissingEventLog: true }), ['quote.sha256'], /^pcrDigest check failed/);
        const q = decodePlatformParameters(json);
        q.quotes![1] = { ...q.quotes![1]!, signature: flip(q.quotes![1]!.signature!, -5) };
        failsWith(verifyPlatform(encodePlatformParameters(q), { akPublic, nonce, allowMissingEventLog: true }), ['quote.sha256'], /^signature check failed/);
        const other = await makeAk(tpm, keyType);
        failsWith(verifyPlatform(json, { akPublic: other.key.public, nonce, allowMissingEventLog: true }), ['quote.ak', 'quote.sha1', 'quote.sha256']);
      });

      it('missing quotes or PCR values fail, naming the bank', async () => {
        const nonce = randomBytes(32);
        const p = decodePlatformParameters(await platform(tpm, ak.key, nonce));
        failsWith(verifyPlatform(encodePlatformParameters({ ...p, quotes: p.quotes!.slice(1) }), { akPublic, nonce, allowMissingEventLog: true }), ['quote.sha1'], /no quote covers/);
        failsWith(verifyPlatform(encodePlatformParameters({ ...p, quotes: null }), { akPublic, nonce, allowMissingEventLog: true }), ['quote.quotes', 'quote.sha1', 'quote.sha256']);
        failsWith(verifyPlatform(encodePlatformParameters({ ...p, pcrs: p.pcrs!.filter((x) => x.digestAlg !== 3) }), { akPublic, nonce, allowMissingEventLog: true }), ['quote.sha1'], /no PCR values of that bank/);
        failsWith(verifyPlatform(encodePlatformParameters({ ...p, pcrs: p.pcrs!.filter((x) => x.index !== 23) }), { akPublic, nonce, allowMissingEventLog: true }), ['quote.sha1', 'quote.sha256'], /pcrSelection/);
        failsWith(verifyPlatform(utf8('[]'), { akPublic, nonce, allowMissingEventLog: true }), ['quote.decode']);
      });

      it('--expect-pcr values are compared with the verified quote, the bank chosen by the hex length', async () => {
        const d1 = randomBytes(20);
        const d256 = randomBytes(32);
        await tpm.pcrExtend(16, [{ hashAlg: TPM_ALG.SHA1, digest: d1 }, { hashAlg: TPM_ALG.SHA256, digest: d256 }]);
        const want256 = toHex(sha('sha256', new Uint8Array(32), d256));
        const want1 = toHex(sha('sha1', new Uint8Array(20), d1));
        const nonce = randomBytes(16);
        const json = await platform(tpm, ak.key, nonce);
        const good = verifyPlatform(json, { akPublic, nonce, allowMissingEventLog: true, expectedPcrs: expectedPcrMap([`16:${want256}`, `16:${want1}`, `23:${'00'.repeat(32)}`]) });
        allOk(good, ['eventlog']);
        assert.ok(good.checks.some((c) => c.name === 'quote.expectPcr.sha256.16' && c.ok));
        assert.ok(good.checks.some((c) => c.name === 'quote.expectPcr.sha1.16' && c.ok));
        const bad = failsWith(verifyPlatform(json, { akPublic, nonce, allowMissingEventLog: true, expectedPcrs: expectedPcrMap([`16:${'00'.repeat(32)}`]) }), ['quote.expectPcr.sha256.16']);
        assert.match(bad.detail, new RegExp(`is ${want256}; 0{64} expected`));
        failsWith(verifyPlatform(json, { akPublic, nonce, allowMissingEventLog: true, expectedPcrs: expectedPcrMap([`1:${'00'.repeat(48)}`]) }), ['quote.expectPcr.sha384.1'], /no verified quote/);
      });

      it('an event log is replayed against the verified PCRs (Secure Boot read from it); a log that does not match fails eventlog.replay', async () => {
        const sbData = concatBytes(
          parseGuid('8be4df61-93ca-11d2-aa0d-00e098032b8c'),
          new Uint8Array([10, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]),
          new Uint8Array([...utf8('SecureBoot')].flatMap((ch) => [ch, 0])),
          new Uint8Array([1]),
        );
        const events = [
          { pcr: 7, type: EV.EV_EFI_VARIABLE_DRIVER_CONFIG, data: sbData },
          { pcr: 7, type: EV.EV_SEPARATOR, data: new Uint8Array(4) },
          { pcr: 8, type: EV.EV_IPL, data: utf8('kernel command line of a test') },
          { pcr: 9, type: EV.EV_IPL, data: utf8('initrd of a test') },
        ];
        for (const e of events) await tpm.pcrExtend(e.pcr, [{ hashAlg: TPM_ALG.SHA1, digest: sha('sha1', e.data) }, { hashAlg: TPM_ALG.SHA256, digest: sha('sha256', e.data) }]);
        const log = buildEventLog(events, [TPM_ALG.SHA1, TPM_ALG.SHA256]);
        const nonce = randomBytes(32);
        const r = verifyPlatform(await platform(tpm, ak.key, nonce, log), { akPublic, nonce });
        allOk(r);
        assert.match(r.checks.find((c) => c.name === 'eventlog.replay')!.detail, /sha1 PCRs 7,8,9, sha256 PCRs 7,8,9/);
        assert.equal(r.value!.secureBoot?.state, 'enabled');

        const forged = buildEventLog([...events.slice(0, 3), { pcr: 9, type: EV.EV_IPL, data: utf8('another initrd') }], [TPM_ALG.SHA1, TPM_ALG.SHA256]);
        const bad = failsWith(verifyPlatform(await platform(tpm, ak.key, nonce, forged), { akPublic, nonce }), ['eventlog.replay'], /PCR 9/);
        assert.ok(!bad.detail.includes('PCR 8'), 'only the PCR that differs is named');
        failsWith(verifyPlatform(await platform(tpm, ak.key, nonce, utf8('not a log at all, really')), { akPublic, nonce }), ['eventlog.parse']);
      });

      it('systemd\'s userspace log replays phase by phase on top of the firmware log; a flipped digest, a dropped or an extra record fail, named', async () => {
        const banks = [TPM_ALG.SHA1, TPM_ALG.SHA256];
        // systemd-stub measures the UKI into PCR 11 and the command line into PCR 12 (firmware log);
        // systemd-pcrphase then extends the phases into PCR 11, systemd-pcrextend the machine id into 15.
        const firmware = [
          { pcr: 11, type: EV.EV_IPL, data: utf8('.linux section of the UKI') },
          { pcr: 12, type: EV.EV_IPL, data: utf8('console=ttyS0') },
        ];
        const userspace = [
          phaseRecord('enter-initrd'), phaseRecord('leave-initrd'),
          { pcr: 15, data: utf8('machine-id:4ac1a2c0f4a04bbd9b5cdd0e4a1a4e6b'), string: 'machine-id:4ac1a2c0f4a04bbd9b5cdd0e4a1a4e6b', eventType: 'machine-id' },
          phaseRecord('sysinit'), phaseRecord('ready'),
        ];
        for (const e of firmware) await tpm.pcrExtend(e.pcr, banks.map((b) => ({ hashAlg: b, digest: sha(b === TPM_ALG.SHA1 ? 'sha1' : 'sha256', e.data) })));
        const usLog = buildUserspaceLog(userspace, banks);
        for (const r of parseUserspaceLog(usLog).records) await tpm.pcrExtend(r.pcr, [...r.digests].map(([hashAlg, digest]) => ({ hashAlg, digest })));
        const fwLog = buildEventLog(firmware, banks);
        const nonce = randomBytes(32);
        const json = await platform(tpm, ak.key, nonce, fwLog);

        const r = verifyPlatform(json, { akPublic, nonce, userspaceLog: usLog });
        allOk(r, ['eventlog.secureBoot']);
        assert.match(r.checks.find((c) => c.name === 'eventlog.replay')!.detail, /sha1 PCRs 12, sha256 PCRs 12 \(PCRs 11,15 are judged with the userspace log\)/);
        const us = r.checks.find((c) => c.name === 'eventlog.userspace.replay')!.detail;
        assert.match(us, /the userspace log \(5 record\(s\)\) replays on top of the firmware log to the quoted sha1 PCRs 11,15, sha256 PCRs 11,15/);
        assert.match(us, /PCR 11: enter-initrd -> leave-initrd -> sysinit -> ready; PCR 15: machine-id "machine-id:4ac1/);
        assert.deepEqual(r.value!.userspace, { records: 5, phases: ['enter-initrd', 'leave-initrd', 'sysinit', 'ready'], pcrs: { sha1: [11, 15], sha256: [11, 15] } });

        // One flipped digest (the "sysinit" record's sha256): its phase no longer hashes to its name and PCR 11 does not replay.
        const text = new TextDecoder().decode(usLog);
        const sysinit = toHex(sha('sha256', utf8('sysinit')));
        const flipped = text.replace(sysinit, sysinit.slice(0, -1) + (sysinit.endsWith('0') ? '1' : '0'));
        const f = failsWith(verifyPlatform(json, { akPublic, nonce, userspaceLog: utf8(flipped) }), ['eventlog.userspace.records', 'eventlog.userspace.replay']);
        assert.match(f.detail, /record #4 phase "sysinit": its sha256 digest/);
        const flippedReplay = verifyPlatform(json, { akPublic, nonce, userspaceLog: utf8(flipped) }).checks.find((c) => c.name === 'eventlog.userspace.replay')!;
        assert.match(flippedReplay.detail, /sha256 PCR 11: the log replays \(from the firmware log\) to [0-9a-f]{64}, quoted [0-9a-f]{64}; no prefix/);
        assert.ok(!/PCR 15/.test(flippedReplay.detail), 'only PCR 11 is named');
        // One dropped record.
        const dropped = buildUserspaceLog(userspace.filter((x) => x.string !== 'leave-initrd'), banks);
        failsWith(verifyPlatform(json, { akPublic, nonce, userspaceLog: dropped }), ['eventlog.userspace.replay'], /sha1 PCR 11: .*no prefix of its 3 record\(s\) gives the quoted value/);
        // One extra record (a phase the TPM never saw).
        const extra = buildUserspaceLog([...userspace, phaseRecord('shutdown')], banks);
        const e = failsWith(verifyPlatform(json, { akPublic, nonce, userspaceLog: extra }), ['eventlog.userspace.replay']);
        assert.match(e.detail, /the quoted value is reached after #5 phase "ready": the log has records the TPM never saw \(#6 phase "shutdown"\)/);
        // Bad input: a truncated record, an unknown hash (PCR 11 is then unexplained: the firmware log alone fails it too),
        // a bank the quote does not cover.
        const truncated = verifyPlatform(json, { akPublic, nonce, userspaceLog: usLog.subarray(0, usLog.length - 1) });
        failsWith(truncated, ['eventlog.userspace.parse', 'eventlog.replay', 'eventlog.unexplained'], /record 5: truncated/);
        assert.match(truncated.checks.find((c) => c.name === 'eventlog.unexplained')!.detail, /the userspace log the attestor sent does not parse \(eventlog\.userspace\.parse\)/);
        failsWith(verifyPlatform(json, { akPublic, nonce, userspaceLog: utf8(text.replace('"sha1"', '"md5"')) }), ['eventlog.userspace.parse', 'eventlog.replay', 'eventlog.unexplained'], /record 1: digests\[0\]: unknown hashAlg "md5"/);
        failsWith(verifyPlatform(json, { akPublic, nonce, userspaceLog: buildUserspaceLog(userspace, [TPM_ALG.SHA384]) }), ['eventlog.userspace.replay'], /no verified quote covers a bank every record has a digest for \(log banks sha384/);
        // The attestor could not read the node's userspace log: fails unless missing logs are allowed.
        failsWith(verifyPlatform(json, { akPublic, nonce, userspaceEventLogProblem: '/run/log/systemd/tpm2-measure.log: permission denied (EACCES)' }), ['eventlog.userspace', 'eventlog.replay', 'eventlog.unexplained'], /the attestor sent no userspace event log although the node has one: .*EACCES/);
        // The firmware log alone: PCR 11 then holds more than it explains, and PCR 15 is explained by
        // no log: both fail; with missing logs allowed, the unexplained PCRs are a warning.
        const alone = verifyPlatform(json, { akPublic, nonce });
        failsWith(alone, ['eventlog.replay', 'eventlog.unexplained'], /PCR 11/);
        assert.match(alone.checks.find((c) => c.name === 'eventlog.unexplained')!.detail, /^sha1 PCRs 15, sha256 PCRs 15 hold values no event log explains.*--allow-missing-eventlog$/);
        const allowed = verifyPlatform(json, { akPublic, nonce, allowMissingEventLog: true });
        failsWith(allowed, ['eventlog.replay'], /PCR 11/);
        assert.match(allowed.checks.find((c) => c.name === 'eventlog.unexplained' && c.warning)!.detail, /^sha1 PCRs 15, sha256 PCRs 15 hold values no event log explains/);
      });
    });

    describe('makeImportBlob / verifyImportBlob', () => {
      it('a blob sealed to the EK unseals on the TPM to the same bytes', async () => {
        const secret = new Uint8Array(randomBytes(32));
        const back = await importAndUnseal(tpm, keyType, makeImportBlob(ekPublic, secret));
        allOk(verifyImportBlob(secret, back));
        failsWith(verifyImportBlob(secret, flip(back)), ['importBlob.unsealed'], /differ/);
      });

      it('a blob bound to the current PCR values unseals; bound to other values it does not', async () => {
        const pcrs = await tpm.readPcrs(TPM_ALG.SHA256, [0, 7]);
        const secret = new Uint8Array(randomBytes(24));
        allOk(verifyImportBlob(secret, await importAndUnseal(tpm, keyType, makeImportBlob(ekPublic, secret, { pcrs: { hashAlg: TPM_ALG.SHA256, values: pcrs } }))));
        const wrong = new Map(pcrs);
        wrong.set(0, flip(pcrs.get(0)!));
        await assert.rejects(importAndUnseal(tpm, keyType, makeImportBlob(ekPublic, secret, { pcrs: { hashAlg: TPM_ALG.SHA256, values: wrong } })), TpmError);
      });

      it('a blob for another EK does not import', async () => {
        const other = keyType === 'ecc' ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
        const otherEk = keyObjectToPublic(other.publicKey, keyType === 'ecc' ? ekTemplateEccP256() : ekTemplateRsa2048());
        await assert.rejects(importAndUnseal(tpm, keyType, makeImportBlob(otherEk, randomBytes(8))), TpmError);
      });
    });

    describe('makeSigningKeyImport / verifyImportSigningKey', () => {
      it('the imported key signs the uid on the TPM; the confirmation verifies for that uid only', async () => {
        const made = makeSigningKeyImport(ekPublic, keyType);
        assert.equal(made.publicKey.asymmetricKeyType, keyType === 'ecc' ? 'ec' : 'rsa');
        const uid = 'node-a.uid-1';
        const confirmation = await importAndConfirm(tpm, keyType, made.encryptedSigningKey, uid);
        allOk(verifyImportSigningKey(confirmation, made.publicKey, uid));
        failsWith(verifyImportSigningKey(confirmation, made.publicKey, 'node-a.uid-2'), ['importSigningKey.confirmation']);
        failsWith(verifyImportSigningKey(flip(confirmation, 10), made.publicKey, uid), ['importSigningKey.confirmation']);
        failsWith(verifyImportSigningKey(confirmation, makeSigningKeyImport(ekPublic, keyType).publicKey, uid), ['importSigningKey.confirmation']);
      });
    });

    describe('verifyNewKey / verifySign', () => {
      let made: Awaited<ReturnType<typeof newKey>>;
      before(async () => {
        made = await newKey(tpm, ak.key, keyType);
      });

      it('a key certified by the AK passes: certify, PEM key, attributes, type (also under "RSA PUBLIC KEY")', () => {
        const r = verifyNewKey(made.resp, akPublic, keyType);
        allOk(r);
        assert.deepEqual(r.checks.map((c) => c.name), ['newKey.decode', 'newKey.keyType', 'newKey.certify', 'newKey.publicKey', 'newKey.attributes']);
        const seedPem = utf8(Buffer.from(made.resp.public).toString('utf8').replace(/PUBLIC KEY/g, 'RSA PUBLIC KEY'));
        allOk(verifyNewKey({ ...made.resp, public: seedPem }, akPublic, keyType));
      });

      it('another AK fails newKey.certify; another PEM key fails newKey.publicKey; a garbled PEM fails newKey.decode', async () => {
        const other = await makeAk(tpm, keyType);
        failsWith(verifyNewKey(made.resp, other.key.public, keyType), ['newKey.certify'], /^signature check failed/);
        const second = await newKey(tpm, ak.key, keyType);
        failsWith(verifyNewKey({ ...made.resp, public: second.resp.public }, akPublic, keyType), ['newKey.publicKey']);
        failsWith(verifyNewKey({ ...made.resp, keyCertification: second.resp.keyCertification }, akPublic, keyType), ['newKey.publicKey']);
        failsWith(verifyNewKey({ ...made.resp, public: utf8('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n') }, akPublic, keyType), ['newKey.decode'], /PUBLIC KEY/);
      });

      it('a duplicable key (no fixedTPM/fixedParent) fails newKey.attributes; a restricted one too', async () => {
        const t = signingKeyTemplate(keyType);
        const loose = await newKey(tpm, ak.key, keyType, { ...t, objectAttributes: t.objectAttributes & ~(TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent) } as TPMT_PUBLIC);
        failsWith(verifyNewKey(loose.resp, akPublic, keyType), ['newKey.attributes'], /lacks fixedTPM, fixedParent/);
        const restricted = await newKey(tpm, ak.key, keyType, akTemplate(keyType));
        failsWith(verifyNewKey(restricted.resp, akPublic, keyType), ['newKey.attributes'], /must not have restricted/);
      });

      it('a TPM signature over SHA-256(data) verifies; other data, a flipped byte or the wrong key type fail sign.signature', async () => {
        const key = verifyNewKey(made.resp, akPublic, keyType).value!.publicKey;
        const data = randomBytes(100);
        const sig = await signWith(tpm, made.key, data);
        allOk(verifySign(sig, data, key, keyType));
        failsWith(verifySign(sig, flip(data), key, keyType), ['sign.signature']);
        failsWith(verifySign(flip(sig, 12), data, key, keyType), ['sign.signature']);
        failsWith(verifySign(sig, data, key, keyType === 'rsa' ? 'ecc' : 'rsa'), ['sign.signature'], /not the requested type/);
      });
    });

    it('decodePublicArea keeps the exact bytes, so names match the TPM\'s', () => {
      assert.deepEqual(objectName(decodePublicArea(ak.parts.public)), objectName(akPublic));
    });
  });
}

describe('verify: --expect-pcr parsing', () => {
  it('IDX:HEX with the bank from the hex length', () => {
    const m = expectedPcrMap([`0:${'ab'.repeat(20)}`, `23:${'CD'.repeat(32)}`, `7:0x${'01'.repeat(48)}`]);
    assert.deepEqual([...m.keys()].sort((a, b) => a - b), [TPM_ALG.SHA1, TPM_ALG.SHA256, TPM_ALG.SHA384]);
    assert.equal(m.get(TPM_ALG.SHA256)!.get(23), 'cd'.repeat(32));
  });
  for (const bad of ['16', '24:' + '00'.repeat(32), 'x:00', `1:${'0'.repeat(63)}`, `1:${'zz'.repeat(32)}`, `-1:${'00'.repeat(32)}`]) {
    it(`rejects ${JSON.stringify(bad.slice(0, 12))}…`, () => {
      assert.throws(() => expectedPcrMap([bad]), /--expect-pcr/);
    });
  }
  it('rejects two values for one PCR', () => {
    assert.throws(() => expectedPcrMap([`1:${'00'.repeat(32)}`, `1:${'11'.repeat(32)}`]), /two values/);
  });
});
