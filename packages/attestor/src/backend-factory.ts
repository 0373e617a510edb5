// Builds the backend main.ts serves: the TPM backend on --tpm, or (TPMDS_FAKE_BACKEND=1, for
// tests and development only) an in-memory fake.
import type { AttestorBackend } from './backend.js';
import type { AttestorConfig } from './config.js';
import { FakeBackend } from './fake-backend.js';
import type { Logger } from './log.js';
import type { TpmMetrics } from './metrics.js';
import { commandName } from '@tpmds/tpm2-wire';
import { KeyStore } from './keystore.js';
import { KeyPool, parseKeyPool } from './key-pool.js';
import { join } from 'node:path';
import { TpmBackend } from './tpm-backend.js';
import { AttestorTpm } from './tpm/attestor-tpm.js';

/** No backend can be built for this configuration. */
export class BackendUnavailableError extends Error {
  override readonly name = 'BackendUnavailableError';
}

/**
 * The backend for `config`. With TPMDS_FAKE_BACKEND=1 an in-memory fake (TPMDS_FAKE_LATENCY_MS
 * delays each call, TPMDS_FAKE_READY_AFTER_MS delays readiness).
 */
export async function createBackend(
  config: AttestorConfig,
  metrics: TpmMetrics,
  logger: Logger,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<AttestorBackend> {
  if (env['TPMDS_FAKE_BACKEND'] === '1') {
    logger.warn('FAKE BACKEND: TPMDS_FAKE_BACKEND=1, no TPM is used and nothing this attestor returns is attested', {
      tpm: config.tpm,
    });
    return new FakeBackend({
      latencyMs: Number(env['TPMDS_FAKE_LATENCY_MS'] ?? 0) || 0,
      readyAfterMs: Number(env['TPMDS_FAKE_READY_AFTER_MS'] ?? 0) || 0,
      logger,
      metrics,
    });
  }
  let store: KeyStore;
  try {
    store = await KeyStore.open(config.stateDir, { maxRecordsPerIdentity: config.maxKeysPerIdentity });
  } catch (e) {
    throw new BackendUnavailableError(`--state-dir ${config.stateDir}: ${(e as Error).message}`);
  }
  for (const w of store.warnings) logger.warn(w, { stateDir: config.stateDir });
  const tpm = new AttestorTpm(config.tpm, {
    onCommand: (cc, ms) => metrics.observeTpmCommand(commandName(cc), ms / 1000),
    onReclaim: ({ objects, sessions }) => {
      metrics.countTpmReclaimed('object', objects);
      metrics.countTpmReclaimed('session', sessions);
      logger.warn(`reclaimed the TPM: flushed ${objects} objects, ${sessions} sessions left by an earlier process`, { tpm: config.tpm, objects, sessions });
    },
    onExhausted: (kind, held) => {
      metrics.countTpmExhausted(kind);
      logger.warn(`the TPM has no free ${kind} slots and this attestor holds none of them`, {
        tpm: config.tpm, objects: held.objects.length, sessions: held.sessions.length,
      });
    },
    queue: {
      limit: config.tpmQueueLimit,
      onDepth: (depth) => metrics.setTpmQueueDepth(depth),
      onWait: (method, seconds) => metrics.observeTpmQueueWait(method, seconds),
      onReject: (reason) => metrics.countTpmQueueRejected(reason),
    },
  });
  const poolSize = parseKeyPool('--key-pool', config.keyPool);
  let pool: KeyPool | undefined;
  if (poolSize.rsa + poolSize.ecc > 0) {
    const warn = (message: string): void => logger.warn(message, { tpm: config.tpm, stateDir: config.stateDir });
    try {
      pool = await KeyPool.open(tpm, join(store.dir, 'pool'), poolSize, { warn });
    } catch (e) {
      throw new BackendUnavailableError(`--state-dir ${config.stateDir}: the key pool: ${(e as Error).message}`);
    }
    pool.start();
  }
  if (!tpm.reclaims) logger.debug('the TPM is behind a resource manager: it flushes what other processes leave, the attestor does not', { tpm: config.tpm });
  return new TpmBackend(tpm, store, {
    warn: (message) => logger.warn(message, { tpm: config.tpm }),
    info: (message) => logger.info(message, { tpm: config.tpm }),
    ...(pool ? { pool } : {}),
  });
}
