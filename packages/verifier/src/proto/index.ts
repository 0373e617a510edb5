// `@tpmds/verifier/proto`: the gRPC contract now lives in @tpmds/protocol (shared with the attestor);
// re-exported here so existing imports keep working.
export * from '@tpmds/protocol/proto';
