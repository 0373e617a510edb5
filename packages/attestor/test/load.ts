// The load run of docs/RELIABILITY.md: the tpmds-attestor binary on the 3-slot swtpm with mTLS and
// two caller identities; `clients` concurrent clients each make `calls` mixed calls (every RPC,
// RSA and ECC), every result verified in software (signatures, quotes, secrets, unsealed data,
// certifications). Meanwhile `idle` TCP connections sit open and a slow client keeps requests
// that it sends byte by byte and responses it never reads. Afterwards the TPM holds no transient
// objects or sessions, and the attestor's RSS is reported (start, peak, end). Used by
// hardening-load.test.ts (short) and scripts/load.ts (64 x 5,000).
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, randomBytes, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as http2Connect, constants as h2 } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { TPM_ALG, bytesEqual, type Tpm } from '@tpmds/tpm2-wire';
import { AttestorClient } from '@tpmds/protocol/proto';
import { CLOUD_AK_NV, provisionCloudAkTemplate, removePlatformNv } from './fixtures/cloud-ak.js';
import { TestPki, type Leaf } from './fixtures/pki.js';
import {
  checkAk,
  checkNewKey,
  checkQuote,
  ekPublicFromSpki,
  encryptedCredential,
  importBlobBytes,
  sleep,
  spawnAttestor,
  withTpm,
  type CheckedAk,
  type SpawnedAttestor,
} from './e2e-support.js';

export interface LoadOptions {
  /** swtpm address (its state must have the EKs, as startSwtpm's does). */
  tpm: string;
  dir: string;
  clients: number;
  calls: number;
  idle: number;
  /** Active PCR banks of the swtpm (for quote checks). */
  banks?: readonly number[];
  log?: (line: string) => void;
}

export interface LoadResult {
  clients: number;
  callsPerClient: number;
  calls: number;
  /** Calls by RPC name. */
  byRpc: Record<string, number>;
  /** Calls that failed or whose result did not verify (must be empty). */
  errors: string[];
  elapsedMs: number;
  callsPerSecond: number;
  /** Latency percentiles of the mixed calls, ms. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  idleConnections: number;
  /** Idle connections still open at the end. */
  idleStillOpen: number;
  /**
   * Seconds after opening when the server closed the first idle connection, or null: Node's TLS
   * server drops a connection that has not finished its handshake after 120 s (handshakeTimeout).
   */
  idleFirstClosedAfterS: number | null;
  /** Requests the slow client sent byte by byte / responses it never read, and whether the rest went on. */
  slowClientStreams: number;
  rssStartMiB: number;
  rssPeakMiB: number;
  rssEndMiB: number;
  /** Loaded transient objects and sessions on the TPM after the run (must be []). */
  handlesAfter: number[];
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : 0;
}

interface Identity {
  name: string;
  client: AttestorClient;
  aks: Record<'rsa' | 'ecc', CheckedAk>;
  keys: Record<'rsa' | 'ecc' | 'imported', KeyObject>;
  ek: Record<'rsa' | 'ecc', ReturnType<typeof ekPublicFromSpki>>;
  /** The node's cloud attestation keys (GetGCEEKSigningKey); only alice may sign with them (--allow-node-key). */
  cloud: Record<'rsa' | 'ecc', KeyObject>;
  sealed: { blob: Uint8Array; data: Uint8Array }[];
}

const RPCS = ['GetEKCert', 'GetAK', 'Attest', 'Quote', 'ImportBlob', 'Sign', 'Sign', 'Sign', 'NewKey', 'ImportSigningKey', 'GetGCEEKSigningKey', 'SignGCEEK'] as const;

