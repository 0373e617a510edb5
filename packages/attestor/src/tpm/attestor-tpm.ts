/**
 * The attestor's TPM side: one long-lived TPM connection, every multi-command
 * flow serialized (the 3-slot simulator and a bare /dev/tpm0 cannot take two
 * at once), primary keys resolved once and reused, transient objects flushed
 * after each flow, and secrets on the TPM bus protected by salted sessions
 * with parameter encryption.
 */
import {
  PERSISTENT_HANDLE, parseTpmAddress, rawBytes, TPMA_OBJECT, TPMA_SESSION, TPMT_PUBLIC, TPM_ALG, TPM_RC, TPM_RH, TPM_ST, TPM_SU, Tpm, TpmError, TpmTransportError,
  algName, unmarshal,
  akTemplate, ekTemplateEccP256, ekTemplateRsa2048, hash, openTpm, pcrSelection, signingKeyTemplate,
  srkTemplateEccP256, bytesEqual, TPM_PT, publicToSpkiDer, signatureToDer, handleName, objectName, qualifiedName, TpmAuthError,
  type Attestation, type KeyType, type Session, type TPMT_SIG_SCHEME, type TPMT_SIGNATURE, type TPMT_TK, type PolicyStep, type Transport,
} from '@tpmds/tpm2-wire';
import { FairQueue, INTERNAL, QueueRejection, type FairQueueOptions, type FlowTag } from './fair-queue.js';
import { ObjectCache, type ObjectCacheStats } from './object-cache.js';
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';

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

/**
 * A key created ahead of need (the key pool): TPM2_Create's output, certified when handed out
 * (an AK by TPM2_CertifyCreation with itself, which needs the creation hash and ticket; a signing
 * key by TPM2_Certify with the caller's AK).
 */
export interface UncertifiedKey {
  kind: 'ak' | 'key';
  key: WrappedKey;
  /** TPMS_CREATION_DATA bytes as the TPM returned them. */
  creationData: Uint8Array;
  creationHash: Uint8Array;
  creationTicket: TPMT_TK;
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
  /** A persistent handle: every command naming it needs a free object slot for it while it runs. */
  persistent: boolean;
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
  /**
   * Most objects kept loaded between flows (default: the TPM's TPM_PT_HR_TRANSIENT_MIN, at least 3).
   * Fewer leave slots to another process using the same TPM without a resource manager (the benchmark).
   */
  objectSlots?: number;
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

/** A command named a transient handle that is not loaded (TPM_RC_REFERENCE_Hx, TPM_RC_HANDLE). */
function staleHandle(e: unknown): boolean {
  if (!(e instanceof TpmError)) return false;
  return e.is(TPM_RC.HANDLE) || [TPM_RC.REFERENCE_H0, TPM_RC.REFERENCE_H1, TPM_RC.REFERENCE_H2].some((rc) => e.is(rc));
}

/** What TPM2_Sign answers when the handle names an object that is not a signing key of our kind. */
function notThisKey(e: unknown): boolean {
  return e instanceof TpmError && [TPM_RC.KEY, TPM_RC.SCHEME, TPM_RC.ATTRIBUTES, TPM_RC.TYPE, TPM_RC.TICKET, TPM_RC.HASH].some((rc) => e.is(rc));
}

/**
 * A failed authorization (TPM_RC_BAD_AUTH, or TPM_RC_AUTH_FAIL for an object that is not noDA).
 * Our keys' authValue is empty, so for a TPM2_Sign this means the object at the handle is not
 * the key: its Name is not the one the session's HMAC covered, or it has an authValue.
 */
function authFailed(e: unknown): boolean {
  return e instanceof TpmError && (e.is(TPM_RC.BAD_AUTH) || e.is(TPM_RC.AUTH_FAIL));
}

/**
 * The TPM does not know the command's session (another process flushed it): TPM_RC_REFERENCE_S0,
 * or TPM_RC_HANDLE / TPM_RC_VALUE on the session (its handle number now holds another kind).
 */
function sessionGone(e: unknown): boolean {
  if (!(e instanceof TpmError)) return false;
  return e.is(TPM_RC.REFERENCE_S0) || ((e.is(TPM_RC.HANDLE) || e.is(TPM_RC.VALUE)) && e.decoded.session !== undefined);
}

/** What a signing flow returns: the signature, the public area of the key it is meant to be by, and whether the TPM checked the key's Name. */
interface Signed {
  public: TPMT_PUBLIC;
  signature: TPMT_SIGNATURE;
  /** The TPM authorized the Sign against the key's Name (see AttestorTpm.signWith): no check of the signature needed. */
  nameChecked: boolean;
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
  /** Primary keys: the persistent handle when the TPM has one, else a transient primary kept in `objects` (re-created after a TPM reset). */
  private readonly primaries = new Map<PrimaryKind, { persistent?: number; public: TPMT_PUBLIC; name: Uint8Array }>();
  /** Objects kept loaded (or saved) between flows: hot keys, AKs and transient primaries. */
  private readonly objects = new ObjectCache();
  /** Whether `objects.slots` was read from this TPM (TPM_PT_HR_TRANSIENT_MIN). */
  private slotsKnown = false;
  /** Transport.startups when the cached objects were loaded: a TPM started since invalidates them. */
  private objectsEpoch = 0;
  private banks: number[] | undefined;
  /** The PCR values last read, per bank: kept while the quotes prove them current (see {@link quote}). */
  private readonly pcrValues = new Map<number, Map<number, Uint8Array>>();
  private readonly ekCertificates = new Map<KeyType, Uint8Array | null>();
  /** Templates and certificates read from NV (the platform writes them once; absent ones are looked for again). */
  private readonly nvTemplates = new Map<number, TPMT_PUBLIC>();
  private readonly nvCertificates = new Map<number, Uint8Array | null>();
  private closed = false;
  /** Whether this attestor reclaims the TPM (no resource manager in between). */
  readonly reclaims: boolean;
  /**
   * Whether other processes can repoint our handles: without a resource manager one could flush a
   * kept-loaded key and load another object at its handle number; each Sign then makes sure it
   * signed with the key (see {@link checkedSign}).
   */
  private readonly handlesShared: boolean;
  /**
   * A signing flow met a foreign object at a kept handle: the next flow forgets every cached
   * handle (and reclaims what is not ours) before it runs.
   */
  private handlesDistrusted = false;
  /**
   * The HMAC session that lets the TPM check a kept key's Name on TPM2_Sign (see
   * {@link signWith}): kept open between flows, started on first use, dropped with a TPM reset
   * and when the TPM no longer knows it, flushed after an authorization failure and at close().
   */
  private signSession: Session | undefined;
  /** A reclaim is due before the next flow: set at start, on a new connection and after a TPM reset. */
  private reclaimDue = true;

