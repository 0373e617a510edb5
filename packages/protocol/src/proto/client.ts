// A thin promise-based client for the attestor's Verifier service and grpc.health.v1, over the
// generated classes. Requests and responses are plain objects; payload bytes are returned as-is
// (decode them with ../formats).
import * as grpc from '@grpc/grpc-js';
import { verifier } from './gen/verifier.js';
import { grpc as healthNs } from './gen/grpc/health/v1/health.js';
import { healthServiceDefinition, verifierServiceDefinition } from './checked.js';

const health = healthNs.health.v1;
// Clients built from the wire-checked definitions: a hostile server's malformed response fails
// the call instead of stalling google-protobuf.
const VerifierClientCtor = grpc.makeGenericClientConstructor(verifierServiceDefinition('client'), 'Verifier');
const HealthClientCtor = grpc.makeGenericClientConstructor(healthServiceDefinition('client'), 'Health');
type MethodTable = grpc.Client & Record<string, unknown>;

/** grpc.health.v1 serving states. */
export type HealthStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

export interface GetEKCertResult {
  /** PKIX SubjectPublicKeyInfo DER. */
  ekPub: Uint8Array;
  /** EK certificate DER; empty when the TPM has none. */
  ekCert: Uint8Array;
}

export interface NewKeyResult {
  /** PEM "PUBLIC KEY". */
  public: Uint8Array;
  /** go-attestation CertificationParameters JSON. */
  keyCertification: Uint8Array;
}

/** What Quote returns. */
export interface QuoteResult {
  /** go-attestation PlatformParameters JSON (its EventLog is the firmware log). */
  platformAttestation: Uint8Array;
  /** systemd's userspace measurement log (JSON-SEQ of CEL-JSON records); empty when the node has none. */
  userspaceEventLog: Uint8Array;
  /** Why the firmware log is empty; "" when it was read (or an attestor older than this field). */
  eventLogProblem: string;
  /** Why the userspace log is empty although the node has one; "" otherwise. */
  userspaceEventLogProblem: string;
}

/** What GetGCEEKSigningKey returns. */
export interface GetGCEEKSigningKeyResult {
  /** PEM "PUBLIC KEY" (PKIX) of the cloud attestation key. */
  public: Uint8Array;
  /** Its certificate DER from TPM NV; empty when the TPM has none. */
  cert: Uint8Array;
}

type Unary<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, value?: Res) => void,
) => grpc.ClientUnaryCall;

/** How an {@link AttestorClient} identifies its caller beyond the channel's TLS credentials. */
export interface CallerCredentials {
  /**
   * Returns the bearer token sent as `authorization: Bearer <token>` on every Verifier call (an
   * attestor with `--auth k8s` wants the pod's projected service-account token). Called per call,
   * so a token file the kubelet rotates can be re-read each time.
   */
  bearerToken?: () => string;
}

/**
 * Client for an attestor. Every method resolves with the response fields or rejects with the
 * grpc-js `ServiceError` (its `code` is the gRPC status).
 */
export class AttestorClient {
  readonly #client: MethodTable;
  readonly #health: MethodTable;
  readonly #caller: CallerCredentials;

  /**
   * `target` is a gRPC address (`host:port`, `unix:/path`); `options` are grpc-js channel options;
   * `caller` adds a bearer token to the Verifier calls (not to health checks).
   */
  constructor(target: string, credentials: grpc.ChannelCredentials, options?: Partial<grpc.ChannelOptions>, caller: CallerCredentials = {}) {
    this.#client = new VerifierClientCtor(target, credentials, options) as MethodTable;
    this.#health = new HealthClientCtor(target, credentials, options) as MethodTable;
    this.#caller = caller;
  }

