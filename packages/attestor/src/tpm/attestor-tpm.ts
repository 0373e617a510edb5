/**
 * The attestor's TPM side: one long-lived TPM connection, every multi-command
 * flow serialized (the 3-slot simulator and a bare /dev/tpm0 cannot take two
 * at once), primary keys resolved once and reused, transient objects flushed
 * after each flow, and secrets on the TPM bus protected by salted sessions
 * with parameter encryption.
 */
import {
  PERSISTENT_HANDLE, parseTpmAddress, rawBytes, TPMA_NV, TPMA_OBJECT, TPMA_SESSION, TPMT_PUBLIC, TPM_ALG, TPM_RC, TPM_RH, TPM_SU, Tpm, TpmError, TpmTransportError,
  algName, unmarshal,
  akTemplate, ekTemplateEccP256, ekTemplateRsa2048, hash, openTpm, pcrSelection, signingKeyTemplate,
  srkTemplateEccP256, bytesEqual,
  type Attestation, type KeyType, type Session, type TPMS_CONTEXT, type TPMT_SIG_SCHEME, type TPMT_SIGNATURE, type PolicyStep, type Transport,
} from '@tpmds/tpm2-wire';
import { FairQueue, INTERNAL, QueueRejection, type FairQueueOptions, type FlowTag } from './fair-queue.js';

export { BACKGROUND, INTERNAL, type FlowTag } from './fair-queue.js';

/** A failure the server maps to a gRPC status; `message` is safe to show to callers. */
export class TpmFlowError extends Error {
  override readonly name = 'TpmFlowError';
  constructor(
    readonly code: 'INVALID_ARGUMENT' | 'NOT_FOUND' | 'FAILED_PRECONDITION' | 'UNAVAILABLE' | 'RESOURCE_EXHAUSTED' | 'CANCELLED' | 'INTERNAL',
    message: string,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
  }
}

/** A TPM-wrapped key: what the key store keeps (never plaintext key material). */
export interface WrappedKey {
  keyType: KeyType;
  /** The public area (decoded from the TPM's bytes, which it keeps: see `rawBytes`). */
  public: TPMT_PUBLIC;
  /** TPM2B_PRIVATE contents, wrapped by the parent. */
  private: Uint8Array;
  /** Which primary key wraps it. */
  parent: PrimaryKind;
}

export type PrimaryKind = 'srk' | 'ek-rsa' | 'ek-ecc' | 'cloud-ak-rsa' | 'cloud-ak-ecc';

/**
 * The cloud attestation keys whose template (a TPMT_PUBLIC) and certificate (DER) the platform
 * keeps in TPM NV: Google Cloud's Shielded/Confidential VM vTPM (go-tpm-tools
 * GceAKTemplateNVIndexRSA/ECC and GceAKCertNVIndexRSA/ECC). The key is a primary key of the
 * endorsement hierarchy made from that template, so it is the same key on every creation.
 */
export const CLOUD_AK_NV_INDEX = {
  rsa: { template: 0x01c10001, certificate: 0x01c10000 },
  ecc: { template: 0x01c10003, certificate: 0x01c10002 },
} as const;

/** TPM_GENERATED_VALUE (Part 2, 6.2): what every TPMS_ATTEST starts with; a restricted key never signs data that does. */
const TPM_GENERATED_VALUE = [0xff, 0x54, 0x43, 0x47] as const;

export interface CreatedAk {
  key: WrappedKey;
  /** TPMS_CREATION_DATA bytes, TPMS_ATTEST bytes (CertifyCreation by the AK itself), TPMT_SIGNATURE bytes. */
  createData: Uint8Array;
  createAttestation: Uint8Array;
  createSignature: TPMT_SIGNATURE;
}

export interface BankQuote extends Attestation {
  hashAlg: number;
  pcrs: Map<number, Uint8Array>;
}

interface PrimarySpec {
  hierarchy: number;
  /** Where a provisioned copy of the key conventionally persists (looked at first), if anywhere. */
  persistent?: number;
  /** A fixed template, or the NV index the platform keeps the template in (`what` names it in errors). */
  template: (() => TPMT_PUBLIC) | { nvIndex: number; what: string };
  /** Expected key type at the persistent handle. */
  type: number;
}

const PRIMARIES: Record<PrimaryKind, PrimarySpec> = {
  'ek-rsa': { hierarchy: TPM_RH.ENDORSEMENT, persistent: PERSISTENT_HANDLE.ekRsa, template: ekTemplateRsa2048, type: TPM_ALG.RSA },
  'ek-ecc': { hierarchy: TPM_RH.ENDORSEMENT, persistent: PERSISTENT_HANDLE.ekEcc, template: ekTemplateEccP256, type: TPM_ALG.ECC },
  srk: { hierarchy: TPM_RH.OWNER, persistent: PERSISTENT_HANDLE.srk, template: srkTemplateEccP256, type: 0 },
  'cloud-ak-rsa': { hierarchy: TPM_RH.ENDORSEMENT, template: { nvIndex: CLOUD_AK_NV_INDEX.rsa.template, what: 'cloud attestation-key template' }, type: TPM_ALG.RSA },
  'cloud-ak-ecc': { hierarchy: TPM_RH.ENDORSEMENT, template: { nvIndex: CLOUD_AK_NV_INDEX.ecc.template, what: 'cloud attestation-key template' }, type: TPM_ALG.ECC },
};

