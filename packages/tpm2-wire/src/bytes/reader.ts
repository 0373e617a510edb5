import { TpmDecodeError } from './errors.js';

/**
 * Big-endian reader over a Uint8Array (TPM 2.0 Part 1, "canonical" byte order).
 * Every read is bounds-checked: running past the end throws TpmDecodeError with
 * the offset, never a RangeError or a short read.
 */
export class Reader {
  private pos: number;
  private readonly end: number;
  private readonly view: DataView;
  readonly bytes: Uint8Array;

  /** `base` is added to offsets in error messages (the position of `bytes` inside a larger buffer). */
  constructor(
    bytes: Uint8Array,
    readonly base = 0,
  ) {
    // A Node Buffer's slice() is a view, not a copy: read through a plain Uint8Array so decoded
    // bytes are always fresh Uint8Array copies, whatever the caller passed in.
    this.bytes = Object.getPrototypeOf(bytes) === Uint8Array.prototype ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
    this.end = bytes.length;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Current position within `bytes`. */
  get offset(): number {
    return this.pos;
  }
  /** Bytes left to read. */
  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, what: string): number {
    if (n > this.end - this.pos) {
      throw new TpmDecodeError(
        `truncated input: ${what} needs ${n} byte(s), ${this.end - this.pos} left`,
        this.base + this.pos,
        what,
      );
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8(what = 'UINT8'): number {
    return this.view.getUint8(this.need(1, what));
  }
  u16(what = 'UINT16'): number {
    return this.view.getUint16(this.need(2, what));
  }
  u32(what = 'UINT32'): number {
    return this.view.getUint32(this.need(4, what));
  }
  i32(what = 'INT32'): number {
    return this.view.getInt32(this.need(4, what));
  }
  u64(what = 'UINT64'): bigint {
    return this.view.getBigUint64(this.need(8, what));
  }
  /** Little-endian u16/u32 (the TCG event log is little-endian). */
  u16le(what = 'UINT16 (LE)'): number {
    return this.view.getUint16(this.need(2, what), true);
  }
  u32le(what = 'UINT32 (LE)'): number {
    return this.view.getUint32(this.need(4, what), true);
  }
  u64le(what = 'UINT64 (LE)'): bigint {
    return this.view.getBigUint64(this.need(8, what), true);
  }

  /** `n` bytes as a copy (the result never aliases the input). */
  bytesN(n: number, what = 'BYTE[]'): Uint8Array {
    if (!Number.isInteger(n) || n < 0) throw new TpmDecodeError(`invalid length ${n} for ${what}`, this.base + this.pos, what);
    const at = this.need(n, what);
    return this.bytes.slice(at, at + n);
  }

  /** A sub-reader over the next `n` bytes; offsets in its errors stay absolute. */
  sub(n: number, what = 'sized structure'): Reader {
    const at = this.need(n, what);
    return new Reader(this.bytes.subarray(at, at + n), this.base + at);
  }

  /** All remaining bytes (copied). */
  rest(): Uint8Array {
    return this.bytesN(this.remaining, 'remaining bytes');
  }

  /** Throws unless the input was consumed exactly. */
  done(what = 'structure'): void {
    if (this.pos !== this.end) {
      throw new TpmDecodeError(`${this.end - this.pos} unexpected trailing byte(s) after ${what}`, this.base + this.pos, what);
    }
  }

  /** A decode error at the current position. */
  fail(message: string, what?: string): never {
    throw new TpmDecodeError(message, this.base + this.pos, what);
  }
}