  #call<Req, Res>(fn: Unary<Req, Res>, self: object, request: Req, options: grpc.CallOptions = {}): Promise<Res> {
    return new Promise((resolve, reject) => {
      const metadata = new grpc.Metadata();
      if (self !== this.#health && this.#caller.bearerToken !== undefined) {
        let token: string;
        try {
          token = this.#caller.bearerToken();
        } catch (e) {
          reject(e);
          return;
        }
        metadata.set('authorization', `Bearer ${token}`);
      }
      fn.call(self, request, metadata, options, (err, value) => {
        if (err) reject(err);
        else if (value === undefined) reject(new Error('empty response'));
        else resolve(value);
      });
    });
  }

  /** GetEKCert: the EK (keyType "rsa" default, or "ecc") and its certificate. */
  async getEKCert(keyType = '', options?: grpc.CallOptions): Promise<GetEKCertResult> {
    const res = await this.#call<verifier.GetEKCertRequest, verifier.GetEKCertResponse>(
      this.#client['GetEKCert'] as Unary<verifier.GetEKCertRequest, verifier.GetEKCertResponse>,
      this.#client,
      new verifier.GetEKCertRequest({ keyType }),
      options,
    );
    return { ekPub: res.ekPub, ekCert: res.ekCert };
  }

  /** GetEK: the seed's name for GetEKCert. */
  async getEK(keyType = '', options?: grpc.CallOptions): Promise<GetEKCertResult> {
    const res = await this.#call<verifier.GetEKCertRequest, verifier.GetEKCertResponse>(
      this.#client['GetEK'] as Unary<verifier.GetEKCertRequest, verifier.GetEKCertResponse>,
      this.#client,
      new verifier.GetEKCertRequest({ keyType }),
      options,
    );
    return { ekPub: res.ekPub, ekCert: res.ekCert };
  }

  /** GetAK: go-attestation AttestationParameters JSON of the uid's AK. */
  async getAK(request: { uid: string; keyType?: string }, options?: grpc.CallOptions): Promise<{ ak: Uint8Array }> {
    const res = await this.#call<verifier.GetAKRequest, verifier.GetAKResponse>(
      this.#client['GetAK'] as Unary<verifier.GetAKRequest, verifier.GetAKResponse>,
      this.#client,
      new verifier.GetAKRequest({ uid: request.uid, keyType: request.keyType ?? '' }),
      options,
    );
    return { ak: res.ak };
  }

  /** Attest: the secret activated from a go-attestation EncryptedCredential JSON. */
  async attest(
    request: { uid: string; encryptedCredentials: Uint8Array },
    options?: grpc.CallOptions,
  ): Promise<{ secret: Uint8Array }> {
    const res = await this.#call<verifier.AttestRequest, verifier.AttestResponse>(
      this.#client['Attest'] as Unary<verifier.AttestRequest, verifier.AttestResponse>,
      this.#client,
      new verifier.AttestRequest(request),
      options,
    );
    return { secret: res.secret };
  }

  /**
   * Quote: go-attestation PlatformParameters JSON, systemd's userspace measurement log (empty
   * when the node has none), and why either log is missing ("" when it was read).
   */
  async quote(
    request: { uid: string; nonce: Uint8Array },
    options?: grpc.CallOptions,
  ): Promise<QuoteResult> {
    const res = await this.#call<verifier.QuoteRequest, verifier.QuoteResponse>(
      this.#client['Quote'] as Unary<verifier.QuoteRequest, verifier.QuoteResponse>,
      this.#client,
      new verifier.QuoteRequest(request),
      options,
    );
    return {
      platformAttestation: res.platformAttestation,
      userspaceEventLog: res.userspaceEventLog,
      eventLogProblem: res.eventLogProblem,
      userspaceEventLogProblem: res.userspaceEventLogProblem,
    };
  }

  /** ImportBlob: the unsealed bytes of a go-tpm-tools ImportBlob. */
  async importBlob(
    request: { uid: string; encryptedKey: Uint8Array },
    options?: grpc.CallOptions,
  ): Promise<{ decryptedKey: Uint8Array }> {
    const res = await this.#call<verifier.ImportBlobRequest, verifier.ImportBlobResponse>(
      this.#client['ImportBlob'] as Unary<verifier.ImportBlobRequest, verifier.ImportBlobResponse>,
      this.#client,
      new verifier.ImportBlobRequest(request),
      options,
    );
    return { decryptedKey: res.decryptedKey };
  }

  /** ImportSigningKey: the imported key's signature over SHA-256(uid). */
  async importSigningKey(
    request: { uid: string; kid: string; encryptedSigningKey: Uint8Array },
    options?: grpc.CallOptions,
  ): Promise<{ confirmation: Uint8Array }> {
    const res = await this.#call<verifier.ImportSigningKeyRequest, verifier.ImportSigningKeyResponse>(
      this.#client['ImportSigningKey'] as Unary<verifier.ImportSigningKeyRequest, verifier.ImportSigningKeyResponse>,
      this.#client,
      new verifier.ImportSigningKeyRequest(request),
      options,
    );
    return { confirmation: res.confirmation };
  }

  /** NewKey: PEM public key and CertificationParameters JSON of a new key uid/kid. */
  async newKey(
    request: { uid: string; kid: string; keyType?: string },
    options?: grpc.CallOptions,
  ): Promise<NewKeyResult> {
    const res = await this.#call<verifier.NewKeyRequest, verifier.NewKeyResponse>(
      this.#client['NewKey'] as Unary<verifier.NewKeyRequest, verifier.NewKeyResponse>,
      this.#client,
      new verifier.NewKeyRequest({ uid: request.uid, kid: request.kid, keyType: request.keyType ?? '' }),
      options,
    );
    return { public: res.public, keyCertification: res.keyCertification };
  }

  /** Sign: signature over SHA-256(data) by key uid/kid. */
  async sign(
    request: { uid: string; kid: string; data: Uint8Array },
    options?: grpc.CallOptions,
  ): Promise<{ signed: Uint8Array }> {
    const res = await this.#call<verifier.SignRequest, verifier.SignResponse>(
      this.#client['Sign'] as Unary<verifier.SignRequest, verifier.SignResponse>,
      this.#client,
      new verifier.SignRequest(request),
      options,
    );
    return { signed: res.signed };
  }

  /** GetGCEEKSigningKey: the cloud attestation key (keyType "rsa" default, or "ecc") made from the template in TPM NV, and its certificate. */
  async getGCEEKSigningKey(keyType = '', options?: grpc.CallOptions): Promise<GetGCEEKSigningKeyResult> {
    const res = await this.#call<verifier.GetGCEEKSigningKeyRequest, verifier.GetGCEEKSigningKeyResponse>(
      this.#client['GetGCEEKSigningKey'] as Unary<verifier.GetGCEEKSigningKeyRequest, verifier.GetGCEEKSigningKeyResponse>,
      this.#client,
      new verifier.GetGCEEKSigningKeyRequest({ keyType }),
      options,
    );
    return { public: res.public, cert: res.cert };
  }

  /** SignGCEEK: signature over SHA-256(data) by the cloud attestation key. */
  async signGCEEK(request: { data: Uint8Array; keyType?: string }, options?: grpc.CallOptions): Promise<{ signed: Uint8Array }> {
    const res = await this.#call<verifier.SignGCEEKRequest, verifier.SignGCEEKResponse>(
      this.#client['SignGCEEK'] as Unary<verifier.SignGCEEKRequest, verifier.SignGCEEKResponse>,
      this.#client,
      new verifier.SignGCEEKRequest({ data: request.data, keyType: request.keyType ?? '' }),
      options,
    );
    return { signed: res.signed };
  }

  /** grpc.health.v1 Check for `service` ("" = the whole server). */
  async healthCheck(service = '', options?: grpc.CallOptions): Promise<HealthStatus> {
    const res = await this.#call<healthNs.health.v1.HealthCheckRequest, healthNs.health.v1.HealthCheckResponse>(
      this.#health['Check'] as Unary<healthNs.health.v1.HealthCheckRequest, healthNs.health.v1.HealthCheckResponse>,
      this.#health,
      new health.HealthCheckRequest({ service }),
      options,
    );
    return healthStatusName(res.status);
  }

  /** Waits until the channel is connected or the deadline (ms from now) passes. */
  waitForReady(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#client.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Closes the channels. */
  close(): void {
    this.#client.close();
    this.#health.close();
  }
}

/** The name of a grpc.health.v1 ServingStatus number. */
export function healthStatusName(status: number): HealthStatus {
  switch (status) {
    case 1:
      return 'SERVING';
    case 2:
      return 'NOT_SERVING';
    case 3:
      return 'SERVICE_UNKNOWN';
    default:
      return 'UNKNOWN';
  }
}
