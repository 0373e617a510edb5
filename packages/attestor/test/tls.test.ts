import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { AttestorClient } from '@tpmds/protocol/proto';
import { ConfigError } from '../src/errors.js';
import { FakeBackend } from '../src/fake-backend.js';
import { rejection, startFake, tempDir } from './helpers.js';

/** Throwaway P-256 PKI made with openssl: a CA, a server cert for 127.0.0.1, client certs. */
function makePki(dir: string): Record<string, string> {
  const ossl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  const key = (name: string): void => ossl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
  const ca = (name: string): void => {
    key(name);
    ossl('req', '-x509', '-new', '-key', `${name}.key`, '-out', `${name}.pem`, '-days', '1', '-subj', `/CN=${name}`);
  };
  const leaf = (name: string, issuer: string, ext: string): void => {
    key(name);
    ossl('req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    writeFileSync(join(dir, `${name}.ext`), ext);
    ossl('x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.pem`, '-CAkey', `${issuer}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`);
  };
  ca('ca');
  ca('other-ca');
  leaf('server', 'ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'ca', 'extendedKeyUsage=clientAuth\n');
  leaf('stranger', 'other-ca', 'extendedKeyUsage=clientAuth\n');
  const files: Record<string, string> = {};
  for (const n of ['ca', 'other-ca', 'server', 'client', 'stranger']) {
    files[`${n}.pem`] = join(dir, `${n}.pem`);
    files[`${n}.key`] = join(dir, `${n}.key`);
  }
  return files;
}

// The certificate also names localhost: using it as the TLS name avoids Node's warning about IP SNI.
const NAME = { 'grpc.ssl_target_name_override': 'localhost' };

/**
 * TLS without client certificates needs caller identity from tokens (--auth none is refused
 * there): these tests are about the transport, so a stand-in authenticator accepts every call.
 */
const TOKEN_AUTH = { auth: 'k8s', kubeApi: 'https://127.0.0.1:1', nodeName: 'test-node' } as const;
const ACCEPT_ALL = {
  authenticator: { mode: 'k8s' as const, authenticate: () => Promise.resolve({ identity: 'system:serviceaccount:t:t', mode: 'k8s' as const }) },
  policy: null,
};

describe('attestor TLS and mTLS', function () {
  this.timeout(30000);
  let tmp: ReturnType<typeof tempDir>;
  let f: Record<string, string>;
  const read = (k: string): Buffer => readFileSync(f[k] as string);
  before(() => {
    tmp = tempDir();
    f = makePki(tmp.dir);
  });
  after(() => tmp.cleanup());

  it('TLS: a client trusting the CA is served; a plaintext client is not', async () => {
    const t = await startFake({
      config: { insecure: false, tlsCert: f['server.pem'], tlsKey: f['server.key'], ...TOKEN_AUTH },
      start: { auth: ACCEPT_ALL },
      credentials: grpc.credentials.createSsl(read('ca.pem')),
      clientOptions: NAME,
    });
    try {
      assert.ok((await t.client.getAK({ uid: 'tls-pod' })).ak.length > 0);
      const plain = new AttestorClient(t.running.address, grpc.credentials.createInsecure());
      const e = await rejection(plain.getAK({ uid: 'tls-pod' }, { deadline: Date.now() + 3000 }));
      assert.notEqual(e.code, grpc.status.OK);
      plain.close();
      const wrongCa = new AttestorClient(t.running.address, grpc.credentials.createSsl(read('other-ca.pem')), NAME);
      assert.equal((await rejection(wrongCa.getAK({ uid: 'tls-pod' }, { deadline: Date.now() + 3000 }))).code, grpc.status.UNAVAILABLE);
      wrongCa.close();
      assert.ok(!t.log.lines.some((l) => String(l['msg']).includes('INSECURE')));
    } finally {
      await t.stop();
    }
  });

  it('mTLS: clients need a certificate from --client-ca; without one, or from another CA, they are rejected', async () => {
    const t = await startFake({
      config: { insecure: false, tlsCert: f['server.pem'], tlsKey: f['server.key'], clientCa: f['ca.pem'] },
      credentials: grpc.credentials.createSsl(read('ca.pem'), read('client.key'), read('client.pem')),
      clientOptions: NAME,
    });
    try {
      assert.ok((await t.client.getAK({ uid: 'mtls-pod' })).ak.length > 0);
      assert.equal(await t.client.healthCheck(''), 'SERVING');
      for (const creds of [
        grpc.credentials.createSsl(read('ca.pem')),
        grpc.credentials.createSsl(read('ca.pem'), read('stranger.key'), read('stranger.pem')),
      ]) {
        const c = new AttestorClient(t.running.address, creds, NAME);
        const e = await rejection(c.getAK({ uid: 'mtls-pod' }, { deadline: Date.now() + 3000 }));
        assert.equal(e.code, grpc.status.UNAVAILABLE, e.details);
        c.close();
      }
      assert.ok(t.log.lines.some((l) => l['msg'] === 'attestor listening' && l['tls'] === 'mtls'));
    } finally {
      await t.stop();
    }
  });

  it('--insecure is announced loudly', async () => {
    const t = await startFake();
    try {
      const warn = t.log.lines.find((l) => l['level'] === 'warn' && String(l['msg']).startsWith('INSECURE MODE'));
      assert.ok(warn, 'a warn line announces plaintext gRPC');
    } finally {
      await t.stop();
    }
  });

  it('unusable TLS files are a ConfigError naming the flag', async () => {
    const garbage = join(tmp.dir, 'garbage.pem');
    writeFileSync(garbage, 'not a pem file');
    const cases: [Record<string, string | undefined>, string][] = [
      [{ tlsCert: join(tmp.dir, 'missing.pem'), tlsKey: f['server.key'] }, '--tls-cert'],
      [{ tlsCert: f['server.pem'], tlsKey: join(tmp.dir, 'missing.key') }, '--tls-key'],
      [{ tlsCert: garbage, tlsKey: f['server.key'] }, '--tls-cert'],
      [{ tlsCert: f['server.pem'], tlsKey: garbage }, '--tls-key'],
      [{ tlsCert: f['server.pem'], tlsKey: f['client.key'] }, '--tls-key'],
      [{ tlsCert: f['server.pem'], tlsKey: f['server.key'], clientCa: garbage }, '--client-ca'],
    ];
    for (const [config, flag] of cases) {
      const backend = new FakeBackend();
      await assert.rejects(startFake({ backend, config: { insecure: false, ...TOKEN_AUTH, ...config }, start: { auth: ACCEPT_ALL } }), (e: unknown) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.equal(e.flag, flag, e.message);
        assert.ok(!e.message.includes('BEGIN'), 'no file contents in the message');
        return true;
      });
    }
  });
});
