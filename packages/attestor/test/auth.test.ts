// Caller identity, unit level: bearer parsing, the --allow policy, mTLS identities, and the k8s
// authenticator against the TokenReview stand-in over real HTTPS (the gRPC-level matrix is in
// auth-e2e.test.ts; the real API server in the @k8s tests).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AccessPolicy,
  AuthFailure,
  K8sAuthenticator,
  MtlsAuthenticator,
  TokenReviewClient,
  bearerToken,
  certificateIdentity,
  unverifiedClaims,
  type CallCredentials,
} from '../src/auth/index.js';
import { ConfigError } from '../src/errors.js';
import { TestPki, pemToDer } from './fixtures/pki.js';
import { TokenReviewStandIn } from './fixtures/tokenreview-standin.js';
import { tempDir } from './helpers.js';

const creds = (authorization: string[] = [], peerCertificate: Uint8Array | null = null): CallCredentials => ({ authorization, peerCertificate });

async function failure(p: Promise<unknown>): Promise<AuthFailure> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AuthFailure, String(e));
    return e;
  }
  throw new Error('expected an AuthFailure');
}

describe('caller identity (unit)', function () {
  this.timeout(20000);

  describe('bearer tokens', () => {
    it('takes "Bearer <token>" (scheme in any case) and refuses missing, doubled or garbled values', () => {
      assert.equal(bearerToken(creds(['Bearer abc.def.ghi'])), 'abc.def.ghi');
      assert.equal(bearerToken(creds(['bearer abc'])), 'abc');
      const reason = (c: CallCredentials): string => {
        try {
          bearerToken(c);
        } catch (e) {
          assert.ok(e instanceof AuthFailure);
          assert.equal(e.code, 'UNAUTHENTICATED');
          return e.reason;
        }
        return 'accepted';
      };
      assert.equal(reason(creds()), 'no_credentials');
      assert.equal(reason(creds(['Bearer a', 'Bearer b'])), 'malformed_credentials');
      assert.equal(reason(creds(['Basic dXNlcjpwYXNz'])), 'malformed_credentials');
      assert.equal(reason(creds(['Bearer '])), 'malformed_credentials');
      assert.equal(reason(creds(['Bearer a b'])), 'malformed_credentials');
      assert.equal(reason(creds(['Bearer \u00e9t\u00e9'])), 'malformed_credentials');
      assert.equal(reason(creds([`Bearer ${'a'.repeat(20000)}`])), 'malformed_credentials');
    });

    it('reads aud and exp of a JWT without trusting it, and nothing of junk', () => {
      const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
      assert.deepEqual(unverifiedClaims(`${b64({})}.${b64({ aud: 'x', exp: 5 })}.sig`), { aud: ['x'], exp: 5 });
      assert.deepEqual(unverifiedClaims(`${b64({})}.${b64({ aud: ['x', 'y'] })}.sig`), { aud: ['x', 'y'] });
      assert.equal(unverifiedClaims('junk'), null);
      assert.equal(unverifiedClaims('a.b!.c'), null);
    });
  });

  describe('--allow policy', () => {
    const policy = AccessPolicy.parse(
      'rules:\n' +
        '  - identities: ["system:serviceaccount:payments:*", "spiffe://example.org/ci"]\n' +
        '    rpcs: [GetAK, Quote, Sign]\n' +
        '  - identities: ["system:serviceaccount:vault:vault"]\n' +
        '    rpcs: ["*"]\n',
    );

    it('grants listed RPCs to exact identities and to "prefix*" globs, everything to "*", GetEK/GetEKCert to all', () => {
      assert.equal(policy.allows('system:serviceaccount:payments:api', 'Sign'), true);
      assert.equal(policy.allows('system:serviceaccount:payments:api', 'NewKey'), false);
      assert.equal(policy.allows('system:serviceaccount:payments-evil:api', 'Sign'), false);
      assert.equal(policy.allows('spiffe://example.org/ci', 'Quote'), true);
      assert.equal(policy.allows('spiffe://example.org/ci/x', 'Quote'), false);
      assert.equal(policy.allows('system:serviceaccount:vault:vault', 'ImportBlob'), true);
      assert.equal(policy.allows('system:serviceaccount:other:x', 'GetAK'), false);
      assert.equal(policy.allows('system:serviceaccount:other:x', 'GetEKCert'), true);
      assert.equal(policy.allows('system:serviceaccount:other:x', 'GetEK'), true);
    });

    it('reads JSON too, and names what is wrong in a bad policy', () => {
      assert.equal(AccessPolicy.parse('{"rules":[{"identities":["a"],"rpcs":["Sign"]}]}').allows('a', 'Sign'), true);
      const problem = (text: string): string => {
        try {
          AccessPolicy.parse(text, 'p.yaml');
        } catch (e) {
          assert.ok(e instanceof ConfigError);
          assert.equal(e.flag, '--allow');
          return e.message;
        }
        return 'accepted';
      };
      assert.match(problem('rules: [{identities: [a], rpcs: [Sing]}]'), /p\.yaml: rules\[0\]\.rpcs: unknown RPC "Sing"/);
      assert.match(problem('rules: [{identities: ["a*b"], rpcs: [Sign]}]'), /"\*" may only end a pattern/);
      assert.match(problem('rules: [{identities: [], rpcs: [Sign]}]'), /identities must be a non-empty list/);
      assert.match(problem('rules: [{identities: [a], rpcs: [Sign], extra: 1}]'), /unknown key\(s\) "extra"/);
      assert.match(problem('allow: []'), /unknown key\(s\) "allow"/);
      assert.match(problem('rules: {}'), /"rules" must be a list/);
      assert.match(problem('rules: [\n  - a\n b: ]'), /not JSON or YAML/);
    });

    it('a missing policy file is a ConfigError naming --allow', async () => {
      await assert.rejects(AccessPolicy.load('/nonexistent/policy.yaml'), (e: unknown) => e instanceof ConfigError && /--allow: cannot read/.test(e.message));
    });
  });

  describe('mTLS identities', () => {
    let tmp: ReturnType<typeof tempDir>;
    let pki: TestPki;
    before(() => {
      tmp = tempDir();
      pki = new TestPki(tmp.dir);
    });
    after(() => tmp.cleanup());

    it('is the first URI subjectAltName, else the subject CN, else none', () => {
      const spiffe = pki.leaf('spiffe', '/CN=ignored', ['subjectAltName=DNS:a.example,URI:spiffe://example.org/ns/a/sa/b,URI:https://second']);
      assert.equal(certificateIdentity(pemToDer(spiffe.certPem)), 'spiffe://example.org/ns/a/sa/b');
      const cn = pki.leaf('cn', '/O=org/CN=build-bot', ['subjectAltName=DNS:only.dns.example']);
      assert.equal(certificateIdentity(pemToDer(cn.certPem)), 'build-bot');
      const anonymous = pki.leaf('anon', '/O=org', ['extendedKeyUsage=clientAuth']);
      assert.equal(certificateIdentity(pemToDer(anonymous.certPem)), null);
    });

    it('the authenticator refuses no certificate, one that does not decode, and one naming nobody (UNAUTHENTICATED)', async () => {
      const m = new MtlsAuthenticator();
      const anonymous = pki.leaf('anon2', '/O=org', ['extendedKeyUsage=clientAuth']);
      const cases: [Uint8Array | null, string][] = [
        [null, 'no_credentials'],
        [new Uint8Array([0x30, 0x03, 1, 2, 3]), 'no_identity_in_certificate'],
        [pemToDer(anonymous.certPem), 'no_identity_in_certificate'],
      ];
      for (const [der, reason] of cases) {
        const f = await failure(m.authenticate(creds([], der)));
        assert.equal(`${f.code} ${f.reason}`, `UNAUTHENTICATED ${reason}`);
      }
      const cn = pki.leaf('cn2', '/CN=bot', ['extendedKeyUsage=clientAuth']);
      assert.deepEqual(await m.authenticate(creds([], pemToDer(cn.certPem))), { identity: 'bot', mode: 'mtls' });
    });
  });

  describe('--auth k8s against a TokenReview stand-in', () => {
    let tmp: ReturnType<typeof tempDir>;
    let api: TokenReviewStandIn;
    let ownTokenFile: string;
    let ca: string;
    before(async () => {
      tmp = tempDir();
      const pki = new TestPki(tmp.dir, 'kube-ca');
      ca = pki.caPem.toString();
      api = new TokenReviewStandIn(pki.server('apiserver'));
      await api.start();
      ownTokenFile = join(tmp.dir, 'token');
      writeFileSync(ownTokenFile, api.reviewer() + '\n');
    });
    after(async () => {
      await api.stop();
      tmp.cleanup();
    });

    const authenticator = (over: Partial<ConstructorParameters<typeof K8sAuthenticator>[0]> = {}): K8sAuthenticator =>
      new K8sAuthenticator({
        reviewer: new TokenReviewClient({ url: api.url, ca, tokenFile: ownTokenFile, timeoutMs: 2000 }),
        audience: 'tpmds',
        nodeName: 'node-1',
        cacheSeconds: 0,
        ...over,
      });
    const bearer = (t: string): CallCredentials => creds([`Bearer ${t}`]);

    it('accepts a pod token for audience tpmds on this node as system:serviceaccount:<ns>:<name>', async () => {
      const t = api.issue({ namespace: 'team-a', serviceAccount: 'signer', audiences: ['tpmds'], pod: { name: 'a-1', node: 'node-1' } });
      assert.deepEqual(await authenticator().authenticate(bearer(t)), { identity: 'system:serviceaccount:team-a:signer', mode: 'k8s' });
    });

    it('refuses, with the contract code: other node, wrong audience, no pod binding, unknown/expired, no or junk header', async () => {
      const a = authenticator();
      const other = api.issue({ namespace: 'team-a', serviceAccount: 'signer', audiences: ['tpmds'], pod: { name: 'a-2', node: 'node-2' } });
      const wrongAud = api.issue({ namespace: 'team-a', serviceAccount: 'signer', audiences: ['vault'], pod: { name: 'a-3', node: 'node-1' } });
      const noPod = api.issue({ namespace: 'team-a', serviceAccount: 'signer', audiences: ['tpmds'] });
      const expired = api.issue({ namespace: 'team-a', serviceAccount: 'signer', audiences: ['tpmds'], pod: { name: 'a-4', node: 'node-1' }, expiresIn: -5 });
      const cases: [CallCredentials, string, string][] = [
        [bearer(other), 'PERMISSION_DENIED', 'wrong_node'],
        [bearer(wrongAud), 'PERMISSION_DENIED', 'wrong_audience'],
        [bearer(noPod), 'PERMISSION_DENIED', 'not_a_pod'],
        [bearer(expired), 'UNAUTHENTICATED', 'invalid_token'],
        [bearer('never.issued.token'), 'UNAUTHENTICATED', 'invalid_token'],
        [creds(), 'UNAUTHENTICATED', 'no_credentials'],
        [creds(['Bearer {"junk": true}']), 'UNAUTHENTICATED', 'malformed_credentials'],
      ];
      for (const [c, code, reason] of cases) {
        const f = await failure(a.authenticate(c));
        assert.equal(`${f.code} ${f.reason}`, `${code} ${reason}`, JSON.stringify(c.authorization).slice(0, 60));
        const token = /^Bearer (.+)$/.exec(c.authorization[0] ?? '')?.[1];
        if (token !== undefined) assert.ok(!f.message.includes(token), 'no token in the message');
      }
    });

    it('reuses a review within the cache time and never past it: a deleted pod\'s token fails at the next review', async () => {
      let now = Date.now();
      const a = authenticator({ cacheSeconds: 10, now: () => now });
      const t = api.issue({ namespace: 'ns', serviceAccount: 'sa', audiences: ['tpmds'], pod: { name: 'gone', node: 'node-1' } });
      const before = api.reviews;
      await a.authenticate(bearer(t));
      await Promise.all([a.authenticate(bearer(t)), a.authenticate(bearer(t))]);
      assert.equal(api.reviews - before, 1, 'one review, cached');
      api.deletePod('gone');
      await a.authenticate(bearer(t)); // still cached
      now += 10_001;
      assert.equal((await failure(a.authenticate(bearer(t)))).reason, 'invalid_token');
      assert.equal(api.reviews - before, 2);
    });

    it('never caches a review past the token\'s own expiry', async () => {
      let now = Date.now();
      const a = authenticator({ cacheSeconds: 60, now: () => now });
      const t = api.issue({ namespace: 'ns', serviceAccount: 'sa', audiences: ['tpmds'], pod: { name: 'short', node: 'node-1' }, expiresIn: 3 });
      await a.authenticate(bearer(t));
      now += 4000;
      const before = api.reviews;
      await a.authenticate(bearer(t)).catch(() => undefined); // the outcome is the API server's: what matters is that it was asked
      assert.equal(api.reviews - before, 1, 'reviewed again after the token expired');
    });

    it('fails closed: API server down, our own token refused (401) or not allowed (403) are UNAVAILABLE; it recovers by itself', async () => {
      const a = authenticator();
      const t = api.issue({ namespace: 'ns', serviceAccount: 'sa', audiences: ['tpmds'], pod: { name: 'p', node: 'node-1' } });
      await api.stop();
      try {
        const f = await failure(a.authenticate(bearer(t)));
        assert.equal(`${f.code} ${f.reason}`, 'UNAVAILABLE auth_backend_unavailable');
      } finally {
        await api.start();
      }
      assert.equal((await a.authenticate(bearer(t))).identity, 'system:serviceaccount:ns:sa');

      const good = api.reviewer();
      writeFileSync(ownTokenFile, 'not-a-reviewer');
      let f = await failure(a.authenticate(bearer(t)));
      assert.equal(f.code, 'UNAVAILABLE');
      assert.match(f.message, /HTTP 401/);
      writeFileSync(ownTokenFile, api.reviewer(false));
      f = await failure(a.authenticate(bearer(t)));
      assert.match(f.message, /HTTP 403.*create.*tokenreviews/);
      // the token file rotates (kubelet replaces it): the new one is used without a restart
      writeFileSync(ownTokenFile, good + '\n');
      assert.equal((await a.authenticate(bearer(t))).identity, 'system:serviceaccount:ns:sa');
      assert.equal(api.reviewerTokens.at(-1), good);
    });

    it('an API server answering with an error status, not JSON, or JSON without a status is UNAVAILABLE, saying which', async () => {
      const a = authenticator();
      const t = api.issue({ namespace: 'ns', serviceAccount: 'sa', audiences: ['tpmds'], pod: { name: 'p2', node: 'node-1' } });
      const cases: [{ status: number; body: string }, RegExp][] = [
        [{ status: 500, body: '{"kind":"Status","code":500}' }, /HTTP 500/],
        [{ status: 201, body: '<html>proxy error</html>' }, /not JSON/],
        [{ status: 201, body: '{"kind":"TokenReview"}' }, /no status/],
      ];
      try {
        for (const [answer, re] of cases) {
          api.failWith = answer;
          const f = await failure(a.authenticate(bearer(t)));
          assert.equal(`${f.code} ${f.reason}`, 'UNAVAILABLE auth_backend_unavailable');
          assert.match(f.message, re);
        }
      } finally {
        api.failWith = undefined;
      }
      assert.equal((await a.authenticate(bearer(t))).identity, 'system:serviceaccount:ns:sa');
    });
  });
});
