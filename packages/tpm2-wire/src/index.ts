/** @tpmds/tpm2-wire — a pure-TypeScript TPM 2.0 stack. Layers: bytes, types, commands, sessions, transport, client, crypto, eventlog. */
export * from './bytes/index.js';
export * from './types/index.js';
export * from './crypto/index.js';
