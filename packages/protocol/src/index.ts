/**
 * @tpmds/protocol — the contract between the attestor and the verifier: the gRPC service
 * (proto/verifier.proto, generated code, checked decoding, a typed client) and the payload formats
 * carried inside its messages (go-attestation JSON, go-tpm-tools ImportBlob, PEM).
 */
export * from './proto/index.js';
export * from './formats/index.js';
