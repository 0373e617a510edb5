/**
 * The facts `--auth k8s` rests on, pinned on a real kube-apiserver (test/k8s/kube.ts): what TokenReview
 * answers for pod-bound TokenRequest tokens (audience check, node binding, revocation when the pod
 * goes), what a reviewer with nothing but `create tokenreviews` can do, and the harness itself
 * (readiness, kubectl, API server stop/restart on the same port and CA).
 *
 * Numbers measured here are printed (`k8s fact: ...`) so a run's log records them.
 */
import assert from 'node:assert/strict';
import { createSign, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { NODE_NAME_EXTRA, withKube, type IssuedToken, type Kube, type KubeObject } from '../../../test/k8s/kube.js';

const CLIENT_NS = 'apps';
const SYSTEM_NS = 'tpmds-system';
const REVIEWER = 'tpmds-attestor';
const CLIENT_SA = 'client';
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const fact = (text: string) => console.log(`      k8s fact: ${text}`);

/** Polls TokenReview until the token is refused; returns the milliseconds that took and the last status. */
async function msUntilRefused(k: Kube, token: string, reviewer: { token: string }, limitMs: number) {
  const start = Date.now();
  for (;;) {
    const status = await k.tokenReview(token, ['tpmds'], reviewer);
    if (!status.authenticated) return { ms: Date.now() - start, status };
    if (Date.now() - start > limitMs) throw new Error(`token still authenticated after ${limitMs} ms`);
    await sleep(250);
  }
}

describe('Kubernetes API server facts for --auth k8s @k8s', function () {
  const kube = withKube();
  let nodeA: KubeObject;
  let reviewer: IssuedToken;
  let podSeq = 0;

  before(async function () {
    this.timeout(60_000);
    const k = kube();
    nodeA = await k.createNode('node-a');
    await k.createNode('node-b');
    await k.createNamespace(SYSTEM_NS);
    await k.createNamespace(CLIENT_NS);
    await k.createServiceAccount(SYSTEM_NS, REVIEWER);
    await k.createServiceAccount(CLIENT_NS, CLIENT_SA);
    await k.grantTokenReview(SYSTEM_NS, REVIEWER);
    // The reviewer's own credential: a plain (not pod-bound) token for the API server's audience.
    reviewer = await k.requestToken(SYSTEM_NS, REVIEWER, { audiences: [k.issuer] });
  });

  async function newPod(node = 'node-a'): Promise<KubeObject> {
    podSeq += 1;
    return kube().createPod(CLIENT_NS, `client-${podSeq}`, { nodeName: node, serviceAccountName: CLIENT_SA });
  }
  const podToken = (pod: KubeObject, audiences = ['tpmds']) =>
    kube().requestToken(CLIENT_NS, CLIENT_SA, { audiences, boundPod: { name: pod.metadata.name, uid: pod.metadata.uid } });

  describe('harness', () => {
    it('serves /readyz with its own CA and an admin client certificate; kubectl works with the kubeconfig', async () => {
      const k = kube();
      assert.match(k.server, /^https:\/\/127\.0\.0\.1:\d+$/);
      const ca = new X509Certificate(k.caPem);
      assert.ok(ca.ca);
      assert.ok(new X509Certificate(k.adminCert).checkIssued(ca));
      const readyz = await k.request('GET', '/readyz');
      assert.equal(readyz.status, 200);
      const who = await k.kubectl(['auth', 'whoami', '-o', 'json']);
      assert.equal(who.code, 0, who.stderr);
      const groups = JSON.parse(who.stdout).status.userInfo.groups as string[];
      assert.ok(groups.includes('system:masters'), groups.join(','));
      const version = await k.kubectl(['version', '-o', 'json']);
      assert.equal(version.code, 0, version.stderr);
      const v = JSON.parse(version.stdout);
      assert.equal(v.serverVersion.gitVersion, 'v1.37.2');
      assert.equal(v.clientVersion.gitVersion, 'v1.37.2');
      const pids = k.pids();
      assert.ok(pids.etcd > 0 && (pids.apiServer ?? 0) > 0);
    });

    it('has no default ServiceAccount (no controller-manager): tests create their own', async () => {
      const r = await kube().request('GET', `/api/v1/namespaces/${CLIENT_NS}/serviceaccounts/default`);
      assert.equal(r.status, 404);
    });
  });

  describe('TokenReview of a pod-bound token', () => {
    it('authenticates it with the audience, the ServiceAccount and the node/pod binding in user.extra', async () => {
      const k = kube();
      const pod = await newPod();
      const { token } = await podToken(pod);
      const status = await k.tokenReview(token, ['tpmds'], reviewer);
      assert.equal(status.authenticated, true, status.error);
      assert.equal(status.user?.username, `system:serviceaccount:${CLIENT_NS}:${CLIENT_SA}`);
      assert.deepEqual(status.audiences, ['tpmds']);
      for (const g of ['system:serviceaccounts', `system:serviceaccounts:${CLIENT_NS}`, 'system:authenticated']) {
        assert.ok(status.user?.groups?.includes(g), `groups ${status.user?.groups?.join(',')} lack ${g}`);
      }
      const extra = status.user?.extra ?? {};
      assert.deepEqual(extra[NODE_NAME_EXTRA], ['node-a']);
      assert.deepEqual(extra['authentication.kubernetes.io/node-uid'], [nodeA.metadata.uid]);
      assert.deepEqual(extra['authentication.kubernetes.io/pod-name'], [pod.metadata.name]);
      assert.deepEqual(extra['authentication.kubernetes.io/pod-uid'], [pod.metadata.uid]);
      assert.match(extra['authentication.kubernetes.io/credential-id']?.[0] ?? '', /^JTI=[0-9a-f-]{36}$/);
      fact(`user.extra keys of a pod-bound token: ${Object.keys(extra).sort().join(', ')}`);
    });

    it('binds the node the pod was scheduled to, not the one the reviewer is on', async () => {
      const k = kube();
      const pod = await newPod('node-b');
      const status = await k.tokenReview((await podToken(pod)).token, ['tpmds'], reviewer);
      assert.equal(status.authenticated, true, status.error);
      assert.deepEqual(status.user?.extra?.[NODE_NAME_EXTRA], ['node-b']);
    });

    it('refuses a token for another audience, and answers what exactly', async () => {
      const k = kube();
      const pod = await newPod();
      const other = await podToken(pod, ['not-tpmds']);
      const s1 = await k.tokenReview(other.token, ['tpmds'], reviewer);
      fact(`wrong audience -> status ${JSON.stringify(s1)}`);
      // A refusal is HTTP 201 with `authenticated` omitted (false is empty), an empty `user` and `error`.
      assert.notEqual(s1.authenticated, true);
      assert.deepEqual(s1.user ?? {}, {});
      assert.equal(s1.audiences, undefined);
      assert.match(s1.error ?? '', /audience/i);

      // Without spec.audiences the review checks the API server's own audience: a tpmds token fails it.
      const mine = await podToken(pod);
      const s2 = await k.tokenReview(mine.token, undefined, reviewer);
      assert.notEqual(s2.authenticated, true);
      fact(`tpmds token reviewed without spec.audiences -> status ${JSON.stringify(s2)}`);

      // A token with several audiences: the review answers the intersection.
      const both = await podToken(pod, ['tpmds', 'other']);
      const s3 = await k.tokenReview(both.token, ['tpmds'], reviewer);
      assert.equal(s3.authenticated, true, s3.error);
      assert.deepEqual(s3.audiences, ['tpmds']);
    });

    it('refuses garbage and a token signed by someone else', async () => {
      const k = kube();
      const s = await k.tokenReview('not-a-jwt', ['tpmds'], reviewer);
      assert.notEqual(s.authenticated, true);
      fact(`garbage token -> error=${JSON.stringify(s.error)}`);

      // The same claims and key id, signed with another key.
      const pod = await newPod();
      const real = (await podToken(pod)).token;
      const [header, payload] = real.split('.') as [string, string];
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const forged = `${header}.${payload}.${createSign('RSA-SHA256').update(`${header}.${payload}`).sign(privateKey).toString('base64url')}`;
      const f = await k.tokenReview(forged, ['tpmds'], reviewer);
      assert.notEqual(f.authenticated, true);
      fact(`token re-signed with another key -> error=${JSON.stringify(f.error)}`);
    });

    it('gives a token without a boundObjectRef no node or pod extras', async () => {
      const k = kube();
      const { token } = await k.requestToken(CLIENT_NS, CLIENT_SA, { audiences: ['tpmds'] });
      const status = await k.tokenReview(token, ['tpmds'], reviewer);
      assert.equal(status.authenticated, true, status.error);
      const extra = status.user?.extra ?? {};
      assert.equal(extra[NODE_NAME_EXTRA], undefined);
      assert.equal(extra['authentication.kubernetes.io/pod-name'], undefined);
      assert.deepEqual(Object.keys(extra), ['authentication.kubernetes.io/credential-id']);
    });

    it('will not issue a token bound to a pod whose uid does not match', async () => {
      const k = kube();
      const pod = await newPod();
      const r = await k.request('POST', `/api/v1/namespaces/${CLIENT_NS}/serviceaccounts/${CLIENT_SA}/token`, {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: { audiences: ['tpmds'], boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: '00000000-0000-0000-0000-000000000000' } },
      });
      assert.notEqual(r.status, 201);
      fact(`TokenRequest with a wrong pod uid -> HTTP ${r.status}: ${r.body?.message}`);
    });
  });

  describe('revocation when the pod goes', () => {
    it('refuses the token of a force-deleted pod once the ~10 s success cache expires; an unreviewed one at once', async function () {
      this.timeout(60_000);
      const k = kube();
      const pod = await newPod();
      const reviewed = await podToken(pod);
      const fresh = await podToken(pod);
      assert.equal((await k.tokenReview(reviewed.token, ['tpmds'], reviewer)).authenticated, true);
      await k.deletePod(CLIENT_NS, pod.metadata.name, { gracePeriodSeconds: 0 });
      assert.equal((await k.request('GET', `/api/v1/namespaces/${CLIENT_NS}/pods/${pod.metadata.name}`)).status, 404);

      const freshStatus = await k.tokenReview(fresh.token, ['tpmds'], reviewer);
      assert.notEqual(freshStatus.authenticated, true, 'a never-reviewed token of a deleted pod is refused at once');
      fact(`force-deleted pod, token never reviewed -> refused at once: ${JSON.stringify(freshStatus.error)}`);

      const { ms, status } = await msUntilRefused(k, reviewed.token, reviewer, 30_000);
      fact(`force-deleted pod, token reviewed just before -> still authenticated for ${(ms / 1000).toFixed(1)} s, then: ${JSON.stringify(status.error)}`);
      assert.ok(ms <= 12_000, `refused after ${ms} ms; the bound is the 10 s success cache`);
    });

    it('refuses the token of a pod replaced by one of the same name (uid check)', async () => {
      const k = kube();
      const pod = await newPod();
      const { token } = await podToken(pod);
      await k.deletePod(CLIENT_NS, pod.metadata.name, { gracePeriodSeconds: 0 });
      const again = await k.createPod(CLIENT_NS, pod.metadata.name, { nodeName: 'node-a', serviceAccountName: CLIENT_SA });
      assert.notEqual(again.metadata.uid, pod.metadata.uid);
      const status = await k.tokenReview(token, ['tpmds'], reviewer);
      assert.notEqual(status.authenticated, true);
      fact(`token of a pod replaced under the same name -> ${JSON.stringify(status.error)}`);
    });

    it('keeps accepting the token of a gracefully deleted pod (no kubelet completes the deletion)', async () => {
      const k = kube();
      const pod = await newPod();
      const { token } = await podToken(pod); // never reviewed: no cache involved
      const deleted = await k.deletePod(CLIENT_NS, pod.metadata.name, { gracePeriodSeconds: 30 });
      assert.ok(deleted.metadata.deletionTimestamp, 'graceful deletion only sets a deletionTimestamp');
      const status = await k.tokenReview(token, ['tpmds'], reviewer);
      assert.equal(status.authenticated, true, status.error);
      fact(`gracefully deleted pod (grace 30 s) -> token still authenticated; refused only once deletionTimestamp (${deleted.metadata.deletionTimestamp}) is 60 s past`);
    });

    it('refuses the token of a gracefully deleted pod 60 s past its deletionTimestamp (slow: TPMDS_K8S_SLOW=1)', async function () {
      if (!process.env['TPMDS_K8S_SLOW']) this.skip();
      this.timeout(180_000);
      const k = kube();
      const pod = await newPod();
      const { token } = await podToken(pod);
      const deleted = await k.deletePod(CLIENT_NS, pod.metadata.name, { gracePeriodSeconds: 1 });
      const deletionAt = Date.parse(deleted.metadata.deletionTimestamp!);
      const { status } = await msUntilRefused(k, token, reviewer, 150_000);
      const past = (Date.now() - deletionAt) / 1000;
      fact(`gracefully deleted pod (grace 1 s) -> refused ${past.toFixed(1)} s past its deletionTimestamp: ${JSON.stringify(status.error)}`);
      assert.ok(past >= 59 && past <= 75, `refused ${past} s past the deletionTimestamp`);
    });
  });

  describe('a reviewer that may only create tokenreviews', () => {
    it('can review tokens and do nothing else', async () => {
      const k = kube();
      const as = { token: reviewer.token };
      const denied: [string, string, unknown?][] = [
        ['GET', `/api/v1/namespaces/${CLIENT_NS}/pods`],
        ['GET', '/api/v1/pods'],
        ['GET', '/api/v1/nodes'],
        ['GET', `/api/v1/namespaces/${SYSTEM_NS}/secrets`],
        ['GET', `/api/v1/namespaces/${SYSTEM_NS}/serviceaccounts`],
        ['POST', `/api/v1/namespaces/${SYSTEM_NS}/serviceaccounts/${REVIEWER}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { audiences: ['tpmds'] } }],
        ['POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', { apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec: { user: 'x', resourceAttributes: { verb: 'get', resource: 'pods' } } }],
        ['POST', `/api/v1/namespaces/${SYSTEM_NS}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } }],
      ];
      for (const [method, path, body] of denied) {
        const r = await k.request(method, path, body, { as });
        assert.equal(r.status, 403, `${method} ${path} -> ${r.status}`);
      }
      const can = await k.kubectl(['auth', 'can-i', '--list', `--namespace=${SYSTEM_NS}`], { as });
      assert.equal(can.code, 0, can.stderr);
      assert.match(can.stdout, /tokenreviews\.authentication\.k8s\.io\s+\[\]\s+\[\]\s+\[create\]/);
      const status = await k.tokenReview(reviewer.token, [k.issuer], as);
      assert.equal(status.authenticated, true);
    });

    it('is refused TokenReview without the ClusterRoleBinding', async () => {
      const k = kube();
      await k.createServiceAccount(SYSTEM_NS, 'no-rights');
      const t = await k.requestToken(SYSTEM_NS, 'no-rights', { audiences: [k.issuer] });
      const r = await k.request('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
        apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: t.token, audiences: ['tpmds'] },
      }, { as: { token: t.token } });
      assert.equal(r.status, 403);
    });
  });

  describe('API server stop and restart', () => {
    it('refuses connections while stopped and comes back on the same port and CA with its data and keys', async function () {
      this.timeout(180_000);
      const k = kube();
      const pod = await newPod();
      const { token } = await podToken(pod);
      const before = k.pids();
      await k.stopApiServer();
      assert.equal(k.pids().apiServer, undefined);
      await assert.rejects(k.request('GET', '/readyz', undefined, { timeoutMs: 5000 }), /ECONNREFUSED/);
      const t0 = Date.now();
      await k.startApiServer();
      fact(`API server restart to /readyz: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      assert.notEqual(k.pids().apiServer, before.apiServer);
      assert.equal(k.pids().etcd, before.etcd);
      assert.equal((await k.request('GET', `/api/v1/namespaces/${CLIENT_NS}/pods/${pod.metadata.name}`)).status, 200);
      const status = await k.tokenReview(token, ['tpmds'], reviewer);
      assert.equal(status.authenticated, true, 'tokens issued before the restart stay valid (same signing key)');
    });
  });
});
