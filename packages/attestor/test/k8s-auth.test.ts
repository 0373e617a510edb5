// Caller identity against a real Kubernetes API server (test/k8s: kube-apiserver + etcd, no kubelet):
// real Nodes, ServiceAccounts and Pods, tokens from the TokenRequest API bound to pods with audience
// tpmds; the attestor (real TPM backend on swtpm) runs --auth k8s with a token of its own
// ServiceAccount whose ClusterRole allows only create on tokenreviews. The fast stand-in version of
// the same matrix is auth-e2e.test.ts.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { AttestorClient } from '@tpmds/protocol/proto';
import { startSwtpm, type SwtpmInstance } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { withKube } from '../../../test/k8s/kube.js';
import { checkAk, checkNewKey, expectStatus, sleep, startWithConfig, tempDir, verifiesWith, type ConfiguredAttestor } from './e2e-support.js';

const S = grpc.status;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('caller identity against a real Kubernetes API server @k8s @swtpm', function () {
  this.timeout(120_000);
  const kube = withKube();
  let swtpm: SwtpmInstance;
  let dirs: ReturnType<typeof tempDir>;
  let att: ConfiguredAttestor;
  let ownTokenFile: string;
  const clients: AttestorClient[] = [];

  const client = (token?: string): AttestorClient => {
    const c = new AttestorClient(att.running.address, grpc.credentials.createInsecure(), undefined, token === undefined ? {} : { bearerToken: () => token });
    clients.push(c);
    return c;
  };
  /** A pod on `node` running as team/workload, and a TokenRequest token bound to it. */
  async function podToken(ns: string, pod: string, node: string, audiences = ['tpmds']): Promise<string> {
    const p = await kube().createPod(ns, pod, { nodeName: node, serviceAccountName: 'workload' });
    return (await kube().requestToken(ns, 'workload', { audiences, expirationSeconds: 600, boundPod: { name: pod, uid: p.metadata.uid as string } })).token;
  }

  before(async function () {
    this.timeout(120_000);
    const k = kube();
    dirs = tempDir('tpmds-k8s-auth-');
    swtpm = await startSwtpm({ transport: 'unix' });
    for (const n of ['node-1', 'node-2']) await k.createNode(n);
    for (const ns of ['tpmds', 'team-a', 'team-b']) await k.createNamespace(ns);
    await k.createServiceAccount('tpmds', 'tpmds-attestor');
    await k.grantTokenReview('tpmds', 'tpmds-attestor');
    for (const ns of ['team-a', 'team-b']) await k.createServiceAccount(ns, 'workload');
    ownTokenFile = join(dirs.dir, 'attestor-token');
    writeFileSync(ownTokenFile, (await k.requestToken('tpmds', 'tpmds-attestor', { audiences: [k.issuer] })).token);
    att = await startWithConfig(
      { auth: 'k8s', kubeApi: k.server, kubeCa: k.caFile, kubeTokenFile: ownTokenFile, nodeName: 'node-1', tokenCacheSeconds: 1 },
      swtpm,
      join(dirs.dir, 'state'),
    );
  });
  after(async function () {
    this.timeout(30_000);
    for (const c of clients) c.close();
    await att?.stop();
    await swtpm?.stop();
    dirs?.cleanup();
  });

  it('pods A and B on this node: same uid/kid, separate keys; B sees NOT_FOUND for A\'s', async () => {
    const a = client(await podToken('team-a', 'a-0', 'node-1'));
    const b = client(await podToken('team-b', 'b-0', 'node-1'));
    const akA = checkAk((await a.getAK({ uid: 'app', keyType: 'ecc' })).ak, 'ecc');
    const keyA = checkNewKey(await a.newKey({ uid: 'app', kid: 'k', keyType: 'ecc' }), akA, 'ecc');
    assert.ok(verifiesWith(keyA.key, enc('x'), (await a.sign({ uid: 'app', kid: 'k', data: enc('x') })).signed));
    await expectStatus(b.sign({ uid: 'app', kid: 'k', data: enc('x') }), S.NOT_FOUND);
    const akB = checkAk((await b.getAK({ uid: 'app', keyType: 'ecc' })).ak, 'ecc');
    assert.notDeepEqual(akB.public, akA.public);
    const ids = new Set(att.log.lines.filter((l) => l['msg'] === 'rpc').map((l) => l['identity']));
    assert.ok(ids.has('system:serviceaccount:team-a:workload') && ids.has('system:serviceaccount:team-b:workload'), [...ids].join(', '));
  });

  it('refuses a pod on another node, another audience, a token not bound to a pod, junk and no token', async () => {
    const k = kube();
    const cases: [string | undefined, grpc.status, string][] = [
      [await podToken('team-a', 'far-0', 'node-2'), S.PERMISSION_DENIED, 'wrong_node'],
      [await podToken('team-a', 'aud-0', 'node-1', ['vault']), S.PERMISSION_DENIED, 'wrong_audience'],
      [(await k.requestToken('team-a', 'workload', { audiences: ['tpmds'] })).token, S.PERMISSION_DENIED, 'not_a_pod'],
      ['eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOlsidHBtZHMiXX0.bm90LWEtc2lnbmF0dXJl', S.UNAUTHENTICATED, 'invalid_token'],
      [undefined, S.UNAUTHENTICATED, 'no_credentials'],
    ];
    for (const [token, code, reason] of cases) {
      const before = att.metrics.authFailures.get({ reason });
      await expectStatus(client(token).getAK({ uid: 'app' }), code, reason);
      assert.equal(att.metrics.authFailures.get({ reason }), before + 1, reason);
    }
  });

  it('a force-deleted pod\'s token is refused within the documented bound (API server cache ~10 s + ours 1 s)', async () => {
    const c = client(await podToken('team-a', 'doomed', 'node-1'));
    await c.getAK({ uid: 'doomed', keyType: 'ecc' });
    await kube().deletePod('team-a', 'doomed', { gracePeriodSeconds: 0 });
    const deleted = Date.now();
    for (;;) {
      try {
        await c.getEKCert('ecc');
      } catch (e) {
        assert.equal((e as grpc.ServiceError).code, S.UNAUTHENTICATED);
        break;
      }
      assert.ok(Date.now() - deleted < 20_000, 'still accepted 20 s after the pod was deleted');
      await sleep(500);
    }
    assert.ok(Date.now() - deleted <= 20_000);
  });

  it('the API server stopped: UNAVAILABLE (fail closed); restarted: the attestor recovers by itself', async () => {
    const c = client(await podToken('team-a', 'outage', 'node-1'));
    await c.getEKCert('rsa');
    await kube().stopApiServer();
    try {
      await sleep(1100); // past our own review cache
      await expectStatus(c.getEKCert('rsa'), S.UNAVAILABLE);
    } finally {
      await kube().startApiServer();
    }
    await c.getEKCert('rsa');
  });

  it('the attestor\'s own token file replaced: the new one is used at the next review', async () => {
    const c = client(await podToken('team-a', 'rotate', 'node-1'));
    writeFileSync(ownTokenFile, 'not-a-token');
    await sleep(1100);
    const e = await expectStatus(c.getEKCert('rsa'), S.UNAVAILABLE);
    assert.match(e.details, /HTTP 401/);
    const k = kube();
    writeFileSync(ownTokenFile, (await k.requestToken('tpmds', 'tpmds-attestor', { audiences: [k.issuer] })).token);
    await c.getEKCert('rsa');
    // a token of a service account without the tokenreviews grant: 403, named
    await k.createServiceAccount('tpmds', 'no-rbac');
    writeFileSync(ownTokenFile, (await k.requestToken('tpmds', 'no-rbac', { audiences: [k.issuer] })).token);
    await sleep(1100);
    assert.match((await expectStatus(c.getEKCert('rsa'), S.UNAVAILABLE)).details, /HTTP 403/);
    writeFileSync(ownTokenFile, (await k.requestToken('tpmds', 'tpmds-attestor', { audiences: [k.issuer] })).token);
  });
});
