// The attestor's gRPC server: verifier.Verifier (+ the seed's GetEK), grpc.health.v1, reflection,
// TLS/mTLS or --insecure, plus the HTTP probe/metrics server. Every request is validated and its
// payload decoded here before the backend is called; the backend's results are encoded here.
import * as grpc from '@grpc/grpc-js';
import { loadFileDescriptorSetFromBuffer } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import {
  FormatError,
  decodeEncryptedCredential,
  decodeImportBlob,
  encodeAttestationParameters,
  encodeCertificationParameters,
  encodePlatformParameters,
  encodePublicKeyPem,
} from '@tpmds/protocol/formats';
import { TPM2B_ENCRYPTED_SECRET, TPM2B_ID_OBJECT, TPMT_PUBLIC, objectName, toHex, unmarshalExact, unmarshal, type Codec } from '@tpmds/tpm2-wire';
import type { ImportBlob } from '@tpmds/protocol/formats';
import {
  MalformedRequest,
  healthServiceDefinition,
  verifierServiceDefinition,
  verifierpb,
  FILE_DESCRIPTOR_SET_BASE64,
} from '@tpmds/protocol/proto';
import { randomBytes } from 'node:crypto';
import { readFile, lstat, unlink } from 'node:fs/promises';
import type { Server as HttpServer } from 'node:http';
import { TLSSocket, createSecureContext } from 'node:tls';
import { AuthFailure, NODE_KEY_RPCS, createCallerAuth, type Caller, type CallerAuth, type CallCredentials } from './auth/index.js';
import type { AttestorBackend, CallOptions, CheckedEncryptedCredential } from './backend.js';
import type { AttestorConfig } from './config.js';
import { validateConfig } from './config.js';
import { AttestorError, ConfigError, grpcStatusOf, statusName } from './errors.js';
import { EventLogs, encodedEventLog } from './event-logs.js';
import { HealthService } from './health.js';
import { closeHttpServer, httpAddress, startHttpServer } from './http.js';
import { SignRateLimiter, parseSignRate } from './limits.js';
import { Logger } from './log.js';
import { AttestorMetrics } from './metrics.js';
import { checkId, checkImportBlobSizes, checkNodeKeySignData, checkNonce, idProblem, parseKeyType } from './validate.js';

/** gRPC's default message limit; larger requests are RESOURCE_EXHAUSTED. */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** Options of {@link startAttestor}. */
export interface StartOptions {
  logger?: Logger;
  metrics?: AttestorMetrics;
  /** How long close() lets in-flight calls finish before cancelling them (default 20 s). */
  shutdownTimeoutMs?: number;
  /** How often backend.ready() is polled for the health state (default 2 s). */
  readinessPollMs?: number;
  /** Caller authentication and policy; default: built from config.auth / config.allow. */
  auth?: CallerAuth;
  /** The event logs Quote ships; default: config.eventLog and config.userspaceLog. */
  eventLogs?: EventLogs;
}

/** A running attestor. */
export interface RunningAttestor {
  /** The bound gRPC address (`host:port` with the actual port, or `unix:/path`). */
  address: string;
  /** The bound HTTP address (`host:port`). */
  healthAddress: string;
  metrics: AttestorMetrics;
  /**
   * Graceful stop: health goes NOT_SERVING, no new calls are accepted, in-flight calls finish
   * (bounded by shutdownTimeoutMs), then the backend and the HTTP server are closed.
   */
  close(): Promise<void>;
}

/**
 * Starts the gRPC and HTTP servers for `backend`, which the attestor owns from now on (close()
 * closes it). Throws ConfigError for unusable TLS files or addresses.
 */
