/**
 * Layer 2 (types): the codec combinators themselves. TPM2B values keep the exact bytes received
 * (`sized` + `rawBytes`) and decoded values are frozen; tagged unions reject unknown selectors with a
 * TpmDecodeError naming the type; counted lists are bounded before anything is allocated; encode
 * errors name the field path.
 */
import assert from 'node:assert/strict';
import {
  TpmDecodeError, TpmEncodeError, fromHex, toHex, marshal, unmarshal, unmarshalExact, rawBytes, concatBytes, ekTemplateRsa2048, struct, tagged, tpm2b, sized, sizedOrEmpty,
  list, fixedBytes, yesNo, u8, u16, u32, u64, bytes32, mapped, lazy, empty, Reader,
  TPM2B_PUBLIC, TPMT_PUBLIC, TPMS_CAPABILITY_DATA, TPMT_SIGNATURE, TPMS_ATTEST, TPM_ALG, TPMA_OBJECT,
  type TPMT_PUBLIC as TPMT_PUBLIC_T,
} from '../src/index.js';

function decodeError(fn: () => unknown, message?: RegExp): TpmDecodeError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof TpmDecodeError, `expected TpmDecodeError, got ${String(caught)}`);
  if (message) assert.match(caught.message, message);
  return caught;
}

const Point = struct('POINT', { x: u16, y: u16 });
const SizedPoint = sized('TPM2B_POINT', Point);

function keyedHashPublic(): TPMT_PUBLIC_T {
  return {
    type: TPM_ALG.KEYEDHASH, nameAlg: TPM_ALG.SHA256, objectAttributes: TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.userWithAuth,
    authPolicy: new Uint8Array(0), parameters: { scheme: { scheme: TPM_ALG.NULL } }, unique: new Uint8Array(32).fill(0x5a),
  };
}

describe('codec: primitives and TPM2B byte buffers', () => {
  it('integers round trip; u64 is a bigint', () => {
    assert.equal(toHex(marshal(u64, 0x0102030405060708n)), '0102030405060708');
    assert.equal(unmarshal(u64, fromHex('ffffffffffffffff')), 0xffffffffffffffffn);
    assert.equal(unmarshal(u32, fromHex('81010001')), 0x81010001);
  });

  it('unmarshal rejects trailing bytes, naming the type', () => {
    decodeError(() => unmarshal(u16, fromHex('000102')), /trailing byte.*UINT16/);
  });

  it('TPMI_YES_NO accepts only 0 and 1', () => {
    assert.equal(unmarshal(yesNo, fromHex('01')), true);
    assert.equal(unmarshal(yesNo, fromHex('00')), false);
    decodeError(() => unmarshal(yesNo, fromHex('02')), /TPMI_YES_NO must be 0 or 1/);
  });

  it('fixedBytes insists on its length', () => {
    const c = fixedBytes('TPMU_HA', 4);
    assert.deepEqual(unmarshal(c, fromHex('01020304')), fromHex('01020304'));
    assert.throws(() => marshal(c, fromHex('01')), TpmEncodeError);
    decodeError(() => unmarshal(c, fromHex('010203')), /truncated/);
  });

  it('tpm2b: size || bytes, the decoded value is exactly the bytes received', () => {
    const c = tpm2b('TPM2B_TEST', 4);
    assert.equal(toHex(marshal(c, fromHex('aabb'))), '0002aabb');
    assert.deepEqual(unmarshal(c, fromHex('0003010203')), fromHex('010203'));
    assert.deepEqual(unmarshal(c, fromHex('0000')), new Uint8Array(0));
    assert.equal(c.isTpm2b, true);
  });

  it('tpm2b: a size above the maximum is a decode error before reading the data', () => {
    const c = tpm2b('TPM2B_TEST', 4);
    const e = decodeError(() => unmarshal(c, fromHex('0005 0102030405')), /TPM2B_TEST\.size 5 exceeds its maximum 4/);
    assert.equal(e.offset, 2);
    assert.throws(() => marshal(c, new Uint8Array(5)), /at most 4 allowed/);
    assert.throws(() => marshal(c, 'ab' as unknown as Uint8Array), TpmEncodeError);
  });

  it('tpm2b: a size beyond the input is a truncation error (no short read)', () => {
    decodeError(() => unmarshal(tpm2b('TPM2B_TEST'), fromHex('0010 0102')), /truncated input: TPM2B_TEST needs 16 byte\(s\), 2 left/);
  });

  it('bytes32: u32 count', () => {
    const c = bytes32('BLOB', 8);
    assert.equal(toHex(marshal(c, fromHex('ff'))), '00000001ff');
    decodeError(() => unmarshal(c, fromHex('ffffffff')), /exceeds its maximum 8/);
  });

  it('mapped, lazy and empty', () => {
    const asHex = mapped('HEX', tpm2b('B'), (b) => toHex(b), (s: string) => fromHex(s));
    assert.equal(unmarshal(asHex, fromHex('0002beef')), 'beef');
    assert.equal(toHex(marshal(asHex, 'cafe')), '0002cafe');
    const l = lazy('LAZY', () => u16);
    assert.equal(unmarshal(l, fromHex('0102')), 0x0102);
    assert.deepEqual(unmarshal(empty, new Uint8Array(0)), {});
    assert.equal(marshal(empty, {}).length, 0);
  });
});