/** The one identity --allow-node-key names: the other's SignGCEEK calls must be PERMISSION_DENIED. */
const NODE_KEY_IDENTITY = 'alice';

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const banks = o.banks ?? [TPM_ALG.SHA1, TPM_ALG.SHA256];
  const pki = new TestPki(o.dir, 'load-ca');
  const server = pki.server('load-server');
  const leaves: Leaf[] = ['alice', 'bob'].map((n) => pki.leaf(`load-${n}`, `/CN=${n}`, ['extendedKeyUsage=clientAuth']));
  // The node's cloud attestation-key templates in NV, as on a GCE vTPM (GetGCEEKSigningKey, SignGCEEK).
  await withTpm(o.tpm, async (tpm: Tpm) => {
    for (const kt of ['rsa', 'ecc'] as const) {
      await removePlatformNv(tpm, CLOUD_AK_NV[kt].template);
      await provisionCloudAkTemplate(tpm, kt);
    }
  });
  const att: SpawnedAttestor = await spawnAttestor([
    '--listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0', '--tpm', o.tpm, '--state-dir', join(o.dir, 'state'), '--event-log', '/nonexistent',
    '--tls-cert', server.cert, '--tls-key', server.key, '--client-ca', pki.caCert, '--auth', 'mtls', '--max-keys-per-identity', '100000',
    '--tpm-queue-limit', '4096', '--allow-node-key', NODE_KEY_IDENTITY,
  ]);
  const pid = att.child.pid!;
  const rssStart = rssMiB(pid);
  let rssPeak = rssStart;
  const rssTimer = setInterval(() => (rssPeak = Math.max(rssPeak, rssMiB(pid))), 200);
  const newClient = (leaf: Leaf): AttestorClient =>
    new AttestorClient(att.address, grpc.credentials.createSsl(pki.caPem, leaf.keyPem, leaf.certPem), { 'grpc.ssl_target_name_override': 'localhost' } as never);
  const result: Partial<LoadResult> = {};
  const errors: string[] = [];
  const idle: Socket[] = [];
  let closingIdle = false;
  try {
    // Two identities, each with RSA and ECC AKs, NewKey keys, an imported key and sealed blobs.
    const ids: Identity[] = [];
    for (const [i, leaf] of leaves.entries()) {
      const client = newClient(leaf);
      const aks = {
        rsa: checkAk((await client.getAK({ uid: 'u-rsa', keyType: 'rsa' })).ak, 'rsa'),
        ecc: checkAk((await client.getAK({ uid: 'u-ecc', keyType: 'ecc' })).ak, 'ecc'),
      };
      const ek = { rsa: ekPublicFromSpki((await client.getEKCert('rsa')).ekPub, 'rsa'), ecc: ekPublicFromSpki((await client.getEKCert('ecc')).ekPub, 'ecc') };
      const rsaKey = checkNewKey(await client.newKey({ uid: 'u-rsa', kid: 'k', keyType: 'rsa' }), aks.rsa, 'rsa').key;
      const eccKey = checkNewKey(await client.newKey({ uid: 'u-ecc', kid: 'k', keyType: 'ecc' }), aks.ecc, 'ecc').key;
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      await client.importSigningKey({ uid: 'u-ecc', kid: 'imported', encryptedSigningKey: importBlobBytes(ek.ecc, { kind: 'signingKey', privateKey }) });
      const sealed = (['rsa', 'ecc'] as const).map((kt) => {
        const data = enc(`sealed for ${leaf.certPem.length}-${kt}-${i}`);
        return { blob: importBlobBytes(ek[kt], { kind: 'sealed', data }), data };
      });
      const cloud = {
        rsa: createPublicKey(Buffer.from((await client.getGCEEKSigningKey('rsa')).public)),
        ecc: createPublicKey(Buffer.from((await client.getGCEEKSigningKey('ecc')).public)),
      };
      ids.push({ name: ['alice', 'bob'][i]!, client, aks, keys: { rsa: rsaKey, ecc: eccKey, imported: publicKey }, ek, cloud, sealed });
    }

    // 1,000 idle connections: TCP connections that never speak (TLS handshake never started).
    const [host, port] = [att.address.slice(0, att.address.lastIndexOf(':')), Number(att.address.slice(att.address.lastIndexOf(':') + 1))];
    let idleFirstClosedAfterS: number | null = null;
    for (let i = 0; i < o.idle; i++) {
      const opened = Date.now();
      const s = netConnect(port, host);
      s.on('error', () => undefined);
      s.on('close', () => {
        if (closingIdle) return;
        const after = Math.round((Date.now() - opened) / 100) / 10;
        if (idleFirstClosedAfterS === null || after < idleFirstClosedAfterS) idleFirstClosedAfterS = after;
      });
      idle.push(s);
    }
    // The slow client: HTTP/2 over mTLS with a 1-byte receive window; its requests trickle in one
    // byte per 50 ms, and its Quote responses (KiBs) are never read.
    const slow = http2Connect(`https://localhost:${port}`, {
      ca: pki.caPem, cert: leaves[0]!.certPem, key: leaves[0]!.keyPem, settings: { initialWindowSize: 1 },
    });
    slow.on('error', () => undefined);
    const slowStreams: ReturnType<typeof slow.request>[] = [];
    const trickle: NodeJS.Timeout[] = [];
    for (let i = 0; i < 8; i++) {
      const st = slow.request({ [h2.HTTP2_HEADER_METHOD]: 'POST', [h2.HTTP2_HEADER_PATH]: '/verifier.Verifier/Quote', 'content-type': 'application/grpc', te: 'trailers' });
      st.on('error', () => undefined);
      st.pause(); // never read the response
      const msg = Buffer.concat([Buffer.from([0x0a, 5]), Buffer.from('u-rsa'), Buffer.from([0x12, 4]), randomBytes(4)]);
      const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, msg.length]), msg]);
      let at = 0;
      trickle.push(
        setInterval(() => {
          if (at < framed.length) st.write(framed.subarray(at, ++at));
          else if (!st.writableEnded) st.end();
        }, 50),
      );
      slowStreams.push(st);
    }

    // The mixed load.
    const latencies: number[] = [];
    const byRpc: Record<string, number> = {};
    const started = Date.now();
    let done = 0;
    const client = async (c: number): Promise<void> => {
      const id = ids[c % 2]!;
      const kt = (c >> 1) % 2 === 0 ? 'rsa' : 'ecc';
      for (let n = 0; n < o.calls; n++) {
        // NewKey and ImportSigningKey make a key each: once per client, the rest of its calls are the others.
        let rpc: (typeof RPCS)[number] = RPCS[(c + n) % RPCS.length]!;
        if ((rpc === 'NewKey' && n >= RPCS.length) || (rpc === 'ImportSigningKey' && n >= RPCS.length)) rpc = 'Sign';
        byRpc[rpc] = (byRpc[rpc] ?? 0) + 1;
        const t0 = performance.now();
        try {
          await oneCall(id, rpc, kt, `${c}-${n}`, banks);
        } catch (e) {
          if (errors.length < 50) errors.push(`${id.name} ${rpc}(${kt}) #${n}: ${e instanceof Error ? e.message : String(e)}`.slice(0, 400));
        }
        latencies.push(performance.now() - t0);
        if (++done % 5000 === 0) o.log?.(`${done} calls, ${errors.length} errors, RSS ${rssMiB(pid)} MiB`);
      }
    };
    await Promise.all(Array.from({ length: o.clients }, (_, c) => client(c)));
    const elapsedMs = Date.now() - started;
    latencies.sort((a, b) => a - b);
    const pct = (p: number): number => Math.round(latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))]! * 10) / 10;

    for (const t of trickle) clearInterval(t);
    const idleStillOpen = idle.filter((s) => !s.destroyed && s.readyState === 'open').length;
    closingIdle = true;
    for (const s of slowStreams) s.close(h2.NGHTTP2_CANCEL);
    slow.close();
    for (const s of idle) s.destroy();
    for (const id of ids) id.client.close();
    await sleep(500);
    Object.assign(result, {
      clients: o.clients,
      callsPerClient: o.calls,
      calls: latencies.length,
      byRpc,
      elapsedMs,
      callsPerSecond: Math.round((latencies.length / elapsedMs) * 1000 * 10) / 10,
      p50Ms: pct(50),
      p99Ms: pct(99),
      maxMs: Math.round(latencies[latencies.length - 1]! * 10) / 10,
      idleConnections: o.idle,
      idleStillOpen,
      idleFirstClosedAfterS,
      slowClientStreams: slowStreams.length,
      rssStartMiB: rssStart,
      rssPeakMiB: rssPeak,
      rssEndMiB: rssMiB(pid),
    });
  } finally {
    closingIdle = true;
    clearInterval(rssTimer);
    for (const s of idle) s.destroy();
    await att.stop();
  }
  // swtpm serves one client at a time: look at it once the attestor is gone.
  result.handlesAfter = await withTpm(o.tpm, (tpm: Tpm) => tpm.getLoadedHandles());
  result.errors = errors;
  return result as LoadResult;
}

