// grpc.health.v1.Health (https://github.com/grpc/grpc/blob/master/doc/health-checking.md),
// implemented over the generated messages: Check answers NOT_FOUND for an unknown service;
// Watch sends the current state at once, then every change, and SERVICE_UNKNOWN for an
// unknown service.
import * as grpc from '@grpc/grpc-js';
import { MalformedRequest, grpcpb } from '@tpmds/protocol/proto';

const pb = grpcpb.health.v1;
type Status = grpcpb.health.v1.HealthCheckResponse.ServingStatus;
const { SERVING, NOT_SERVING, SERVICE_UNKNOWN } = pb.HealthCheckResponse.ServingStatus;

/** Service names the attestor reports: the server, the Verifier service, and the seed's name. */
export const HEALTH_SERVICE_NAMES = ['', 'verifier.Verifier', 'attest.Attestor'] as const;

/** Health state of the served names, with Watch subscribers. */
export class HealthService {
  readonly #status = new Map<string, Status>();
  readonly #watchers = new Set<{ service: string; call: grpc.ServerWritableStream<unknown, unknown> }>();
  #closed = false;

  constructor(names: readonly string[] = HEALTH_SERVICE_NAMES) {
    for (const n of names) this.#status.set(n, NOT_SERVING);
  }

  /** Sets every name to SERVING or NOT_SERVING, notifying watchers of changes. */
  setServing(serving: boolean): void {
    if (this.#closed) return;
    const next = serving ? SERVING : NOT_SERVING;
    for (const [name, cur] of this.#status) {
      if (cur === next) continue;
      this.#status.set(name, next);
      for (const w of this.#watchers) if (w.service === name) w.call.write(response(next));
    }
  }

  /** Whether the names are SERVING. */
  get serving(): boolean {
    return this.#status.get('') === SERVING;
  }

  /** For shutdown: NOT_SERVING to everyone, then ends the Watch streams so the server can drain. */
  shutdown(): void {
    this.setServing(false);
    this.#closed = true;
    for (const w of this.#watchers) w.call.end();
    this.#watchers.clear();
  }

  /** grpc-js handlers for the Health service definition. */
  handlers(): grpc.UntypedServiceImplementation {
    return {
      Check: (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const req = call.request;
        if (req instanceof MalformedRequest) {
          callback({ code: grpc.status.INVALID_ARGUMENT, details: req.problem });
          return;
        }
        const service = (req as grpcpb.health.v1.HealthCheckRequest).service;
        const status = this.#status.get(service);
        if (status === undefined) {
          callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
          return;
        }
        callback(null, response(status));
      },
      Watch: (call: grpc.ServerWritableStream<unknown, unknown>) => {
        const req = call.request;
        if (req instanceof MalformedRequest) {
          call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: req.problem });
          return;
        }
        if (this.#closed) {
          call.write(response(NOT_SERVING));
          call.end();
          return;
        }
        const service = (req as grpcpb.health.v1.HealthCheckRequest).service;
        const entry = { service, call };
        this.#watchers.add(entry);
        call.write(response(this.#status.get(service) ?? SERVICE_UNKNOWN));
        const drop = (): void => {
          this.#watchers.delete(entry);
        };
        call.on('cancelled', drop);
        call.on('close', drop);
        call.on('error', drop);
      },
    };
  }
}

function response(status: Status): grpcpb.health.v1.HealthCheckResponse {
  return new pb.HealthCheckResponse({ status });
}