export async function startAttestor(
  config: AttestorConfig,
  backend: AttestorBackend,
  options: StartOptions = {},
): Promise<RunningAttestor> {
  validateConfig(config);
  const logger = options.logger ?? new Logger(config.logLevel);
  const metrics = options.metrics ?? new AttestorMetrics();
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? 20_000;
  const credentials = await serverCredentials(config);
  const auth =
    options.auth ??
    (await createCallerAuth(config, {
      onTokenRefused: (reason, detail) => logger.info('the Kubernetes API server refused a caller token', { reason, detail: detail.slice(0, 300) }),
    }));

  const eventLogs = options.eventLogs ?? new EventLogs(config, logger, metrics);
  await eventLogs.read(); // logs each log's size and digest, or why it is missing, once at start

  const health = new HealthService();
  const inflight = new InflightTracker();
  let closing = false;

  const checkReady = async (): Promise<boolean> => {
    if (closing) return false;
    let ok = false;
    try {
      ok = (await withTimeout(Promise.resolve(backend.ready()), 5000)) === true;
    } catch (e) {
      logger.debug('backend readiness check failed', { error: errorText(e) });
    }
    if (!closing) health.setServing(ok);
    await eventLogs.read(); // notices a log that appeared, changed or became unreadable
    return ok && !closing;
  };

  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  });
  const signRate = new SignRateLimiter(parseSignRate(config.signRate));
  const handlers = new VerifierHandlers(backend, auth, logger, metrics, inflight, eventLogs, signRate);
  server.addService(verifierServiceDefinition('server'), handlers.implementation());
  server.addService(healthServiceDefinition('server'), health.handlers());
  const descriptors = loadFileDescriptorSetFromBuffer(Buffer.from(FILE_DESCRIPTOR_SET_BASE64, 'base64'));
  new ReflectionService(descriptors).addToServer(server);

  const address = await bind(server, config.listen, credentials);
  let http: HttpServer;
  try {
    const m = /^(?:\[(.+)\]|(.+)):(\d+)$/.exec(config.healthListen) as RegExpExecArray;
    http = await startHttpServer(m[1] ?? (m[2] as string), Number(m[3]), {
      ready: checkReady,
      readyNotes: () => eventLogs.notes(),
      metrics: () => metrics.render(),
    });
  } catch (e) {
    server.forceShutdown();
    throw new ConfigError('--health-listen', `cannot listen on ${config.healthListen}: ${errorText(e)}`);
  }
  const healthAddress = httpAddress(http);

  if (config.auth === 'k8s' && config.insecure) {
    logger.warn('--auth k8s over --insecure: callers\' tokens cross the network in plaintext; use TLS outside local development', { address });
  }
  if (config.insecure) {
    logger.warn(
      'INSECURE MODE: gRPC is served in PLAINTEXT without TLS or client authentication (--insecure). ' +
        'Anyone who can reach this address can use this node\'s TPM. For local development only.',
      { address },
    );
  }
  logger.info('attestor listening', {
    address,
    healthAddress,
    tls: config.insecure ? 'off' : config.clientCa ? 'mtls' : 'tls',
    auth: auth.authenticator.mode,
    policy: auth.policy === null ? 'none' : (config.allow ?? 'custom'),
    tpm: config.tpm,
    stateDir: config.stateDir,
  });

  void checkReady();
  const poll = setInterval(() => void checkReady(), options.readinessPollMs ?? 2000);
  poll.unref();

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      clearInterval(poll);
      health.shutdown();
      const deadline = Date.now() + shutdownTimeoutMs;
      logger.info('shutting down: draining in-flight calls', { inflight: inflight.count, timeoutMs: shutdownTimeoutMs });
      const drained = await withTimeout(
        new Promise<boolean>((resolve) => server.tryShutdown(() => resolve(true))),
        shutdownTimeoutMs,
      ).catch(() => false);
      if (!drained) {
        logger.warn('shutdown wait ran out: cancelling the remaining calls', { inflight: inflight.count });
        server.forceShutdown();
      }
      await inflight.drain(Math.max(0, deadline - Date.now()));
      try {
        await backend.close();
      } catch (e) {
        logger.error('closing the backend failed', { error: errorText(e) });
      }
      await closeHttpServer(http);
      if (address.startsWith('unix:')) await unlink(unixPath(address)).catch(() => undefined);
      logger.info('attestor stopped');
    })();
    return closed;
  };

  return { address, healthAddress, metrics, close };
}

async function serverCredentials(config: AttestorConfig): Promise<grpc.ServerCredentials> {
  if (config.insecure) return grpc.ServerCredentials.createInsecure();
  const read = async (flag: string, path: string | undefined): Promise<Buffer> => {
    try {
      return await readFile(path as string);
    } catch (e) {
      throw new ConfigError(flag, `cannot read ${path}: ${errorText(e)}`);
    }
  };
  const cert = await read('--tls-cert', config.tlsCert);
  const key = await read('--tls-key', config.tlsKey);
  const ca = config.clientCa ? await read('--client-ca', config.clientCa) : null;
  if (!cert.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError('--tls-cert', 'no PEM CERTIFICATE in the file');
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key.toString('latin1'))) {
    throw new ConfigError('--tls-key', 'no PEM PRIVATE KEY in the file');
  }
  if (ca !== null && !ca.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError('--client-ca', 'no PEM CERTIFICATE in the file');
  }
  // Let Node check that the pair loads (and matches) now, not at the first handshake.
  try {
    createSecureContext({ cert, key, ...(ca ? { ca } : {}) });
  } catch (e) {
    throw new ConfigError('--tls-key', `the certificate and key do not load as a pair: ${errorText(e)}`);
  }
  return grpc.ServerCredentials.createSsl(ca, [{ cert_chain: cert, private_key: key }], ca !== null);
}

