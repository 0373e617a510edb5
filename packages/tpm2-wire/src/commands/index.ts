export * as TPM2 from './definitions.js';
export { defineCommand, type CommandSpec, type AnyCommandSpec, type HandleDef, type ParamsOf, type HandlesOf, type ResponseOf } from './spec.js';
export { execute, type ExecuteOptions, type HandleRef, type TpmEntity } from './execute.js';
