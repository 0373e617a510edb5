import * as grpc from '@grpc/grpc-js';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AttestorClient } from '@tpmds/protocol';
import { AttestorMetrics, Logger, defaultConfig, startAttestor, createBackend } from '../src/index.js';
import { startSwtpm } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { TestPki } from '../test/fixtures/pki.js';
const sw = await startSwtpm({ transport: 'unix' });
const work = await mkdtemp(join(tmpdir(), 'prof-'));
const pki = new TestPki(work); const server = pki.server(); const client = pki.leaf('client', '/CN=c', ['extendedKeyUsage=clientAuth']);
const config = { ...defaultConfig(), listen: '127.0.0.1:0', healthListen: '127.0.0.1:0', tpm: sw.address, stateDir: join(work, 's'), eventLog: join(work, 'x'), tlsCert: server.cert, tlsKey: server.key, clientCa: pki.caCert, auth: 'mtls' as const, logLevel: 'info' as const };
const metrics = new AttestorMetrics(); const logger = new Logger('info', { write: () => true });
const a = await startAttestor(config, await createBackend(config, metrics, logger, {}), { logger, metrics });
const c = new AttestorClient(a.address, grpc.credentials.createSsl(pki.caPem, client.keyPem, client.certPem), { 'grpc.ssl_target_name_override': 'localhost' });
await c.getAK({ uid: 'u', keyType: 'ecc' }); await c.newKey({ uid: 'u', kid: 'k', keyType: 'ecc' });
const d = new Uint8Array(64);
for (let r = 0; r < 4; r++) {
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => { while (next < 5000) { next++; await c.sign({ uid: 'u', kid: 'k', data: d }); } }));
  (globalThis as any).gc(); (globalThis as any).gc();
  const m = process.memoryUsage();
  console.log(`after ${(r + 1) * 5000}: rss ${(m.rss / 1048576).toFixed(1)} heapUsed ${(m.heapUsed / 1048576).toFixed(1)} heapTotal ${(m.heapTotal / 1048576).toFixed(1)} external ${(m.external / 1048576).toFixed(1)} arrayBuffers ${(m.arrayBuffers / 1048576).toFixed(1)}`);
}
c.close(); await a.close(); await sw.stop();
