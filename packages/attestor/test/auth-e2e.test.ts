// Caller identity end to end: a real attestor on swtpm (real TpmBackend and key store) with
// --auth k8s against the TokenReview stand-in, and with --auth mtls; pods A and B use the same
// uid/kid and must never reach each other's keys. The same cases against a real API server are
// in k8s-auth.test.ts (@k8s).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TLSSocket } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { decodeImportBlob } from '@tpmds/protocol/formats';
import { AttestorClient } from '@tpmds/protocol/proto';
import { TPMT_PUBLIC, objectName, toHex, unmarshal } from '@tpmds/tpm2-wire';
import { startSwtpm, type SwtpmInstance } from '../../tpm2-wire/test/fixtures/swtpm.js';
import type { AttestorConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { checkAk, checkNewKey, ekPublicFromSpki, expectStatus, importBlobBytes, startWithConfig as startWith, tempDir, verifiesWith, type ConfiguredAttestor as Attestor } from './e2e-support.js';
import { TestPki } from './fixtures/pki.js';
import { TokenReviewStandIn } from './fixtures/tokenreview-standin.js';

const S = grpc.status;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('caller identity end to end on swtpm @swtpm', function () {
  this.timeout(90_000);
  let swtpm: SwtpmInstance;
  let dirs: ReturnType<typeof tempDir>;
  let pki: TestPki;
  let api: TokenReviewStandIn;
  let reviewerFile: string;
  const clients: AttestorClient[] = [];

  before(async function () {
    this.timeout(120_000);
    dirs = tempDir('tpmds-auth-');
    swtpm = await startSwtpm({ transport: 'unix' });
    pki = new TestPki(dirs.dir, 'kube-ca');
    api = new TokenReviewStandIn(pki.server('apiserver'));
    await api.start();
    reviewerFile = join(dirs.dir, 'attestor-token');
    writeFileSync(reviewerFile, api.reviewer());
  });
  after(async function () {
    this.timeout(30_000);
    for (const c of clients) c.close();
    await api?.stop();
    await swtpm?.stop();
    dirs?.cleanup();
  });

  const k8sConfig = (over: Partial<AttestorConfig> = {}): Partial<AttestorConfig> => ({
    auth: 'k8s',
    kubeApi: api.url,
    kubeCa: pki.caCert,
    kubeTokenFile: reviewerFile,
    nodeName: 'node-1',
    tokenCacheSeconds: 0,
    ...over,
  });
  const client = (att: Attestor, token?: string | (() => string), creds = grpc.credentials.createInsecure(), options?: Partial<grpc.ChannelOptions>): AttestorClient => {
    const bearerToken = typeof token === 'string' ? () => token : token;
    const c = new AttestorClient(att.running.address, creds, options, bearerToken === undefined ? {} : { bearerToken });
    clients.push(c);
    return c;
  };
  const podToken = (ns: string, pod: string, node = 'node-1', audiences = ['tpmds']): string =>
    api.issue({ namespace: ns, serviceAccount: 'workload', audiences, pod: { name: pod, node } });

  describe('--auth k8s (TokenReview stand-in)', () => {
    let att: Attestor;
    let a: AttestorClient;
    let b: AttestorClient;
    const tokens: string[] = [];
    before(async () => {
      att = await startWith(k8sConfig(), swtpm, join(dirs.dir, 'state-k8s'));
      tokens.push(podToken('team-a', 'a-0'), podToken('team-b', 'b-0'));
      a = client(att, tokens[0]);
      b = client(att, tokens[1]);
    });
    after(async () => att?.stop());

    it('pod A uses its keys; pod B, with the same uid/kid, sees NOT_FOUND exactly as for keys that never existed, and gets its own', async () => {
      const uid = 'shared-uid';
      const kid = 'shared-kid';
      const akA = checkAk((await a.getAK({ uid, keyType: 'ecc' })).ak, 'ecc');
      const newA = checkNewKey(await a.newKey({ uid, kid, keyType: 'ecc' }), akA, 'ecc');
      const data = enc('signed by A');
      assert.ok(verifiesWith(newA.key, data, (await a.sign({ uid, kid, data })).signed));

      // B: A's uid/kid are not there for it, and look like any key that does not exist
      const fresh = client(att, podToken('team-c', 'c-0'));
      const calls: ((c: AttestorClient) => Promise<unknown>)[] = [
        (c) => c.sign({ uid, kid, data }),
        (c) => c.quote({ uid, nonce: randomBytes(16) }),
        (c) => c.newKey({ uid, kid: 'other', keyType: 'ecc' }),
      ];
      for (const call of calls) {
        const eb = await expectStatus(call(b), S.NOT_FOUND);
        const ef = await expectStatus(call(fresh), S.NOT_FOUND);
        assert.equal(eb.details, ef.details, 'indistinguishable from a key that never existed');
      }

      // B creates its own AK and key under the same names: different keys, A's unchanged
      const akB = checkAk((await b.getAK({ uid, keyType: 'ecc' })).ak, 'ecc');
      assert.notDeepEqual(akB.public, akA.public, 'A and B have different AKs');
      const newB = checkNewKey(await b.newKey({ uid, kid, keyType: 'ecc' }), akB, 'ecc');
      assert.ok(!verifiesWith(newA.key, data, (await b.sign({ uid, kid, data })).signed), 'B signs with its own key');
      assert.ok(verifiesWith(newB.key, data, (await b.sign({ uid, kid, data })).signed));
      assert.ok(verifiesWith(newA.key, data, (await a.sign({ uid, kid, data })).signed), "A's key was not overwritten");
      await expectStatus(a.newKey({ uid, kid, keyType: 'ecc' }), S.ALREADY_EXISTS);
      // GetAK stays idempotent per identity
      assert.deepEqual(checkAk((await a.getAK({ uid, keyType: 'ecc' })).ak, 'ecc').public, akA.public);
    });

    it('ImportBlob and GetEKCert work for an authenticated pod; the log names which identity unsealed (never the secret)', async () => {
      const ek = ekPublicFromSpki((await a.getEKCert('ecc')).ekPub, 'ecc');
      const secret = randomBytes(24);
      const encryptedKey = importBlobBytes(ek, { kind: 'sealed', data: secret });
      const r = await a.importBlob({ uid: 'any', encryptedKey });
      assert.deepEqual(new Uint8Array(r.decryptedKey), new Uint8Array(secret));
      const line = att.log.lines.filter((l) => l['msg'] === 'rpc' && l['method'] === 'ImportBlob').at(-1);
      assert.equal(line?.['identity'], 'system:serviceaccount:team-a:workload');
      assert.equal(line?.['code'], 'OK');
      // ... and what: the sealed object's Name (public), and whether PCRs bind it (SECURITY.md).
      assert.equal(line?.['sealedObject'], toHex(objectName(unmarshal(TPMT_PUBLIC, decodeImportBlob(encryptedKey).publicArea))));
      assert.equal(line?.['pcrBound'], 'false');
      assert.ok(!att.log.text.includes(Buffer.from(secret).toString('hex')) && !att.log.text.includes(Buffer.from(secret).toString('base64')));
    });

    it('refuses with the contract codes, logs and counts each refusal, and never logs a token', async () => {
      const cases: [AttestorClient, grpc.status, string][] = [
        [client(att, podToken('team-a', 'far', 'node-2')), S.PERMISSION_DENIED, 'wrong_node'],
        [client(att, podToken('team-a', 'aud', 'node-1', ['vault'])), S.PERMISSION_DENIED, 'wrong_audience'],
        [client(att, api.issue({ namespace: 'team-a', serviceAccount: 'x', audiences: ['tpmds'] })), S.PERMISSION_DENIED, 'not_a_pod'],
        [client(att, api.issue({ namespace: 'team-a', serviceAccount: 'x', audiences: ['tpmds'], pod: { name: 'old', node: 'node-1' }, expiresIn: -1 })), S.UNAUTHENTICATED, 'invalid_token'],
        [client(att, 'unknown.token.value'), S.UNAUTHENTICATED, 'invalid_token'],
        [client(att), S.UNAUTHENTICATED, 'no_credentials'],
        [client(att, 'junk with spaces'), S.UNAUTHENTICATED, 'malformed_credentials'],
      ];
      for (const [c, code, reason] of cases) {
        const before = att.metrics.authFailures.get({ reason });
        await expectStatus(c.getAK({ uid: 'u' }), code, reason);
        await expectStatus(c.getEKCert('rsa'), code, `${reason} (GetEKCert needs authentication too)`);
        assert.equal(att.metrics.authFailures.get({ reason }), before + 2, reason);
        const line = att.log.lines.filter((l) => l['msg'] === 'rpc' && l['authFailure'] === reason).at(-1);
        assert.ok(line !== undefined, `logged: ${reason}`);
      }
      const text = att.log.text;
      for (const t of [...tokens, 'unknown.token.value']) assert.ok(!text.includes(t), 'no token in the log');
      assert.match(await (await fetch(`http://${att.running.healthAddress}/metrics`)).text(), /tpmds_auth_failures_total\{reason="wrong_node"\} 2/);
    });

    it('the API server down is UNAVAILABLE (fail closed), and calls succeed again once it is back', async () => {
      await api.stop();
      try {
        await expectStatus(a.getAK({ uid: 'shared-uid', keyType: 'ecc' }), S.UNAVAILABLE);
      } finally {
        await api.start();
      }
      await a.getAK({ uid: 'shared-uid', keyType: 'ecc' });
    });
  });

  it('--auth k8s: a cached review is reused for --token-cache-seconds at most; a deleted pod\'s token then fails', async () => {
    const att = await startWith(k8sConfig({ tokenCacheSeconds: 1 }), swtpm, join(dirs.dir, 'state-cache'));
    try {
      const c = client(att, podToken('team-a', 'doomed'));
      const before = api.reviews;
      await c.getEKCert('rsa');
      api.deletePod('doomed');
      await c.getEKCert('rsa'); // within the cache time
      assert.equal(api.reviews - before, 1);
      await new Promise((r) => setTimeout(r, 1100));
      await expectStatus(c.getEKCert('rsa'), S.UNAUTHENTICATED);
    } finally {
      await att.stop();
    }
  });

  it('--allow: a policy limits RPCs per identity (PERMISSION_DENIED, counted); GetEKCert stays open', async () => {
    const policy = join(dirs.dir, 'allow.yaml');
    writeFileSync(policy, 'rules:\n  - identities: ["system:serviceaccount:team-a:*"]\n    rpcs: ["*"]\n  - identities: ["system:serviceaccount:team-b:workload"]\n    rpcs: [GetAK, Quote]\n');
    const att = await startWith(k8sConfig({ allow: policy }), swtpm, join(dirs.dir, 'state-policy'));
    try {
      const b = client(att, podToken('team-b', 'b-p'));
      const c = client(att, podToken('team-c', 'c-p'));
      await b.getAK({ uid: 'p', keyType: 'ecc' });
      await expectStatus(b.newKey({ uid: 'p', kid: 'k', keyType: 'ecc' }), S.PERMISSION_DENIED);
      await expectStatus(c.getAK({ uid: 'p', keyType: 'ecc' }), S.PERMISSION_DENIED);
      await c.getEKCert('ecc');
      assert.equal(att.metrics.authFailures.get({ reason: 'forbidden_by_policy' }), 2);
    } finally {
      await att.stop();
    }
  });

  it('--auth mtls: the client certificate\'s URI SAN (else CN) is the identity; same isolation; a certificate naming nobody is UNAUTHENTICATED', async () => {
    const mtls = new TestPki(dirs.dir, 'client-ca');
    const server = mtls.server('grpc-server');
    const spiffe = mtls.leaf('spiffe-a', '/CN=ignored', ['subjectAltName=URI:spiffe://example.org/ns/a/sa/signer', 'extendedKeyUsage=clientAuth']);
    const cn = mtls.leaf('cn-b', '/CN=builder-b', ['extendedKeyUsage=clientAuth']);
    const nobody = mtls.leaf('nobody', '/O=nobody', ['extendedKeyUsage=clientAuth']);
    const att = await startWith({ insecure: false, tlsCert: server.cert, tlsKey: server.key, clientCa: mtls.caCert, auth: 'mtls' }, swtpm, join(dirs.dir, 'state-mtls'));
    const name = { 'grpc.ssl_target_name_override': 'localhost' };
    const as = (leaf: { keyPem: Buffer; certPem: Buffer }): AttestorClient => client(att, undefined, grpc.credentials.createSsl(mtls.caPem, leaf.keyPem, leaf.certPem), name);
    try {
      const a = as(spiffe);
      const b = as(cn);
      const akA = checkAk((await a.getAK({ uid: 'u', keyType: 'ecc' })).ak, 'ecc');
      checkNewKey(await a.newKey({ uid: 'u', kid: 'k', keyType: 'ecc' }), akA, 'ecc');
      await expectStatus(b.sign({ uid: 'u', kid: 'k', data: enc('x') }), S.NOT_FOUND);
      const akB = checkAk((await b.getAK({ uid: 'u', keyType: 'ecc' })).ak, 'ecc');
      assert.notDeepEqual(akA.public, akB.public);
      await b.newKey({ uid: 'u', kid: 'k', keyType: 'ecc' });
      await expectStatus(as(nobody).getAK({ uid: 'u' }), S.UNAUTHENTICATED);
      // The identity comes from the call's TLS socket (getPeerX509Certificate), not from grpc-js's
      // getAuthContext(), which decodes the whole certificate per call (see peerCertificateDer).
      const proto = TLSSocket.prototype;
      const getPeerCertificate = proto.getPeerCertificate;
      let decoded = 0;
      proto.getPeerCertificate = function (this: TLSSocket, ...args: [boolean?]) {
        decoded++;
        return getPeerCertificate.apply(this, args as [true]);
      } as typeof getPeerCertificate;
      try {
        for (let i = 0; i < 5; i++) await a.sign({ uid: 'u', kid: 'k', data: enc(`x${i}`) });
        await expectStatus(b.sign({ uid: 'u', kid: 'nope', data: enc('x') }), S.NOT_FOUND);
      } finally {
        proto.getPeerCertificate = getPeerCertificate;
      }
      assert.equal(decoded, 0, 'the attestor fell back to getAuthContext(): has grpc-js moved the call\'s socket (call.call.stream.session.socket)?');
      const ids = new Set(att.log.lines.filter((l) => l['msg'] === 'rpc').map((l) => l['identity']));
      assert.ok(ids.has('spiffe://example.org/ns/a/sa/signer') && ids.has('builder-b'), [...ids].join(', '));
    } finally {
      await att.stop();
    }
  });

  it('--auth none is refused without --insecure or --client-ca, naming --auth', async () => {
    const tls = pki.server('plain-tls');
    await assert.rejects(
      startWith({ insecure: false, tlsCert: tls.cert, tlsKey: tls.key }, swtpm, join(dirs.dir, 'state-none')),
      (e: unknown) => e instanceof ConfigError && e.flag === '--auth',
    );
  });
});
