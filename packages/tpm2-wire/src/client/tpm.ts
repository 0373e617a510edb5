/**
 * The `Tpm` client (ARCHITECTURE.md, layer 6): one typed async method per
 * command, named after it in camelCase, plus a few conveniences that loop or
 * combine commands (readPcrs, nvReadAll, readEkCertificate, getProperties).
 */
import { TPM2 } from '../commands/index.js';
import { execute, type ExecuteOptions, type HandleRef, type TpmEntity } from '../commands/execute.js';
import type { AnyCommandSpec, HandlesOf, ParamsOf, ResponseOf } from '../commands/spec.js';
import { TpmAuthError, TpmError } from '../errors/index.js';
import { TPM_RC } from '../errors/rc.js';
import { bytesEqual } from '../bytes/hex.js';
import { TPMA_NV, TPM_ALG, TPM_CAP, TPM_HT, TPM_PT, TPM_RH, TPM_SU } from '../types/constants.js';
import type {
  TPML_PCR_SELECTION, TPMS_ALG_PROPERTY, TPMS_CONTEXT, TPMS_CREATION_DATA, TPMS_NV_PUBLIC, TPMT_HA, TPMT_PUBLIC,
  TPMT_SENSITIVE, TPMT_SIGNATURE, TPMT_SIG_SCHEME, TPMT_TK,
} from '../types/structures.js';
import { objectName } from '../crypto/names.js';
import { openTransport } from '../transport/address.js';
import type { TransportOptions } from '../transport/base.js';
import type { Transport } from '../transport/transport.js';
import type { AuthSession } from '../sessions/session.js';
import { AES128_CFB, SESSION_TYPE, Session, deriveSessionKey, randomNonce, type SessionType } from '../sessions/auth-session.js';
import { createSeed } from '../crypto/secret.js';
import { digestSize } from '../crypto/hash.js';
import { rawBytes } from '../types/codec.js';
import type { TPMS_ATTEST, TPMT_SYM_DEF, TPMT_SYM_DEF_OBJECT } from '../types/structures.js';
import type { PolicyStep } from '../policy/steps.js';
import { pcrSelection } from '../policy/calculator.js';
import { TPMA_SESSION } from '../types/constants.js';

/** Options every command method takes. */
export interface CallOptions {
  /** Sessions by position (see ExecuteOptions.sessions); password sessions by default. */
  sessions?: readonly (AuthSession | undefined)[];
}

/** TCG EK credential NV indices (EK Credential Profile 2.x, 2.2.1.4). */
export const EK_CERT_NV_INDEX = { rsa: 0x01c00002, ecc: 0x01c0000a } as const;
/** Conventional persistent handles: TCG Provisioning Guidance. */
export const PERSISTENT_HANDLE = { ekRsa: 0x81010001, ekEcc: 0x81010002, srk: 0x81000001 } as const;

export type KeyType = 'rsa' | 'ecc';

export interface CreatedObject {
  public: TPMT_PUBLIC;
  creationData: TPMS_CREATION_DATA;
  creationHash: Uint8Array;
  creationTicket: TPMT_TK;
}

export interface CreateOptions extends CallOptions {
  /** authValue of the new object. */
  userAuth?: Uint8Array;
  /** Data to seal (KEYEDHASH objects). */
  sensitiveData?: Uint8Array;
  outsideInfo?: Uint8Array;
  creationPCR?: TPML_PCR_SELECTION;
}

/** The most TPM2B_MAX_BUFFER (TPM2_Hash, SequenceUpdate data) holds in this library's codec. */
const MAX_BUFFER_BYTES = 4096;

const empty = () => new Uint8Array(0);
const NULL_TICKET = (tag: number): TPMT_TK => ({ tag, hierarchy: TPM_RH.NULL, digest: empty() });

/** A TPM: one typed async method per command (see `openTpm`). Errors are `TpmError`, `TpmTransportError`, `TpmAuthError`, `TpmDecodeError`. */
export class Tpm {
  private nvBufferMax: number | undefined;
  private inputBufferMax: number | undefined;

  constructor(readonly transport: Transport) {}

  /** Run any command spec (for commands without a convenience method). */
  execute<C extends AnyCommandSpec>(spec: C, handles: Record<HandlesOf<C>, HandleRef>, params: ParamsOf<C>, opts: CallOptions = {}): Promise<ResponseOf<C>> {
    const o: ExecuteOptions = { resolveName: (h) => this.nameOf(h) };
    if (opts.sessions) o.sessions = opts.sessions;
    return execute(this.transport, spec, handles, params, o).catch((e: unknown) => {
      if (e instanceof TpmError && e.is(TPM_RC.INITIALIZE)) this.names.clear(); // reset: handles will be reused
      throw e;
    });
  }

  /** Name of a transient, persistent or NV handle, read from the TPM. */
  async nameOf(handle: number): Promise<Uint8Array> {
    if (handle >>> 24 === TPM_HT.NV_INDEX) return (await this.nvReadPublic(handle)).nvName; // changes when written
    const known = this.cachedName(handle);
    if (known) return known;
    const name = (await this.readPublic(handle)).name;
    this.remember(handle, name);
    return name;
  }

