import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, writeFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import {
  decodeAttestationParameters,
  decodeCertificationParameters,
  decodePlatformParameters,
  decodePublicKeyPem,
  encodeEncryptedCredential,
  encodeImportBlob,
} from '@tpmds/protocol/formats';
import type { ImportBlob } from '@tpmds/protocol/formats';
import { AttestorClient, grpcpb } from '@tpmds/protocol/proto';
import { AttestorError } from '../src/errors.js';
import { FakeBackend } from '../src/fake-backend.js';
import { MAX_MESSAGE_BYTES } from '../src/server.js';
import { eventually, rejection, startFake, tempDir } from './helpers.js';
import type { Started } from './helpers.js';

const S = grpc.status;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const tpm2b = (body: Uint8Array): Uint8Array => {
  const out = new Uint8Array(body.length + 2);
  out[0] = body.length >> 8;
  out[1] = body.length & 0xff;
  out.set(body, 2);
  return out;
};
const blob = (over: Partial<ImportBlob> = {}): Uint8Array =>
  encodeImportBlob({ duplicate: enc('sealed-bytes'), encryptedSeed: new Uint8Array(256).fill(7), publicArea: new Uint8Array([0, 8, 0, 11]), ...over });

describe('attestor server (fake backend)', function () {
  this.timeout(20000);
  let t: Started;
  before(async () => {
    t = await startFake();
  });
  after(async () => {
    await t.stop();
  });

  describe('every RPC round-trips', () => {
    it('GetEKCert and GetEK (the seed\'s name) return a PKIX EK, RSA by default and ECC on request', async () => {
      const rsa = await t.client.getEKCert();
      assert.equal(createPublicKey({ key: Buffer.from(rsa.ekPub), format: 'der', type: 'spki' }).asymmetricKeyType, 'rsa');
      assert.equal(rsa.ekCert.length, 0, 'no certificate is an empty ekCert');
      const again = await t.client.getEK('rsa');
      assert.deepEqual(again.ekPub, rsa.ekPub);
      const ecc = await t.client.getEKCert('ecc');
      const k = createPublicKey({ key: Buffer.from(ecc.ekPub), format: 'der', type: 'spki' });
      assert.equal(k.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    });

    it('GetAK is idempotent and returns go-attestation AttestationParameters JSON', async () => {
      const a = await t.client.getAK({ uid: 'pod-1' });
      const b = await t.client.getAK({ uid: 'pod-1', keyType: 'rsa' });
      assert.deepEqual(a.ak, b.ak);
      assert.ok(new TextDecoder().decode(a.ak).startsWith('{"Public":"'));
      const p = decodeAttestationParameters(a.ak);
      assert.ok(p.public && p.createData && p.createAttestation && p.createSignature);
    });

    it('Attest carries the EncryptedCredential to the backend and returns its secret', async () => {
      await t.client.getAK({ uid: 'pod-attest' });
      const secret = enc('0123456789abcdef0123456789abcdef');
      const payload = encodeEncryptedCredential({ credential: tpm2b(secret), secret: tpm2b(new Uint8Array(256).fill(1)) });
      const r = await t.client.attest({ uid: 'pod-attest', encryptedCredentials: payload });
      assert.deepEqual(r.secret, secret);
    });

    it('Quote returns PlatformParameters JSON with the nonce', async () => {
      await t.client.getAK({ uid: 'pod-quote' });
      const nonce = new Uint8Array(48).fill(9);
      const r = await t.client.quote({ uid: 'pod-quote', nonce });
      const p = decodePlatformParameters(r.platformAttestation);
      assert.equal(p.tpmVersion, 2);
      assert.equal(p.quotes?.length, 1);
      assert.deepEqual(p.quotes![0]!.quote!.subarray(-48), nonce);
      assert.equal(p.pcrs?.length, 24);
      assert.deepEqual(p.eventLog, new Uint8Array(0), 'a missing event log is sent empty');
    });

    it('ImportBlob decodes the tpm.ImportBlob and returns the backend\'s bytes', async () => {
      const r = await t.client.importBlob({ uid: 'pod-import', encryptedKey: blob() });
      assert.deepEqual(r.decryptedKey, enc('sealed-bytes'));
      const withPcrs = blob({ pcrs: { hash: 0x0b, pcrs: new Map([[7, new Uint8Array(32)]]) } });
      assert.deepEqual((await t.client.importBlob({ uid: 'pod-import', encryptedKey: withPcrs })).decryptedKey, enc('sealed-bytes'));
    });

    it('ImportSigningKey confirms with a signature over the uid and never overwrites', async () => {
      const r = await t.client.importSigningKey({ uid: 'pod-isk', kid: 'k1', encryptedSigningKey: blob() });
      assert.ok(r.confirmation.length > 0);
      const e = await rejection(t.client.importSigningKey({ uid: 'pod-isk', kid: 'k1', encryptedSigningKey: blob() }));
      assert.equal(e.code, S.ALREADY_EXISTS);
      const signed = await t.client.sign({ uid: 'pod-isk', kid: 'k1', data: enc('x') });
      assert.ok(signed.signed.length > 0);
    });

    for (const keyType of ['rsa', 'ecc'] as const) {
      it(`NewKey (${keyType}) returns a PEM PUBLIC KEY and CertificationParameters; Sign verifies with it`, async () => {
        await t.client.getAK({ uid: `pod-${keyType}` });
        const nk = await t.client.newKey({ uid: `pod-${keyType}`, kid: 'key-1', keyType });
        assert.match(new TextDecoder().decode(nk.public), /^-----BEGIN PUBLIC KEY-----\n/);
        const cert = decodeCertificationParameters(nk.keyCertification);
        assert.equal(cert.createData, null);
        const pub = createPublicKey({ key: Buffer.from(decodePublicKeyPem(nk.public)), format: 'der', type: 'spki' });
        assert.equal(pub.asymmetricKeyType, keyType === 'rsa' ? 'rsa' : 'ec');
        const data = enc('message to sign');
        const { signed } = await t.client.sign({ uid: `pod-${keyType}`, kid: 'key-1', data });
        assert.ok(verify('sha256', data, pub, signed), 'signature verifies (RSA PKCS#1 v1.5 / DER ECDSA over SHA-256)');
        const e = await rejection(t.client.newKey({ uid: `pod-${keyType}`, kid: 'key-1', keyType }));
        assert.equal(e.code, S.ALREADY_EXISTS);
      });
    }
  });

  describe('status codes', () => {
    const badIds = ['', '../etc', 'a..b', '.hidden', '-x', 'a/b', 'a b', 'x'.repeat(129), 'ü'];
    it('bad uid is INVALID_ARGUMENT saying what is wrong, on every RPC that takes one', async () => {
      for (const uid of badIds) {
        const calls = [
          t.client.getAK({ uid }),
          t.client.attest({ uid, encryptedCredentials: enc('{}') }),
          t.client.quote({ uid, nonce: new Uint8Array(8) }),
          t.client.importBlob({ uid, encryptedKey: blob() }),
          t.client.importSigningKey({ uid, kid: 'k', encryptedSigningKey: blob() }),
          t.client.newKey({ uid, kid: 'k' }),
          t.client.sign({ uid, kid: 'k', data: enc('x') }),
        ];
        for (const c of calls) {
          const e = await rejection(c);
          assert.equal(e.code, S.INVALID_ARGUMENT, `uid ${JSON.stringify(uid)}`);
          assert.match(e.details, /^uid /);
        }
      }
    });

    it('bad kid is INVALID_ARGUMENT', async () => {
      await t.client.getAK({ uid: 'pod-kid' });
      for (const kid of badIds) {
        for (const c of [
          t.client.newKey({ uid: 'pod-kid', kid }),
          t.client.sign({ uid: 'pod-kid', kid, data: enc('x') }),
          t.client.importSigningKey({ uid: 'pod-kid', kid, encryptedSigningKey: blob() }),
        ]) {
          const e = await rejection(c);
          assert.equal(e.code, S.INVALID_ARGUMENT, `kid ${JSON.stringify(kid)}`);
          assert.match(e.details, /^kid /);
        }
      }
    });

    it('bad keyType is INVALID_ARGUMENT', async () => {
      for (const c of [t.client.getEKCert('dsa'), t.client.getAK({ uid: 'u', keyType: 'RSA' }), t.client.newKey({ uid: 'u', kid: 'k', keyType: 'p384' })]) {
        const e = await rejection(c);
        assert.equal(e.code, S.INVALID_ARGUMENT);
        assert.match(e.details, /keyType/);
      }
    });

    it('Quote nonce must be 1 to 48 bytes', async () => {
      await t.client.getAK({ uid: 'pod-nonce' });
      for (const n of [0, 49, 1000]) {
        const e = await rejection(t.client.quote({ uid: 'pod-nonce', nonce: new Uint8Array(n) }));
        assert.equal(e.code, S.INVALID_ARGUMENT);
        assert.match(e.details, /nonce/);
      }
      await t.client.quote({ uid: 'pod-nonce', nonce: new Uint8Array(1) });
    });

    it('payloads that do not decode are INVALID_ARGUMENT naming the field', async () => {
      await t.client.getAK({ uid: 'pod-payload' });
      const cases: [Promise<unknown>, RegExp][] = [
        [t.client.attest({ uid: 'pod-payload', encryptedCredentials: enc('not json') }), /^encryptedCredentials: EncryptedCredential: not valid JSON/],
        [t.client.attest({ uid: 'pod-payload', encryptedCredentials: enc('{"Credential":"%%%%"}') }), /EncryptedCredential\.Credential: invalid base64/],
        [t.client.attest({ uid: 'pod-payload', encryptedCredentials: enc('{"Secret":"AAEH"}') }), /EncryptedCredential\.Credential is missing/],
        [
          t.client.attest({ uid: 'pod-payload', encryptedCredentials: encodeEncryptedCredential({ credential: new Uint8Array([0, 9, 1]), secret: tpm2b(new Uint8Array(4)) }) }),
          /Credential is not a TPM2B_ID_OBJECT/,
        ],
        [t.client.importBlob({ uid: 'pod-payload', encryptedKey: new Uint8Array(0) }), /^encryptedKey: is empty/],
        [t.client.importBlob({ uid: 'pod-payload', encryptedKey: new Uint8Array([0x0a, 0xff]) }), /^encryptedKey: ImportBlob\.duplicate: /],
        [t.client.importBlob({ uid: 'pod-payload', encryptedKey: blob({ duplicate: new Uint8Array(0) }) }), /ImportBlob\.duplicate is empty/],
        [
          t.client.importBlob({ uid: 'pod-payload', encryptedKey: blob({ pcrs: { hash: 0x0b, pcrs: new Map([[7, new Uint8Array(20)]]) } }) }),
          /value of PCR 7 is 20 bytes \(32 expected\)/,
        ],
        [
          t.client.importBlob({ uid: 'pod-payload', encryptedKey: blob({ pcrs: { hash: 0x0b, pcrs: new Map([[24, new Uint8Array(32)]]) } }) }),
          /PCR index 24/,
        ],
        [t.client.importBlob({ uid: 'pod-payload', encryptedKey: blob({ pcrs: { hash: 0x12, pcrs: new Map([[0, new Uint8Array(32)]]) } }) }), /pcrs\.hash 18/],
        [t.client.importSigningKey({ uid: 'pod-payload', kid: 'k', encryptedSigningKey: new Uint8Array([0xff]) }), /^encryptedSigningKey: ImportBlob/],
      ];
      for (const [call, re] of cases) {
        const e = await rejection(call);
        assert.equal(e.code, S.INVALID_ARGUMENT, e.details);
        assert.match(e.details, re);
      }
    });

    it('NOT_FOUND for a uid without an AK or an unknown kid', async () => {
      for (const c of [
        t.client.quote({ uid: 'nobody', nonce: new Uint8Array(4) }),
        t.client.newKey({ uid: 'nobody', kid: 'k' }),
        t.client.attest({ uid: 'nobody', encryptedCredentials: encodeEncryptedCredential({ credential: tpm2b(new Uint8Array(4)), secret: tpm2b(new Uint8Array(4)) }) }),
        t.client.sign({ uid: 'nobody', kid: 'nothing', data: enc('x') }),
      ]) {
        assert.equal((await rejection(c)).code, S.NOT_FOUND);
      }
    });

    it('a request message that is not valid protobuf is INVALID_ARGUMENT, not INTERNAL', async () => {
      const raw = new grpc.Client(t.running.address, grpc.credentials.createInsecure());
      try {
        for (const bytes of [Buffer.from([0x0a, 0xff, 0x01]), Buffer.from([0x08, 0x01]), Buffer.from([0x22, 0xf2, 0x96, 0x87, 0x5c])]) {
          const e = await rejection(
            new Promise((resolve, reject) =>
              raw.makeUnaryRequest('/verifier.Verifier/GetAK', (b: Buffer) => b, (b: Buffer) => b, bytes, (err, v) => (err ? reject(err) : resolve(v))),
            ),
          );
          assert.equal(e.code, S.INVALID_ARGUMENT);
          assert.match(e.details, /^verifier\.GetAKRequest/);
        }
      } finally {
        raw.close();
      }
    });

    it(`requests over ${MAX_MESSAGE_BYTES} bytes are RESOURCE_EXHAUSTED`, async () => {
      const e = await rejection(t.client.sign({ uid: 'pod-big', kid: 'k', data: new Uint8Array(MAX_MESSAGE_BYTES + 1) }));
      assert.equal(e.code, S.RESOURCE_EXHAUSTED);
      // Just under the limit is fine (and answered by the backend: NOT_FOUND here).
      const ok = await rejection(t.client.sign({ uid: 'pod-big', kid: 'k', data: new Uint8Array(MAX_MESSAGE_BYTES - 64) }));
      assert.equal(ok.code, S.NOT_FOUND);
    });
  });

  describe('logs and metrics', () => {
    it('logs one JSON line per RPC with method, code, duration and uid, and no payloads', async () => {
      const marker = 'PAYLOAD-MARKER-7f3a';
      await t.client.getAK({ uid: 'pod-log' });
      await rejection(t.client.importBlob({ uid: 'pod-log', encryptedKey: blob({ duplicate: enc(marker) , encryptedSeed: new Uint8Array(0) }) }));
      await t.client.importBlob({ uid: 'pod-log', encryptedKey: blob({ duplicate: enc(marker) }) });
      await rejection(t.client.getAK({ uid: `bad uid ${marker}` }));
      const rpcLines = t.log.lines.filter((l) => l['msg'] === 'rpc');
      const getAk = rpcLines.find((l) => l['method'] === 'GetAK' && l['uid'] === 'pod-log');
      assert.ok(getAk);
      assert.equal(getAk['code'], 'OK');
      assert.equal(typeof getAk['durationMs'], 'number');
      assert.ok(rpcLines.some((l) => l['method'] === 'ImportBlob' && l['code'] === 'INVALID_ARGUMENT'));
      assert.ok(rpcLines.some((l) => l['method'] === 'GetAK' && l['uid'] === '<invalid>'));
      assert.ok(!t.log.raw.some((l) => l.includes(marker)), 'payload bytes or raw ids never reach the log');
    });

    it('serves /healthz, /readyz and Prometheus /metrics by method and code', async () => {
      const base = `http://${t.running.healthAddress}`;
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
      await eventually(async () => (await fetch(`${base}/readyz`)).status === 200);
      const res = await fetch(`${base}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      const text = await res.text();
      assert.match(text, /# TYPE tpmds_rpc_requests_total counter/);
      assert.match(text, /tpmds_rpc_requests_total\{method="GetAK",code="OK"\} \d+/);
      assert.match(text, /tpmds_rpc_requests_total\{method="Quote",code="INVALID_ARGUMENT"\} \d+/);
      assert.match(text, /# TYPE tpmds_rpc_duration_seconds histogram/);
      assert.match(text, /tpmds_rpc_duration_seconds_bucket\{method="GetAK",le="\+Inf"\} \d+/);
      assert.match(text, /tpmds_rpc_duration_seconds_count\{method="Sign"\} \d+/);
      assert.match(text, /# TYPE tpmds_tpm_command_duration_seconds histogram/);
      assert.equal((await fetch(`${base}/nope`)).status, 404);
      assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
    });
  });

  describe('reflection', () => {
    it('lists verifier.Verifier and grpc.health.v1.Health and describes verifier.proto', async () => {
      const require = createRequire(import.meta.url);
      const protoPath = join(dirname(require.resolve('@grpc/reflection')), '../proto/grpc/reflection/v1/reflection.proto');
      const def = protoLoader.loadSync(protoPath, { keepCase: true });
      const pkg = grpc.loadPackageDefinition(def) as unknown as {
        grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
      };
      const client = new pkg.grpc.reflection.v1.ServerReflection(t.running.address, grpc.credentials.createInsecure());
      try {
        const ask = (req: object): Promise<Record<string, unknown>> =>
          new Promise((resolve, reject) => {
            const call = (client as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<object, Record<string, unknown>> }).ServerReflectionInfo();
            call.on('data', (d) => {
              resolve(d);
              call.end();
            });
            call.on('error', reject);
            call.write(req);
          });
        const list = (await ask({ list_services: '*' })) as { list_services_response: { service: { name: string }[] } };
        const names = list.list_services_response.service.map((s) => s.name);
        assert.ok(names.includes('verifier.Verifier'), names.join(','));
        assert.ok(names.includes('grpc.health.v1.Health'), names.join(','));
        const file = (await ask({ file_containing_symbol: 'verifier.Verifier' })) as {
          file_descriptor_response: { file_descriptor_proto: Buffer[] };
        };
        const all = Buffer.concat(file.file_descriptor_response.file_descriptor_proto).toString('latin1');
        assert.ok(all.includes('GetEKCert') && all.includes('ImportSigningKey'));
      } finally {
        client.close();
      }
    });
  });
});

describe('attestor server: health', function () {
  this.timeout(20000);
  const H = grpcpb.health.v1;

  it('is NOT_SERVING until the backend is ready, then SERVING, for "", verifier.Verifier and attest.Attestor', async () => {
    const backend = new FakeBackend();
    backend.setReady(false);
    const t = await startFake({ backend });
    const health = new H.HealthClient(t.running.address, grpc.credentials.createInsecure());
    try {
      for (const name of ['', 'verifier.Verifier', 'attest.Attestor']) {
        assert.equal(await t.client.healthCheck(name), 'NOT_SERVING', name);
      }
      assert.equal((await fetch(`http://${t.running.healthAddress}/readyz`)).status, 503);
      const e = await rejection(t.client.healthCheck('no.such.Service'));
      assert.equal(e.code, grpc.status.NOT_FOUND);

      const seen: string[] = [];
      const watch = health.Watch(new H.HealthCheckRequest({ service: 'verifier.Verifier' }));
      watch.on('data', (r: grpcpb.health.v1.HealthCheckResponse) => seen.push(H.HealthCheckResponse.ServingStatus[r.status] ?? '?'));
      watch.on('error', () => undefined);
      const unknown: string[] = [];
      const watchUnknown = health.Watch(new H.HealthCheckRequest({ service: 'no.such.Service' }));
      watchUnknown.on('data', (r: grpcpb.health.v1.HealthCheckResponse) => unknown.push(H.HealthCheckResponse.ServingStatus[r.status] ?? '?'));
      watchUnknown.on('error', () => undefined);
      await eventually(() => seen.length === 1 && unknown.length === 1);
      assert.deepEqual(seen, ['NOT_SERVING']);
      assert.deepEqual(unknown, ['SERVICE_UNKNOWN']);

      backend.setReady(true);
      await eventually(() => seen.length === 2);
      assert.deepEqual(seen, ['NOT_SERVING', 'SERVING']);
      for (const name of ['', 'verifier.Verifier', 'attest.Attestor']) assert.equal(await t.client.healthCheck(name), 'SERVING');
      assert.equal((await fetch(`http://${t.running.healthAddress}/readyz`)).status, 200);
      watch.cancel();
      watchUnknown.cancel();
    } finally {
      health.close();
      await t.stop();
    }
  });

  it('close() ends Watch streams after a last NOT_SERVING and does not wait on them', async () => {
    const t = await startFake();
    const health = new H.HealthClient(t.running.address, grpc.credentials.createInsecure());
    try {
      await eventually(async () => (await t.client.healthCheck('')) === 'SERVING');
      const seen: string[] = [];
      const watch = health.Watch(new H.HealthCheckRequest({ service: '' }));
      watch.on('data', (r: grpcpb.health.v1.HealthCheckResponse) => seen.push(H.HealthCheckResponse.ServingStatus[r.status] ?? '?'));
      const ended = new Promise<void>((resolve) => {
        watch.on('end', resolve);
        watch.on('error', () => resolve());
      });
      await eventually(() => seen.length === 1);
      const t0 = Date.now();
      await t.stop();
      await ended;
      assert.ok(Date.now() - t0 < 5000);
      assert.deepEqual(seen, ['SERVING', 'NOT_SERVING']);
    } finally {
      health.close();
    }
  });
});

describe('attestor server: backend errors', function () {
  this.timeout(20000);

  it('an AttestorError keeps its code and message; any other error is a bare INTERNAL with an error id in the log', async () => {
    const backend = new FakeBackend();
    const secretText = 'TPM said 0x9a2 with key material deadbeef';
    backend.getEKCert = async (_identity, keyType) => {
      if (keyType === 'ecc') throw new AttestorError('FAILED_PRECONDITION', 'PCR policy not satisfied');
      throw new Error(secretText);
    };
    const t = await startFake({ backend });
    try {
      const fp = await rejection(t.client.getEKCert('ecc'));
      assert.equal(fp.code, grpc.status.FAILED_PRECONDITION);
      assert.equal(fp.details, 'PCR policy not satisfied');
      const e = await rejection(t.client.getEKCert('rsa'));
      assert.equal(e.code, grpc.status.INTERNAL);
      assert.ok(!e.details.includes('0x9a2') && !e.details.includes('deadbeef'));
      const id = /error id ([0-9a-f]+)/.exec(e.details)?.[1];
      assert.ok(id, e.details);
      const line = t.log.lines.find((l) => l['errorId'] === id);
      assert.ok(line, 'the error id is in the log');
      assert.equal(line['level'], 'error');
    } finally {
      await t.stop();
    }
    assert.equal(backend.closed, true, 'close() closes the backend');
  });
});

describe('attestor server: unix socket', function () {
  this.timeout(20000);
  it('listens on unix:/path (replacing a stale socket) and removes it on close', async () => {
    const tmp = tempDir();
    const sock = join(tmp.dir, 'attestor.sock');
    try {
      const first = await startFake({ config: { listen: `unix:${sock}` } });
      assert.equal(first.running.address, `unix:${sock}`);
      await first.client.getAK({ uid: 'over-unix' });
      await first.stop();
      assert.equal(existsSync(sock), false, 'the socket file is removed on close');
      // A socket file left behind by a killed process (bind without unlink).
      execFileSync('/usr/bin/python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', sock]);
      assert.equal(lstatSync(sock).isSocket(), true);
      writeFileSync(join(tmp.dir, 'not-a-socket'), 'x');
      const second = await startFake({ config: { listen: `unix:${sock}` } });
      const c = new AttestorClient(`unix:${sock}`, grpc.credentials.createInsecure());
      assert.equal((await c.getAK({ uid: 'again' })).ak.length > 0, true);
      c.close();
      await second.stop();
      await assert.rejects(startFake({ config: { listen: `unix:${join(tmp.dir, 'not-a-socket')}` } }), /--listen: .* is not a socket/);
    } finally {
      tmp.cleanup();
    }
  });
});
