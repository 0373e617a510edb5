// The seed's own Go client (salrashid123/tpm_daemonset example/client/grpc_verifier.go) walks its
// whole flow against our attestor, ending with -signUsingEK (GetGCEEKSigningKey, SignGCEEK), on a
// swtpm provisioned like a GCE vTPM. Skipped unless TPMDS_SEED_CLIENT names the built binary
// (building it needs Go and the module proxy, which the test suite does not use):
//
//   git clone https://github.com/salrashid123/tpm_daemonset && cd tpm_daemonset/example/client
//   echo 'replace github.com/salrashid123/tpm_daemonset/verifier => ../../verifier' >> go.mod
//   GOFLAGS=-mod=mod go build -o /tmp/seedclient . && export TPMDS_SEED_CLIENT=/tmp/seedclient
//
// (The client's pinned verifier module version is not on proxy.golang.org, hence the replace.)
// The same RPCs, called from Go the way this client calls them, are checked in CI by the Go interop
// suite (interop/go, run by go-interop.test.ts), which does not need this binary.
// The client speaks TLS without a client certificate, which only a TLS-only attestor allows; the
// attestor's own config insists on caller identity with TLS, so a TLS terminator (ALPN h2) in front
// of an --insecure attestor stands in. Its EK certificate must carry Google's instance-identity
// extension: the client dereferences go-tpm-tools' GetGCEInstanceInfo result without a nil check.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createServer, type Server } from 'node:tls';
import { EV, PERSISTENT_HANDLE, TPM_ALG, buildEventLog, toHex, utf8 } from '@tpmds/tpm2-wire';
import { startSwtpm, type SwtpmInstance } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { startWithConfig, tempDir, withTpm, type ConfiguredAttestor } from './e2e-support.js';
import { CLOUD_AK_NV, issueCloudAkCertificate, provisionCloudAkTemplate, removePlatformNv, writePlatformNv } from './fixtures/cloud-ak.js';
import { TestPki } from './fixtures/pki.js';

const SEED_CLIENT = process.env['TPMDS_SEED_CLIENT'];
const sha = (alg: string, d: Uint8Array): Uint8Array => new Uint8Array(createHash(alg).update(d).digest());

(SEED_CLIENT ? describe : describe.skip)('the seed\'s Go client (-signUsingEK) against tpmds-attestor on swtpm @swtpm', function () {
  this.timeout(180_000);
  let dirs: ReturnType<typeof tempDir>;
  let swtpm: SwtpmInstance;
  let att: ConfiguredAttestor;
  let proxy: Server;
  let pki: TestPki;
  let pcr0: string;

  before(async function () {
    this.timeout(120_000);
    dirs = tempDir('tpmds-seed-client-');
    pki = new TestPki(dirs.dir, 'ca');
    swtpm = await startSwtpm();
    const events = [
      { pcr: 0, type: EV.EV_S_CRTM_VERSION, data: utf8('swtpm') },
      { pcr: 7, type: EV.EV_SEPARATOR, data: new Uint8Array(4) },
    ];
    await withTpm(swtpm.address, async (tpm) => {
      const ak = await provisionCloudAkTemplate(tpm, 'rsa');
      await writePlatformNv(tpm, CLOUD_AK_NV.rsa.certificate, issueCloudAkCertificate(dirs.dir, ak, { cert: pki.caCert, key: pki.caKey }));
      const ek = (await tpm.readPublic(PERSISTENT_HANDLE.ekRsa)).public;
      await removePlatformNv(tpm, 0x01c00002);
      await writePlatformNv(tpm, 0x01c00002, issueCloudAkCertificate(dirs.dir, ek, { cert: pki.caCert, key: pki.caKey }, 'ek'));
      for (const e of events) await tpm.pcrExtend(e.pcr, [{ hashAlg: TPM_ALG.SHA1, digest: sha('sha1', e.data) }, { hashAlg: TPM_ALG.SHA256, digest: sha('sha256', e.data) }]);
      pcr0 = toHex((await tpm.readPcrs(TPM_ALG.SHA256, [0])).get(0)!);
    });
    writeFileSync(join(dirs.dir, 'eventlog'), buildEventLog(events, [TPM_ALG.SHA1, TPM_ALG.SHA256]));
    att = await startWithConfig({ eventLog: join(dirs.dir, 'eventlog') }, swtpm, join(dirs.dir, 'state'));
    const server = pki.server('server');
    const [host, port] = att.running.address.split(':') as [string, string];
    proxy = createServer({ cert: readFileSync(server.cert), key: readFileSync(server.key), ALPNProtocols: ['h2'] }, (s) => {
      const up = connect(Number(port), host);
      s.pipe(up).pipe(s);
      s.on('error', () => up.destroy());
      up.on('error', () => s.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  });
  after(async function () {
    this.timeout(30_000);
    proxy?.close();
    await att?.stop();
    await swtpm?.stop();
    dirs?.cleanup();
  });

  it('runs its whole flow and -signUsingEK verifies the cloud attestation key\'s signature', async () => {
    const port = (proxy.address() as { port: number }).port;
    const child = spawn(SEED_CLIENT as string, [
      '-host', `localhost:${port}`, '-serverName', 'localhost', '-caCertTLS', pki.caCert, '-signUsingEK',
      `-expectedPCRMapSHA256=0:${pcr0}`, '-v', '10', '-alsologtostderr',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    assert.equal(code, 0, out.slice(-4000));
    assert.match(out, /start Sign with EK[\s\S]*EK Signing Public[\s\S]*signature verified\s*$/);
    assert.match(out, /inbound\/outbound Secrets Match/);
    assert.match(out, /quotes verified/);
  });
});