function unixPath(address: string): string {
  return address.slice('unix:'.length).replace(/^\/\/(?=\/)/, '');
}

async function bind(server: grpc.Server, listen: string, creds: grpc.ServerCredentials): Promise<string> {
  if (listen.startsWith('unix:')) {
    const path = unixPath(listen);
    const st = await lstat(path).catch(() => null);
    if (st !== null) {
      if (!st.isSocket()) throw new ConfigError('--listen', `${path} exists and is not a socket`);
      await unlink(path); // a stale socket of an earlier run
    }
  }
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(listen, creds, (err, p) => (err ? reject(err) : resolve(p)));
  }).catch((e: unknown) => {
    throw new ConfigError('--listen', `cannot listen on ${listen}: ${errorText(e)}`);
  });
  if (listen.startsWith('unix:')) return `unix:${unixPath(listen)}`;
  return listen.replace(/:\d+$/, `:${port}`);
}

/** Counts running handlers so close() can wait for them before closing the backend. */
class InflightTracker {
  count = 0;
  #waiters: (() => void)[] = [];

  begin(): () => void {
    this.count++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.count--;
      if (this.count === 0) for (const w of this.#waiters.splice(0)) w();
    };
  }

  drain(timeoutMs: number): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.#waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

type UnaryHandler = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => void;

/** The Verifier RPCs: validation, decoding, backend call, encoding, logging and metrics. */
class VerifierHandlers {
  constructor(
    private readonly backend: AttestorBackend,
    private readonly auth: CallerAuth,
    private readonly logger: Logger,
    private readonly metrics: AttestorMetrics,
    private readonly inflight: InflightTracker,
    private readonly eventLogs: EventLogs,
    /** The one hook every RPC that has the TPM sign caller-chosen data calls first (limits.ts). */
    private readonly signRate: SignRateLimiter,
  ) {}