async function oneCall(id: Identity, rpc: string, kt: 'rsa' | 'ecc', tag: string, banks: readonly number[]): Promise<void> {
  const c = id.client;
  const uid = `u-${kt}`;
  switch (rpc) {
    case 'GetEKCert': {
      const r = await c.getEKCert(kt);
      assert.ok(r.ekPub.length > 0 && r.ekCert.length > 0);
      return;
    }
    case 'GetAK': {
      const r = await c.getAK({ uid, keyType: kt });
      assert.ok(bytesEqual(r.ak, id.aks[kt].raw), 'GetAK returns the same AK');
      return;
    }
    case 'Attest': {
      const secret = new Uint8Array(randomBytes(32));
      const ekType = tag.length % 2 === 0 ? 'rsa' : 'ecc';
      const r = await c.attest({ uid, encryptedCredentials: encryptedCredential(id.ek[ekType], id.aks[kt].name, secret) });
      assert.ok(bytesEqual(r.secret, secret), 'Attest returns the secret');
      return;
    }
    case 'Quote': {
      const nonce = new Uint8Array(randomBytes(16));
      checkQuote((await c.quote({ uid, nonce })).platformAttestation, id.aks[kt], nonce, banks);
      return;
    }
    case 'ImportBlob': {
      const s = id.sealed[kt === 'rsa' ? 0 : 1]!;
      const r = await c.importBlob({ uid, encryptedKey: s.blob });
      assert.ok(bytesEqual(r.decryptedKey, s.data), 'ImportBlob returns the sealed data');
      return;
    }
    case 'Sign': {
      const data = enc(`load ${tag}`);
      const which = tag.endsWith('7') && kt === 'ecc' ? 'imported' : kt;
      const r = await c.sign({ uid, kid: which === 'imported' ? 'imported' : 'k', data });
      const key = id.keys[which];
      const ok = key.asymmetricKeyType === 'rsa' ? verify('sha256', data, key, r.signed) : verify('sha256', data, { key, dsaEncoding: 'der' }, r.signed);
      assert.ok(ok, `the ${which} signature verifies`);
      return;
    }
    case 'NewKey': {
      const r = await c.newKey({ uid, kid: `n-${tag}`, keyType: kt });
      const { key } = checkNewKey(r, id.aks[kt], kt);
      const data = enc(`new ${tag}`);
      const s = await c.sign({ uid, kid: `n-${tag}`, data });
      assert.ok(kt === 'rsa' ? verify('sha256', data, key, s.signed) : verify('sha256', data, { key, dsaEncoding: 'der' }, s.signed));
      return;
    }
    case 'ImportSigningKey': {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const r = await c.importSigningKey({ uid, kid: `i-${tag}`, encryptedSigningKey: importBlobBytes(id.ek[kt], { kind: 'signingKey', privateKey }) });
      assert.ok(verify('sha256', enc(uid), { key: publicKey, dsaEncoding: 'der' }, r.confirmation), 'the confirmation verifies');
      return;
    }
    case 'GetGCEEKSigningKey': {
      const r = await c.getGCEEKSigningKey(kt);
      const spki = (k: KeyObject): string => k.export({ format: 'der', type: 'spki' }).toString('hex');
      assert.equal(spki(createPublicKey(Buffer.from(r.public))), spki(id.cloud[kt]), 'the same cloud attestation key');
      return;
    }
    case 'SignGCEEK': {
      const data = enc(`cloud ${tag}`);
      if (id.name !== NODE_KEY_IDENTITY) {
        await assert.rejects(c.signGCEEK({ data, keyType: kt }), (e: grpc.ServiceError) => e.code === grpc.status.PERMISSION_DENIED, 'an identity not named by --allow-node-key is refused');
        return;
      }
      const r = await c.signGCEEK({ data, keyType: kt });
      const key = id.cloud[kt];
      assert.ok(kt === 'rsa' ? verify('sha256', data, key, r.signed) : verify('sha256', data, { key, dsaEncoding: 'der' }, r.signed), 'the cloud attestation key\'s signature verifies');
      return;
    }
    default:
      throw new Error(`unknown rpc ${rpc}`);
  }
}
