// --allow-node-key: parsing (repeatable, comma lists, environment), the identities it names under
// each --auth mode, and its refusals.
import assert from 'node:assert/strict';
import { parseArgs } from '../src/config.js';
import { NodeKeyAccess } from '../src/auth/node-key.js';
import { ConfigError } from '../src/errors.js';
import * as grpc from '@grpc/grpc-js';
import { rejection, startFake } from './helpers.js';

const K8S = ['--auth', 'k8s', '--insecure', '--kube-api', 'https://k8s.example:6443', '--node-name', 'n1'];

function config(argv: string[], env: Record<string, string> = {}) {
  const r = parseArgs(argv, env, 'test');
  assert.equal(r.kind, 'run');
  return r.config;
}

describe('--allow-node-key', () => {
  it('is repeatable and takes comma-separated lists; the command line replaces the environment', () => {
    assert.deepEqual(config([...K8S, '--allow-node-key', 'a/b,c/d', '--allow-node-key=e/f']).allowNodeKey, ['a/b', 'c/d', 'e/f']);
    assert.deepEqual(config(K8S, { TPMDS_ALLOW_NODE_KEY: 'x/y, z/w' }).allowNodeKey, ['x/y', 'z/w']);
    assert.deepEqual(config([...K8S, '--allow-node-key', 'a/b'], { TPMDS_ALLOW_NODE_KEY: 'x/y' }).allowNodeKey, ['a/b']);
    assert.equal(config(K8S).allowNodeKey, undefined, 'absent: nobody');
  });

  it('under --auth k8s names service accounts: NAMESPACE/SERVICEACCOUNT or the full username', () => {
    const access = NodeKeyAccess.of('k8s', ['kube-system/node-attester', 'system:serviceaccount:tools:signer']);
    assert.deepEqual([...access.identities], ['system:serviceaccount:kube-system:node-attester', 'system:serviceaccount:tools:signer']);
    assert.ok(access.allows({ identity: 'system:serviceaccount:kube-system:node-attester', mode: 'k8s' }));
    assert.ok(!access.allows({ identity: 'system:serviceaccount:kube-system:other', mode: 'k8s' }));
    assert.throws(() => config([...K8S, '--allow-node-key', 'Kube-System/x']), (e: unknown) => e instanceof ConfigError && /--allow-node-key/.test(e.message) && /NAMESPACE\/SERVICEACCOUNT/.test(e.message));
    assert.throws(() => config([...K8S, '--allow-node-key', 'justaname']), ConfigError);
  });

  it('under --auth mtls names certificate identities exactly; nobody by default', () => {
    const access = NodeKeyAccess.of('mtls', ['spiffe://example.org/ns/tools/sa/signer']);
    assert.ok(access.allows({ identity: 'spiffe://example.org/ns/tools/sa/signer', mode: 'mtls' }));
    assert.ok(!access.allows({ identity: 'spiffe://example.org/ns/tools/sa/other', mode: 'mtls' }));
    assert.ok(!NodeKeyAccess.of('mtls', []).allows({ identity: 'anyone', mode: 'mtls' }));
  });

  it('under --auth none there are no identities: every caller may, and the flag is refused', () => {
    assert.ok(NodeKeyAccess.of('none', []).allows({ identity: '', mode: 'none' }));
    assert.throws(() => config(['--insecure', '--allow-node-key', 'a/b']), (e: unknown) => e instanceof ConfigError && /--auth k8s or --auth mtls/.test(e.message));
  });
});

describe('GetGCEEKSigningKey and SignGCEEK on the fake backend (--auth none)', () => {
  it('every caller may try; the fake has no NV template: FAILED_PRECONDITION; a bad keyType: INVALID_ARGUMENT', async () => {
    const t = await startFake();
    try {
      const get = await rejection(t.client.getGCEEKSigningKey());
      assert.equal(get.code, grpc.status.FAILED_PRECONDITION);
      assert.equal(get.details, 'this TPM has no cloud attestation-key template (NV 0x01c10001)');
      assert.equal((await rejection(t.client.signGCEEK({ data: new Uint8Array(1), keyType: 'ecc' }))).details, 'this TPM has no cloud attestation-key template (NV 0x01c10003)');
      assert.equal((await rejection(t.client.signGCEEK({ data: new Uint8Array(1), keyType: 'dsa' }))).code, grpc.status.INVALID_ARGUMENT);
    } finally {
      await t.stop();
    }
  });

  it('SignGCEEK spends the caller\'s --sign-rate tokens like Sign and Quote: over the burst, RESOURCE_EXHAUSTED before the TPM', async () => {
    const t = await startFake({ config: { signRate: '0.1:2' } });
    try {
      for (let i = 0; i < 2; i++) assert.equal((await rejection(t.client.signGCEEK({ data: new Uint8Array(1) }))).code, grpc.status.FAILED_PRECONDITION);
      const limited = await rejection(t.client.signGCEEK({ data: new Uint8Array(1) }));
      assert.equal(limited.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(limited.details, /--sign-rate/);
      // GetGCEEKSigningKey signs nothing: not limited.
      assert.equal((await rejection(t.client.getGCEEKSigningKey())).code, grpc.status.FAILED_PRECONDITION);
    } finally {
      await t.stop();
    }
  });
});