  constructor(
    readonly address: string,
    private readonly opts: AttestorTpmOptions = {},
  ) {
    this.reclaims = opts.reclaim ?? !hasResourceManager(address);
    this.handlesShared = !hasResourceManager(address);
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
    if (this.tpm !== tpm) {
      this.reclaimDue = true;
      // Kept objects belong to the TPM, not the connection: count TPM starts from this transport's.
      this.objectsEpoch = tpm.transport.startups ?? 0;
    }
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
      let evictedForExhaustion = false;
      let reloadedStale = false;
      for (;;) {
        const before = startups();
        let result: T;
        try {
          // The TPM was started since the cached objects were loaded: their handles are stale.
          if (before !== this.objectsEpoch) {
            this.forgetVolatile(true);
            this.objectsEpoch = before;
          } else if (this.handlesDistrusted) {
            this.forgetVolatile(false);
          }
          this.handlesDistrusted = false;
          this.objects.beginFlow();
          if (this.reclaims && this.reclaimDue) await this.reclaim(tpm);
          if (!this.slotsKnown) {
            this.objects.slots = this.opts.objectSlots ?? Math.max(3, (await tpm.getProperty(TPM_PT.HR_TRANSIENT_MIN)) ?? 3);
            this.slotsKnown = true;
          }
          result = await f(tpm);
        } catch (e) {
          if (e instanceof TpmTransportError) throw await this.dropConnection(tpm, e);
          const initialize = e instanceof TpmError && e.is(TPM_RC.INITIALIZE);
          if (!initialize && startups() === before) {
            // A kept-loaded object is gone (the TPM was reset behind our back: a suspend/resume,
            // another process flushing it): forget every cached handle, load again from the blobs.
            if (!reloadedStale && staleHandle(e) && this.objects.stats.known > 0) {
              reloadedStale = true;
              this.forgetVolatile(false);
              continue;
            }
            const kind = exhaustion(e);
            if (kind === undefined) throw e;
            // The session kept for signing is ours to give back: it is started again when needed.
            if (kind === 'session' && this.signSession !== undefined) {
              await this.dropSignSession(tpm, true);
              continue;
            }
            // Every flow flushes its sessions and temporary objects before its error reaches here;
            // what this attestor still holds is its object cache: save and flush it, run again.
            if (kind === 'object' && !evictedForExhaustion && this.objects.stats.loaded > 0) {
              evictedForExhaustion = true;
              await this.objects.evictAll(tpm);
              continue;
            }
            // Now this attestor holds nothing. Without a resource manager whatever holds the memory
            // is not a rightful user (a killed process, tpm2-tools): reclaim once and run the flow again.
            if (this.reclaims && !reclaimedForExhaustion) {
              reclaimedForExhaustion = true;
              this.reclaimDue = true;
              continue;
            }
            throw await this.exhausted(tpm, kind, e as TpmError);
          }
          this.forgetVolatile(true);
          if (++resets > 1) throw new TpmFlowError('UNAVAILABLE', 'the TPM was reset during the call; retry', e);
          if (initialize) await this.startup(tpm);
          continue;
        }
        if (startups() !== before) {
          this.forgetVolatile(true);
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

  /**
   * Forget the cached object handles (loaded again from their blobs when next used) and reclaim
   * before the next flow. `tpmReset`: the TPM was reset, so the sign session is gone too.
   */
  private forgetVolatile(tpmReset: boolean): void {
    this.objects.forget();
    this.banks = undefined;
    this.reclaimDue = true;
    if (tpmReset) this.signSession = undefined;
  }

  /**
   * Flush every transient object and session on the TPM that is not in this attestor's object
   * cache or its sign session: between flows this attestor owns no other sessions and objects, so
   * all of them were left by someone else — typically an earlier attestor killed mid-flow (its
   * sign session included). Runs inside the queue, before the flow that found it due.
   */
  private async reclaim(tpm: Tpm): Promise<void> {
    const ours = new Set(this.objects.loadedHandles());
    if (this.signSession !== undefined) ours.add(this.signSession.handle);
    const all = await heldHandles(tpm);
    const held = { objects: all.objects.filter((h) => !ours.has(h)), sessions: all.sessions.filter((h) => !ours.has(h)) };
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

  /**
   * A primary key, loaded for the running flow: the persistent handle when the TPM has one of the
   * right kind, else a transient primary kept loaded in the object cache (created once, saved and
   * re-loaded when pushed out, created again after a TPM reset). Never flushed by the flow.
   */
  private async primary(tpm: Tpm, which: PrimaryKind): Promise<LoadedPrimary> {
    const spec = PRIMARIES[which];
    let known = this.primaries.get(which);
    if (!known && spec.persistent !== undefined && typeof spec.template === 'function') {
      // First use: a persistent key of the right kind at the conventional handle wins.
      try {
        await this.objects.makeRoom(tpm, 1); // a command naming a persistent object loads it into a slot
        const rp = await tpm.readPublic(spec.persistent);
        const expected = spec.template();
        const matches = spec.type === 0 ? rp.public.type === TPM_ALG.RSA || rp.public.type === TPM_ALG.ECC : rp.public.type === spec.type && bytesEqual(rp.public.authPolicy, expected.authPolicy);
        if (matches) this.primaries.set(which, (known = { persistent: spec.persistent, public: rp.public, name: rp.name }));
      } catch (e) {
        if (!(e instanceof TpmError && e.is(TPM_RC.HANDLE))) throw e;
      }
    }
    if (known?.persistent !== undefined) return { handle: known.persistent, public: known.public, name: known.name, persistent: true };
    const template = typeof spec.template === 'function' ? spec.template() : await this.nvTemplate(tpm, spec.template.nvIndex, spec.template.what);
    const handle = await this.objects.acquire(tpm, `primary:${which}`, async () => {
      await this.objects.makeRoom(tpm, 1);
      const created = await tpm.createPrimary(spec.hierarchy, template);
      this.primaries.set(which, { public: created.public, name: created.name });
      return created.handle;
    });
    const p = this.primaries.get(which) as { public: TPMT_PUBLIC; name: Uint8Array };
    return { handle, public: p.public, name: p.name, persistent: false };
  }



  /** The key template (TPMT_PUBLIC) the platform keeps in NV `index`; FAILED_PRECONDITION when absent or not a template. */
  private async nvTemplate(tpm: Tpm, index: number, what: string): Promise<TPMT_PUBLIC> {
    const cached = this.nvTemplates.get(index);
    if (cached) return cached;
    const at = `NV 0x${index.toString(16).padStart(8, '0')}`;
    const data = await tpm.readNvIfWritten(index);
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
    const certificate = await tpm.readNvCertificate(index);
    this.nvCertificates.set(index, certificate);
    return certificate;
  }

  /**
   * Room in the TPM's object slots for a command that makes `objects` new objects (Create, Load)
   * and names `parent`: a persistent parent is loaded into a slot for the command's duration too.
   */
  private room(tpm: Tpm, parent: LoadedPrimary, objects = 1): Promise<void> {
    return this.objects.makeRoom(tpm, objects + (parent.persistent ? 1 : 0));
  }

  /** Flush transient handles (sessions, a flow's temporary objects), ignoring errors (best effort; used in finally blocks). */
  private async flush(tpm: Tpm, ...handles: (number | undefined)[]): Promise<void> {
    for (const h of handles) if (h !== undefined) await tpm.flushContext(h).catch(() => undefined);
  }

  /** A session salted to `salt` with parameter encryption both ways (the bus sees no secret in clear). */
  private async encryptingSession(tpm: Tpm, salt: LoadedPrimary, type: 'hmac' | 'policy' = 'hmac'): Promise<Session> {
    await this.room(tpm, salt, 0);
    const s = await tpm.startAuthSession({ type, salt: { handle: salt.handle, public: salt.public } });
    return s.with(TPMA_SESSION.decrypt | TPMA_SESSION.encrypt);
  }

  /** A policy session satisfying the EK's PolicySecret(TPM_RH_ENDORSEMENT). */
  private async ekPolicySession(tpm: Tpm): Promise<Session> {
    const s = await tpm.startAuthSession({ type: 'policy', symmetric: { algorithm: TPM_ALG.NULL } });
    await tpm.policySecret(TPM_RH.ENDORSEMENT, s);
    return s;
  }

  /** The handle of a stored key, loaded for the running flow: hot in the object cache, or loaded (and then kept). */
  private loadKey(tpm: Tpm, key: WrappedKey): Promise<number> {
    return this.objects.acquire(tpm, objectId(key), async () => {
      const parent = await this.primary(tpm, key.parent);
      let session: Session | undefined;
      try {
        if (key.parent !== 'srk') session = await this.ekPolicySession(tpm);
        await this.room(tpm, parent);
        const loaded = await tpm.load(parent.handle, key.private, key.public, session ? { sessions: [session] } : {});
        keyNames.set(key.public, loaded.name);
        this.releasePrimary(key.parent);
        return loaded.handle;
      } catch (e) {
        if (e instanceof TpmError && (e.is(TPM_RC.INTEGRITY) || e.is(TPM_RC.BINDING) || e.is(TPM_RC.VALUE))) {
          throw new TpmFlowError('FAILED_PRECONDITION', `a stored key no longer loads under its parent (${key.parent}): the TPM was cleared or the ${key.parent} replaced`, e);
        }
        throw e;
      } finally {
        await this.flush(tpm, session?.handle);
      }
    });
  }

  /** Load a key just created by this flow and keep it in the object cache (it is usually used next). */
  private async loadNew(tpm: Tpm, parent: LoadedPrimary, key: WrappedKey): Promise<number> {
    await this.room(tpm, parent);
    const { handle, name } = await tpm.load(parent.handle, key.private, key.public);
    keyNames.set(key.public, name);
    this.objects.insert(objectId(key), handle);
    this.releasePrimary(key.parent);
    return handle;
  }

  /**
   * The running flow is done with a primary it used as a parent: with few slots it may be pushed
   * out (saved) to make room for the flow's next object. Flows that use a primary's handle later
   * (the EK of ActivateCredential) take it after loading their keys.
   */
  private releasePrimary(which: PrimaryKind): void {
    this.objects.release(`primary:${which}`);
  }

  /** TPM2_Create of an AK or a signing key under the SRK: the only TPM command besides loading the SRK. */
  private async createUnderSrk(tpm: Tpm, kind: 'ak' | 'key', keyType: KeyType): Promise<UncertifiedKey> {
    const srk = await this.primary(tpm, 'srk');
    await this.room(tpm, srk); // TPM2_Create holds the new object in a slot while it runs
    const c = await tpm.create(srk.handle, kind === 'ak' ? akTemplate(keyType) : signingKeyTemplate(keyType));
    this.releasePrimary('srk');
    return {
      kind,
      key: { keyType, public: c.public, private: c.private, parent: 'srk' },
      creationData: rawOf(c.creationData),
      creationHash: c.creationHash,
      creationTicket: c.creationTicket,
    };
  }

  // ---- the operations --------------------------------------------------------

  /** Objects loaded on the TPM by this attestor now, and known to it (loaded or saved). */
  get cachedObjects(): ObjectCacheStats {
    return this.objects.stats;
  }

  /** EK public area and certificate (DER, or null when the TPM has none). */
  ek(keyType: KeyType, call: FlowTag = internal('ek')): Promise<{ public: TPMT_PUBLIC; certificate: Uint8Array | null }> {
    return this.flow(call, async (tpm) => {
      const ek = await this.primary(tpm, keyType === 'ecc' ? 'ek-ecc' : 'ek-rsa');
      // NV certificates do not change while we run: read each once (a few NV_Read chunks each).
      let certificate = this.ekCertificates.get(keyType);
      if (certificate === undefined) {
        certificate = await tpm.readEkCertificate(keyType);
        this.ekCertificates.set(keyType, certificate);
      }
      return { public: ek.public, certificate };
    });
  }

  /**
   * An AK or signing key created ahead of need (the key pool): one flow of one TPM2_Create (plus
   * loading the SRK when it is not loaded), so a caller's flow never waits behind more than that.
   */
  createUncertified(kind: 'ak' | 'key', keyType: KeyType, call: FlowTag = internal('createUncertified')): Promise<UncertifiedKey> {
    return this.flow(call, (tpm) => this.createUnderSrk(tpm, kind, keyType));
  }

  /**
   * Create an AK under the SRK (or take `pooled`, one created ahead) and certify its creation with
   * itself (go-attestation's AttestationParameters).
   */
  createAk(keyType: KeyType, call: FlowTag = internal('createAk'), pooled?: UncertifiedKey): Promise<CreatedAk> {
    if (pooled && (pooled.kind !== 'ak' || pooled.key.keyType !== keyType)) throw new TypeError(`a pooled ${pooled.key.keyType} ${pooled.kind} is not an ${keyType} AK`);
    return this.flow(call, async (tpm) => {
      const c = pooled ?? (await this.createUnderSrk(tpm, 'ak', keyType));
      const ak = pooled ? await this.loadKey(tpm, c.key) : await this.loadNew(tpm, await this.primary(tpm, 'srk'), c.key);
      const cert = await tpm.certifyCreation(ak, ak, c.creationHash, c.creationTicket);
      return { key: c.key, createData: c.creationData, createAttestation: cert.attestBytes, createSignature: cert.signature };
    });
  }

  /** TPM2_ActivateCredential of a credential made for `ak` with the EK of `ekType`. */
  activateCredential(ak: WrappedKey, ekType: KeyType, credentialBlob: Uint8Array, encryptedSecret: Uint8Array, call: FlowTag = internal('activateCredential')): Promise<Uint8Array> {
    return this.flow(call, async (tpm) => {
      const akHandle = await this.loadKey(tpm, ak);
      let policy: Session | undefined;
      let enc: Session | undefined;
      try {
        const ek = await this.primary(tpm, ekType === 'ecc' ? 'ek-ecc' : 'ek-rsa');
        policy = await this.ekPolicySession(tpm);
        enc = await this.encryptingSession(tpm, ek);
        await this.room(tpm, ek, 0);
        return await tpm.activateCredential(akHandle, ek.handle, credentialBlob, encryptedSecret, { sessions: [undefined, policy, enc] });
      } finally {
        await this.flush(tpm, enc?.handle, policy?.handle);
      }
    });
  }

  /** Active PCR banks (cached until a TPM reset). */
  private async activeBanks(tpm: Tpm): Promise<number[]> {
    this.banks ??= await tpm.getActivePcrBanks();
    return this.banks;
  }

  /**
   * One quote per active PCR bank over PCRs 0-23 with `nonce`, plus the PCR values the quotes
   * cover. PCRs change rarely, so the values last read are kept: when they hash to each quote's
   * pcrDigest (over exactly the selection the TPM quoted), the quotes prove them current and no
   * TPM2_PCR_Read is sent. The banks whose digest differs (first call, an extend, a TPM reset) are
   * read, and what is read must give the quoted digest as well: a PCR extended between the quote
   * and the read makes the flow quote again (at most {@link QUOTE_ATTEMPTS} times), so the values
   * returned are always the values quoted.
   *
   * Each quote's signer (TPMS_ATTEST.qualifiedSigner) must be the AK: without a resource manager
   * another process could flush the kept AK and load its own key at that handle number. Another
   * signer, or the error of an object there that cannot quote, makes the next flow forget every
   * cached handle (and reclaim what is not ours) and load the AK again, once.
   */
  async quote(ak: WrappedKey, nonce: Uint8Array, call: FlowTag = internal('quote')): Promise<BankQuote[]> {
    return this.attestingFlow(call, 'quoted', (tpm) => this.quoteFlow(tpm, ak, nonce));
  }

  /**
   * A flow in which the AK, kept loaded, attests (TPM2_Quote, TPM2_Certify): the flow throws
   * ForeignSigner when what the TPM signed names another signer or subject than ours. That, or the
   * error of a foreign object at a kept handle that cannot attest (TPM_RC_KEY, ...), makes the
   * next flow forget every cached handle (and reclaim what is not ours) and run once more; twice
   * is UNAVAILABLE. (Sign has the same rule with its own checks: {@link checkedSign}.)
   */
  private async attestingFlow<T>(call: FlowTag, did: string, f: (tpm: Tpm) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.flow(call, f);
      } catch (e) {
        const foreign = e instanceof ForeignSigner || (this.handlesShared && notThisKey(e));
        if (!foreign) throw e;
        this.handlesDistrusted = true;
        if (attempt > 0) {
          throw e instanceof ForeignSigner ? new TpmFlowError('UNAVAILABLE', `the TPM ${did} with an object other than ours twice: another process is loading objects on this TPM; retry`) : e;
        }
      }
    }
  }

  private async quoteFlow(tpm: Tpm, ak: WrappedKey, nonce: Uint8Array): Promise<BankQuote[]> {
    const handle = await this.loadKey(tpm, ak);
    const banks = await this.activeBanks(tpm);
    const signer = this.qualifiedNameOf(ak);
    for (let attempt = 1; ; attempt++) {
      const quoted = await quoteBanks(tpm, handle, nonce, banks);
      if (signer && quoted.some((q) => !bytesEqual(q.attest.qualifiedSigner, signer))) throw new ForeignSigner();
      const unproven = (): BankQuote[] => quoted.filter((q) => !quotes(q, this.pcrValues.get(q.hashAlg)));
      let stale = unproven();
      if (stale.length > 0) {
        for (const [bank, values] of await readPcrBanks(tpm, stale.map((q) => q.hashAlg))) this.pcrValues.set(bank, values);
        stale = unproven();
      }
      if (stale.length === 0) return quoted.map((q) => ({ ...q, pcrs: new Map(this.pcrValues.get(q.hashAlg)) })); // copies: the kept maps stay ours
      if (attempt === QUOTE_ATTEMPTS) {
        throw new TpmFlowError(
          'UNAVAILABLE',
          `PCRs of bank ${stale.map((q) => algName(q.hashAlg)).join(', ')} changed between TPM2_Quote and TPM2_PCR_Read in ${QUOTE_ATTEMPTS} attempts in a row (something extends them continuously): no consistent quote; retry`,
        );
      }
    }
  }

  /**
   * The qualified name of a stored key (Part 1, 16.6), which the TPM puts in what the key signs
   * (TPMS_ATTEST.qualifiedSigner): made from its parent primary's, which is made from the
   * hierarchy's handle. Undefined while the parent is not known (never once the key was loaded).
   */
  private qualifiedNameOf(key: WrappedKey): Uint8Array | undefined {
    const parent = this.primaries.get(key.parent);
    if (!parent) return undefined;
    const kept = qualifiedNames.get(key.public);
    if (kept !== undefined && kept.parentName === parent.name) return kept.qualified;
    const parentQualified = qualifiedName(parent.public.nameAlg, handleName(PRIMARIES[key.parent].hierarchy), parent.name);
    const qualified = qualifiedName(key.public.nameAlg, parentQualified, keyName(key.public));
    qualifiedNames.set(key.public, { parentName: parent.name, qualified });
    return qualified;
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
        await this.room(tpm, ek);
        obj = (await tpm.load(ek.handle, key.private, blob.publicArea, { sessions: [lp] })).handle;
        s = await this.encryptingSession(tpm, ek, blob.policy.length > 0 ? 'policy' : 'hmac');
        if (blob.policy.length > 0) await tpm.applyPolicy(s, blob.policy);
        return await tpm.unseal(obj, { sessions: [s] });
      } finally {
        await this.flush(tpm, obj, s?.handle, lp?.handle);
      }
    });
  }

