// Loaded into every mocha process (.mocharc.json node-option) before any test module.
//
// Node 20 can deadlock when a KeyObject returned by crypto.generateKeyPairSync is exported (JWK,
// DER, ...) before the next garbage collection: a GC during the export finalizes the key
// generation job, whose destructor locks the mutex of that same key, already held by the export.
// The process then hangs for good with an idle CPU (seen in CI: KeyObjectHandle::ExportJWK ->
// EncodeBignum -> GC -> ~KeyGenJob<RsaKeyGenTraits> -> uv_mutex_lock). Tests generate keys and
// export them (keyObjectToPublic, createImportBlob, ...) in many places, so here every
// generateKeyPairSync that returns KeyObjects generates straight to DER instead and reads the keys
// back: those share nothing with the job. Calls that ask for encodings are passed through.
// Production code does the same where it generates keys (verifier makeSigningKeyImport).
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';

const original = crypto.generateKeyPairSync;
const DER_TYPES = new Set(['rsa', 'rsa-pss', 'dsa', 'ec', 'ed25519', 'ed448', 'x25519', 'x448']);

crypto.generateKeyPairSync = function generateKeyPairSync(type, options) {
  if (!DER_TYPES.has(type) || (options && (options.publicKeyEncoding || options.privateKeyEncoding))) {
    return original.call(crypto, type, options);
  }
  const pair = original.call(crypto, type, {
    ...options,
    publicKeyEncoding: { type: 'spki', format: 'der' },
    privateKeyEncoding: { type: 'pkcs8', format: 'der' },
  });
  return {
    publicKey: crypto.createPublicKey({ key: pair.publicKey, format: 'der', type: 'spki' }),
    privateKey: crypto.createPrivateKey({ key: pair.privateKey, format: 'der', type: 'pkcs8' }),
  };
};
syncBuiltinESMExports();
