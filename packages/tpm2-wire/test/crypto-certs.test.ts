/**
 * Layer 7 (crypto): certificates of TPM keys. The real GCE AK certificate (go-tpm-tools gce-cos-85,
 * field 6, with a critical subjectAltName in directoryName form) chains to tpm_ek_root_1 through
 * tpm_ek_intermediate_2 and matches the attestation's AK public area; a chain made with openssl in
 * a temp dir (TCG-style EK certificate) validates, and broken chains do not.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  TPMT_PUBLIC, certificateMatchesPublic, derToPem, ekTemplateEccP256, ekTemplateRsa2048, keyObjectToPublic, parseCertificate,
  pemToDers, unmarshal, verifyCertificateChain,
} from '../src/index.js';
import { TESTDATA } from './fixtures/testdata.js';

const caCert = (f: string) => new Uint8Array(readFileSync(`${TESTDATA}go-tpm-tools/ca-certs/${f}`));

/** Fields 1 (ak_pub) and 6 (ak_cert) of a go-tpm-tools attest.Attestation protobuf. */
function gceAk(): { akPub: Uint8Array; akCert: Uint8Array } {
  const buf = new Uint8Array(readFileSync(`${TESTDATA}go-tpm-tools/attestations/gce-cos-85-nonce9009.pb`));
  const out: Record<number, Uint8Array> = {};
  let i = 0;
  const varint = () => {
    let v = 0;
    for (let shift = 0; ; shift += 7) {
      const b = buf[i++]!;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
  };
  while (i < buf.length) {
    const key = varint();
    assert.equal(key & 7, 2, 'only length-delimited fields at the top level');
    const n = varint();
    out[key >> 3] ??= buf.subarray(i, i + n);
    i += n;
  }
  return { akPub: out[1]!, akCert: out[6]! };
}

describe('crypto: the GCE AK certificate', () => {
  const { akPub, akCert } = gceAk();
  const root = caCert('tpm_ek_root_1.cer');
  const int2 = caCert('tpm_ek_intermediate_2.crt');
  const int3 = caCert('tpm_ek_intermediate_3.crt');

  it('parses, with its critical TCG subjectAltName', () => {
    const c = parseCertificate(akCert);
    assert.equal(c.subject, '');
    assert.match(c.issuer, /CN=tpm_ek_v1_cloud_host-signer-0-2020-10-22/);
    assert.equal(c.serialNumber, '015c189200bf3dcc5ee8d6700145145df04177');
    assert.deepEqual(c.extensions.find((x) => x.oid === '2.5.29.17'), { oid: '2.5.29.17', critical: true });
    assert.equal(c.notBefore.toISOString(), '2021-08-31T23:11:05.000Z');
  });

  it('chains to tpm_ek_root_1 through tpm_ek_intermediate_2', async () => {
    assert.deepEqual(await verifyCertificateChain(akCert, [root], [int2]), { ok: true });
    assert.deepEqual(await verifyCertificateChain(akCert, [root], [int3, int2]), { ok: true });
    assert.deepEqual(await verifyCertificateChain(akCert, [int2]), { ok: true });
  });

  it('does not chain without the right intermediate, to another root, or after it expired', async () => {
    assert.equal((await verifyCertificateChain(akCert, [root], [int3])).ok, false);
    assert.equal((await verifyCertificateChain(akCert, [root], [])).ok, false);
    assert.equal((await verifyCertificateChain(akCert, [caCert('gcp_ek_ak_ca_root.crt')], [int2])).ok, false);
    assert.equal((await verifyCertificateChain(akCert, [], [int2])).ok, false);
    const late = await verifyCertificateChain(akCert, [root], [int2], { at: new Date('2052-01-01') });
    assert.equal(late.ok, false);
    assert.match(late.error!, /expired/);
    const tampered = akCert.slice();
    tampered[tampered.length - 5]! ^= 1;
    assert.equal((await verifyCertificateChain(tampered, [root], [int2])).ok, false);
  });

  it('matches the attestation\'s AK public area by value and nothing else', () => {
    const pub = unmarshal(TPMT_PUBLIC, akPub);
    assert.ok(certificateMatchesPublic(akCert, pub));
    const other = keyObjectToPublic(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey, ekTemplateRsa2048());
    assert.ok(!certificateMatchesPublic(akCert, other));
    assert.ok(!certificateMatchesPublic(akCert, keyObjectToPublic(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey)));
  });
});

/** DER of a GeneralNames with one directoryName holding TPM manufacturer, model and version (TCG EK profile 3.2.9). */
function tcgSubjectAltName(): string {
  const tlv = (tag: number, body: Buffer) => Buffer.concat([Buffer.from(body.length < 128 ? [tag, body.length] : [tag, 0x81, body.length]), body]);
  const oid = (s: string) => {
    const p = s.split('.').map(Number);
    const bytes = [40 * p[0]! + p[1]!];
    for (const v of p.slice(2)) {
      const enc = [v & 0x7f];
      for (let x = v >> 7; x > 0; x >>= 7) enc.unshift(0x80 | (x & 0x7f));
      bytes.push(...enc);
    }
    return tlv(0x06, Buffer.from(bytes));
  };
  const rdn = (o: string, v: string) => tlv(0x31, tlv(0x30, Buffer.concat([oid(o), tlv(0x0c, Buffer.from(v))])));
  const name = tlv(0x30, Buffer.concat([rdn('2.23.133.2.1', 'id:00001014'), rdn('2.23.133.2.2', 'swtpm'), rdn('2.23.133.2.3', 'id:20191023')]));
  return tlv(0x30, tlv(0xa4, name)).toString('hex');
}

describe('crypto: a chain made with openssl (TCG-style EK certificate)', function () {
  this.timeout(20000);
  let dir = '';
  const ekKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = (f: string) => pemToDers(readFileSync(join(dir, f), 'utf8'))[0]!;

  before(function () {
    if (!existsSync('/usr/bin/openssl')) this.skip();
    dir = mkdtempSync(join(tmpdir(), 'tpmds-certs-'));
    const ossl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    const caExt = '[ext]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n';
    writeFileSync(join(dir, 'ca.ext'), caExt);
    ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'root.key', '-out', 'root.pem', '-days', '30',
      '-subj', '/CN=Test EK Root', '-extensions', 'ext', '-config', 'ca.ext');
    ossl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'int.key', '-out', 'int.csr', '-subj', '/CN=Test EK Intermediate');
    ossl('x509', '-req', '-in', 'int.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-CAcreateserial', '-out', 'int.pem', '-days', '30', '-extfile', 'ca.ext', '-extensions', 'ext');
    writeFileSync(join(dir, 'ek.pem'), ekKey.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    ossl('req', '-new', '-key', 'ek.pem', '-out', 'ek.csr', '-subj', '/CN=unused');
    const leafExt = `[ext]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyAgreement\n2.5.29.17=critical,DER:${tcgSubjectAltName()}\n`;
    writeFileSync(join(dir, 'leaf.ext'), leafExt);
    writeFileSync(join(dir, 'odd.ext'), `${leafExt}1.2.3.4.5=critical,DER:0500\n`);
    for (const [out, ext] of [['ek-cert.pem', 'leaf.ext'], ['odd-cert.pem', 'odd.ext']]) {
      ossl('x509', '-req', '-in', 'ek.csr', '-CA', 'int.pem', '-CAkey', 'int.key', '-CAcreateserial', '-out', out!, '-days', '30', '-extfile', ext!, '-extensions', 'ext');
    }
    ossl('verify', '-CAfile', 'root.pem', '-untrusted', 'int.pem', 'ek-cert.pem'); // openssl agrees it is valid
  });
  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  it('validates leaf -> intermediate -> root, and the certificate matches the EK public area', async () => {
    assert.deepEqual(await verifyCertificateChain(pem('ek-cert.pem'), [pem('root.pem')], [pem('int.pem')]), { ok: true });
    assert.ok(certificateMatchesPublic(pem('ek-cert.pem'), keyObjectToPublic(ekKey.publicKey, ekTemplateEccP256())));
    const c = parseCertificate(pem('ek-cert.pem'));
    assert.equal(c.subject, 'CN=unused');
    assert.ok(c.extensions.some((x) => x.oid === '2.5.29.17' && x.critical));
  });

  it('rejects an unknown critical extension, a missing intermediate, the wrong anchor and expiry', async () => {
    const odd = await verifyCertificateChain(pem('odd-cert.pem'), [pem('root.pem')], [pem('int.pem')]);
    assert.equal(odd.ok, false);
    assert.match(odd.error!, /unhandled critical extension 1\.2\.3\.4\.5/);
    assert.equal((await verifyCertificateChain(pem('ek-cert.pem'), [pem('root.pem')])).ok, false);
    assert.equal((await verifyCertificateChain(pem('ek-cert.pem'), [caCert('tpm_ek_root_1.cer')], [pem('int.pem')])).ok, false);
    assert.equal((await verifyCertificateChain(pem('ek-cert.pem'), [pem('root.pem')], [pem('int.pem')], { at: new Date(Date.now() + 60 * 86400e3) })).ok, false);
  });

  it('reads several PEM certificates from one file and writes PEM back', () => {
    const both = readFileSync(join(dir, 'root.pem'), 'utf8') + '\n' + readFileSync(join(dir, 'int.pem'), 'utf8');
    const ders = pemToDers(both);
    assert.equal(ders.length, 2);
    assert.deepEqual(pemToDers(derToPem(ders[1]!)), [ders[1]]);
    assert.equal(derToPem(ders[0]!).trim(), readFileSync(join(dir, 'root.pem'), 'utf8').trim());
    assert.deepEqual(pemToDers(caCert('tpm_ek_root_1.cer')), [caCert('tpm_ek_root_1.cer')]);
    assert.deepEqual(pemToDers(new TextEncoder().encode(both)), ders);
    assert.deepEqual(pemToDers('no certificates here'), []);
    assert.throws(() => pemToDers('-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----'), /not base64/);
    assert.throws(() => parseCertificate(Uint8Array.of(0x30, 0x03, 1, 2, 3)), /does not decode/);
  });
});
