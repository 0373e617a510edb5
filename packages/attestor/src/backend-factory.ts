// Builds the backend main.ts serves. The real TPM backend is not wired in yet: until it is,
// only the fake (TPMDS_FAKE_BACKEND=1, for tests and development) can be started.
import type { AttestorBackend } from './backend.js';
import type { AttestorConfig } from './config.js';
import { FakeBackend } from './fake-backend.js';
import type { Logger } from './log.js';
import type { TpmMetrics } from './metrics.js';

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
      eventLog: config.eventLog,
      logger,
      metrics,
    });
  }
  throw new BackendUnavailableError(
    `TPM backend not yet available in this build (--tpm ${config.tpm}); set TPMDS_FAKE_BACKEND=1 for the in-memory fake used in tests`,
  );
}
