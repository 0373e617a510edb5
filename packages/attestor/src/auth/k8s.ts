// --auth k8s: the caller sends its pod's projected service-account token (audience --token-audience)
// as "authorization: Bearer <token>"; the Kubernetes API server's TokenReview says whose it is.
// Accepted only when authenticated, for our audience, and bound to a pod on this node
// (user.extra["authentication.kubernetes.io/node-name"] == --node-name). Fails closed: when the
// API server cannot answer, the call is UNAVAILABLE, never let through.
// API: POST /apis/authentication.k8s.io/v1/tokenreviews (TokenReview, authentication.k8s.io/v1).
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { AuthFailure, bearerToken, type Authenticator, type CallCredentials, type Caller } from './caller.js';

/** The extra key the API server sets on tokens bound to a pod (Kubernetes >= 1.30). */
export const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';
/** In-cluster defaults (the service account volume every pod gets). */
export const IN_CLUSTER_CA = '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt';
export const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';
/** Reviews are cached at most this long (and never past the token's own expiry). */
export const MAX_CACHE_SECONDS = 60;

/** TokenReview.status, as far as it is used. */
export interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
  audiences?: string[];
  error?: string;
}

/** The API server could not give an answer (network, TLS, HTTP status, our own token refused). */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
}

export interface TokenReviewClientOptions {
  /** API server base URL, e.g. https://10.96.0.1:443. */
  url: string;
  /** PEM CA bundle that signs the API server's certificate. */
  ca: string;
  /** The attestor's own service-account token file (re-read at every review: the kubelet rotates it). */
  tokenFile: string;
  timeoutMs?: number;
}

/** Posts TokenReviews to the API server with the attestor's own token. */
export class TokenReviewClient {
  constructor(private readonly opts: TokenReviewClientOptions) {}

  async review(token: string, audiences: readonly string[]): Promise<TokenReviewStatus> {
    const own = await this.#ownToken();
    const body = JSON.stringify({
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token, audiences },
    });
    const url = new URL('/apis/authentication.k8s.io/v1/tokenreviews', this.opts.url);
    const { status, text } = await postJson(url, body, own, this.opts.ca, this.opts.timeoutMs ?? 5000);
    if (status === 401) throw new KubeApiError(`the API server refused the attestor's own token (HTTP 401): check --kube-token-file ${this.opts.tokenFile}`);
    if (status === 403) throw new KubeApiError('the attestor may not create tokenreviews (HTTP 403): its ServiceAccount needs a ClusterRole with "create" on tokenreviews.authentication.k8s.io');
    if (status !== 200 && status !== 201) throw new KubeApiError(`the API server answered the TokenReview with HTTP ${status}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new KubeApiError('the API server answered the TokenReview with something that is not JSON');
    }
    const st = (parsed as { status?: unknown } | null)?.status;
    if (typeof st !== 'object' || st === null) throw new KubeApiError('the TokenReview answer has no status');
    return st as TokenReviewStatus;
  }

  // Read at every review (reviews are few: they are cached): the kubelet rotates the file.
  async #ownToken(): Promise<string> {
    const file = this.opts.tokenFile;
    let value: string;
    try {
      value = (await readFile(file, 'utf8')).trim();
    } catch (e) {
      throw new KubeApiError(`cannot read the attestor's own token --kube-token-file ${file}: ${(e as Error).message}`);
    }
    if (value === '') throw new KubeApiError(`the attestor's own token file ${file} is empty`);
    return value;
  }
}

function postJson(url: URL, body: string, bearer: string, ca: string, timeoutMs: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const fail = (why: string): void => reject(new KubeApiError(`the Kubernetes API server ${url.origin} is unreachable: ${why}`));
    if (url.protocol !== 'https:') {
      fail('only https:// is supported');
      return;
    }
    const req = httpsRequest(
      url,
      {
        method: 'POST',
        ca,
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          authorization: `Bearer ${bearer}`,
          'content-length': Buffer.byteLength(body),
        },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > 1 << 20) {
            req.destroy(new Error('answer larger than 1 MiB'));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (e) => fail(e.message));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => fail(e.message));
    req.end(body);
  });
}

export interface K8sAuthOptions {
  reviewer: Pick<TokenReviewClient, 'review'>;
  /** The audience tokens must be issued for (--token-audience). */
  audience: string;
  /** This node's name (--node-name): tokens must be bound to a pod on it. */
  nodeName: string;
  /** How long a successful review is reused (0 to MAX_CACHE_SECONDS; default 10). */
  cacheSeconds?: number;
  /** Clock, for tests. */
  now?: () => number;
  /** Tells why the API server said no (its `status.error`), for the log. */
  onRefused?: (reason: string, detail: string) => void;
}

