/**
 * Layer 1 (bytes): the Reader never reads past its end (every overrun is a TpmDecodeError with an
 * offset, never a RangeError or a short read); the Writer rejects out-of-range values with
 * TpmEncodeError; hex helpers.
 */
import assert from 'node:assert/strict';
import {
  Reader, Writer, TpmDecodeError, TpmEncodeError, toHex, fromHex, concatBytes, bytesEqual, constantTimeEqual, u16be, u32be, utf8,
} from '../src/index.js';

function decodeError(fn: () => unknown, offset?: number, expected?: string | RegExp): TpmDecodeError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof TpmDecodeError, `expected TpmDecodeError, got ${String(caught)}`);
  if (offset !== undefined) assert.equal(caught.offset, offset);
  if (typeof expected === 'string') assert.equal(caught.expected, expected);
  if (expected instanceof RegExp) assert.match(caught.message, expected);
  return caught;
}

describe('bytes: Reader', () => {
  it('reads big-endian integers, 64-bit as bigint', () => {
    const r = new Reader(fromHex('01 0203 04050607 ffffffffffffffff fffffffe'));
    assert.equal(r.u8(), 1);
    assert.equal(r.u16(), 0x0203);
    assert.equal(r.u32(), 0x04050607);
    assert.equal(r.u64(), 0xffffffffffffffffn);
    assert.equal(r.i32(), -2);
    assert.equal(r.remaining, 0);
    r.done();
  });

  it('reads little-endian integers (event log)', () => {
    const r = new Reader(fromHex('0201 04030201 0807060504030201'));
    assert.equal(r.u16le(), 0x0102);
    assert.equal(r.u32le(), 0x01020304);
    assert.equal(r.u64le(), 0x0102030405060708n);
  });

  it('keeps full 64-bit precision (no 32-bit shifts)', () => {
    const r = new Reader(fromHex('0000000100000002'));
    assert.equal(r.u64(), 0x100000002n);
  });

  for (const [what, n, read] of [
    ['u8', 0, (r: Reader) => r.u8()],
    ['u16', 1, (r: Reader) => r.u16()],
    ['u32', 3, (r: Reader) => r.u32()],
    ['i32', 3, (r: Reader) => r.i32()],
    ['u64', 7, (r: Reader) => r.u64()],
    ['u16le', 1, (r: Reader) => r.u16le()],
    ['u32le', 3, (r: Reader) => r.u32le()],
    ['u64le', 7, (r: Reader) => r.u64le()],
  ] as const) {
    it(`${what} past the end throws TpmDecodeError, not RangeError`, () => {
      const r = new Reader(new Uint8Array(n));
      const e = decodeError(() => read(r), 0);
      assert.match(e.message, /truncated input/);
      assert.match(e.message, /at byte offset 0/);
      assert.equal(r.offset, 0, 'a failed read does not move the position');
    });
  }

  it('bytesN past the end throws (no short read), names what it read', () => {
    const r = new Reader(fromHex('0102030405'));
    r.u8();
    decodeError(() => r.bytesN(5, 'TPM2B_DIGEST'), 1, 'TPM2B_DIGEST');
    assert.deepEqual(r.bytesN(4), fromHex('02030405'));
  });

  it('bytesN rejects negative and fractional lengths', () => {
    const r = new Reader(new Uint8Array(8));
    decodeError(() => r.bytesN(-1));
    decodeError(() => r.bytesN(1.5));
    decodeError(() => r.bytesN(Number.NaN));
  });

  it('bytesN returns a copy that does not alias the input', () => {
    const input = fromHex('aabbcc');
    const got = new Reader(input).bytesN(3);
    got[0] = 0;
    assert.equal(input[0], 0xaa);
  });

  it('decodes from a Node Buffer into plain Uint8Array copies (Buffer#slice would alias)', () => {
    const input = Buffer.from('aabbccdd', 'hex');
    const r = new Reader(input);
    const got = r.bytesN(2);
    const sub = r.sub(2).rest();
    assert.equal(Object.getPrototypeOf(got), Uint8Array.prototype);
    assert.equal(Object.getPrototypeOf(sub), Uint8Array.prototype);
    input[0] = 0;
    input[2] = 0;
    assert.equal(toHex(got), 'aabb');
    assert.equal(toHex(sub), 'ccdd');
  });

  it('sub-readers keep absolute offsets and cannot read beyond their window', () => {
    const r = new Reader(fromHex('00 11 2222 33'), 100);
    r.u8();
    const sub = r.sub(3, 'window');
    assert.equal(sub.u8(), 0x11);
    const e = decodeError(() => sub.u32(), 102);
    assert.match(e.message, /at byte offset 102/);
    assert.equal(r.u8(), 0x33, 'the parent continued after the window');
    decodeError(() => r.sub(1), 105);
  });

  it('done() rejects trailing bytes with their offset', () => {
    const r = new Reader(fromHex('0102'));
    r.u8();
    const e = decodeError(() => r.done('TPMT_PUBLIC'), 1, 'TPMT_PUBLIC');
    assert.match(e.message, /1 unexpected trailing byte/);
  });

  it('works on a subarray view with a non-zero byteOffset', () => {
    const backing = fromHex('ffff 00000007 ffff');
    const r = new Reader(backing.subarray(2, 6));
    assert.equal(r.u32(), 7);
    decodeError(() => r.u8(), 4);
  });

  it('rest() and fail()', () => {
    const r = new Reader(fromHex('010203'));
    r.u8();
    assert.deepEqual(r.rest(), fromHex('0203'));
    decodeError(() => r.fail('bad thing', 'X'), 3, 'X');
  });
});