describe('codec: sized structures keep the exact bytes received', () => {
  it('rawBytes is the body without its size, and re-encoding reproduces the input', () => {
    const input = fromHex('0004 0001 0002');
    const v = unmarshal(SizedPoint, input);
    assert.deepEqual({ ...v }, { x: 1, y: 2 });
    assert.equal(toHex(rawBytes(v)!), '00010002');
    assert.deepEqual(marshal(SizedPoint, v), input);
  });

  it('a value built in code has no rawBytes and is encoded from its fields', () => {
    assert.equal(rawBytes({ x: 1, y: 2 }), undefined);
    assert.equal(toHex(marshal(SizedPoint, { x: 3, y: 4 })), '000400030004');
  });

  it('decoded values are frozen, deeply (the remembered bytes cannot go stale)', () => {
    const pub = unmarshal(TPM2B_PUBLIC, marshal(TPM2B_PUBLIC, keyedHashPublic()));
    assert.ok(Object.isFrozen(pub));
    assert.ok(pub.type === TPM_ALG.KEYEDHASH);
    assert.ok(Object.isFrozen(pub.parameters));
    assert.ok(Object.isFrozen(pub.parameters.scheme));
    assert.equal(Reflect.set(pub, 'nameAlg', TPM_ALG.SHA1), false, 'a frozen value refuses writes');
    assert.equal(Reflect.set(pub.parameters.scheme, 'scheme', TPM_ALG.HMAC), false);
    assert.equal(pub.nameAlg, TPM_ALG.SHA256);
  });

  it('a spread copy drops the remembered bytes, so changes are encoded', () => {
    const pub = unmarshal(TPM2B_PUBLIC, marshal(TPM2B_PUBLIC, keyedHashPublic()));
    const changed = { ...pub, nameAlg: TPM_ALG.SHA384 } as TPMT_PUBLIC_T;
    assert.equal(rawBytes(changed), undefined);
    const again = unmarshal(TPM2B_PUBLIC, marshal(TPM2B_PUBLIC, changed));
    assert.equal(again.nameAlg, TPM_ALG.SHA384);
  });

  it('the exact received bytes win even over a non-canonical encoding', () => {
    // An inner codec that accepts two spellings of the same value (as a lenient decoder might):
    // re-encoding must give back what was received, not the canonical form.
    const lenient = mapped('LENIENT', u8, (b) => (b === 0xff ? 1 : b), (n: number) => n);
    const S = sized('TPM2B_LENIENT', struct('LENIENT_S', { v: lenient }));
    const v = unmarshal(S, fromHex('0001ff'));
    assert.equal(v.v, 1);
    assert.equal(toHex(marshal(S, v)), '0001ff');
    assert.equal(toHex(marshal(S, { v: 1 })), '000101');
  });

  it('rawBytes survives nesting and is a copy of the input', () => {
    const Outer = struct('OUTER', { a: u8, p: SizedPoint });
    const input = fromHex('07 0004 00050006');
    const v = unmarshal(Outer, input);
    const raw = rawBytes(v.p)!;
    assert.equal(toHex(raw), '00050006');
    input[3] = 0xee;
    assert.equal(toHex(rawBytes(v.p)!), '00050006');
  });

  it('an empty sized structure is an error; sizedOrEmpty decodes it as null', () => {
    decodeError(() => unmarshal(SizedPoint, fromHex('0000')), /TPM2B_POINT is empty/);
    const OrEmpty = sizedOrEmpty('TPM2B_POINT', Point);
    assert.equal(unmarshal(OrEmpty, fromHex('0000')), null);
    assert.equal(toHex(marshal(OrEmpty, null)), '0000');
    assert.deepEqual({ ...unmarshal(OrEmpty, fromHex('0004 00010002')) }, { x: 1, y: 2 });
  });

  it('a size that disagrees with the structure is a decode error either way', () => {
    decodeError(() => unmarshal(SizedPoint, fromHex('0005 0001000203')), /trailing byte.*TPM2B_POINT/);
    const e = decodeError(() => unmarshal(SizedPoint, fromHex('0003 000100 02')), /truncated/);
    assert.equal(e.offset, 4, 'the inner read fails at the end of the window, offset absolute');
  });
});

