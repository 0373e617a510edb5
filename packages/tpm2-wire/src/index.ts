/** @tpmds/tpm2-wire — a pure-TypeScript TPM 2.0 stack. Layers: bytes, types, commands, sessions, transport, client, crypto, eventlog. */
export * from './bytes/index.js';
export * from './types/index.js';
export * from './errors/index.js';
export * from './commands/index.js';
export * from './sessions/index.js';
export * from './transport/index.js';
export * from './client/index.js';
export * from './crypto/index.js';
export * from './policy/index.js';
export * from './eventlog/index.js';
