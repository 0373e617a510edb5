import { TpmEncodeError } from './errors.js';

/** Growable big-endian writer producing a Uint8Array. */
export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private len = 0;

  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
    this.view = new DataView(this.buf.buffer);
  }

  get length(): number {
    return this.len;
  }

  private grow(n: number): number {
    const need = this.len + n;
    if (need > this.buf.length) {
      let size = this.buf.length * 2;
      while (size < need) size *= 2;
      const next = new Uint8Array(size);
      next.set(this.buf.subarray(0, this.len));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.len;
    this.len = need;
    return at;
  }

  private static check(v: number, max: number, what: string): void {
    if (!Number.isInteger(v) || v < 0 || v > max) throw new TpmEncodeError(`${what} out of range: ${v}`);
  }

  u8(v: number): this {
    Writer.check(v, 0xff, 'UINT8');
    const at = this.grow(1);
    this.view.setUint8(at, v);
    return this;
  }
  u16(v: number): this {
    Writer.check(v, 0xffff, 'UINT16');
    const at = this.grow(2);
    this.view.setUint16(at, v);
    return this;
  }
  u32(v: number): this {
    Writer.check(v, 0xffffffff, 'UINT32');
    const at = this.grow(4);
    this.view.setUint32(at, v);
    return this;
  }
  i32(v: number): this {
    if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) throw new TpmEncodeError(`INT32 out of range: ${v}`);
    const at = this.grow(4);
    this.view.setInt32(at, v);
    return this;
  }
  u64(v: bigint): this {
    if (typeof v !== 'bigint' || v < 0n || v > 0xffffffffffffffffn) throw new TpmEncodeError(`UINT64 out of range: ${String(v)}`);
    const at = this.grow(8);
    this.view.setBigUint64(at, v);
    return this;
  }
  u16le(v: number): this {
    Writer.check(v, 0xffff, 'UINT16');
    const at = this.grow(2);
    this.view.setUint16(at, v, true);
    return this;
  }
  u32le(v: number): this {
    Writer.check(v, 0xffffffff, 'UINT32');
    const at = this.grow(4);
    this.view.setUint32(at, v, true);
    return this;
  }
  u64le(v: bigint): this {
    if (typeof v !== 'bigint' || v < 0n || v > 0xffffffffffffffffn) throw new TpmEncodeError(`UINT64 out of range: ${String(v)}`);
    const at = this.grow(8);
    this.view.setBigUint64(at, v, true);
    return this;
  }
  bytes(b: Uint8Array): this {
    const at = this.grow(b.length);
    this.buf.set(b, at);
    return this;
  }
  /** Overwrite a big-endian u16/u32 already written at `at` (for size fields filled in afterwards). */
  patchU16(at: number, v: number): void {
    Writer.check(v, 0xffff, 'UINT16');
    this.view.setUint16(at, v);
  }
  patchU32(at: number, v: number): void {
    Writer.check(v, 0xffffffff, 'UINT32');
    this.view.setUint32(at, v);
  }

  /** The bytes written so far (a copy). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}
