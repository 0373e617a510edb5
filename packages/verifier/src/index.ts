/** @tpmds/verifier — client library and CLI that drive and check a tpmds attestor. */
export * from './cli/cli.js';
export * from './cli/command.js';
export * from './cli/exit.js';
export * from './cli/flags.js';
export * from './verify/index.js';
export * from './proto/index.js';
export * from './formats/index.js';
export * from './ear/index.js';
