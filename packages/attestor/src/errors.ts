import { status } from '@grpc/grpc-js';

/** The gRPC status codes an AttestorBackend (or the server's own checks) may answer with. */
export type AttestorErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'FAILED_PRECONDITION'
  | 'UNAVAILABLE'
  | 'RESOURCE_EXHAUSTED'
  | 'CANCELLED'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'DATA_LOSS'
  | 'INTERNAL';

/**
 * An error with a meaning for the caller: the server answers with `code` and `message` as they
 * are, so the message must say what was wrong and must never contain secrets, payloads or keys.
 * Any other error thrown by a backend becomes a bare INTERNAL (details only in the log).
 */
export class AttestorError extends Error {
  override readonly name = 'AttestorError';
  constructor(
    readonly code: AttestorErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** grpc-js status number of an AttestorErrorCode. */
export function grpcStatusOf(code: AttestorErrorCode): status {
  return status[code];
}

/** The name of a gRPC status number ("OK", "INVALID_ARGUMENT", ...), for logs and metrics. */
export function statusName(code: number): string {
  return status[code] ?? String(code);
}

/** A configuration problem: `flag` names the flag (e.g. `--tls-cert`) at fault. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly flag: string,
    problem: string,
  ) {
    super(`${flag}: ${problem}`);
  }
}