interface LoadedPrimary {
  handle: number;
  public: TPMT_PUBLIC;
  name: Uint8Array;
  /** True when we must flush it after the flow (not a persistent handle). */
  transient: boolean;
}

/** What occupies the TPM's volatile memory (TPM2_GetCapability(TPM_CAP_HANDLES)). */
export interface HeldHandles {
  /** Loaded transient objects (0x80xxxxxx). */
  objects: number[];
  /** Loaded (0x02000000 list) and saved (0x03000000 list) sessions. */
  sessions: number[];
}

export interface AttestorTpmOptions {
  /** Called for each TPM command (code, milliseconds, response code) — metrics. */
  onCommand?: (commandCode: number, ms: number, rc: number) => void;
  /** Per-command timeout (ms). */
  timeoutMs?: number;
  /**
   * Flush transient objects and sessions this attestor does not own at connect, after a
   * reconnect and after a TPM reset. Default: on for transports without a resource manager
   * (see `hasResourceManager`), where the attestor is the TPM's only rightful user.
   */
  reclaim?: boolean;
  /** Called after a reclaim flushed anything (counts of what was flushed). */
  onReclaim?: (flushed: { objects: number; sessions: number }) => void;
  /** Called when the TPM's object or session memory stays full although this attestor holds nothing. */
  onExhausted?: (kind: 'object' | 'session', held: HeldHandles) => void;
  /** The queue in front of the TPM (see fair-queue.ts): how many flows may wait (default 256) and its metrics hooks. */
  queue?: Partial<FairQueueOptions>;
  /** Opens the TPM connection's transport instead of `address` (tests record the commands sent). */
  openTransport?: () => Promise<Transport>;
}

/** Default --tpm-queue-limit. */
export const DEFAULT_QUEUE_LIMIT = 256;

/**
 * Whether the TPM behind `address` is reached through a resource manager, which flushes what
 * each client leaves behind and virtualizes handles: the kernel's /dev/tpmrm* does. A bare
 * /dev/tpm*, swtpm and the mssim simulator do not: whatever an earlier process (an attestor
 * killed mid-flow, tpm2-tools) loaded stays until someone flushes it.
 */
export function hasResourceManager(address: string): boolean {
  const a = parseTpmAddress(address);
  return a.kind === 'device' && /^tpmrm/.test(a.path.slice(a.path.lastIndexOf('/') + 1));
}

/** TPM_RC_OBJECT_MEMORY or TPM_RC_SESSION_MEMORY: which memory is full, or undefined. */
function exhaustion(e: unknown): 'object' | 'session' | undefined {
  if (!(e instanceof TpmError)) return undefined;
  if (e.is(TPM_RC.OBJECT_MEMORY)) return 'object';
  if (e.is(TPM_RC.SESSION_MEMORY)) return 'session';
  return undefined;
}

/** What occupies the TPM's volatile memory, split into objects and sessions. */
export async function heldHandles(tpm: Tpm): Promise<HeldHandles> {
  const all = await tpm.getLoadedHandles();
  const objects = all.filter((h) => h >>> 24 === 0x80);
  return { objects, sessions: all.filter((h) => h >>> 24 !== 0x80) };
}

/**
 * The TPM-facing half of the attestor. All methods are safe to call concurrently: each is one
 * flow, queued fairly between callers by `call.identity` (fair-queue.ts) and dropped before it
 * starts when `call.signal` fires.
 */
export class AttestorTpm {
  private tpm: Tpm | undefined;
  private connecting: Promise<Tpm> | undefined;
  private readonly queue: FairQueue;
  /** The flow running now (close() waits for it). */
  private running: Promise<unknown> = Promise.resolve();
  /** Primary keys: the persistent handle when the TPM has one, else a saved context (re-created after a TPM reset). */
  private readonly primaries = new Map<PrimaryKind, { persistent?: number; context?: TPMS_CONTEXT; public: TPMT_PUBLIC; name: Uint8Array }>();
  private banks: number[] | undefined;
  private readonly ekCertificates = new Map<KeyType, Uint8Array | null>();
  /** Templates and certificates read from NV (the platform writes them once; absent ones are looked for again). */
  private readonly nvTemplates = new Map<number, TPMT_PUBLIC>();
  private readonly nvCertificates = new Map<number, Uint8Array | null>();
  private closed = false;
  /** Whether this attestor reclaims the TPM (no resource manager in between). */
  readonly reclaims: boolean;
  /** A reclaim is due before the next flow: set at start, on a new connection and after a TPM reset. */
  private reclaimDue = true;

