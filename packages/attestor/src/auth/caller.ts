// Who is calling: the identity an --auth mode establishes for each gRPC call, and the errors that
// refuse a call. Keys are kept per identity (keystore.ts), so the identity is what isolates one
// pod's keys from another's; uid and kid only name things inside it.
import { AttestorError } from '../errors.js';

/** `--auth` modes (ARCHITECTURE.md, caller identity). */
export type AuthMode = 'none' | 'mtls' | 'k8s';
export const AUTH_MODES: readonly AuthMode[] = ['none', 'mtls', 'k8s'];

/** The identity of `--auth none`: the one shared namespace (today's, pre-identity store layout). */
export const NO_IDENTITY = '';

/** The caller of one RPC. */
export interface Caller {
  /**
   * The key namespace: an mTLS client certificate's first URI SAN (else its subject CN), a
   * Kubernetes service account `system:serviceaccount:<ns>:<name>`, or {@link NO_IDENTITY}.
   */
  readonly identity: string;
  readonly mode: AuthMode;
}

/** What the server hands an authenticator about one call: its credentials, nothing else. */
export interface CallCredentials {
  /** Values of the `authorization` metadata key (gRPC metadata keys are lower case). */
  authorization: readonly string[];
  /** DER of the client certificate the TLS handshake verified, or null. */
  peerCertificate: Uint8Array | null;
}

/** Establishes the caller of each call; throws {@link AuthFailure} to refuse it. */
export interface Authenticator {
  readonly mode: AuthMode;
  authenticate(credentials: CallCredentials): Promise<Caller>;
}

/** Why a call was refused, as the `reason` label of `tpmds_auth_failures_total`. */
export type AuthFailureReason =
  | 'no_credentials'
  | 'malformed_credentials'
  | 'invalid_token'
  | 'wrong_audience'
  | 'wrong_node'
  | 'not_a_pod'
  | 'not_a_service_account'
  | 'no_identity_in_certificate'
  | 'forbidden_by_policy'
  | 'node_key_not_allowed'
  | 'auth_backend_unavailable';

/**
 * A refused call: UNAUTHENTICATED (no or unusable credentials), PERMISSION_DENIED (valid
 * credentials that may not call here) or UNAVAILABLE (the identity could not be checked now;
 * never let through). The message goes to the caller: it says what is wrong, never a token.
 */
export class AuthFailure extends AttestorError {
  constructor(
    code: 'UNAUTHENTICATED' | 'PERMISSION_DENIED' | 'UNAVAILABLE',
    readonly reason: AuthFailureReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/** `--auth none`: every caller shares {@link NO_IDENTITY}. */
export class NoAuthenticator implements Authenticator {
  readonly mode = 'none' as const;
  authenticate(): Promise<Caller> {
    return Promise.resolve({ identity: NO_IDENTITY, mode: 'none' });
  }
}

/** The bearer token of `authorization: Bearer <token>`; AuthFailure when absent or garbled. */
export function bearerToken(credentials: CallCredentials): string {
  const values = credentials.authorization;
  if (values.length === 0) {
    throw new AuthFailure('UNAUTHENTICATED', 'no_credentials', 'no credentials: send a service-account token as gRPC metadata "authorization: Bearer <token>"');
  }
  if (values.length > 1) throw new AuthFailure('UNAUTHENTICATED', 'malformed_credentials', 'more than one "authorization" metadata value');
  const m = /^Bearer +(\S+)$/i.exec(values[0] as string);
  if (m === null) throw new AuthFailure('UNAUTHENTICATED', 'malformed_credentials', 'the "authorization" metadata is not "Bearer <token>"');
  const token = m[1] as string;
  // A JWT is three base64url parts; RFC 6750 allows a little more. Anything else is junk.
  if (token.length > 16384 || !/^[A-Za-z0-9._~+/-]+=*$/.test(token)) {
    throw new AuthFailure('UNAUTHENTICATED', 'malformed_credentials', 'the bearer token is not a token (unexpected characters or over 16 KiB)');
  }
  return token;
}
