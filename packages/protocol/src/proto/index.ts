// The gRPC contract (proto/verifier.proto, proto/tpm.proto, grpc.health.v1) as generated classes,
// plus a promise-based client.
export { verifier as verifierpb } from './gen/verifier.js';
export { tpm as tpmpb } from './gen/tpm.js';
export { grpc as grpcpb } from './gen/grpc/health/v1/health.js';
export type { CallerCredentials, GetEKCertResult, GetGCEEKSigningKeyResult, HealthStatus, NewKeyResult, QuoteResult } from './client.js';
export { AttestorClient, healthStatusName } from './client.js';
export { MESSAGE_SCHEMAS, MalformedRequest, healthServiceDefinition, verifierServiceDefinition } from './checked.js';
export type { WireField, WireSchema, WireType } from './wire.js';
export { WireFormatError, checkWire, lenFields, stringAndBytesFields } from './wire.js';
export { FILE_DESCRIPTOR_SET_BASE64 } from './gen/descriptor-set.js';