  implementation(): grpc.UntypedServiceImplementation {
    const pb = verifierpb;
    const b = this.backend;
    const getEKCert = async (req: verifierpb.GetEKCertRequest, caller: Caller, _log: unknown, call: CallOptions) => {
      const keyType = parseKeyType(req.keyType);
      const r = await b.getEKCert(caller.identity, keyType, call);
      return new pb.GetEKCertResponse({ ekPub: r.ekPub, ekCert: r.ekCert ?? new Uint8Array(0) });
    };
    // Every uid/kid is looked up inside the caller's own identity: another caller's keys are
    // unreachable and indistinguishable from keys that do not exist.
    return {
      GetEKCert: this.#unary('GetEKCert', getEKCert),
      GetEK: this.#unary('GetEK', getEKCert),
      GetAK: this.#unary('GetAK', async (req: verifierpb.GetAKRequest, caller, _log, call) => {
        const uid = checkId('uid', req.uid);
        const keyType = parseKeyType(req.keyType);
        return new pb.GetAKResponse({ ak: encodeAttestationParameters(await b.getAK(caller.identity, uid, keyType, call)) });
      }),
      Attest: this.#unary('Attest', async (req: verifierpb.AttestRequest, caller, _log, call) => {
        const uid = checkId('uid', req.uid);
        const credential = checkEncryptedCredential(req.encryptedCredentials);
        return new pb.AttestResponse({ secret: await b.attest(caller.identity, uid, credential, call) });
      }),
      Quote: this.#unary('Quote', async (req: verifierpb.QuoteRequest, caller, _log, call) => {
        const uid = checkId('uid', req.uid);
        const nonce = checkNonce(req.nonce);
        this.signRate.take(caller.identity, 'Quote');
        const platform = await b.quote(caller.identity, uid, nonce, call);
        // Read after the quote, so the logs hold at least every measurement the quote covers.
        const logs = await this.eventLogs.read();
        return new pb.QuoteResponse({
          platformAttestation: encodePlatformParameters({ ...platform, eventLog: encodedEventLog(logs.firmware) }),
          userspaceEventLog: logs.userspace.bytes,
          eventLogProblem: logs.firmware.problem,
          userspaceEventLogProblem: logs.userspace.problem,
        });
      }),
      ImportBlob: this.#unary('ImportBlob', async (req: verifierpb.ImportBlobRequest, caller, log, call) => {
        const uid = checkId('uid', req.uid);
        const blob = checkImportBlob('encryptedKey', req.encryptedKey);
        // Which sealed object this caller unsealed (its Name: public, never the secret) and whether PCRs bind it.
        log['sealedObject'] = sealedObjectName(blob.publicArea);
        log['pcrBound'] = blob.pcrs && blob.pcrs.pcrs.size > 0 ? 'true' : 'false';
        return new pb.ImportBlobResponse({ decryptedKey: await b.importBlob(caller.identity, uid, blob, call) });
      }),
      ImportSigningKey: this.#unary('ImportSigningKey', async (req: verifierpb.ImportSigningKeyRequest, caller, _log, call) => {
        const uid = checkId('uid', req.uid);
        const kid = checkId('kid', req.kid);
        const blob = checkImportBlob('encryptedSigningKey', req.encryptedSigningKey);
        return new pb.ImportSigningKeyResponse({ confirmation: await b.importSigningKey(caller.identity, uid, kid, blob, call) });
      }),
      NewKey: this.#unary('NewKey', async (req: verifierpb.NewKeyRequest, caller, _log, call) => {
        const uid = checkId('uid', req.uid);
        const kid = checkId('kid', req.kid);
        const keyType = parseKeyType(req.keyType);
        const r = await b.newKey(caller.identity, uid, kid, keyType, call);
        return new pb.NewKeyResponse({
          public: encodePublicKeyPem(r.publicKey),
          keyCertification: encodeCertificationParameters(r.certification),
        });
      }),
      Sign: this.#unary('Sign', async (req: verifierpb.SignRequest, caller, _log, call) => {
        const uid = checkId('uid', req.uid);
        const kid = checkId('kid', req.kid);
        this.signRate.take(caller.identity, 'Sign');
        return new pb.SignResponse({ signed: await b.sign(caller.identity, uid, kid, req.data, call) });
      }),
      // The seed's names. The key is the node's, not the caller's (no uid): any authenticated
      // caller may read its public half; signing needs --allow-node-key (see #caller).
      GetGCEEKSigningKey: this.#unary('GetGCEEKSigningKey', async (req: verifierpb.GetGCEEKSigningKeyRequest, caller, _log, call) => {
        const keyType = parseKeyType(req.keyType);
        const r = await b.getGCEEKSigningKey(caller.identity, keyType, call);
        return new pb.GetGCEEKSigningKeyResponse({ public: encodePublicKeyPem(r.publicKey), cert: r.certificate ?? new Uint8Array(0) });
      }),
      SignGCEEK: this.#unary('SignGCEEK', async (req: verifierpb.SignGCEEKRequest, caller, _log, call) => {
        const keyType = parseKeyType(req.keyType);
        this.signRate.take(caller.identity, 'SignGCEEK');
        const data = checkNodeKeySignData(req.data);
        return new pb.SignGCEEKResponse({ signed: await b.signGCEEK(caller.identity, keyType, data, call) });
      }),
    };
  }

  /** Who is calling (AuthFailure refuses the call), and whether the --allow policy lets them call `method`. */
  async #caller(method: string, call: grpc.ServerUnaryCall<unknown, unknown>): Promise<Caller> {
    const credentials: CallCredentials = {
      authorization: call.metadata.get('authorization').map((v) => (typeof v === 'string' ? v : v.toString('latin1'))),
      peerCertificate: peerCertificateDer(call),
    };
    const caller = await this.auth.authenticator.authenticate(credentials);
    if (this.auth.policy !== null && !this.auth.policy.allows(caller.identity, method)) {
      throw new AuthFailure('PERMISSION_DENIED', 'forbidden_by_policy', `the --allow policy does not let this caller call ${method}`);
    }
    if (NODE_KEY_RPCS.includes(method) && !(this.auth.nodeKey?.allows(caller) ?? caller.mode === 'none')) {
      throw new AuthFailure('PERMISSION_DENIED', 'node_key_not_allowed', `${method} signs with this node's own key: only identities named by the attestor's --allow-node-key may call it`);
    }
    return caller;
  }

  /**
   * `handle` may add fields to the call's log line (identifiers only: never payloads or secrets);
   * its CallOptions' signal fires when the caller cancels or the call's deadline passes.
   */
  #unary<Req extends object>(
    method: string,
    handle: (req: Req, caller: Caller, log: Record<string, string | undefined>, options: CallOptions) => Promise<unknown>,
  ): UnaryHandler {
    return (call, callback) => {
      const start = process.hrtime.bigint();
      const done = this.inflight.begin();
      const gone = callGone(call);
      const req = call.request;
      const fields: Record<string, string | undefined> = { method, peer: call.getPeer() };
      if (!(req instanceof MalformedRequest)) {
        const r = req as { uid?: unknown; kid?: unknown };
        // Only well-formed ids go to the log (no arbitrary caller bytes in log lines).
        if (typeof r.uid === 'string' && r.uid !== '') fields['uid'] = idProblem(r.uid) === null ? r.uid : '<invalid>';
        if (typeof r.kid === 'string' && r.kid !== '') fields['kid'] = idProblem(r.kid) === null ? r.kid : '<invalid>';
      }
      const finish = (code: grpc.status, extra: Record<string, string> = {}): void => {
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        const codeName = statusName(code);
        this.metrics.observeRpc(method, codeName, seconds);
        const level = code === grpc.status.INTERNAL || code === grpc.status.DATA_LOSS ? 'error' : 'info';
        this.logger.log(level, 'rpc', { ...fields, code: codeName, durationMs: Math.round(seconds * 1e6) / 1e3, ...extra });
        gone.dispose();
        done();
      };
      (async () => {
        // Who first: a caller that is refused learns nothing about its request.
        const caller = await this.#caller(method, call);
        fields['auth'] = caller.mode;
        if (caller.mode !== 'none') fields['identity'] = caller.identity.slice(0, 256);
        if (req instanceof MalformedRequest) throw new AttestorError('INVALID_ARGUMENT', req.problem);
        return handle(req as Req, caller, fields, { signal: gone.signal });
      })().then(
        (res) => {
          finish(grpc.status.OK);
          callback(null, res);
        },
        (err: unknown) => {
          if (err instanceof AuthFailure) this.metrics.authFailures.inc({ reason: err.reason });
          if (err instanceof AttestorError) {
            const code = grpcStatusOf(err.code);
            finish(code, err instanceof AuthFailure ? { authFailure: err.reason } : {});
            callback({ code, details: err.message });
            return;
          }
          const errorId = randomBytes(6).toString('hex');
          finish(grpc.status.INTERNAL, { errorId, error: errorText(err) });
          callback({ code: grpc.status.INTERNAL, details: `internal error (error id ${errorId})` });
        },
      );
    };
  }
}

