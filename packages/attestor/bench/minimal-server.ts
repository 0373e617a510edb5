/**
 * The benchmark's floor: the least a gRPC Sign server on this stack can do. Same proto
 * (verifier.Verifier, only Sign implemented), same grpc-js, same transport and TLS as the attestor;
 * its keys stay loaded; per call it does SHA-256 and one TPM2_Sign through tpm2-wire and DER-encodes
 * the signature. No authentication, policy, key store, queue, logging or metrics.
 */
import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { TPM_ALG, signatureToDer, type Tpm } from '@tpmds/tpm2-wire';
import { verifierServiceDefinition, verifierpb } from '@tpmds/protocol/proto';

export interface MinimalKey {
  handle: number;
  keyType: 'rsa' | 'ecc';
}

export interface MinimalServer {
  address: string;
  close(): Promise<void>;
}

/** Serve Sign for `keys` (by kid; uid ignored) on `listen` with `credentials`. */
export async function startMinimalSignServer(tpm: Tpm, keys: ReadonlyMap<string, MinimalKey>, listen: string, credentials: grpc.ServerCredentials): Promise<MinimalServer> {
  const server = new grpc.Server();
  server.addService(verifierServiceDefinition('server'), {
    Sign: (call: grpc.ServerUnaryCall<verifierpb.SignRequest, verifierpb.SignResponse>, callback: grpc.sendUnaryData<verifierpb.SignResponse>) => {
      const key = keys.get(call.request.kid);
      if (!key) {
        callback({ code: grpc.status.NOT_FOUND, details: 'no such key' });
        return;
      }
      const digest = new Uint8Array(createHash('sha256').update(call.request.data).digest());
      const scheme = key.keyType === 'ecc' ? { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 } : { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 };
      tpm.sign(key.handle, digest, { scheme }).then(
        (sig) => callback(null, new verifierpb.SignResponse({ signed: signatureToDer(sig) })),
        (e: unknown) => callback({ code: grpc.status.INTERNAL, details: String(e) }),
      );
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(listen, credentials, (e, p) => (e ? reject(e) : resolve(p))));
  return {
    address: listen.replace(/:0$/, `:${port}`),
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}