  /** Import a signing key under the EK; returns the wrapped key to store. */
  importKey(ekType: KeyType, blob: { publicArea: TPMT_PUBLIC; duplicate: Uint8Array; encryptedSeed: Uint8Array }, call: FlowTag = internal('importKey')): Promise<WrappedKey> {
    return this.flow(call, async (tpm) => (await this.importUnderEk(tpm, ekType, blob)).key);
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
      await this.room(tpm, ek, 0);
      const priv = await tpm.import(ek.handle, blob.publicArea, blob.duplicate, blob.encryptedSeed, { sessions: [policy, enc] });
      const keyType: KeyType = blob.publicArea.type === TPM_ALG.ECC ? 'ecc' : 'rsa';
      return { key: { keyType, public: blob.publicArea, private: priv, parent: which }, ek };
    } finally {
      await this.flush(tpm, enc?.handle, policy?.handle);
    }
  }

  /** Create a signing key under the SRK (or take `pooled`, one created ahead) and certify it with the AK (TPM2_Certify). */
  createKey(ak: WrappedKey, keyType: KeyType, call: FlowTag = internal('createKey'), pooled?: UncertifiedKey): Promise<{ key: WrappedKey; certify: Attestation }> {
    if (pooled && (pooled.kind !== 'key' || pooled.key.keyType !== keyType)) throw new TypeError(`a pooled ${pooled.key.keyType} ${pooled.kind} is not an ${keyType} signing key`);
    let made: UncertifiedKey | undefined = pooled;
    return this.attestingFlow(call, 'certified', async (tpm) => {
      const fresh = made === undefined; // a retry certifies the key already made
      const c = (made ??= await this.createUnderSrk(tpm, 'key', keyType));
      const k = fresh ? await this.loadNew(tpm, await this.primary(tpm, 'srk'), c.key) : await this.loadKey(tpm, c.key);
      const akHandle = await this.loadKey(tpm, ak);
      const certify = await tpm.certify(k, akHandle);
      // Kept handles could hold another process's objects: the certification must be by our AK, of our key.
      const signer = this.qualifiedNameOf(ak);
      const attested = certify.attest.type === TPM_ST.ATTEST_CERTIFY ? certify.attest.attested.name : undefined;
      if ((signer && !bytesEqual(certify.attest.qualifiedSigner, signer)) || attested === undefined || !bytesEqual(attested, keyName(c.key.public))) throw new ForeignSigner();
      return { key: c.key, certify };
    });
  }

  /**
   * Sign SHA-256(data) with a stored key: RSASSA-PKCS1-v1_5 or ECDSA. Keys bound to PCRs
   * (imported with a PolicyPCR authPolicy) are authorized with that policy. The digest is made
   * before the flow, so a hot key is one TPM2_Sign (checked as {@link checkedSign} says).
   */
  async sign(key: WrappedKey, data: Uint8Array, policy: PolicyStep[] = [], call: FlowTag = internal('sign')): Promise<TPMT_SIGNATURE> {
    const digest = hash(TPM_ALG.SHA256, data);
    const scheme = key.keyType === 'ecc' ? { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 } : { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 };
    return this.checkedSign(call, data, async (tpm) => {
      const handle = await this.loadKey(tpm, key);
      if (policy.length === 0) return this.signWith(tpm, { handle, name: keyName(key.public), public: key.public }, digest, { scheme });
      let s: Session | undefined;
      try {
        s = await tpm.startAuthSession({ type: 'policy', symmetric: { algorithm: TPM_ALG.NULL } });
        await tpm.applyPolicy(s, policy);
        const signature = await tpm.sign(handle, digest, { scheme, sessions: [s] }).catch((e: unknown) => this.signFailure(tpm, handle, key.public, e));
        return { public: key.public, signature, nameChecked: false };
      } finally {
        await this.flush(tpm, s?.handle);
      }
    });
  }

  /**
   * Runs a signing flow with a kept-loaded key (a stored key or a primary) and returns its
   * signature over SHA-256(data). Without a resource manager another process could flush a
   * kept-loaded key and load its own object at the same handle number, so every signature is made
   * sure to be the key's, one of two ways:
   * - the TPM checks it ({@link signWith}): the key authorizes with an HMAC session whose HMAC
   *   covers the key's Name, and a foreign object there fails the authorization instead of signing;
   * - where that does not apply (a key authorized by a policy, a key without userWithAuth or noDA)
   *   the signature is checked against the key's public area after the flow (outside the queue).
   * A foreign signature, a failed authorization or the error of a foreign object there that cannot
   * sign (TPM_RC_KEY, _SCHEME, ...) makes the next flow forget every cached handle (and reclaim
   * what is not ours) and load the key again, once; twice is UNAVAILABLE. Behind a resource
   * manager handles are our own and neither is needed.
   */
  private async checkedSign(call: FlowTag, data: Uint8Array, f: (tpm: Tpm) => Promise<Signed>): Promise<TPMT_SIGNATURE> {
    for (let attempt = 0; ; attempt++) {
      let signed: Signed;
      try {
        signed = await this.flow(call, f);
      } catch (e) {
        if (!this.handlesShared || !(notThisKey(e) || authFailed(e))) throw e;
        if (attempt > 0) {
          if (!authFailed(e)) throw e;
          throw new TpmFlowError('UNAVAILABLE', `TPM2_Sign was refused twice (${(e as TpmError).decoded.name}): the object at the key's handle was not the key (another process is loading objects on this TPM; retry), or the key has an authValue`, e);
        }
        this.handlesDistrusted = true;
        continue;
      }
      if (!this.handlesShared || signed.nameChecked || verifiesWith(signed.public, data, signed.signature)) return signed.signature;
      this.handlesDistrusted = true;
      if (attempt > 0) throw new TpmFlowError('UNAVAILABLE', 'the TPM signed with an object other than the key twice: another process is loading objects on this TPM; retry');
    }
  }

  /**
   * TPM2_Sign with the kept-loaded `key`. Where handles are shared ({@link checkedSign}) and the
   * key takes its authValue (userWithAuth) and is noDA, it is authorized by the kept HMAC session
   * (unbound, unsalted, SHA-256, no parameter encryption) with the key's expected Name in the
   * cpHash: the TPM computes the cpHash with the Name of the object at the handle, so a foreign
   * object there fails the HMAC (TPM_RC_BAD_AUTH for a noDA object; TPM_RC_AUTH_FAIL for one that
   * is not, which also counts one dictionary-attack failure against the TPM's lockout: only when
   * another process put its object at our handle). The session carries no secret (our keys' authValue
   * is empty): it checks the Name, not a password; its response HMAC is checked all the same. A key
   * that is not noDA stays on the signature check, since an HMAC that failed for another reason
   * (a session out of step after a lost response) would count against the lockout.
   * `nameChecked` says which it was. After a failed authorization the session is flushed too (the
   * failure may as well be a foreign session at our session's handle number); a session the TPM no
   * longer knows (another process flushed it) is started again and the Sign sent once more.
   */
  private async signWith(
    tpm: Tpm,
    key: { handle: number; name: Uint8Array; public: TPMT_PUBLIC },
    digest: Uint8Array,
    opts: { scheme: TPMT_SIG_SCHEME; validation?: TPMT_TK },
  ): Promise<Signed> {
    const attrs = key.public.objectAttributes;
    if (!this.handlesShared || !(attrs & TPMA_OBJECT.userWithAuth) || !(attrs & TPMA_OBJECT.noDA)) {
      const signature = await tpm.sign(key.handle, digest, opts).catch((e: unknown) => this.signFailure(tpm, key.handle, key.public, e));
      return { public: key.public, signature, nameChecked: false };
    }
    for (;;) {
      const kept = this.signSession?.open === true;
      if (!kept) this.signSession = await tpm.startAuthSession({ type: 'hmac', symmetric: { algorithm: TPM_ALG.NULL } });
      const session = this.signSession as Session;
      try {
        const signature = await tpm.sign({ handle: key.handle, name: key.name }, digest, { ...opts, sessions: [session] });
        return { public: key.public, signature, nameChecked: true };
      } catch (e) {
        if (sessionGone(e)) {
          this.signSession = undefined;
          if (kept) continue;
        }
        if (authFailed(e) || e instanceof TpmAuthError) {
          await this.dropSignSession(tpm, true);
          // A foreign session at our kept session's number fails like an authValue of the key
          // itself: with the key at its handle, a kept session gets one try with a fresh one
          // (the key is noDA: no count against the lockout).
          if (kept && authFailed(e) && (await this.holds(tpm, key.handle, key.public))) continue;
        }
        return this.signFailure(tpm, key.handle, key.public, e);
      }
    }
  }

  /**
   * A TPM2_Sign at a kept handle failed the way a foreign object there would fail too
   * ({@link notThisKey}, {@link authFailed}): whose fault is it? Where handles are shared, one
   * TPM2_ReadPublic (on this error path only) compares the Name at the handle with the key's. Our
   * key there: the key itself cannot sign as asked (an imported key with a scheme of its own,
   * restricted, with an authValue): FAILED_PRECONDITION, and {@link checkedSign} neither retries
   * (a second authorization failure could count against the TPM's lockout) nor makes every
   * caller's kept keys be loaded again. Another object there (or none): the TPM's error, which
   * makes checkedSign load the key again and retry.
   */
  /** Whether the object at `handle` is the key of `pub` (its Name, by TPM2_ReadPublic); false when the handle holds nothing. */
  private async holds(tpm: Tpm, handle: number, pub: TPMT_PUBLIC): Promise<boolean> {
    const there = await tpm.readPublic(handle).then((r) => r.name, () => undefined);
    return there !== undefined && bytesEqual(there, keyName(pub));
  }

  private async signFailure(tpm: Tpm, handle: number, pub: TPMT_PUBLIC, e: unknown): Promise<never> {
    if (!(notThisKey(e) || authFailed(e))) throw e;
    if (this.handlesShared && !(await this.holds(tpm, handle, pub))) throw e;
    throw new TpmFlowError(
      'FAILED_PRECONDITION',
      `this key cannot sign SHA-256 digests as ${algName(pub.type === TPM_ALG.ECC ? TPM_ALG.ECDSA : TPM_ALG.RSASSA)} (${(e as Error).message}): a key to sign with must be an unrestricted signing key without an authValue whose own scheme is NULL or that one`,
      e,
    );
  }

  /** Forget the sign session, flushing it first when `flush` (best effort). */
  private async dropSignSession(tpm: Tpm, flush: boolean): Promise<void> {
    const s = this.signSession;
    this.signSession = undefined;
    if (flush && s !== undefined) await this.flush(tpm, s.handle);
  }

  /**
   * The cloud attestation key of `keyType` (a primary key of the endorsement hierarchy made from
   * the template in NV, see {@link CLOUD_AK_NV_INDEX}; created once and re-used like the EK) and
   * its certificate from NV (null when the TPM has none). FAILED_PRECONDITION without the template.
   */
  cloudAk(keyType: KeyType, call: FlowTag = internal('cloudAk')): Promise<{ public: TPMT_PUBLIC; certificate: Uint8Array | null }> {
    return this.flow(call, async (tpm) => {
      const key = await this.primary(tpm, keyType === 'ecc' ? 'cloud-ak-ecc' : 'cloud-ak-rsa');
      cloudAkScheme(key.public, keyType);
      return { public: key.public, certificate: await this.nvCertificate(tpm, CLOUD_AK_NV_INDEX[keyType].certificate) };
    });
  }

  /**
   * Sign SHA-256(data) with the cloud attestation key of `keyType`: RSASSA-PKCS1-v1_5 (as the seed
   * does) or ECDSA. A restricted key (go-tpm-tools' AK template is one) signs only a digest the TPM
   * made itself: TPM2_Hash (a hash sequence for data longer than the TPM's input buffer) gives the
   * ticket, as in go-tpm-tools' Key.SignData. Checked as {@link checkedSign} says (go-tpm-tools'
   * template is not noDA: its signatures are checked after the flow).
   */
  cloudAkSign(keyType: KeyType, data: Uint8Array, call: FlowTag = internal('cloudAkSign')): Promise<TPMT_SIGNATURE> {
    if (TPM_GENERATED_VALUE.every((b, i) => data[i] === b)) {
      throw new TpmFlowError('INVALID_ARGUMENT', 'data begins with TPM_GENERATED_VALUE (0xff544347): an attestation key does not sign what could pass for a TPM attestation');
    }
    return this.checkedSign(call, data, async (tpm) => {
      // The key stays loaded in the object cache (pinned for this flow), like the other primaries.
      const key = await this.primary(tpm, keyType === 'ecc' ? 'cloud-ak-ecc' : 'cloud-ak-rsa');
      const scheme = cloudAkScheme(key.public, keyType);
      if (!(key.public.objectAttributes & TPMA_OBJECT.restricted)) return this.signWith(tpm, key, hash(TPM_ALG.SHA256, data), { scheme });
      // Long data is hashed in a sequence, which takes an object slot: room is made only then.
      const hashed = await tpm.hashData(data, TPM_ALG.SHA256, TPM_RH.OWNER, { beforeSequence: () => this.objects.makeRoom(tpm, 1) });
      return this.signWith(tpm, key, hashed.outHash, { scheme, validation: hashed.validation });
    });
  }

  /** Close the TPM connection after the running flow (pending flows fail with UNAVAILABLE). */
  async close(): Promise<void> {
    this.closed = true;
    this.queue.close();
    await this.running;
    const t = this.tpm;
    this.tpm = undefined;
    // Leave the TPM as we found it: flush the objects kept loaded and the sign session.
    if (t) {
      await this.objects.flushAll(t).catch(() => undefined);
      await this.dropSignSession(t, true);
    }
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

const ALL_PCRS: readonly number[] = Array.from({ length: 24 }, (_, i) => i);

/** The object cache's name of a stored key: its parent and a digest of its wrapped private blob. */
const objectIds = new WeakMap<WrappedKey, string>();
function objectId(key: WrappedKey): string {
  let id = objectIds.get(key);
  if (id === undefined) {
    // The private blob is unique to the key (its integrity HMAC covers the key's Name).
    id = `key:${createHash('sha256').update(key.parent).update(key.private).digest('hex')}`;
    objectIds.set(key, id);
  }
  return id;
}

/**
 * The Name of each stored key's public area (what a name-checked Sign expects at its handle):
 * what TPM2_Load answered for it, else computed from the public area.
 */
/** Each key's qualified name (per decoded key), with the parent Name it was made from: made again when the parent is another. */
const qualifiedNames = new WeakMap<TPMT_PUBLIC, { parentName: Uint8Array; qualified: Uint8Array }>();

const keyNames = new WeakMap<TPMT_PUBLIC, Uint8Array>();
function keyName(pub: TPMT_PUBLIC): Uint8Array {
  let name = keyNames.get(pub);
  if (name === undefined) keyNames.set(pub, (name = objectName(pub)));
  return name;
}

/** Node's public key of each key's public area (made once per decoded key or primary). */
const publicKeys = new WeakMap<TPMT_PUBLIC, KeyObject>();

/** Whether `sig` (RSASSA or ECDSA with SHA-256, as the signing flows ask for) is the key of `pub`'s signature over `data`. */
function verifiesWith(pub: TPMT_PUBLIC, data: Uint8Array, sig: TPMT_SIGNATURE): boolean {
  try {
    let key = publicKeys.get(pub);
    if (key === undefined) publicKeys.set(pub, (key = createPublicKey({ key: Buffer.from(publicToSpkiDer(pub)), format: 'der', type: 'spki' })));
    const expected = pub.type === TPM_ALG.ECC ? TPM_ALG.ECDSA : TPM_ALG.RSASSA;
    return sig.sigAlg === expected && verify('sha256', data, key, signatureToDer(sig));
  } catch {
    return false;
  }
}

/** A quote signed by an object other than the AK (see {@link AttestorTpm.quote}). */
class ForeignSigner extends Error {
  override readonly name = 'ForeignSigner';
}

/** How many times a Quote flow quotes when PCRs keep changing between its TPM2_Quote and TPM2_PCR_Read. */
const QUOTE_ATTEMPTS = 3;

/** TPM2_Quote of PCRs 0-23 of each bank in `banks` (a bank the TPM quotes no PCR of is left out); `pcrs` is filled in by the caller. */
async function quoteBanks(tpm: Tpm, handle: number, nonce: Uint8Array, banks: readonly number[]): Promise<BankQuote[]> {
  const quoted: BankQuote[] = [];
  for (const bank of banks) {
    const q = await tpm.quote(handle, nonce, pcrSelection(bank, ALL_PCRS));
    if (q.attest.type !== TPM_ST.ATTEST_QUOTE) throw new TpmFlowError('INTERNAL', 'TPM2_Quote returned a non-quote attestation');
    const sel = q.attest.attested.pcrSelect.find((s) => s.hash === bank);
    if (!sel || sel.pcrSelect.every((b) => b === 0)) continue; // bank not really allocated
    quoted.push({ ...q, hashAlg: bank, pcrs: new Map() });
  }
  return quoted;
}

/**
 * Whether `values` (one bank's) are what `q` quoted: its pcrDigest is the hash, with the signing
 * scheme's hash, of the selected PCRs in the TPM's order (selection list order, ascending index;
 * Part 3, 18.4). SHA-256 collision resistance makes equal digests equal values.
 */
function quotes(q: BankQuote, values: ReadonlyMap<number, Uint8Array> | undefined): boolean {
  if (values === undefined || q.attest.type !== TPM_ST.ATTEST_QUOTE) return false;
  const selected: Uint8Array[] = [];
  for (const sel of q.attest.attested.pcrSelect) {
    if (sel.hash !== q.hashAlg) return false; // one bank per quote is what quoteBanks asks for
    for (let i = 0; i < sel.pcrSelect.length * 8; i++) {
      if (!((sel.pcrSelect[i >> 3] as number) & (1 << (i & 7)))) continue;
      const value = values.get(i);
      if (value === undefined) return false;
      selected.push(value);
    }
  }
  const sigHash = 'hash' in q.signature ? q.signature.hash : undefined;
  if (sigHash === undefined) return false;
  return bytesEqual(hash(sigHash, ...selected), q.attest.attested.pcrDigest);
}

/**
 * PCRs 0-23 of every bank in `banks`, as few TPM2_PCR_Read as the TPM allows: each asks for every
 * PCR not read yet in every bank, and the TPM answers as many as it returns at once.
 */
async function readPcrBanks(tpm: Tpm, banks: readonly number[]): Promise<Map<number, Map<number, Uint8Array>>> {
  const out = new Map(banks.map((b) => [b, new Map<number, Uint8Array>()]));
  for (let round = 0; round < 64; round++) {
    const missing = banks.filter((b) => (out.get(b) as Map<number, Uint8Array>).size < ALL_PCRS.length);
    if (missing.length === 0) return out;
    const selection = missing.flatMap((b) => pcrSelection(b, ALL_PCRS.filter((i) => !(out.get(b) as Map<number, Uint8Array>).has(i))));
    const { pcrSelectionOut, pcrValues } = await tpm.pcrRead(selection);
    let k = 0;
    let got = 0;
    for (const sel of pcrSelectionOut) {
      const values = out.get(sel.hash);
      sel.pcrSelect.forEach((byte, i) => {
        for (let bit = 0; bit < 8; bit++) {
          if (!(byte & (1 << bit))) continue;
          const value = pcrValues[k++];
          if (values && value) {
            values.set(i * 8 + bit, value);
            got++;
          }
        }
      });
    }
    if (got === 0) throw new TpmFlowError('INTERNAL', `the TPM returned no PCR values for banks ${missing.map((b) => b.toString(16)).join(', ')}: are they allocated?`);
  }
  throw new TpmFlowError('INTERNAL', 'TPM2_PCR_Read did not return every PCR');
}

function rawOf(v: object): Uint8Array {
  const r = rawBytes(v);
  if (!r) throw new TpmFlowError('INTERNAL', 'expected bytes as received from the TPM');
  return r;
}
