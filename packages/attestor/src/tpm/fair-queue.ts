/**
 * Who uses the TPM next. One TPM serves every pod on the node, one flow at a time; this queue
 * decides whose flow that is:
 *
 * - one FIFO per caller identity, served round-robin: the unit is one flow (the few TPM commands
 *   of one operation, e.g. Load + Quote per bank + PCR_Read + FlushContext), never split;
 * - a caller's flow therefore waits for the flow running now and then for at most one flow of
 *   each other caller with work queued, however many flows each of them queued. "One command of
 *   each other caller" in issue 16 means exactly this: one flow. A caller that has just been
 *   served goes behind every caller that is waiting (it is re-queued after the next pick), so a
 *   newcomer is served right after the running flow when only one other caller is active;
 * - background work (class `background`) runs only when no caller waits;
 * - at most `limit` flows wait (the running one not counted); one more is refused at once;
 * - a flow whose AbortSignal fires while it waits leaves the queue and never reaches the TPM.
 *   Once started, a flow runs to its end (it flushes what it loaded).
 */

/** Which queue a flow waits in and what it is, for fairness and metrics. */
export interface FlowTag {
  /**
   * The caller identity (the auth layer's, '' for --auth none); `BACKGROUND` for work no caller
   * waits for; `INTERNAL` for the attestor's own work that must not starve (the readiness
   * probe), served round-robin like one more caller.
   */
  identity: string | typeof BACKGROUND | typeof INTERNAL;
  /** The RPC (or internal task) the flow serves: the wait-time metric's label. */
  method: string;
  /** Fires when the caller went away (cancelled, deadline passed): drop the flow if it has not started. */
  signal?: AbortSignal | undefined;
}

/** The class of work served only when no caller waits (e.g. refilling a key pool). */
export const BACKGROUND: unique symbol = Symbol('background');

/** The attestor's own work served like a caller (readiness probes). */
export const INTERNAL: unique symbol = Symbol('internal');

/** Why a flow never ran. */
export class QueueRejection extends Error {
  override readonly name = 'QueueRejection';
  constructor(
    readonly reason: 'full' | 'cancelled' | 'closed',
    message: string,
  ) {
    super(message);
  }
}

export interface FairQueueOptions {
  /** Most flows waiting at once (the running one not counted). */
  limit: number;
  /** The number of waiting flows changed. */
  onDepth?: (depth: number) => void;
  /** A flow started after waiting `seconds`. */
  onWait?: (method: string, seconds: number) => void;
  /** A flow was refused (queue full) or dropped (its caller went away). */
  onReject?: (reason: 'full' | 'cancelled') => void;
}

interface Entry {
  tag: FlowTag;
  start: () => void;
  reject: (e: unknown) => void;
  enqueued: number;
  detach: () => void;
}

type QueueKey = FlowTag['identity'];

export class FairQueue {
  /** Waiting flows by queue. */
  readonly #queues = new Map<QueueKey, Entry[]>();
  /** Callers with waiting flows, in the order they are served (neither background nor the running caller). */
  #ring: QueueKey[] = [];
  #depth = 0;
  /** The queue whose flow runs now, or null when the TPM is idle. */
  #running: QueueKey | null = null;
  #closed = false;

  constructor(private readonly opts: FairQueueOptions) {
    if (!Number.isInteger(opts.limit) || opts.limit < 1) throw new RangeError('FairQueue limit must be a positive integer');
  }

  /** Flows waiting now. */
  get depth(): number {
    return this.#depth;
  }

  /** Run `f` when `tag`'s turn comes; rejects with QueueRejection when it never runs. */
  run<T>(tag: FlowTag, f: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new QueueRejection('closed', 'the attestor is shutting down'));
    if (tag.signal?.aborted) {
      this.opts.onReject?.('cancelled');
      return Promise.reject(new QueueRejection('cancelled', 'the call was cancelled before it reached the TPM'));
    }
    if (this.#depth >= this.opts.limit) {
      this.opts.onReject?.('full');
      return Promise.reject(new QueueRejection('full', `the TPM queue is full (${this.opts.limit} calls waiting); retry later`));
    }
    return new Promise<T>((resolve, reject) => {
      const key = tag.identity;
      const entry: Entry = {
        tag,
        enqueued: performance.now(),
        reject,
        detach: () => undefined,
        start: () => {
          entry.detach();
          this.opts.onWait?.(tag.method, (performance.now() - entry.enqueued) / 1000);
          new Promise<T>((r) => r(f())).then(resolve, reject).finally(() => this.#finished(key));
        },
      };
      if (tag.signal) {
        const signal = tag.signal;
        const onAbort = (): void => this.#drop(key, entry);
        signal.addEventListener('abort', onAbort, { once: true });
        entry.detach = () => signal.removeEventListener('abort', onAbort);
      }
      let q = this.#queues.get(key);
      if (!q) this.#queues.set(key, (q = []));
      q.push(entry);
      if (q.length === 1 && key !== BACKGROUND && key !== this.#running) this.#ring.push(key);
      this.#setDepth(this.#depth + 1);
      if (this.#running === null) this.#next();
    });
  }

  /** Refuse new flows and drop the waiting ones (the running one finishes). */
  close(): void {
    this.#closed = true;
    for (const q of this.#queues.values()) {
      for (const e of q) {
        e.detach();
        e.reject(new QueueRejection('closed', 'the attestor is shutting down'));
      }
    }
    this.#queues.clear();
    this.#ring = [];
    this.#setDepth(0);
  }

  #drop(key: QueueKey, entry: Entry): void {
    const q = this.#queues.get(key);
    const i = q?.indexOf(entry) ?? -1;
    if (!q || i < 0) return;
    q.splice(i, 1);
    if (q.length === 0) {
      this.#queues.delete(key);
      this.#ring = this.#ring.filter((k) => k !== key);
    }
    this.#setDepth(this.#depth - 1);
    this.opts.onReject?.('cancelled');
    entry.reject(new QueueRejection('cancelled', 'the call was cancelled before it reached the TPM'));
  }

  #finished(key: QueueKey): void {
    this.#running = null;
    // The caller just served goes behind everyone already waiting.
    if (key !== BACKGROUND && (this.#queues.get(key)?.length ?? 0) > 0) this.#ring.push(key);
    this.#next();
  }

  #next(): void {
    const key = this.#ring.shift() ?? ((this.#queues.get(BACKGROUND)?.length ?? 0) > 0 ? BACKGROUND : undefined);
    if (key === undefined) return;
    const q = this.#queues.get(key) as Entry[];
    const entry = q.shift() as Entry;
    if (q.length === 0) this.#queues.delete(key);
    this.#running = key;
    this.#setDepth(this.#depth - 1);
    entry.start();
  }

  #setDepth(d: number): void {
    if (d === this.#depth) return;
    this.#depth = d;
    this.opts.onDepth?.(d);
  }
}