/**
 * A signal that fires when the caller cancels the call or its deadline passes (grpc-js answers
 * DEADLINE_EXCEEDED by itself, without a 'cancelled' event, so the deadline has its own timer).
 */
function callGone(call: grpc.ServerUnaryCall<unknown, unknown>): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const onCancel = (): void => ac.abort();
  call.on('cancelled', onCancel);
  const deadline = call.getDeadline();
  const ms = (deadline instanceof Date ? deadline.getTime() : deadline) - Date.now();
  // setTimeout takes at most 2^31-1 ms; a later deadline (or none: Infinity) never fires here.
  const timer = Number.isFinite(ms) && ms < 2 ** 31 ? setTimeout(onCancel, Math.max(0, ms)) : undefined;
  timer?.unref();
  return {
    signal: ac.signal,
    dispose: () => {
      clearTimeout(timer);
      call.removeListener('cancelled', onCancel);
    },
  };
}

/**
 * DER of the verified client certificate of a TLS call, or null. grpc-js's public way,
 * `getAuthContext()`, runs Node's `getPeerCertificate()` on every call, which decodes the whole
 * certificate (names, extensions, three fingerprints) for the one field used here, at about the
 * cost of swtpm's ECDSA sign. The call's TLS socket (`call.call.stream.session.socket` in the
 * grpc-js this lockfile pins) gives the DER through `getPeerX509Certificate()` at a fraction of
 * that; when those internals are absent (another grpc-js) the public way answers, with the same
 * rule: no certificate unless the handshake verified it. `test/peer-certificate.test.ts` notices
 * which way is taken.
 */