  constructor(
    readonly address: string,
    private readonly opts: AttestorTpmOptions = {},
  ) {
    this.reclaims = opts.reclaim ?? !hasResourceManager(address);
    this.queue = new FairQueue({ limit: DEFAULT_QUEUE_LIMIT, ...opts.queue });
  }

  /** Flows waiting for the TPM now. */
  get queueDepth(): number {
    return this.queue.depth;
  }

  /** Why the last readiness check failed (safe to log), or undefined when it passed. */
  notReadyReason: string | undefined;

  /** Connect now (and check the TPM answers). */
  async ready(): Promise<boolean> {
    try {
      await this.flow({ identity: INTERNAL, method: 'ready' }, (tpm) => tpm.getRandom(1));
      this.notReadyReason = undefined;
      return true;
    } catch (e) {
      this.notReadyReason = (e as Error).message;
      return false;
    }
  }

  private async connection(): Promise<Tpm> {
    if (this.tpm) return this.tpm;
    if (!this.connecting) {
      const o: Parameters<typeof openTpm>[1] = {};
      if (this.opts.onCommand) o.onCommand = this.opts.onCommand;
      if (this.opts.timeoutMs) o.timeoutMs = this.opts.timeoutMs;
      const opened = this.opts.openTransport ? this.opts.openTransport().then((t) => openTpm(undefined, { ...o, transport: t })) : openTpm(this.address, o);
      this.connecting = opened.finally(() => (this.connecting = undefined));
    }
    const tpm = await this.connecting;
    if (this.tpm !== tpm) this.reclaimDue = true;
    this.tpm = tpm;
    return tpm;
  }

  /**
   * Run one flow with exclusive use of the TPM when `call`'s turn comes; transport failures drop
   * the connection so the next flow reconnects.
   */
  private flow<T>(call: FlowTag, f: (tpm: Tpm) => Promise<T>): Promise<T> {
    const run = async () => {
      if (this.closed) throw new TpmFlowError('UNAVAILABLE', 'the attestor is shutting down');
      let tpm: Tpm;
      try {
        tpm = await this.connection();
      } catch (e) {
        throw new TpmFlowError('UNAVAILABLE', `TPM unreachable: ${(e as Error).message}`, e);
      }
      // A TPM reset (power cycle) during a flow invalidates every handle it holds. The device
      // transport reports it (TPM_RC_INITIALIZE: we send TPM2_Startup ourselves); the swtpm transport
      // starts the TPM by itself and only counts it (Transport.startups), so later commands of the
      // flow may even reach objects loaded after the reset under the same handle numbers. Either
      // way the flow runs once more from the start (flows change no persistent TPM state).
      const startups = (): number => tpm.transport.startups ?? 0;
      let resets = 0;
      let reclaimedForExhaustion = false;
      for (;;) {
        const before = startups();
        let result: T;
        try {
          if (this.reclaims && this.reclaimDue) await this.reclaim(tpm);
          result = await f(tpm);
        } catch (e) {
          if (e instanceof TpmTransportError) throw await this.dropConnection(tpm, e);
          const initialize = e instanceof TpmError && e.is(TPM_RC.INITIALIZE);
          if (!initialize && startups() === before) {
            const kind = exhaustion(e);
            if (kind === undefined) throw e;
            // Every flow flushes what it loaded before its error reaches here: this attestor holds
            // nothing now. Without a resource manager whatever holds the memory is not a rightful
            // user (a killed process, tpm2-tools): reclaim once and run the flow again.
            if (this.reclaims && !reclaimedForExhaustion) {
              reclaimedForExhaustion = true;
              this.reclaimDue = true;
              continue;
            }
            throw await this.exhausted(tpm, kind, e as TpmError);
          }
          this.forgetVolatile();
          if (++resets > 1) throw new TpmFlowError('UNAVAILABLE', 'the TPM was reset during the call; retry', e);
          if (initialize) await this.startup(tpm);
          continue;
        }
        if (startups() !== before) {
          this.forgetVolatile();
          if (++resets > 1) throw new TpmFlowError('UNAVAILABLE', 'the TPM was reset during the call; retry');
          continue;
        }
        return result;
      }
    };
    const start = (): Promise<T> => {
      const p = run();
      this.running = p.catch(() => undefined);
      return p;
    };
    return this.queue.run(call, start).catch((e: unknown) => {
      if (!(e instanceof QueueRejection)) throw e;
      const code = e.reason === 'full' ? 'RESOURCE_EXHAUSTED' : e.reason === 'cancelled' ? 'CANCELLED' : 'UNAVAILABLE';
      throw new TpmFlowError(code, e.message, e);
    });
  }

