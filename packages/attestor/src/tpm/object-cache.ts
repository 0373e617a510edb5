/**
 * The objects the attestor keeps on the TPM between flows: a bounded LRU of loaded transient
 * objects (keys, AKs, transient primaries), sized to the TPM's transient slots, so a repeated Sign
 * on a hot key is one TPM command. An object pushed out is saved first (TPM2_ContextSave: its
 * context holds no TPM slot and comes back with one TPM2_ContextLoad, without its parent); saved
 * contexts are kept for a bounded number of objects too.
 *
 * Only the flow running now touches the cache (flows are serialized by the queue). Objects the
 * running flow uses are pinned: never pushed out while it runs. A TPM reset invalidates every
 * handle and saved context: `forget()` drops them, and the next use loads the object again from
 * its wrapped blob.
 */
import { TpmError, type TPMS_CONTEXT, type Tpm } from '@tpmds/tpm2-wire';

interface Entry {
  /** Loaded now at this handle. */
  handle?: number;
  /** Saved context: reloads with one ContextLoad (valid until a TPM reset). */
  context?: TPMS_CONTEXT;
}

export interface ObjectCacheStats {
  /** Objects loaded on the TPM now. */
  loaded: number;
  /** Objects known (loaded or saved). */
  known: number;
}

export class ObjectCache {
  /** Map order is LRU order: least recently used first. */
  readonly #entries = new Map<string, Entry>();
  /** Objects the running flow uses (cleared by beginFlow). */
  readonly #pinned = new Set<string>();

  /**
   * @param slots how many objects may stay loaded (the TPM's transient slots; a flow's own
   *   temporary objects make room for themselves with `makeRoom`)
   * @param maxKnown most objects remembered at all (saved contexts included)
   */
  constructor(
    public slots = 3,
    readonly maxKnown = 4096,
  ) {}

  get stats(): ObjectCacheStats {
    return { loaded: this.loadedHandles().length, known: this.#entries.size };
  }

  /** Handles of the objects loaded now. */
  loadedHandles(): number[] {
    const out: number[] = [];
    for (const e of this.#entries.values()) if (e.handle !== undefined) out.push(e.handle);
    return out;
  }

  /** A new flow starts: nothing is pinned. */
  beginFlow(): void {
    this.#pinned.clear();
  }

  /**
   * The handle of object `id`, loaded now and pinned for the running flow: the cached handle,
   * else its saved context loaded again, else `load()` (which loads it from its blob; it must call
   * `makeRoom(tpm, 1)` right before the command that takes the slot).
   */
  async acquire(tpm: Tpm, id: string, load: () => Promise<number>): Promise<number> {
    this.#pinned.add(id);
    let e = this.#entries.get(id);
    if (e !== undefined) {
      this.#entries.delete(id); // re-inserted below: most recently used
      this.#entries.set(id, e);
      if (e.handle !== undefined) return e.handle;
      if (e.context !== undefined) {
        await this.makeRoom(tpm, 1);
        try {
          e.handle = await tpm.contextLoad(e.context);
          return e.handle;
        } catch (err) {
          if (!(err instanceof TpmError)) throw err;
          delete e.context; // not loadable any more (a TPM reset): load the blob
        }
      }
    } else {
      e = {};
      this.#entries.set(id, e);
      this.#trimKnown();
    }
    try {
      e.handle = await load();
    } catch (err) {
      if (e.handle === undefined && e.context === undefined) this.#entries.delete(id);
      throw err;
    }
    return e.handle;
  }

  /**
   * The running flow no longer uses object `id`'s handle (a parent after loading its child): it may
   * be pushed out to make room; a later `acquire` in the same flow brings it back.
   */
  release(id: string): void {
    this.#pinned.delete(id);
  }

  /** Record object `id` just loaded at `handle` by the running flow (pinned). */
  insert(id: string, handle: number): void {
    this.#pinned.add(id);
    this.#entries.delete(id);
    this.#entries.set(id, { handle });
    this.#trimKnown();
  }

  /**
   * Push out least recently used objects (not pinned) until `n` more objects fit in the slots:
   * each is saved (ContextSave) and flushed.
   */
  async makeRoom(tpm: Tpm, n: number): Promise<void> {
    let loaded = this.loadedHandles().length;
    for (const [id, e] of this.#entries) {
      if (loaded + n <= this.slots) return;
      if (e.handle === undefined || this.#pinned.has(id)) continue;
      await this.#evict(tpm, e);
      loaded--;
    }
  }

  /** Save and flush every loaded object (e.g. when the TPM's memory is full). */
  async evictAll(tpm: Tpm): Promise<void> {
    for (const e of this.#entries.values()) if (e.handle !== undefined) await this.#evict(tpm, e);
  }

  /** Flush every loaded object and forget saved contexts (closing). */
  async flushAll(tpm: Tpm): Promise<void> {
    for (const e of this.#entries.values()) {
      if (e.handle !== undefined) await tpm.flushContext(e.handle).catch(() => undefined);
    }
    this.#entries.clear();
  }

  /** The TPM was reset (or its objects flushed by someone else): every handle and context is stale. */
  forget(): void {
    this.#entries.clear();
    this.#pinned.clear();
  }

  async #evict(tpm: Tpm, e: Entry): Promise<void> {
    const handle = e.handle as number;
    try {
      e.context = await tpm.contextSave(handle);
    } catch (err) {
      if (!(err instanceof TpmError)) throw err;
      delete e.context;
    }
    delete e.handle;
    await tpm.flushContext(handle).catch((err: unknown) => {
      if (!(err instanceof TpmError)) throw err;
    });
  }

  /** Forget the least recently used saved objects beyond maxKnown (loaded ones stay). */
  #trimKnown(): void {
    if (this.#entries.size <= this.maxKnown) return;
    for (const [id, e] of this.#entries) {
      if (this.#entries.size <= this.maxKnown) return;
      if (e.handle === undefined) this.#entries.delete(id);
    }
  }
}