function peerCertificateDer(call: grpc.ServerUnaryCall<unknown, unknown>): Uint8Array | null {
  const socket = callSocket(call);
  if (socket !== undefined) {
    if (!socket.authorized) return null;
    const raw = socket.getPeerX509Certificate()?.raw;
    return raw === undefined || raw.length === 0 ? null : new Uint8Array(raw);
  }
  const raw = call.getAuthContext()?.sslPeerCertificate?.raw;
  return raw === undefined || raw.length === 0 ? null : new Uint8Array(raw);
}

/** The TLS socket a grpc-js server call came on, when grpc-js's internals show it; else undefined. */
function callSocket(call: grpc.ServerUnaryCall<unknown, unknown>): TLSSocket | undefined {
  const socket = (call as unknown as { call?: { stream?: { session?: { socket?: unknown } } } }).call?.stream?.session?.socket;
  return socket instanceof TLSSocket ? socket : undefined;
}

/** Decodes AttestRequest.encryptedCredentials and checks both TPM2B size prefixes. */
function checkEncryptedCredential(bytes: Uint8Array): CheckedEncryptedCredential {
  let decoded;
  try {
    decoded = decodeEncryptedCredential(bytes);
  } catch (e) {
    if (e instanceof FormatError) throw new AttestorError('INVALID_ARGUMENT', `encryptedCredentials: ${e.message}`);
    throw e;
  }
  const tpm2b = (value: Uint8Array | null, field: string, codec: Codec<Uint8Array>): Uint8Array => {
    if (value === null || value.length === 0) {
      throw new AttestorError('INVALID_ARGUMENT', `encryptedCredentials: EncryptedCredential.${field} is missing`);
    }
    let contents: Uint8Array;
    try {
      contents = unmarshal(codec, value);
    } catch (e) {
      throw new AttestorError('INVALID_ARGUMENT', `encryptedCredentials: EncryptedCredential.${field} is not a ${codec.name} (with its u16 size): ${(e as Error).message}`);
    }
    if (contents.length === 0) throw new AttestorError('INVALID_ARGUMENT', `encryptedCredentials: EncryptedCredential.${field} is empty`);
    return value;
  };
  return {
    credential: tpm2b(decoded.credential, 'Credential', TPM2B_ID_OBJECT),
    secret: tpm2b(decoded.secret, 'Secret', TPM2B_ENCRYPTED_SECRET),
  };
}

/** Digest sizes of the PCR banks go-tpm-tools' HashAlgo names. */
const BANK_DIGEST_SIZE: Record<number, number> = { 0x0004: 20, 0x000b: 32, 0x000c: 48, 0x000d: 64 };

/** The Name (Part 1, 16) of a blob's sealed object, hex, or undefined when its publicArea does not decode. */
function sealedObjectName(publicArea: Uint8Array): string | undefined {
  try {
    return toHex(objectName(unmarshalExact(TPMT_PUBLIC, publicArea)));
  } catch {
    return undefined;
  }
}

/** Decodes a tpm.ImportBlob and checks what can be checked without the TPM. */
function checkImportBlob(fieldName: string, bytes: Uint8Array): ImportBlob {
  const bad = (problem: string): AttestorError => new AttestorError('INVALID_ARGUMENT', `${fieldName}: ${problem}`);
  if (bytes.length === 0) throw bad('is empty (a go-tpm-tools tpm.ImportBlob protobuf is expected)');
  let blob: ImportBlob;
  try {
    blob = decodeImportBlob(bytes);
  } catch (e) {
    if (e instanceof FormatError) throw bad(e.message);
    throw e;
  }
  if (blob.duplicate.length === 0) throw bad('ImportBlob.duplicate is empty');
  if (blob.encryptedSeed.length === 0) throw bad('ImportBlob.encrypted_seed is empty');
  if (blob.publicArea.length === 0) throw bad('ImportBlob.public_area is empty');
  checkImportBlobSizes(fieldName, blob);
  if (blob.pcrs !== undefined) {
    const { hash, pcrs } = blob.pcrs;
    if (hash === 0 && pcrs.size === 0) {
      delete blob.pcrs; // an empty PCRs message: no policy
    } else {
      const size = BANK_DIGEST_SIZE[hash];
      if (size === undefined) throw bad(`ImportBlob.pcrs.hash ${hash} is not SHA1, SHA256, SHA384 or SHA512`);
      for (const [index, digest] of pcrs) {
        if (index > 23) throw bad(`ImportBlob.pcrs has PCR index ${index} (0 to 23 expected)`);
        if (digest.length !== size) throw bad(`ImportBlob.pcrs value of PCR ${index} is ${digest.length} bytes (${size} expected)`);
      }
    }
  }
  return blob;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

function errorText(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}