  /** Forget the connection after a transport failure (the next flow reconnects). */
  private async dropConnection(tpm: Tpm, e: TpmTransportError): Promise<TpmFlowError> {
    if (this.tpm === tpm) this.tpm = undefined;
    await tpm.close().catch(() => undefined);
    return new TpmFlowError('UNAVAILABLE', `TPM connection failed: ${e.message}`, e);
  }

  /** TPM2_Startup(CLEAR) after a reset, as firmware would (TPM_RC_INITIALIZE back means someone else did). */
  private async startup(tpm: Tpm): Promise<void> {
    try {
      await tpm.startup(TPM_SU.CLEAR);
    } catch (e) {
      if (e instanceof TpmTransportError) throw await this.dropConnection(tpm, e);
      if (!(e instanceof TpmError && e.is(TPM_RC.INITIALIZE))) {
        throw new TpmFlowError('UNAVAILABLE', `the TPM was reset and TPM2_Startup failed: ${(e as Error).message}`, e);
      }
    }
  }

  private forgetVolatile(): void {
    for (const p of this.primaries.values()) delete p.context;
    this.banks = undefined;
    this.reclaimDue = true;
  }

  /**
   * Flush every transient object and session on the TPM: between flows this attestor owns none
   * (its primaries are persistent handles, never flushed, or saved object contexts, which hold no
   * TPM slot and are not listed), so all of them were left by someone else — typically an
   * earlier attestor killed mid-flow. Runs inside the queue, before the flow that found it due.
   */
  private async reclaim(tpm: Tpm): Promise<void> {
    const held = await heldHandles(tpm);
    for (const h of [...held.objects, ...held.sessions]) {
      try {
        await tpm.flushContext(h);
      } catch (e) {
        // Gone meanwhile (TPM_RC_HANDLE / TPM_RC_VALUE on a stale handle) is what we wanted.
        if (!(e instanceof TpmError)) throw e;
      }
    }
    this.reclaimDue = false;
    if (held.objects.length + held.sessions.length > 0) this.opts.onReclaim?.({ objects: held.objects.length, sessions: held.sessions.length });
  }

  /** The UNAVAILABLE answer when the TPM's memory is full although this attestor holds nothing. */
  private async exhausted(tpm: Tpm, kind: 'object' | 'session', e: TpmError): Promise<TpmFlowError> {
    let held: HeldHandles | undefined;
    try {
      held = await heldHandles(tpm);
    } catch {
      // said as "unknown" below
    }
    this.opts.onExhausted?.(kind, held ?? { objects: [], sessions: [] });
    const what = kind === 'object' ? 'object slots' : 'session slots';
    const who = held
      ? `${held.objects.length} transient objects and ${held.sessions.length} sessions are held by another user of the TPM (not this attestor)`
      : 'another user of the TPM (not this attestor) holds them';
    const hint = this.reclaims
      ? 'they came back after this attestor flushed them: another process is using the TPM directly; stop it or give the attestor the TPM alone'
      : `the resource manager (${this.address}) shows this attestor none of them: another process on this TPM holds them; stop it or flush them (tpm2_flushcontext)`;
    return new TpmFlowError('UNAVAILABLE', `the TPM has no free ${what} (${e.decoded.name}): ${who}; ${hint}`, e);
  }

  /** Load (or create once and re-use) a primary key for the duration of one flow. */
  private async primary(tpm: Tpm, which: PrimaryKind): Promise<LoadedPrimary> {
    const spec = PRIMARIES[which];
    const known = this.primaries.get(which);
    if (known?.persistent !== undefined) return { handle: known.persistent, public: known.public, name: known.name, transient: false };
    if (known?.context) {
      try {
        const handle = await tpm.contextLoad(known.context);
        return { handle, public: known.public, name: known.name, transient: true };
      } catch (e) {
        if (!(e instanceof TpmError)) throw e;
        delete known.context; // TPM reset since: re-create below
      }
    }
    if (!known && spec.persistent !== undefined && typeof spec.template === 'function') {
      // First use: a persistent key of the right kind at the conventional handle wins.
      try {
        const rp = await tpm.readPublic(spec.persistent);
        const expected = spec.template();
        const matches = spec.type === 0 ? rp.public.type === TPM_ALG.RSA || rp.public.type === TPM_ALG.ECC : rp.public.type === spec.type && bytesEqual(rp.public.authPolicy, expected.authPolicy);
        if (matches) {
          this.primaries.set(which, { persistent: spec.persistent, public: rp.public, name: rp.name });
          return { handle: spec.persistent, public: rp.public, name: rp.name, transient: false };
        }
      } catch (e) {
        if (!(e instanceof TpmError && e.is(TPM_RC.HANDLE))) throw e;
      }
    }
    const template = typeof spec.template === 'function' ? spec.template() : await this.nvTemplate(tpm, spec.template.nvIndex, spec.template.what);
    const created = await tpm.createPrimary(spec.hierarchy, template);
    const context = await tpm.contextSave(created.handle);
    this.primaries.set(which, { context, public: created.public, name: created.name });
    return { handle: created.handle, public: created.public, name: created.name, transient: true };
  }