describe('codec: structures, lists and tagged unions', () => {
  it('struct encode errors name the field path', () => {
    assert.throws(() => marshal(Point, { x: 1 } as never), /POINT\.y is missing/);
    const pub = keyedHashPublic();
    const bad = { ...pub, type: TPM_ALG.RSA, parameters: { symmetric: { algorithm: TPM_ALG.NULL }, scheme: { scheme: TPM_ALG.NULL }, keyBits: 70000, exponent: 0 } };
    assert.throws(() => marshal(TPMT_PUBLIC, bad as never), (e: Error) => {
      assert.ok(e instanceof TpmEncodeError);
      assert.match(e.message, /TPMT_PUBLIC\.parameters: TPMS_RSA_PARMS\.keyBits: UINT16 out of range: 70000/);
      return true;
    });
  });

  it('lists: count || items, with the count bounded before allocation', () => {
    const L = list('TPML_TEST', u16, { maxCount: 3 });
    assert.equal(toHex(marshal(L, [1, 2])), '0000000200010002');
    assert.deepEqual(unmarshal(L, fromHex('00000000')), []);
    const e = decodeError(() => unmarshal(L, fromHex('ffffffff')), /TPML_TEST\.count 4294967295 exceeds its maximum 3/);
    assert.equal(e.offset, 4);
    assert.throws(() => marshal(L, [1, 2, 3, 4]), /at most 3 allowed/);
    decodeError(() => unmarshal(L, fromHex('00000002 0001')), /truncated/);
    const L8 = list('TPML_U8', u16, { count: u8 });
    assert.equal(toHex(marshal(L8, [7])), '010007');
  });

  it('tagged: the tag selects the variant, and the variant decides the layout', () => {
    const T = tagged('TPMT_TEST', { prefix: { magic: u8 }, tag: 'kind', common: { c: u8 }, variants: { 1: { a: u16 }, 2: { b: u32 }, 3: {} } });
    assert.equal(toHex(marshal(T, { magic: 9, kind: 1, c: 5, a: 0x1234 })), '09000105' + '1234');
    assert.deepEqual(unmarshal(T, fromHex('09 0002 05 00000007')), { magic: 9, kind: 2, c: 5, b: 7 });
    assert.deepEqual(unmarshal(T, fromHex('09 0003 05')), { magic: 9, kind: 3, c: 5 });
  });

  it('tagged: an unknown selector is a TpmDecodeError naming the type, the tag and its offset', () => {
    const T = tagged('TPMT_TEST', { prefix: { magic: u8 }, tag: 'kind', variants: { 1: { a: u16 } } });
    const e = decodeError(() => unmarshal(T, fromHex('09 0042 0000')), /TPMT_TEST\.kind 0x0042 is unknown or unsupported/);
    assert.equal(e.offset, 1);
    assert.equal(e.expected, 'TPMT_TEST');
    assert.throws(() => marshal(T, { magic: 1, kind: 0x42 } as never), (err: Error) => err instanceof TpmEncodeError && /TPMT_TEST\.kind 0x0042 is not supported/.test(err.message));
  });

  it('tagged: the real unions reject unknown selectors, naming themselves', () => {
    decodeError(() => unmarshal(TPMT_PUBLIC, fromHex('0099 000b')), /TPMT_PUBLIC\.type 0x0099/);
    decodeError(() => unmarshal(TPMT_SIGNATURE, fromHex('0001')), /TPMT_SIGNATURE\.sigAlg 0x0001/);
    decodeError(() => unmarshal(TPMS_CAPABILITY_DATA, fromHex('00000063')), /TPMS_CAPABILITY_DATA\.capability 0x0063/);
    const e = decodeError(() => unmarshal(TPMS_ATTEST, fromHex('ff544347 1234')), /TPMS_ATTEST\.type 0x1234/);
    assert.equal(e.offset, 4);
  });

  it('Reader base offsets carry into codec errors', () => {
    const r = new Reader(fromHex('0000'), 40);
    const e = decodeError(() => SizedPoint.decode(r));
    assert.equal(e.offset, 42);
  });
});

describe('unmarshalExact', () => {
  it('decodes a bare structure, keeps its exact bytes and freezes it; trailing bytes are a decode error', () => {
    const pub = ekTemplateRsa2048();
    const bytes = marshal(TPMT_PUBLIC, pub);
    const v = unmarshalExact(TPMT_PUBLIC, bytes);
    assert.deepEqual(rawBytes(v), bytes);
    assert.ok(Object.isFrozen(v));
    assert.deepEqual(marshal(TPM2B_PUBLIC, v).subarray(2), bytes, 'a sized encoding reuses the kept bytes');
    assert.throws(() => unmarshalExact(TPMT_PUBLIC, concatBytes(bytes, Uint8Array.of(0))), TpmDecodeError);
    assert.throws(() => unmarshalExact(TPMT_PUBLIC, bytes.subarray(0, 10)), TpmDecodeError);
  });

  it('of a TPM2B structure (found by scripts/fuzz.ts: it threw "TypeError: Cannot redefine property"): the sized value, with the bytes inside the size', () => {
    const bytes = marshal(TPMT_PUBLIC, ekTemplateRsa2048());
    const v = unmarshalExact(TPM2B_PUBLIC, marshal(TPM2B_PUBLIC, ekTemplateRsa2048()));
    assert.deepEqual(rawBytes(v), bytes);
    assert.throws(() => unmarshalExact(TPM2B_PUBLIC, Uint8Array.of(0, 0)), TpmDecodeError);
  });
});
