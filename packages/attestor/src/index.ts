// @tpmds/attestor: the node daemon's server pieces, for the tpmds-attestor binary and for tests
// that run an attestor in-process.
export type { AttestorBackend, CheckedEncryptedCredential, EKCertResult, KeyType, NewKeyResult } from './backend.js';
export { BackendUnavailableError, createBackend } from './backend-factory.js';
export type { ProgramIo } from './cli.js';
export { runAttestor } from './cli.js';
export type { AttestorConfig, LogLevel, ParsedArgs } from './config.js';
export { FLAGS, defaultConfig, envName, helpText, parseArgs, validateConfig } from './config.js';
export type { AttestorErrorCode } from './errors.js';
export { AttestorError, ConfigError, grpcStatusOf, statusName } from './errors.js';
export type { FakeBackendOptions } from './fake-backend.js';
export { FakeBackend } from './fake-backend.js';
export { HEALTH_SERVICE_NAMES, HealthService } from './health.js';
export type { KeyEvidence, KeyRecord, KeyRef, KeyStoreOptions, NewKeyRecord } from './keystore.js';
export { KeyStore } from './keystore.js';
export type { LogFields, LogSink } from './log.js';
export { Logger } from './log.js';
export type { TpmMetrics } from './metrics.js';
export { AttestorMetrics, Counter, Histogram } from './metrics.js';
export type { RunningAttestor, StartOptions } from './server.js';
export { MAX_MESSAGE_BYTES, startAttestor } from './server.js';
export { checkId, checkNonce, idProblem, parseKeyType } from './validate.js';