  /**
   * The contents of NV index `index`, or null when the TPM has no such index (or it was never
   * written). Read with the owner's authorization where the index allows it (as go-tpm-tools reads
   * the cloud templates), else its own or the platform's, whichever its attributes name.
   */
  private async readNv(tpm: Tpm, index: number): Promise<Uint8Array | null> {
    let attributes: number;
    let size: number;
    try {
      const { nvPublic } = await tpm.nvReadPublic(index);
      attributes = nvPublic.attributes;
      size = nvPublic.dataSize;
    } catch (e) {
      if (e instanceof TpmError && e.is(TPM_RC.HANDLE)) return null;
      throw e;
    }
    if (!(attributes & TPMA_NV.WRITTEN)) return null;
    const authHandle = attributes & TPMA_NV.OWNERREAD ? TPM_RH.OWNER : attributes & TPMA_NV.AUTHREAD ? index : attributes & TPMA_NV.PPREAD ? TPM_RH.PLATFORM : index;
    return tpm.nvRead(index, { authHandle, size });
  }

  /** The key template (TPMT_PUBLIC) the platform keeps in NV `index`; FAILED_PRECONDITION when absent or not a template. */
  private async nvTemplate(tpm: Tpm, index: number, what: string): Promise<TPMT_PUBLIC> {
    const cached = this.nvTemplates.get(index);
    if (cached) return cached;
    const at = `NV 0x${index.toString(16).padStart(8, '0')}`;
    const data = await this.readNv(tpm, index);
    if (data === null) throw new TpmFlowError('FAILED_PRECONDITION', `this TPM has no ${what} (${at})`);
    let template: TPMT_PUBLIC;
    try {
      // Like go-tpm-tools' DecodePublic: what follows the TPMT_PUBLIC (NV padding) is ignored.
      template = unmarshal(TPMT_PUBLIC, data);
    } catch (e) {
      throw new TpmFlowError('FAILED_PRECONDITION', `${at} does not hold a key template (TPMT_PUBLIC): ${(e as Error).message}`, e);
    }
    this.nvTemplates.set(index, template);
    return template;
  }

  /** A certificate (DER, NV padding cut off) the platform keeps in NV `index`, or null; read once. */
  private async nvCertificate(tpm: Tpm, index: number): Promise<Uint8Array | null> {
    if (this.nvCertificates.has(index)) return this.nvCertificates.get(index) ?? null;
    const data = await this.readNv(tpm, index);
    const certificate = data === null ? null : trimDer(data);
    this.nvCertificates.set(index, certificate);
    return certificate;
  }

  /** Flush transient handles, ignoring errors (best effort; used in finally blocks). */
  private async flush(tpm: Tpm, ...handles: (number | undefined | { handle: number; transient?: boolean })[]): Promise<void> {
    for (const h of handles) {
      if (h === undefined) continue;
      const handle = typeof h === 'number' ? h : h.transient === false ? undefined : h.handle;
      if (handle !== undefined) await tpm.flushContext(handle).catch(() => undefined);
    }
  }

  /** A session salted to `salt` with parameter encryption both ways (the bus sees no secret in clear). */
  private async encryptingSession(tpm: Tpm, salt: LoadedPrimary, type: 'hmac' | 'policy' = 'hmac'): Promise<Session> {
    const s = await tpm.startAuthSession({ type, salt: { handle: salt.handle, public: salt.public } });
    return s.with(TPMA_SESSION.decrypt | TPMA_SESSION.encrypt);
  }

  /** A policy session satisfying the EK's PolicySecret(TPM_RH_ENDORSEMENT). */
  private async ekPolicySession(tpm: Tpm): Promise<Session> {
    const s = await tpm.startAuthSession({ type: 'policy', symmetric: { algorithm: TPM_ALG.NULL } });
    await tpm.policySecret(TPM_RH.ENDORSEMENT, s);
    return s;
  }

  private async loadKey(tpm: Tpm, key: WrappedKey): Promise<{ handle: number; parent: LoadedPrimary }> {
    const parent = await this.primary(tpm, key.parent);
    try {
      let session: Session | undefined;
      try {
        if (key.parent !== 'srk') session = await this.ekPolicySession(tpm);
        try {
          const loaded = await tpm.load(parent.handle, key.private, key.public, session ? { sessions: [session] } : {});
          return { handle: loaded.handle, parent };
        } catch (e) {
          if (e instanceof TpmError && (e.is(TPM_RC.INTEGRITY) || e.is(TPM_RC.BINDING) || e.is(TPM_RC.VALUE))) {
            throw new TpmFlowError('FAILED_PRECONDITION', `a stored key no longer loads under its parent (${key.parent}): the TPM was cleared or the ${key.parent} replaced`, e);
          }
          throw e;
        }
      } finally {
        await this.flush(tpm, session?.handle);
      }
    } catch (e) {
      await this.flush(tpm, parent);
      throw e;
    }
  }

