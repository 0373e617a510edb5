/**
 * Is the attestor's memory growth a leak? Runs the attestor in this process (mTLS, --auth mtls,
 * info logging to a null sink, metrics) on a swtpm and prints the JavaScript heap in use after a
 * forced GC every 5,000 Sign RPCs (8 callers). A flat heapUsed means no leak; RSS above it is V8's
 * reservation and malloc arenas (see BENCH.md).
 *
 *   node --expose-gc --import tsx packages/attestor/bench/heap.ts
 */
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AttestorClient } from '@tpmds/protocol';
import { AttestorMetrics, Logger, createBackend, defaultConfig, startAttestor } from '../src/index.js';
import { startSwtpm } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { TestPki } from '../test/fixtures/pki.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const sw = await startSwtpm({ transport: 'unix' });
const work = await mkdtemp(join(tmpdir(), 'tpmds-heap-'));
try {
  const pki = new TestPki(work);
  const server = pki.server();
  const client = pki.leaf('client', '/CN=heap', ['extendedKeyUsage=clientAuth']);
  const config = {
    ...defaultConfig(), listen: '127.0.0.1:0', healthListen: '127.0.0.1:0', tpm: sw.address, stateDir: join(work, 'state'), eventLog: join(work, 'none'),
    tlsCert: server.cert, tlsKey: server.key, clientCa: pki.caCert, auth: 'mtls' as const, logLevel: 'info' as const,
  };
  const metrics = new AttestorMetrics();
  const logger = new Logger('info', { write: () => true });
  const attestor = await startAttestor(config, await createBackend(config, metrics, logger, {}), { logger, metrics });
  const c = new AttestorClient(attestor.address, grpc.credentials.createSsl(pki.caPem, client.keyPem, client.certPem), { 'grpc.ssl_target_name_override': 'localhost' });
  try {
    await c.getAK({ uid: 'u', keyType: 'ecc' });
    await c.newKey({ uid: 'u', kid: 'k', keyType: 'ecc' });
    const data = new Uint8Array(64);
    const mb = (n: number): string => `${(n / 1048576).toFixed(1)} MB`;
    for (let round = 1; round <= 4; round++) {
      let next = 0;
      await Promise.all(Array.from({ length: 8 }, async () => { while (next++ < 5000) await c.sign({ uid: 'u', kid: 'k', data }); }));
      gc();
      gc();
      const m = process.memoryUsage();
      console.log(`after ${round * 5000} Sign RPCs: heapUsed ${mb(m.heapUsed)}, heapTotal ${mb(m.heapTotal)}, external ${mb(m.external)}, rss ${mb(m.rss)} (this process: attestor, client and tsx)`);
    }
  } finally {
    c.close();
    await attestor.close();
  }
} finally {
  await sw.stop();
  await rm(work, { recursive: true, force: true });
}
