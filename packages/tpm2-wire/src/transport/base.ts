/**
 * What every transport shares: a queue (one command in flight), a per-command
 * timeout, and retrying the warnings that mean "send it again"
 * (TPM_RC_RETRY, TPM_RC_YIELDED, TPM_RC_TESTING) with exponential back-off.
 */
import { TpmTransportError } from '../errors/index.js';
import { TPM_RC } from '../errors/rc.js';
import type { Transport } from './transport.js';

export interface TransportOptions {
  /** Milliseconds to wait for one response (default 120000: RSA key generation can take over a minute on slow TPMs). */
  timeoutMs?: number;
  /** How many times to resend on RETRY/YIELDED/TESTING (default 20). */
  maxRetries?: number;
  /** Called after every exchange with the command code and its duration (for metrics). */
  onCommand?: (commandCode: number, ms: number, responseCode: number) => void;
}

const RETRYABLE = new Set<number>([TPM_RC.RETRY, TPM_RC.YIELDED, TPM_RC.TESTING]);

/** Response code of a response buffer (0xffffffff if it is too short to say). */
export function responseCode(rsp: Uint8Array): number {
  return rsp.length >= 10 ? new DataView(rsp.buffer, rsp.byteOffset).getUint32(6) : 0xffffffff;
}

/** Size field of a buffered TPM header, or -1 when fewer than 6 bytes are there. */
export function frameSize(buf: Uint8Array): number {
  return buf.length >= 6 ? new DataView(buf.buffer, buf.byteOffset).getUint32(2) : -1;
}

/** Base of the transports: subclasses provide `exchange` (one command, one response) and `shutdown`. */
export abstract class QueuedTransport implements Transport {
  private tail: Promise<unknown> = Promise.resolve();
  protected closed = false;
  protected readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly onCommand: TransportOptions['onCommand'];

  constructor(opts: TransportOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 120_000;
    this.maxRetries = opts.maxRetries ?? 20;
    this.onCommand = opts.onCommand;
  }

  /** Exchange exactly one command for one response (no queueing, no retry). */
  protected abstract exchange(command: Uint8Array): Promise<Uint8Array>;
  protected abstract shutdown(): Promise<void>;

  send(command: Uint8Array): Promise<Uint8Array> {
    if (command.length < 10 || frameSize(command) !== command.length) {
      return Promise.reject(new TpmTransportError(`malformed command: size field does not match its ${command.length} bytes`));
    }
    const run = async () => {
      if (this.closed) throw new TpmTransportError('the TPM connection is closed');
      const cc = new DataView(command.buffer, command.byteOffset).getUint32(6);
      for (let attempt = 0; ; attempt++) {
        const t0 = performance.now();
        const rsp = await this.exchange(command);
        const rc = responseCode(rsp);
        this.onCommand?.(cc, performance.now() - t0, rc);
        if (!RETRYABLE.has(rc) || attempt >= this.maxRetries) return rsp;
        await new Promise((res) => setTimeout(res, Math.min(2 ** attempt, 200)));
      }
    };
    const p = this.tail.then(run, run);
    this.tail = p.catch(() => undefined);
    return p;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail;
    await this.shutdown();
  }
}

/** How long a complete message is, given its first bytes (undefined: more bytes are needed). */
export type FrameLength = (buf: Uint8Array) => number | undefined;

/** A raw TPM response: its header's size field (absurd sizes are an error). */
export const tpmFrame: FrameLength = (b) => {
  const size = frameSize(b);
  if (size < 0) return undefined;
  if (size < 10 || size > 1 << 20) throw new TpmTransportError(`malformed response from the TPM: size field ${size}`);
  return size;
};

/** Exactly `n` bytes (simulator control-channel results). */
export const fixedFrame = (n: number): FrameLength => (b) => (b.length >= n ? n : undefined);

/**
 * Accumulates what a device or socket delivers until `frame` says one whole
 * message is there; bytes beyond it are an error (one command in flight).
 */
export class MessageBuffer {
  private buf: Uint8Array = new Uint8Array(0);

  constructor(private readonly frame: FrameLength) {}

  /** Bytes received so far for the current message. */
  get length(): number {
    return this.buf.length;
  }

  /** Add a chunk; returns the complete message once there (and starts over), else undefined. */
  push(chunk: Uint8Array, from = 'the TPM'): Uint8Array | undefined {
    const next = new Uint8Array(this.buf.length + chunk.length);
    next.set(this.buf);
    next.set(chunk, this.buf.length);
    this.buf = next;
    const n = this.frame(next);
    if (n === undefined || next.length < n) return undefined;
    this.buf = new Uint8Array(0);
    if (next.length > n) throw new TpmTransportError(`${from} sent ${next.length - n} byte(s) more than one message`);
    return next;
  }

  reset(): void {
    this.buf = new Uint8Array(0);
  }
}