  // ---- the operations --------------------------------------------------------

  /** EK public area and certificate (DER, or null when the TPM has none). */
  ek(keyType: KeyType, call: FlowTag = internal('ek')): Promise<{ public: TPMT_PUBLIC; certificate: Uint8Array | null }> {
    return this.flow(call, async (tpm) => {
      const ek = await this.primary(tpm, keyType === 'ecc' ? 'ek-ecc' : 'ek-rsa');
      await this.flush(tpm, ek);
      // NV certificates do not change while we run: read each once (a few NV_Read chunks each).
      let certificate = this.ekCertificates.get(keyType);
      if (certificate === undefined) {
        certificate = await tpm.readEkCertificate(keyType);
        this.ekCertificates.set(keyType, certificate);
      }
      return { public: ek.public, certificate };
    });
  }

  /** Create an AK under the SRK and certify its creation with itself (go-attestation's AttestationParameters). */
  createAk(keyType: KeyType, call: FlowTag = internal('createAk')): Promise<CreatedAk> {
    return this.flow(call, async (tpm) => {
      const srk = await this.primary(tpm, 'srk');
      let ak: number | undefined;
      try {
        const c = await tpm.create(srk.handle, akTemplate(keyType));
        ak = (await tpm.load(srk.handle, c.private, c.public)).handle;
        const cert = await tpm.certifyCreation(ak, ak, c.creationHash, c.creationTicket);
        return {
          key: { keyType, public: c.public, private: c.private, parent: 'srk' },
          createData: rawOf(c.creationData),
          createAttestation: cert.attestBytes,
          createSignature: cert.signature,
        };
      } finally {
        await this.flush(tpm, ak, srk);
      }
    });
  }

  /** TPM2_ActivateCredential of a credential made for `ak` with the EK of `ekType`. */
  activateCredential(ak: WrappedKey, ekType: KeyType, credentialBlob: Uint8Array, encryptedSecret: Uint8Array, call: FlowTag = internal('activateCredential')): Promise<Uint8Array> {
    return this.flow(call, async (tpm) => {
      const { handle: akHandle, parent: srk } = await this.loadKey(tpm, ak);
      let ek: LoadedPrimary | undefined;
      let policy: Session | undefined;
      let enc: Session | undefined;
      try {
        ek = await this.primary(tpm, ekType === 'ecc' ? 'ek-ecc' : 'ek-rsa');
        policy = await this.ekPolicySession(tpm);
        enc = await this.encryptingSession(tpm, ek);
        return await tpm.activateCredential(akHandle, ek.handle, credentialBlob, encryptedSecret, { sessions: [undefined, policy, enc] });
      } finally {
        await this.flush(tpm, akHandle, enc?.handle, policy?.handle, ek, srk);
      }
    });
  }

  /** Active PCR banks (cached until a TPM reset). */
  private async activeBanks(tpm: Tpm): Promise<number[]> {
    this.banks ??= await tpm.getActivePcrBanks();
    return this.banks;
  }

  /** One quote per active PCR bank over PCRs 0-23 with `nonce`, plus the PCR values. */
  quote(ak: WrappedKey, nonce: Uint8Array, call: FlowTag = internal('quote')): Promise<BankQuote[]> {
    return this.flow(call, async (tpm) => {
      const { handle, parent } = await this.loadKey(tpm, ak);
      try {
        const out: BankQuote[] = [];
        const all = Array.from({ length: 24 }, (_, i) => i);
        for (const bank of await this.activeBanks(tpm)) {
          const q = await tpm.quote(handle, nonce, pcrSelection(bank, all));
          if (q.attest.type !== 0x8018) throw new TpmFlowError('INTERNAL', 'TPM2_Quote returned a non-quote attestation');
          const sel = q.attest.attested.pcrSelect.find((s) => s.hash === bank);
          if (!sel || sel.pcrSelect.every((b) => b === 0)) continue; // bank not really allocated
          const pcrs = await tpm.readPcrs(bank, all);
          out.push({ ...q, hashAlg: bank, pcrs });
        }
        return out;
      } finally {
        await this.flush(tpm, handle, parent);
      }
    });
  }

