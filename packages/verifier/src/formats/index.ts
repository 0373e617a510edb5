// `@tpmds/verifier/formats`: the payload formats now live in @tpmds/protocol (shared with the attestor);
// re-exported here so existing imports keep working.
export * from '@tpmds/protocol/formats';
