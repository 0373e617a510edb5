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
import { TPM_ALG, TPM_CAP, TPM_HT, TPM_PT, TPM_RH, TPM_SU } from '../types/constants.js';
import type {
  TPML_PCR_SELECTION, TPMS_ALG_PROPERTY, TPMS_CONTEXT, TPMS_CREATION_DATA, TPMS_NV_PUBLIC, TPMT_HA, TPMT_PUBLIC,
  TPMT_SENSITIVE, TPMT_SIGNATURE, TPMT_SIG_SCHEME, TPMT_TK,
} from '../types/structures.js';
import { objectName } from '../crypto/names.js';
import { openTransport } from '../transport/address.js';
import type { TransportOptions } from '../transport/base.js';
import type { Transport } from '../transport/transport.js';
import type { AuthSession } from '../sessions/session.js';

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

const empty = () => new Uint8Array(0);
const NULL_TICKET = (tag: number): TPMT_TK => ({ tag, hierarchy: TPM_RH.NULL, digest: empty() });

export class Tpm {
  private nvBufferMax: number | undefined;

  constructor(readonly transport: Transport) {}

  /** Run any command spec (for commands without a convenience method). */
  execute<C extends AnyCommandSpec>(spec: C, handles: Record<HandlesOf<C>, HandleRef>, params: ParamsOf<C>, opts: CallOptions = {}): Promise<ResponseOf<C>> {
    const o: ExecuteOptions = { resolveName: (h) => this.nameOf(h) };
    if (opts.sessions) o.sessions = opts.sessions;
    return execute(this.transport, spec, handles, params, o);
  }

  /** Name of a transient, persistent or NV handle, read from the TPM. */
  async nameOf(handle: number): Promise<Uint8Array> {
    if (handle >>> 24 === TPM_HT.NV_INDEX) return (await this.nvReadPublic(handle)).nvName;
    return (await this.readPublic(handle)).name;
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
  /** Handles in use from `first` within its handle type (e.g. 0x81000000 for persistent objects). */
  async getHandles(first: number): Promise<number[]> {
    const ht = first >>> 24;
    const all = await this.collect(TPM_CAP.HANDLES, first, (d) => (d.capability === TPM_CAP.HANDLES ? d.handles : []), (h) => h);
    return all.filter((h) => h >>> 24 === ht);
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
    const list = await this.collect(TPM_CAP.TPM_PROPERTIES, first, (d) => (d.capability === TPM_CAP.TPM_PROPERTIES ? d.tpmProperties : []), (p) => p.property);
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
      const sel = selectionOf(hashAlg, [...wanted].filter((i) => !out.has(i)));
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
    return { public: r.outPublic, name: r.name, qualifiedName: r.qualifiedName };
  }
  /** TPM2_CreatePrimary under a hierarchy (TPM_RH.OWNER, ENDORSEMENT, ...). */
  async createPrimary(hierarchy: HandleRef, template: TPMT_PUBLIC, opts: CreateOptions = {}): Promise<CreatedObject & { handle: number; name: Uint8Array }> {
    const r = await this.execute(TPM2.CreatePrimary, { primaryHandle: hierarchy }, creationParams(template, opts), opts);
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
    return { handle: r.objectHandle, name: r.name };
  }
  /** TPM2_LoadExternal: a public key (or a full key pair when `sensitive` is given) into `hierarchy` (NULL by default). */
  async loadExternal(inPublic: TPMT_PUBLIC, sensitive: TPMT_SENSITIVE | null = null, hierarchy: number = TPM_RH.NULL): Promise<{ handle: number; name: Uint8Array }> {
    const r = await this.execute(TPM2.LoadExternal, {}, { inPrivate: sensitive, inPublic, hierarchy });
    return { handle: r.objectHandle, name: r.name };
  }
  /** TPM2_FlushContext (transient objects and sessions). */
  async flushContext(handle: number): Promise<void> {
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
   * The EK certificate (DER) from its TCG NV index, or null when the TPM has
   * none. Padding after the DER structure (some vendors pad NV) is removed.
   */
  async readEkCertificate(keyType: KeyType): Promise<Uint8Array | null> {
    const index = EK_CERT_NV_INDEX[keyType];
    let raw: Uint8Array;
    try {
      raw = await this.nvRead(index);
    } catch (e) {
      if (e instanceof TpmError && (e.is(TPM_RC.HANDLE) || e.is(TPM_RC.NV_UNINITIALIZED))) return null;
      throw e;
    }
    return trimDer(raw);
  }

  // ---- hashing, signing ----
  /** TPM2_Hash (data up to TPM_PT_INPUT_BUFFER, usually 1024 bytes). */
  async hash(data: Uint8Array, hashAlg: number, hierarchy: number = TPM_RH.OWNER): Promise<{ outHash: Uint8Array; validation: TPMT_TK }> {
    return this.execute(TPM2.Hash, {}, { data, hashAlg, hierarchy });
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

/** A TPML_PCR_SELECTION for one bank (3-byte bitmap minimum, as PC Client TPMs expect). */
export function selectionOf(hashAlg: number, indices: readonly number[]): TPML_PCR_SELECTION {
  const size = Math.max(3, ...indices.map((i) => (i >> 3) + 1));
  const bitmap = new Uint8Array(size);
  for (const i of indices) {
    if (!Number.isInteger(i) || i < 0 || i > 255) throw new RangeError(`PCR index ${i} is out of range`);
    bitmap[i >> 3]! |= 1 << (i & 7);
  }
  return [{ hash: hashAlg, pcrSelect: bitmap }];
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