  /** Import a go-tpm-tools blob under the EK and unseal it (PolicyPCR when the blob is bound to PCRs). */
  importAndUnseal(
    ekType: KeyType,
    blob: { publicArea: TPMT_PUBLIC; duplicate: Uint8Array; encryptedSeed: Uint8Array; policy: PolicyStep[] },
    call: FlowTag = internal('importAndUnseal'),
  ): Promise<Uint8Array> {
    return this.flow(call, async (tpm) => {
      const { key, ek } = await this.importUnderEk(tpm, ekType, blob);
      let obj: number | undefined;
      let s: Session | undefined;
      let lp: Session | undefined;
      try {
        lp = await this.ekPolicySession(tpm);
        obj = (await tpm.load(ek.handle, key.private, blob.publicArea, { sessions: [lp] })).handle;
        s = await this.encryptingSession(tpm, ek, blob.policy.length > 0 ? 'policy' : 'hmac');
        if (blob.policy.length > 0) await tpm.applyPolicy(s, blob.policy);
        return await tpm.unseal(obj, { sessions: [s] });
      } finally {
        await this.flush(tpm, obj, s?.handle, lp?.handle, ek);
      }
    });
  }

  /** Import a signing key under the EK; returns the wrapped key to store. */
  importKey(ekType: KeyType, blob: { publicArea: TPMT_PUBLIC; duplicate: Uint8Array; encryptedSeed: Uint8Array }, call: FlowTag = internal('importKey')): Promise<WrappedKey> {
    return this.flow(call, async (tpm) => {
      const { key, ek } = await this.importUnderEk(tpm, ekType, blob);
      await this.flush(tpm, ek);
      return key;
    });
  }

  private async importUnderEk(
    tpm: Tpm,
    ekType: KeyType,
    blob: { publicArea: TPMT_PUBLIC; duplicate: Uint8Array; encryptedSeed: Uint8Array },
  ): Promise<{ key: WrappedKey; ek: LoadedPrimary }> {
    const which = ekType === 'ecc' ? 'ek-ecc' : 'ek-rsa';
    const ek = await this.primary(tpm, which);
    let policy: Session | undefined;
    let enc: Session | undefined;
    try {
      policy = await this.ekPolicySession(tpm);
      enc = await this.encryptingSession(tpm, ek);
      const priv = await tpm.import(ek.handle, blob.publicArea, blob.duplicate, blob.encryptedSeed, { sessions: [policy, enc] });
      const keyType: KeyType = blob.publicArea.type === TPM_ALG.ECC ? 'ecc' : 'rsa';
      return { key: { keyType, public: blob.publicArea, private: priv, parent: which }, ek };
    } catch (e) {
      await this.flush(tpm, ek);
      throw e;
    } finally {
      await this.flush(tpm, enc?.handle, policy?.handle);
    }
  }

  /** Create a signing key under the SRK and certify it with the AK (TPM2_Certify). */
  createKey(ak: WrappedKey, keyType: KeyType, call: FlowTag = internal('createKey')): Promise<{ key: WrappedKey; certify: Attestation }> {
    return this.flow(call, async (tpm) => {
      const srk = await this.primary(tpm, 'srk');
      let akHandle: number | undefined;
      let k: number | undefined;
      try {
        const c = await tpm.create(srk.handle, signingKeyTemplate(keyType));
        k = (await tpm.load(srk.handle, c.private, c.public)).handle;
        akHandle = (await tpm.load(srk.handle, ak.private, ak.public)).handle;
        const certify = await tpm.certify(k, akHandle);
        return { key: { keyType, public: c.public, private: c.private, parent: 'srk' }, certify };
      } finally {
        await this.flush(tpm, k, akHandle, srk);
      }
    });
  }

  /**
   * Sign SHA-256(data) with a stored key: RSASSA-PKCS1-v1_5 or ECDSA. Keys
   * bound to PCRs (imported with a PolicyPCR authPolicy) are authorized with
   * that policy.
   */
  sign(key: WrappedKey, data: Uint8Array, policy: PolicyStep[] = [], call: FlowTag = internal('sign')): Promise<TPMT_SIGNATURE> {
    return this.flow(call, async (tpm) => {
      const { handle, parent } = await this.loadKey(tpm, key);
      let s: Session | undefined;
      try {
        const digest = hash(TPM_ALG.SHA256, data);
        const scheme = key.keyType === 'ecc' ? { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 } : { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 };
        if (policy.length > 0) {
          s = await tpm.startAuthSession({ type: 'policy', symmetric: { algorithm: TPM_ALG.NULL } });
          await tpm.applyPolicy(s, policy);
        }
        return await tpm.sign(handle, digest, s ? { scheme, sessions: [s] } : { scheme });
      } finally {
        await this.flush(tpm, s?.handle, handle, parent);
      }
    });
  }

