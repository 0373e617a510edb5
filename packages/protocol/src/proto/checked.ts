// Service definitions whose deserializers check the wire bytes first (see wire.ts).
import type * as grpc from '@grpc/grpc-js';
import { verifier } from './gen/verifier.js';
import { grpc as healthNs } from './gen/grpc/health/v1/health.js';
import type { WireSchema } from './wire.js';
import { WireFormatError, checkWire, lenFields, stringAndBytesFields } from './wire.js';

/** Wire schemas of every message of proto/verifier.proto and grpc.health.v1, by full name. */
export const MESSAGE_SCHEMAS: Readonly<Record<string, WireSchema>> = {
  'verifier.GetEKCertRequest': stringAndBytesFields({ 1: 'keyType' }),
  'verifier.GetEKCertResponse': lenFields(1, 2),
  'verifier.GetAKRequest': stringAndBytesFields({ 1: 'uid', 2: 'keyType' }),
  'verifier.GetAKResponse': lenFields(1),
  'verifier.AttestRequest': stringAndBytesFields({ 1: 'uid' }, 2),
  'verifier.AttestResponse': lenFields(1),
  'verifier.QuoteRequest': stringAndBytesFields({ 1: 'uid' }, 2),
  'verifier.QuoteResponse': stringAndBytesFields({ 3: 'eventLogProblem', 4: 'userspaceEventLogProblem' }, 1, 2),
  'verifier.ImportBlobRequest': stringAndBytesFields({ 1: 'uid' }, 2),
  'verifier.ImportBlobResponse': lenFields(1),
  'verifier.ImportSigningKeyRequest': stringAndBytesFields({ 1: 'uid', 2: 'kid' }, 3),
  'verifier.ImportSigningKeyResponse': lenFields(1),
  'verifier.NewKeyRequest': stringAndBytesFields({ 1: 'uid', 2: 'kid', 3: 'keyType' }),
  'verifier.NewKeyResponse': lenFields(1, 2),
  'verifier.SignRequest': stringAndBytesFields({ 1: 'uid', 2: 'kid' }, 3),
  'verifier.SignResponse': lenFields(1),
  'verifier.GetGCEEKSigningKeyRequest': stringAndBytesFields({ 1: 'keyType' }),
  'verifier.GetGCEEKSigningKeyResponse': lenFields(1, 2),
  'verifier.SignGCEEKRequest': stringAndBytesFields({ 2: 'keyType' }, 1),
  'verifier.SignGCEEKResponse': lenFields(1),
  'grpc.health.v1.HealthCheckRequest': stringAndBytesFields({ 1: 'service' }),
  'grpc.health.v1.HealthCheckResponse': { 1: { wireType: 0 } },
};

/**
 * What a server-side deserializer yields for a request that is not well-formed: the handler
 * answers INVALID_ARGUMENT with `problem` (grpc-js itself would answer INTERNAL).
 */
export class MalformedRequest {
  constructor(
    readonly message: string,
    readonly problem: string,
  ) {}
}

interface AnyMethod {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestSerialize: (value: never) => Buffer;
  requestDeserialize: (bytes: Buffer) => unknown;
  responseSerialize: (value: never) => Buffer;
  responseDeserialize: (bytes: Buffer) => unknown;
}

function messageNames(path: string): [string, string] {
  const method = path.slice(path.lastIndexOf('/') + 1);
  if (path.startsWith('/grpc.health.v1.Health/')) {
    return ['grpc.health.v1.HealthCheckRequest', 'grpc.health.v1.HealthCheckResponse'];
  }
  const base = method === 'GetEK' ? 'GetEKCert' : method;
  return [`verifier.${base}Request`, `verifier.${base}Response`];
}

function schemaOf(name: string): WireSchema {
  const s = MESSAGE_SCHEMAS[name];
  if (s === undefined) throw new Error(`no wire schema for ${name}`);
  return s;
}

function wrap(definition: Record<string, AnyMethod>, side: 'server' | 'client'): grpc.ServiceDefinition {
  const out: Record<string, AnyMethod> = {};
  for (const [name, method] of Object.entries(definition)) {
    const [reqName, resName] = messageNames(method.path);
    const reqSchema = schemaOf(reqName);
    const resSchema = schemaOf(resName);
    out[name] = {
      ...method,
      requestDeserialize:
        side === 'server'
          ? (bytes: Buffer) => {
              try {
                checkWire(bytes, reqSchema, reqName);
              } catch (e) {
                if (e instanceof WireFormatError) return new MalformedRequest(reqName, e.message);
                throw e;
              }
              try {
                return method.requestDeserialize(bytes);
              } catch {
                return new MalformedRequest(reqName, `${reqName}: does not decode`);
              }
            }
          : method.requestDeserialize,
      responseDeserialize: (bytes: Buffer) => {
        checkWire(bytes, resSchema, resName);
        return method.responseDeserialize(bytes);
      },
    };
  }
  return out as unknown as grpc.ServiceDefinition;
}

/**
 * The Verifier service definition with wire-checked deserializers. On the server side a
 * malformed request deserializes to a {@link MalformedRequest}; on the client side a malformed
 * response fails the call.
 */
export function verifierServiceDefinition(side: 'server' | 'client'): grpc.ServiceDefinition {
  return wrap(verifier.UnimplementedVerifierService.definition as unknown as Record<string, AnyMethod>, side);
}

/** The grpc.health.v1.Health service definition with wire-checked deserializers. */
export function healthServiceDefinition(side: 'server' | 'client'): grpc.ServiceDefinition {
  return wrap(healthNs.health.v1.UnimplementedHealthService.definition as unknown as Record<string, AnyMethod>, side);
}