describe('bytes: Writer', () => {
  it('writes big- and little-endian values and grows as needed', () => {
    const w = new Writer(1);
    w.u8(1).u16(0x0203).u32(0x04050607).u64(0x08090a0b0c0d0e0fn).i32(-1).u16le(0x0102).u32le(0x01020304).u64le(1n);
    w.bytes(new Uint8Array(300).fill(7));
    const out = w.finish();
    assert.equal(out.length, 1 + 2 + 4 + 8 + 4 + 2 + 4 + 8 + 300);
    assert.equal(toHex(out.subarray(0, 33)), '0102030405060708090a0b0c0d0e0fffffffff020104030201' + '0100000000000000');
    assert.equal(w.length, out.length);
  });

  for (const [what, fn] of [
    ['u8(256)', (w: Writer) => w.u8(256)],
    ['u8(-1)', (w: Writer) => w.u8(-1)],
    ['u8(1.5)', (w: Writer) => w.u8(1.5)],
    ['u16(0x10000)', (w: Writer) => w.u16(0x10000)],
    ['u32(2**32)', (w: Writer) => w.u32(2 ** 32)],
    ['u32(NaN)', (w: Writer) => w.u32(Number.NaN)],
    ['i32(2**31)', (w: Writer) => w.i32(2 ** 31)],
    ['u64(-1n)', (w: Writer) => w.u64(-1n)],
    ['u64(2n**64n)', (w: Writer) => w.u64(2n ** 64n)],
    ['u64(number)', (w: Writer) => w.u64(1 as unknown as bigint)],
    ['u16le(-1)', (w: Writer) => w.u16le(-1)],
    ['u64le(2n**64n)', (w: Writer) => w.u64le(2n ** 64n)],
  ] as const) {
    it(`${what} throws TpmEncodeError`, () => {
      assert.throws(() => fn(new Writer()), TpmEncodeError);
    });
  }

  it('patches size fields written earlier', () => {
    const w = new Writer();
    w.u16(0).u32(0).bytes(fromHex('aabb'));
    w.patchU16(0, 0xbeef);
    w.patchU32(2, 6);
    assert.equal(toHex(w.finish()), 'beef00000006aabb');
    assert.throws(() => w.patchU16(0, 0x10000), TpmEncodeError);
  });

  it('finish() returns a copy', () => {
    const w = new Writer();
    w.u8(1);
    const a = w.finish();
    w.u8(2);
    assert.equal(a.length, 1);
    assert.equal(w.finish().length, 2);
  });
});

describe('bytes: helpers', () => {
  it('hex round trip, whitespace ignored, bad input rejected', () => {
    assert.equal(toHex(fromHex('00 0a FF\n10')), '000aff10');
    assert.equal(toHex(new Uint8Array(0)), '');
    assert.throws(() => fromHex('abc'), /not a hex string/);
    assert.throws(() => fromHex('zz'), /not a hex string/);
  });

  it('concat, equality, u16be/u32be, utf8', () => {
    assert.deepEqual(concatBytes(fromHex('01'), new Uint8Array(0), fromHex('0203')), fromHex('010203'));
    assert.ok(bytesEqual(fromHex('0102'), fromHex('0102')));
    assert.ok(!bytesEqual(fromHex('0102'), fromHex('0103')));
    assert.ok(!bytesEqual(fromHex('01'), fromHex('0100')));
    assert.ok(constantTimeEqual(fromHex('0102'), fromHex('0102')));
    assert.ok(!constantTimeEqual(fromHex('0102'), fromHex('0100')));
    assert.ok(!constantTimeEqual(fromHex('01'), fromHex('0100')));
    assert.equal(toHex(u16be(0x1234)), '1234');
    assert.equal(toHex(u32be(0x81010001)), '81010001');
    assert.equal(toHex(utf8('é')), 'c3a9');
  });
});