  /**
   * The cloud attestation key of `keyType` (a primary key of the endorsement hierarchy made from
   * the template in NV, see {@link CLOUD_AK_NV_INDEX}; created once and re-used like the EK) and
   * its certificate from NV (null when the TPM has none). FAILED_PRECONDITION without the template.
   */
  cloudAk(keyType: KeyType, call: FlowTag = internal('cloudAk')): Promise<{ public: TPMT_PUBLIC; certificate: Uint8Array | null }> {
    return this.flow(call, async (tpm) => {
      const key = await this.primary(tpm, keyType === 'ecc' ? 'cloud-ak-ecc' : 'cloud-ak-rsa');
      await this.flush(tpm, key);
      cloudAkScheme(key.public, keyType);
      return { public: key.public, certificate: await this.nvCertificate(tpm, CLOUD_AK_NV_INDEX[keyType].certificate) };
    });
  }

  /**
   * Sign SHA-256(data) with the cloud attestation key of `keyType`: RSASSA-PKCS1-v1_5 (as the seed
   * does) or ECDSA. A restricted key (go-tpm-tools' AK template is one) signs only a digest the TPM
   * made itself: TPM2_Hash (a hash sequence for data longer than the TPM's input buffer) gives the
   * ticket, as in go-tpm-tools' Key.SignData.
   */
  cloudAkSign(keyType: KeyType, data: Uint8Array, call: FlowTag = internal('cloudAkSign')): Promise<TPMT_SIGNATURE> {
    return this.flow(call, async (tpm) => {
      const key = await this.primary(tpm, keyType === 'ecc' ? 'cloud-ak-ecc' : 'cloud-ak-rsa');
      try {
        const scheme = cloudAkScheme(key.public, keyType);
        if (!(key.public.objectAttributes & TPMA_OBJECT.restricted)) return await tpm.sign(key.handle, hash(TPM_ALG.SHA256, data), { scheme });
        if (TPM_GENERATED_VALUE.every((b, i) => data[i] === b)) {
          throw new TpmFlowError('INVALID_ARGUMENT', 'data begins with TPM_GENERATED_VALUE (0xff544347): an attestation key does not sign what could pass for a TPM attestation');
        }
        const hashed = await tpm.hashData(data, TPM_ALG.SHA256, TPM_RH.OWNER);
        return await tpm.sign(key.handle, hashed.outHash, { scheme, validation: hashed.validation });
      } finally {
        await this.flush(tpm, key);
      }
    });
  }

  /** Close the TPM connection after the running flow (pending flows fail with UNAVAILABLE). */
  async close(): Promise<void> {
    this.closed = true;
    this.queue.close();
    await this.running;
    const t = this.tpm;
    this.tpm = undefined;
    await t?.close();
  }
}

/** The tag of a flow no caller asked for (tests, tools): served like one more caller. */
function internal(method: string): FlowTag {
  return { identity: INTERNAL, method };
}

/**
 * The signing scheme of a cloud attestation key: its template's, or RSASSA / ECDSA when it has
 * none; SHA-256 either way. FAILED_PRECONDITION for a template this contract cannot serve.
 */
function cloudAkScheme(pub: TPMT_PUBLIC, keyType: KeyType): TPMT_SIG_SCHEME {
  const want = keyType === 'ecc' ? TPM_ALG.ECC : TPM_ALG.RSA;
  const problem = (what: string) => new TpmFlowError('FAILED_PRECONDITION', `the cloud attestation-key template (NV 0x${CLOUD_AK_NV_INDEX[keyType].template.toString(16).padStart(8, '0')}) ${what}`);
  if (pub.type !== want) throw problem(`is a ${algName(pub.type)} key, not ${keyType}`);
  if (!(pub.objectAttributes & TPMA_OBJECT.sign)) throw problem('is not a signing key');
  const own = pub.parameters.scheme;
  const scheme = pub.type === TPM_ALG.ECC ? TPM_ALG.ECDSA : TPM_ALG.RSASSA;
  if (own.scheme === TPM_ALG.NULL) return { scheme, hashAlg: TPM_ALG.SHA256 };
  if (own.scheme !== scheme || !('hashAlg' in own) || own.hashAlg !== TPM_ALG.SHA256) {
    throw problem(`signs with ${algName(own.scheme)}${'hashAlg' in own ? `-${algName(own.hashAlg)}` : ''}, not ${algName(scheme)}-sha256`);
  }
  return { scheme, hashAlg: TPM_ALG.SHA256 };
}

/** Length of the DER TLV at the start of `b`, so NV padding after a certificate is cut off; `b` itself if it is not DER. */
function trimDer(b: Uint8Array): Uint8Array {
  if (b.length < 2 || b[0] !== 0x30) return b;
  const l = b[1]!;
  let len = l;
  let header = 2;
  if (l >= 0x80) {
    const n = l & 0x7f;
    if (n === 0 || n > 4 || b.length < 2 + n) return b;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[2 + i]!;
    header += n;
  }
  return header + len <= b.length ? b.slice(0, header + len) : b;
}

function rawOf(v: object): Uint8Array {
  const r = rawBytes(v);
  if (!r) throw new TpmFlowError('INTERNAL', 'expected bytes as received from the TPM');
  return r;
}