  /**
   * Names of transient and persistent objects, so a session's cpHash does not
   * cost a ReadPublic per command. Filled by the commands that return a name,
   * dropped on FlushContext/EvictControl, and forgotten as a whole when the
   * transport restarted the TPM (handles are reused after a reset).
   */
  private readonly names = new Map<number, Uint8Array>();
  private namesEpoch = 0;

  private cachedName(handle: number): Uint8Array | undefined {
    const epoch = this.transport.startups ?? 0;
    if (epoch !== this.namesEpoch) {
      this.names.clear();
      this.namesEpoch = epoch;
    }
    return this.names.get(handle);
  }

  private remember(handle: number, name: Uint8Array): void {
    const ht = handle >>> 24;
    if (ht === TPM_HT.TRANSIENT || ht === TPM_HT.PERSISTENT) {
      this.cachedName(handle); // settle the epoch first
      this.names.set(handle, name);
    }
  }

  // ---- start-up, testing, random ----
  /** TPM2_Startup. */
  async startup(startupType: number = TPM_SU.CLEAR): Promise<void> {
    await this.execute(TPM2.Startup, {}, { startupType });
  }
  /** TPM2_Shutdown (STATE by default, which preserves DA state and saved sessions across the power cycle). */
  async shutdown(shutdownType: number = TPM_SU.STATE): Promise<void> {
    await this.execute(TPM2.Shutdown, {}, { shutdownType });
  }
  /** TPM2_SelfTest. */
  async selfTest(fullTest = true): Promise<void> {
    await this.execute(TPM2.SelfTest, {}, { fullTest });
  }
  /** Exactly `n` random bytes from the TPM (TPM2_GetRandom, repeated as needed). */
  async getRandom(n: number): Promise<Uint8Array> {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`getRandom: n must be a non-negative integer, got ${n}`);
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const { randomBytes } = await this.execute(TPM2.GetRandom, {}, { bytesRequested: Math.min(n - at, 64) });
      if (randomBytes.length === 0) throw new Error('TPM2_GetRandom returned no bytes');
      out.set(randomBytes.subarray(0, n - at), at);
      at += randomBytes.length;
    }
    return out;
  }
  /** TPM2_StirRandom. */
  async stirRandom(inData: Uint8Array): Promise<void> {
    await this.execute(TPM2.StirRandom, {}, { inData });
  }

  // ---- capabilities ----
  /** TPM2_GetCapability (one call; see the get* helpers for complete lists). */
  getCapability(capability: number, property: number, propertyCount: number): Promise<ResponseOf<typeof TPM2.GetCapability>> {
    return this.execute(TPM2.GetCapability, {}, { capability, property, propertyCount });
  }
  /** All implemented algorithms. */
  async getAlgorithms(): Promise<TPMS_ALG_PROPERTY[]> {
    return this.collect(TPM_CAP.ALGS, 0, (d) => (d.capability === TPM_CAP.ALGS ? d.algorithms : []), (x) => x.alg);
  }
  /**
   * Handles in use from `first` within its range (Part 2, 7.3 TPM_HT): e.g.
   * 0x80000000 transient objects, 0x81000000 persistent objects, 0x01000000
   * NV indices. Sessions are listed by state, not by kind: 0x02000000 gives
   * the loaded sessions and 0x03000000 the saved (context-saved) ones, each
   * with HMAC (0x02…) and policy (0x03…) handles mixed.
   */
  async getHandles(first: number): Promise<number[]> {
    const ht = first >>> 24;
    const isSession = (t: number) => t === TPM_HT.HMAC_SESSION || t === TPM_HT.POLICY_SESSION;
    const all = await this.collect(TPM_CAP.HANDLES, first, (d) => (d.capability === TPM_CAP.HANDLES ? d.handles : []), (h) => h);
    return all.filter((h) => (isSession(ht) ? isSession(h >>> 24) : h >>> 24 === ht));
  }
  /**
   * Handles of everything that occupies the TPM's volatile memory: loaded
   * transient objects (0x80xxxxxx), loaded sessions (0x02xxxxxx) and saved
   * sessions (0x03xxxxxx). Empty after a flow that flushed what it loaded.
   */
  async getLoadedHandles(): Promise<number[]> {
    return [...(await this.getHandles(0x80000000)), ...(await this.getHandles(0x02000000)), ...(await this.getHandles(0x03000000))];
  }
  /** Implemented command codes. */
  async getCommands(): Promise<number[]> {
    const all = await this.collect(TPM_CAP.COMMANDS, 0, (d) => (d.capability === TPM_CAP.COMMANDS ? d.command : []), (a) => a & 0xffff);
    return all.map((a) => a & 0xffff);
  }
  /** ECC curves the TPM implements. */
  async getEccCurves(): Promise<number[]> {
    return this.collect(TPM_CAP.ECC_CURVES, 0, (d) => (d.capability === TPM_CAP.ECC_CURVES ? d.eccCurves : []), (c) => c);
  }
  /** TPM properties from `first` (default: all fixed and variable ones), as a map TPM_PT -> value. */
  async getProperties(first: number = TPM_PT.FAMILY_INDICATOR): Promise<Map<number, number>> {
    const pick = (d: ResponseOf<typeof TPM2.GetCapability>['capabilityData']) => (d.capability === TPM_CAP.TPM_PROPERTIES ? d.tpmProperties : []);
    const list = await this.collect(TPM_CAP.TPM_PROPERTIES, first, pick, (p) => p.property);
    // A TPM answers one property group per call (libtpms ends PT_FIXED with moreData NO): read PT_VAR separately.
    if (first < TPM_PT.PERMANENT) list.push(...(await this.collect(TPM_CAP.TPM_PROPERTIES, TPM_PT.PERMANENT, pick, (p) => p.property)));
    return new Map(list.map((p) => [p.property, p.value]));
  }
  /** One TPM property, or undefined if the TPM does not report it. */
  async getProperty(property: number): Promise<number | undefined> {
    const { capabilityData: d } = await this.getCapability(TPM_CAP.TPM_PROPERTIES, property, 1);
    if (d.capability !== TPM_CAP.TPM_PROPERTIES) return undefined;
    return d.tpmProperties.find((p) => p.property === property)?.value;
  }
  /** PCR banks and which PCRs are allocated in each (TPM_CAP_PCRS). */
  async getPcrBanks(): Promise<TPML_PCR_SELECTION> {
    const { capabilityData: d } = await this.getCapability(TPM_CAP.PCRS, 0, 1);
    return d.capability === TPM_CAP.PCRS ? d.assignedPCR : [];
  }
  /** Hash algorithms of the PCR banks that have at least one PCR allocated. */
  async getActivePcrBanks(): Promise<number[]> {
    return (await this.getPcrBanks()).filter((s) => s.pcrSelect.some((b) => b !== 0)).map((s) => s.hash);
  }

  private async collect<T>(
    cap: number,
    first: number,
    pick: (d: ResponseOf<typeof TPM2.GetCapability>['capabilityData']) => T[],
    key: (x: T) => number,
  ): Promise<T[]> {
    const out: T[] = [];
    let next = first;
    for (let round = 0; round < 64; round++) {
      const { moreData, capabilityData } = await this.getCapability(cap, next, 256);
      const items = pick(capabilityData);
      out.push(...items);
      if (!moreData || items.length === 0) return out;
      next = key(items[items.length - 1]!) + 1;
    }
    return out;
  }

  // ---- PCRs ----
  /** TPM2_PCR_Read (one call: the TPM may return fewer PCRs than selected; see readPcrs). */
  pcrRead(pcrSelectionIn: TPML_PCR_SELECTION): Promise<ResponseOf<typeof TPM2.PCR_Read>> {
    return this.execute(TPM2.PCR_Read, {}, { pcrSelectionIn });
  }
  /** PCR values of one bank (default PCRs 0-23), looping until every selected PCR is read. */
  async readPcrs(hashAlg: number, indices: readonly number[] = Array.from({ length: 24 }, (_, i) => i)): Promise<Map<number, Uint8Array>> {
    const wanted = new Set(indices);
    const out = new Map<number, Uint8Array>();
    for (let round = 0; round < 32 && out.size < wanted.size; round++) {
      const sel = pcrSelection(hashAlg, [...wanted].filter((i) => !out.has(i)));
      const { pcrSelectionOut, pcrValues } = await this.pcrRead(sel);
      const got = pcrSelectionOut.find((s) => s.hash === hashAlg);
      const idx = got ? indicesOf(got.pcrSelect) : [];
      if (idx.length === 0) throw new Error(`the TPM returned no PCR values for bank ${hashAlg.toString(16)}: is the bank allocated?`);
      idx.forEach((i, k) => out.set(i, pcrValues[k]!));
    }
    return out;
  }
  /** TPM2_PCR_Extend with one or more bank digests. */
  async pcrExtend(pcr: number, digests: TPMT_HA | readonly TPMT_HA[], opts: CallOptions = {}): Promise<void> {
    const list = Array.isArray(digests) ? [...digests] : [digests as TPMT_HA];
    await this.execute(TPM2.PCR_Extend, { pcrHandle: pcr }, { digests: list }, opts);
  }
  /** TPM2_PCR_Reset (PCR 16 and 23 are resettable at locality 0). */
  async pcrReset(pcr: number, opts: CallOptions = {}): Promise<void> {
    await this.execute(TPM2.PCR_Reset, { pcrHandle: pcr }, {}, opts);
  }

  // ---- objects ----
  /**
   * TPM2_ReadPublic. The Name the TPM reports is checked against the Name
   * computed in software from the public area.
   */
  async readPublic(handle: number): Promise<{ public: TPMT_PUBLIC; name: Uint8Array; qualifiedName: Uint8Array }> {
    const r = await this.execute(TPM2.ReadPublic, { objectHandle: handle }, {});
    if (!bytesEqual(objectName(r.outPublic), r.name)) throw new TpmAuthError(`TPM2_ReadPublic of 0x${handle.toString(16)}: the Name does not match the public area`);
    this.remember(handle, r.name);
    return { public: r.outPublic, name: r.name, qualifiedName: r.qualifiedName };
  }
  /** TPM2_CreatePrimary under a hierarchy (TPM_RH.OWNER, ENDORSEMENT, ...). */
  async createPrimary(hierarchy: HandleRef, template: TPMT_PUBLIC, opts: CreateOptions = {}): Promise<CreatedObject & { handle: number; name: Uint8Array }> {
    const r = await this.execute(TPM2.CreatePrimary, { primaryHandle: hierarchy }, creationParams(template, opts), opts);
    this.remember(r.objectHandle, r.name);
    return { handle: r.objectHandle, name: r.name, public: r.outPublic, creationData: r.creationData, creationHash: r.creationHash, creationTicket: r.creationTicket };
  }
  /** TPM2_Create: a new object under a loaded parent; returns the wrapped private part (load it with `load`). */
  async create(parent: HandleRef, template: TPMT_PUBLIC, opts: CreateOptions = {}): Promise<CreatedObject & { private: Uint8Array }> {
    const r = await this.execute(TPM2.Create, { parentHandle: parent }, creationParams(template, opts), opts);
    return { private: r.outPrivate, public: r.outPublic, creationData: r.creationData, creationHash: r.creationHash, creationTicket: r.creationTicket };
  }
  /** TPM2_Load. */
  async load(parent: HandleRef, inPrivate: Uint8Array, inPublic: TPMT_PUBLIC, opts: CallOptions = {}): Promise<{ handle: number; name: Uint8Array }> {
    const r = await this.execute(TPM2.Load, { parentHandle: parent }, { inPrivate, inPublic }, opts);
    this.remember(r.objectHandle, r.name);
    return { handle: r.objectHandle, name: r.name };
  }
  /** TPM2_LoadExternal: a public key (or a full key pair when `sensitive` is given) into `hierarchy` (NULL by default). */
  async loadExternal(inPublic: TPMT_PUBLIC, sensitive: TPMT_SENSITIVE | null = null, hierarchy: number = TPM_RH.NULL): Promise<{ handle: number; name: Uint8Array }> {
    const r = await this.execute(TPM2.LoadExternal, {}, { inPrivate: sensitive, inPublic, hierarchy });
    this.remember(r.objectHandle, r.name);
    return { handle: r.objectHandle, name: r.name };
  }
  /** TPM2_FlushContext (transient objects and sessions). */
  async flushContext(handle: number): Promise<void> {
    this.names.delete(handle);
    await this.execute(TPM2.FlushContext, {}, { flushHandle: handle });
  }
  /** TPM2_ContextSave. */
  async contextSave(handle: number): Promise<TPMS_CONTEXT> {
    return (await this.execute(TPM2.ContextSave, { saveHandle: handle }, {})).context;
  }
  /** TPM2_ContextLoad; returns the new handle. */
  async contextLoad(context: TPMS_CONTEXT): Promise<number> {
    return (await this.execute(TPM2.ContextLoad, {}, { context })).loadedHandle;
  }
  /** TPM2_EvictControl: make a transient object persistent at `persistentHandle`, or (given a persistent handle) evict it. */
  async evictControl(auth: HandleRef, objectHandle: HandleRef, persistentHandle: number, opts: CallOptions = {}): Promise<void> {
    this.names.delete(persistentHandle);
    await this.execute(TPM2.EvictControl, { auth, objectHandle }, { persistentHandle }, opts);
  }

  // ---- NV ----
  /** TPM2_NV_ReadPublic. */
  async nvReadPublic(nvIndex: number): Promise<{ nvPublic: TPMS_NV_PUBLIC; nvName: Uint8Array }> {
    return this.execute(TPM2.NV_ReadPublic, { nvIndex }, {});
  }
  /**
   * TPM2_NV_Read of `size` bytes at `offset` (default: the whole index),
   * chunked by TPM_PT_NV_BUFFER_MAX. `authHandle` defaults to the index itself.
   */
  async nvRead(nvIndex: number, opts: CallOptions & { authHandle?: HandleRef; size?: number; offset?: number } = {}): Promise<Uint8Array> {
    const offset = opts.offset ?? 0;
    const size = opts.size ?? (await this.nvReadPublic(nvIndex)).nvPublic.dataSize - offset;
    if (this.nvBufferMax === undefined) this.nvBufferMax = (await this.getProperty(TPM_PT.NV_BUFFER_MAX)) ?? 512;
    const out = new Uint8Array(size);
    for (let at = 0; at < size; ) {
      const n = Math.min(this.nvBufferMax, size - at);
      const { data } = await this.execute(TPM2.NV_Read, { authHandle: opts.authHandle ?? nvIndex, nvIndex }, { size: n, offset: offset + at }, opts);
      if (data.length === 0) throw new Error(`TPM2_NV_Read of 0x${nvIndex.toString(16)} returned no data at offset ${offset + at}`);
      out.set(data, at);
      at += data.length;
    }
    return out;
  }
  /** TPM2_NV_DefineSpace. */
  async nvDefineSpace(authHandle: HandleRef, publicInfo: TPMS_NV_PUBLIC, auth: Uint8Array = empty(), opts: CallOptions = {}): Promise<void> {
    await this.execute(TPM2.NV_DefineSpace, { authHandle }, { auth, publicInfo }, opts);
  }
  /** TPM2_NV_Write (one call; at most TPM_PT_NV_BUFFER_MAX bytes). */
  async nvWrite(authHandle: HandleRef, nvIndex: HandleRef, data: Uint8Array, offset = 0, opts: CallOptions = {}): Promise<void> {
    await this.execute(TPM2.NV_Write, { authHandle, nvIndex }, { data, offset }, opts);
  }
  /** TPM2_NV_UndefineSpace. */
  async nvUndefineSpace(authHandle: HandleRef, nvIndex: HandleRef, opts: CallOptions = {}): Promise<void> {
    await this.execute(TPM2.NV_UndefineSpace, { authHandle, nvIndex }, {}, opts);
  }
  /**
   * What the platform left in NV index `index` (an EK certificate, a key template), or null when
   * the index is not defined or was never written. It is read with the authorization its
   * attributes allow: owner, the index's own (empty) auth, or platform.
   */
  async readNvIfWritten(index: number): Promise<Uint8Array | null> {
    let attributes: number;
    let size: number;
    try {
      const { nvPublic } = await this.nvReadPublic(index);
      attributes = nvPublic.attributes;
      size = nvPublic.dataSize;
    } catch (e) {
      if (e instanceof TpmError && e.is(TPM_RC.HANDLE)) return null;
      throw e;
    }
    if (!(attributes & TPMA_NV.WRITTEN)) return null;
    const authHandle = attributes & TPMA_NV.OWNERREAD ? TPM_RH.OWNER : attributes & TPMA_NV.AUTHREAD ? index : attributes & TPMA_NV.PPREAD ? TPM_RH.PLATFORM : index;
    return this.nvRead(index, { authHandle, size });
  }
  /**
   * A DER certificate the platform keeps in NV `index`, or null when there is none. Padding after
   * the DER structure (some vendors pad NV) is removed.
   */
  async readNvCertificate(index: number): Promise<Uint8Array | null> {
    const raw = await this.readNvIfWritten(index);
    return raw === null ? null : trimDer(raw);
  }
  /** The EK certificate (DER) from its TCG NV index, or null when the TPM has none. */
  async readEkCertificate(keyType: KeyType): Promise<Uint8Array | null> {
    return this.readNvCertificate(EK_CERT_NV_INDEX[keyType]);
  }

  // ---- hashing, signing ----
  /** TPM2_Hash (data up to TPM_PT_INPUT_BUFFER, usually 1024 bytes). */
  async hash(data: Uint8Array, hashAlg: number, hierarchy: number = TPM_RH.OWNER): Promise<{ outHash: Uint8Array; validation: TPMT_TK }> {
    return this.execute(TPM2.Hash, {}, { data, hashAlg, hierarchy });
  }
  /**
   * The TPM's digest of `data` of any length, with the ticket a restricted signing key needs
   * (TPM2_Sign `validation`): one TPM2_Hash when it fits TPM_PT_INPUT_BUFFER, else a hash sequence
   * (TPM2_HashSequenceStart, SequenceUpdate per chunk, SequenceComplete; Part 3, 17). The ticket is
   * a null ticket when `data` starts with TPM_GENERATED_VALUE, as the TPM decides. A sequence
   * takes an object slot while it runs: `beforeSequence` is awaited just before it starts (only
   * then), e.g. to flush an object to make room for it.
   */
  async hashData(
    data: Uint8Array,
    hashAlg: number,
    hierarchy: number = TPM_RH.OWNER,
    opts: { beforeSequence?: () => Promise<void> } = {},
  ): Promise<{ outHash: Uint8Array; validation: TPMT_TK }> {
    // A chunk must fit TPM2B_MAX_BUFFER: a TPM reporting a larger input buffer is capped to it.
    this.inputBufferMax ??= Math.min((await this.getProperty(TPM_PT.INPUT_BUFFER)) ?? 1024, MAX_BUFFER_BYTES);
    const chunk = this.inputBufferMax;
    if (data.length <= chunk) return this.hash(data, hashAlg, hierarchy);
    await opts.beforeSequence?.();
    const { sequenceHandle } = await this.execute(TPM2.HashSequenceStart, {}, { auth: empty(), hashAlg });
    try {
      let at = 0;
      for (; data.length - at > chunk; at += chunk) await this.execute(TPM2.SequenceUpdate, { sequenceHandle }, { buffer: data.subarray(at, at + chunk) });
      const r = await this.execute(TPM2.SequenceComplete, { sequenceHandle }, { buffer: data.subarray(at), hierarchy });
      return { outHash: r.result, validation: r.validation };
    } catch (e) {
      // SequenceComplete flushes the sequence object; a failure before it leaves it loaded.
      await this.flushContext(sequenceHandle).catch(() => undefined);
      throw e;
    }
  }
  /** TPM2_Sign of a digest. The scheme defaults to the key's own (NULL); `validation` is needed only for restricted keys. */
  async sign(key: HandleRef, digest: Uint8Array, opts: CallOptions & { scheme?: TPMT_SIG_SCHEME; validation?: TPMT_TK } = {}): Promise<TPMT_SIGNATURE> {
    const r = await this.execute(
      TPM2.Sign,
      { keyHandle: key },
      { digest, inScheme: opts.scheme ?? { scheme: TPM_ALG.NULL }, validation: opts.validation ?? NULL_TICKET(0x8024) },
      opts,
    );
    return r.signature;
  }
  /** TPM2_VerifySignature: throws TpmError (TPM_RC_SIGNATURE) when the signature is not valid. */
  async verifySignature(key: HandleRef, digest: Uint8Array, signature: TPMT_SIGNATURE): Promise<TPMT_TK> {
    return (await this.execute(TPM2.VerifySignature, { keyHandle: key }, { digest, signature })).validation;
  }
  /** TPM2_DictionaryAttackLockReset with the lockout hierarchy's auth (empty by default). */
  async dictionaryAttackLockReset(lockoutAuth: Uint8Array = empty()): Promise<void> {
    await this.execute(TPM2.DictionaryAttackLockReset, { lockHandle: { handle: TPM_RH.LOCKOUT, auth: lockoutAuth } }, {});
  }

  // ---- sessions (Part 3, 11) ----
  /**
   * TPM2_StartAuthSession. `salt` (a loaded RSA or ECC decrypt key, usually
   * the EK or SRK) protects the session key from the bus; `bind` ties it to
   * an entity's authValue. The session has continueSession set; add
   * `TPMA_SESSION.decrypt`/`encrypt` with `session.with(...)` for parameter
   * encryption (AES-128-CFB by default). Flush it when done.
   */
  async startAuthSession(opts: StartAuthSessionOptions = {}): Promise<Session> {
    const type = opts.type ?? 'hmac';
    const hashAlg = opts.hashAlg ?? TPM_ALG.SHA256;
    const symmetric = opts.symmetric ?? AES128_CFB;
    const nonceCaller = randomNonce(digestSize(hashAlg));
    let salt: Uint8Array = new Uint8Array(0);
    let encryptedSalt: Uint8Array = new Uint8Array(0);
    let tpmKey: HandleRef = TPM_RH.NULL;
    if (opts.salt) {
      const saltPub = opts.salt.public ?? (await this.readPublic(opts.salt.handle)).public;
      const s = createSeed(saltPub, 'SECRET');
      salt = s.seed;
      encryptedSalt = s.encryptedSecret;
      tpmKey = opts.salt.handle;
    }
    const bind = opts.bind === undefined ? undefined : typeof opts.bind === 'number' ? { handle: opts.bind } : opts.bind;
    const r = await this.execute(TPM2.StartAuthSession, { tpmKey, bind: bind?.handle ?? TPM_RH.NULL }, {
      nonceCaller, encryptedSalt, sessionType: SESSION_TYPE[type], symmetric, authHash: hashAlg,
    });
    const bindAuth = bind?.auth ?? new Uint8Array(0);
    const sessionKey = deriveSessionKey(hashAlg, bindAuth, salt, r.nonceTPM, nonceCaller);
    const state = {
      handle: r.sessionHandle, type, hashAlg, symmetric, sessionKey, nonceCaller, nonceTPM: r.nonceTPM,
      attributes: opts.attributes ?? TPMA_SESSION.continueSession,
    };
    return new Session(bind ? { ...state, bind: { handle: bind.handle, auth: bindAuth } } : state);
  }

  /** TPM2_PolicyPCR: `pcrDigest` empty means "the PCRs as they are now". */
  async policyPCR(session: Session, pcrs: TPML_PCR_SELECTION, pcrDigest: Uint8Array = new Uint8Array(0)): Promise<void> {
    await this.execute(TPM2.PolicyPCR, { policySession: session.handle }, { pcrDigest, pcrs });
  }
  /** TPM2_PolicySecret: proves knowledge of `authEntity`'s authorization (e.g. TPM_RH_ENDORSEMENT for the EK). */
  async policySecret(
    authEntity: HandleRef,
    session: Session,
    opts: CallOptions & { cpHashA?: Uint8Array; policyRef?: Uint8Array; expiration?: number; includeNonce?: boolean } = {},
  ): Promise<{ timeout: Uint8Array; policyTicket: TPMT_TK }> {
    return this.execute(TPM2.PolicySecret, { authHandle: authEntity, policySession: session.handle }, {
      nonceTPM: opts.includeNonce ? session.nonceTPM : new Uint8Array(0),
      cpHashA: opts.cpHashA ?? new Uint8Array(0),
      policyRef: opts.policyRef ?? new Uint8Array(0),
      expiration: opts.expiration ?? 0,
    }, opts);
  }
  /** TPM2_PolicyAuthValue: the session will include the object's authValue in its HMAC. */
  async policyAuthValue(session: Session): Promise<void> {
    await this.execute(TPM2.PolicyAuthValue, { policySession: session.handle }, {});
    session.authValueNeeded = true;
  }
  /** TPM2_PolicyPassword: the session will carry the object's authValue in clear. */
  async policyPassword(session: Session): Promise<void> {
    await this.execute(TPM2.PolicyPassword, { policySession: session.handle }, {});
    session.passwordNeeded = true;
  }
  /** TPM2_PolicyCommandCode. */
  async policyCommandCode(session: Session, code: number): Promise<void> {
    await this.execute(TPM2.PolicyCommandCode, { policySession: session.handle }, { code });
  }
  /** TPM2_PolicyOR over 2 to 8 branch digests. */
  async policyOR(session: Session, branches: readonly Uint8Array[]): Promise<void> {
    await this.execute(TPM2.PolicyOR, { policySession: session.handle }, { pHashList: [...branches] });
  }
  /** TPM2_PolicyGetDigest. */
  async policyGetDigest(session: Session): Promise<Uint8Array> {
    return (await this.execute(TPM2.PolicyGetDigest, { policySession: session.handle }, {})).policyDigest;
  }
  /** TPM2_PolicyRestart. */
  async policyRestart(session: Session): Promise<void> {
    await this.execute(TPM2.PolicyRestart, { sessionHandle: session.handle }, {});
    session.resetPolicyFlags();
  }
  /**
   * Run policy steps (the same step objects the offline calculator digests)
   * on a policy or trial session. PolicySecret on a permanent handle (4-byte
   * name) is authorized with a password session of `secretAuth` (empty by
   * default); for other entities pass `resolveSecret` returning the entity.
   */
  async applyPolicy(
    session: Session,
    steps: readonly PolicyStep[],
    opts: { secretAuth?: Uint8Array; resolveSecret?: (name: Uint8Array) => HandleRef } = {},
  ): Promise<void> {
    for (const step of steps) {
      switch (step.type) {
        case 'PolicyPCR':
          await this.policyPCR(session, step.selection, step.pcrDigest);
          break;
        case 'PolicySecret': {
          const n = step.authObjectName;
          const entity: HandleRef = opts.resolveSecret
            ? opts.resolveSecret(n)
            : n.length === 4
              ? { handle: new DataView(n.buffer, n.byteOffset).getUint32(0), auth: opts.secretAuth ?? new Uint8Array(0) }
              : (() => {
                  throw new TypeError('PolicySecret on an object needs opts.resolveSecret');
                })();
          await this.policySecret(entity, session, step.policyRef ? { policyRef: step.policyRef } : {});
          break;
        }
        case 'PolicyAuthValue':
          await this.policyAuthValue(session);
          break;
        case 'PolicyPassword':
          await this.policyPassword(session);
          break;
        case 'PolicyCommandCode':
          await this.policyCommandCode(session, step.code);
          break;
        case 'PolicyOR':
          await this.policyOR(session, step.branches);
          break;
        default: {
          const never: never = step;
          throw new TypeError(`unknown policy step ${JSON.stringify(never)}`);
        }
      }
    }
  }

  // ---- objects: sealing, credentials, duplication ----
  /** TPM2_Unseal. Use an encrypting session (`encrypt` attribute) to keep the data off the bus in clear. */
  async unseal(item: HandleRef, opts: CallOptions = {}): Promise<Uint8Array> {
    return (await this.execute(TPM2.Unseal, { itemHandle: item }, {}, opts)).outData;
  }
  /** TPM2_MakeCredential on a loaded public key (the EK). */
  async makeCredential(handle: HandleRef, credential: Uint8Array, objectName: Uint8Array): Promise<{ credentialBlob: Uint8Array; secret: Uint8Array }> {
    return this.execute(TPM2.MakeCredential, { handle }, { credential, objectName });
  }
  /**
   * TPM2_ActivateCredential: `activate` is the object the credential names
   * (the AK), `key` the key that decrypts the seed (the EK, which needs a
   * PolicySecret(endorsement) session).
   */
  async activateCredential(activate: HandleRef, key: HandleRef, credentialBlob: Uint8Array, secret: Uint8Array, opts: CallOptions = {}): Promise<Uint8Array> {
    return (await this.execute(TPM2.ActivateCredential, { activateHandle: activate, keyHandle: key }, { credentialBlob, secret }, opts)).certInfo;
  }
  /** TPM2_Duplicate (no inner wrapper by default). */
  async duplicate(
    object: HandleRef,
    newParent: HandleRef,
    opts: CallOptions & { encryptionKeyIn?: Uint8Array; symmetricAlg?: TPMT_SYM_DEF_OBJECT } = {},
  ): Promise<{ encryptionKeyOut: Uint8Array; duplicate: Uint8Array; outSymSeed: Uint8Array }> {
    return this.execute(TPM2.Duplicate, { objectHandle: object, newParentHandle: newParent }, {
      encryptionKeyIn: opts.encryptionKeyIn ?? new Uint8Array(0), symmetricAlg: opts.symmetricAlg ?? { algorithm: TPM_ALG.NULL },
    }, opts);
  }
  /** TPM2_Import: returns the object's private part wrapped for `parent` (then `load` it). */
  async import(
    parent: HandleRef,
    objectPublic: TPMT_PUBLIC,
    duplicate: Uint8Array,
    inSymSeed: Uint8Array,
    opts: CallOptions & { encryptionKey?: Uint8Array; symmetricAlg?: TPMT_SYM_DEF_OBJECT } = {},
  ): Promise<Uint8Array> {
    return (await this.execute(TPM2.Import, { parentHandle: parent }, {
      encryptionKey: opts.encryptionKey ?? new Uint8Array(0), objectPublic, duplicate, inSymSeed, symmetricAlg: opts.symmetricAlg ?? { algorithm: TPM_ALG.NULL },
    }, opts)).outPrivate;
  }
  /** TPM2_ObjectChangeAuth: returns the new private part (the loaded object keeps the old auth). */
  async objectChangeAuth(object: HandleRef, parent: HandleRef, newAuth: Uint8Array, opts: CallOptions = {}): Promise<Uint8Array> {
    return (await this.execute(TPM2.ObjectChangeAuth, { objectHandle: object, parentHandle: parent }, { newAuth }, opts)).outPrivate;
  }

  // ---- attestation (Part 3, 18) ----
  /** TPM2_Quote over `selection` with `qualifyingData` (the nonce). `attestBytes` are the exact bytes signed. */
  async quote(signKey: HandleRef, qualifyingData: Uint8Array, selection: TPML_PCR_SELECTION, opts: CallOptions & { scheme?: TPMT_SIG_SCHEME } = {}): Promise<Attestation> {
    const r = await this.execute(TPM2.Quote, { signHandle: signKey }, { qualifyingData, inScheme: opts.scheme ?? { scheme: TPM_ALG.NULL }, PCRselect: selection }, opts);
    return { attest: r.quoted, attestBytes: rawBytes(r.quoted)!, signature: r.signature };
  }
  /** TPM2_Certify: `signKey` attests that `object` is loaded in this TPM. Both need authorization. */
  async certify(object: HandleRef, signKey: HandleRef, qualifyingData: Uint8Array = new Uint8Array(0), opts: CallOptions & { scheme?: TPMT_SIG_SCHEME } = {}): Promise<Attestation> {
    const r = await this.execute(TPM2.Certify, { objectHandle: object, signHandle: signKey }, { qualifyingData, inScheme: opts.scheme ?? { scheme: TPM_ALG.NULL } }, opts);
    return { attest: r.certifyInfo, attestBytes: rawBytes(r.certifyInfo)!, signature: r.signature };
  }
  /** TPM2_CertifyCreation: `signKey` attests the creation data (hash and ticket from Create/CreatePrimary) of `object`. */
  async certifyCreation(
    signKey: HandleRef,
    object: HandleRef,
    creationHash: Uint8Array,
    creationTicket: TPMT_TK,
    qualifyingData: Uint8Array = new Uint8Array(0),
    opts: CallOptions & { scheme?: TPMT_SIG_SCHEME } = {},
  ): Promise<Attestation> {
    const r = await this.execute(TPM2.CertifyCreation, { signHandle: signKey, objectHandle: object }, {
      qualifyingData, creationHash, inScheme: opts.scheme ?? { scheme: TPM_ALG.NULL }, creationTicket,
    }, opts);
    return { attest: r.certifyInfo, attestBytes: rawBytes(r.certifyInfo)!, signature: r.signature };
  }

  /** Close the connection. */
  close(): Promise<void> {
    return this.transport.close();
  }
}