const MAX_CACHE_ENTRIES = 4096;

/** --auth k8s. */
export class K8sAuthenticator implements Authenticator {
  readonly mode = 'k8s' as const;
  readonly #cache = new Map<string, { caller: Caller; until: number }>();
  readonly #pending = new Map<string, Promise<Caller>>();
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(private readonly opts: K8sAuthOptions) {
    this.#ttlMs = Math.min(Math.max(opts.cacheSeconds ?? 10, 0), MAX_CACHE_SECONDS) * 1000;
    this.#now = opts.now ?? Date.now;
  }

  authenticate(credentials: CallCredentials): Promise<Caller> {
    let token: string;
    try {
      token = bearerToken(credentials);
    } catch (e) {
      return Promise.reject(e);
    }
    // The cache is keyed by a hash: tokens themselves are not kept around longer than a call.
    const key = createHash('sha256').update(token).digest('hex');
    const hit = this.#cache.get(key);
    const now = this.#now();
    if (hit !== undefined) {
      if (hit.until > now) return Promise.resolve(hit.caller);
      this.#cache.delete(key);
    }
    let pending = this.#pending.get(key);
    if (pending === undefined) {
      pending = this.#review(token, key).finally(() => this.#pending.delete(key));
      this.#pending.set(key, pending);
    }
    return pending;
  }

  async #review(token: string, key: string): Promise<Caller> {
    const { audience, nodeName } = this.opts;
    let st: TokenReviewStatus;
    try {
      st = await this.opts.reviewer.review(token, [audience]);
    } catch (e) {
      if (e instanceof KubeApiError) {
        throw new AuthFailure('UNAVAILABLE', 'auth_backend_unavailable', `cannot check the caller's token now: ${e.message}`, { cause: e });
      }
      throw e;
    }
    const claims = unverifiedClaims(token);
    if (st.authenticated !== true) {
      const wrongAudience = claims?.aud !== undefined && !claims.aud.includes(audience);
      this.opts.onRefused?.(wrongAudience ? 'wrong_audience' : 'invalid_token', st.error ?? '');
      if (wrongAudience) {
        throw new AuthFailure('PERMISSION_DENIED', 'wrong_audience', `the token is not for audience "${audience}" (request a projected service-account token with that audience)`);
      }
      throw new AuthFailure('UNAUTHENTICATED', 'invalid_token', 'the token is not valid (unknown, expired, or its pod or service account is gone)');
    }
    // A reviewer that ignores spec.audiences answers without them: treat as not ours (TokenReviewStatus docs).
    if (!(st.audiences ?? []).includes(audience)) {
      throw new AuthFailure('PERMISSION_DENIED', 'wrong_audience', `the token is not for audience "${audience}"`);
    }
    const username = st.user?.username ?? '';
    if (!/^system:serviceaccount:[^:]+:[^:]+$/.test(username)) {
      throw new AuthFailure('PERMISSION_DENIED', 'not_a_service_account', 'the token does not belong to a service account');
    }
    const nodes = st.user?.extra?.[NODE_NAME_EXTRA];
    if (!Array.isArray(nodes) || nodes.length === 0) {
      throw new AuthFailure('PERMISSION_DENIED', 'not_a_pod', 'the token is not bound to a pod (use a projected service-account token of a pod on this node)');
    }
    if (nodes.length !== 1 || nodes[0] !== nodeName) {
      throw new AuthFailure('PERMISSION_DENIED', 'wrong_node', 'the token belongs to a pod on another node: call the attestor of your own node');
    }
    const caller: Caller = { identity: username, mode: 'k8s' };
    const now = this.#now();
    const until = Math.min(now + this.#ttlMs, claims?.exp !== undefined ? claims.exp * 1000 : Infinity);
    if (until > now) {
      if (this.#cache.size >= MAX_CACHE_ENTRIES) this.#cache.delete(this.#cache.keys().next().value as string);
      this.#cache.set(key, { caller, until });
    }
    return caller;
  }
}

/**
 * `aud` and `exp` of a JWT read WITHOUT verifying it: only to pick an error code for a token the
 * API server already refused, and to never cache a review past the token's expiry.
 */
export function unverifiedClaims(token: string): { aud?: string[]; exp?: number } | null {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const payload = JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8')) as Record<string, unknown>;
    const out: { aud?: string[]; exp?: number } = {};
    const aud = payload['aud'];
    if (typeof aud === 'string') out.aud = [aud];
    else if (Array.isArray(aud) && aud.every((a) => typeof a === 'string')) out.aud = aud as string[];
    if (typeof payload['exp'] === 'number' && Number.isFinite(payload['exp'])) out.exp = payload['exp'];
    return out;
  } catch {
    return null;
  }
}