function creationParams(template: TPMT_PUBLIC, o: CreateOptions) {
  return {
    inSensitive: { userAuth: o.userAuth ?? empty(), data: o.sensitiveData ?? empty() },
    inPublic: template,
    outsideInfo: o.outsideInfo ?? empty(),
    creationPCR: o.creationPCR ?? [],
  };
}

/** The PCR indices set in a pcrSelect bitmap, ascending. */
export function indicesOf(bitmap: Uint8Array): number[] {
  const out: number[] = [];
  bitmap.forEach((b, k) => {
    for (let bit = 0; bit < 8; bit++) if (b & (1 << bit)) out.push(k * 8 + bit);
  });
  return out;
}

/** Length of the DER TLV at the start of `b` (so NV padding can be cut off); `b` itself if it is not DER. */
function trimDer(b: Uint8Array): Uint8Array {
  if (b.length < 2 || b[0] !== 0x30) return b;
  const l = b[1]!;
  let len: number;
  let hdr = 2;
  if (l < 0x80) len = l;
  else {
    const n = l & 0x7f;
    if (n === 0 || n > 4 || b.length < 2 + n) return b;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[2 + i]!;
    hdr += n;
  }
  return hdr + len <= b.length ? b.slice(0, hdr + len) : b;
}

/** A signed attestation: the decoded TPMS_ATTEST, its exact bytes (what was signed), and the signature. */
export interface Attestation {
  attest: TPMS_ATTEST;
  attestBytes: Uint8Array;
  signature: TPMT_SIGNATURE;
}

export interface StartAuthSessionOptions {
  /** 'hmac' (default), 'policy' or 'trial'. */
  type?: SessionType;
  /** Session hash (authHash); SHA-256 by default. */
  hashAlg?: number;
  /** Salt the session to a loaded decrypt key (RSA OAEP or ECDH, label "SECRET"). */
  salt?: { handle: number; public?: TPMT_PUBLIC };
  /** Bind the session to an entity (its authValue enters the session key). */
  bind?: HandleRef;
  /** Parameter-encryption algorithm; AES-128-CFB by default. */
  symmetric?: TPMT_SYM_DEF;
  /** Initial TPMA_SESSION bits (continueSession by default). */
  attributes?: number;
}

export interface OpenTpmOptions extends TransportOptions {
  /** Use this transport instead of opening `address`. */
  transport?: Transport;
}

/** Open a TPM by address (`device:/dev/tpmrm0` by default, or `swtpm:...`). */
export async function openTpm(address?: string, options: OpenTpmOptions = {}): Promise<Tpm> {
  const t = options.transport ?? (await openTransport(address, options));
  return new Tpm(t);
}

export type { TpmEntity, HandleRef };
