/**
 * Declarative codecs: one value describes how a TPM 2.0 structure is encoded,
 * decoded and typed (`Infer<typeof TPMT_PUBLIC>` is the decoded type).
 * Part 2 of the spec ("Structures") is written with these combinators in
 * ./structures.ts; commands (../commands) use them for parameters too.
 */
import { Reader } from '../bytes/reader.js';
import { Writer } from '../bytes/writer.js';
import { TpmDecodeError, TpmEncodeError } from '../bytes/errors.js';

export interface Codec<T> {
  /** The spec's name for the type (used in error messages). */
  readonly name: string;
  encode(w: Writer, v: T): void;
  decode(r: Reader): T;
  /** True for TPM2B types (size-prefixed): only those can be the encrypted first parameter of a command or response. */
  readonly isTpm2b?: boolean;
}

/** The TypeScript type a codec decodes to. */
export type Infer<C> = C extends Codec<infer T> ? T : never;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Fields = Record<string, Codec<any>>;
export type StructOf<F extends Fields> = { -readonly [K in keyof F]: Infer<F[K]> };
type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** Encode a value to bytes. */
export function marshal<T>(codec: Codec<T>, value: T): Uint8Array {
  const w = new Writer();
  codec.encode(w, value);
  return w.finish();
}

/** Decode bytes that must hold exactly one value (trailing bytes are an error). */
export function unmarshal<T>(codec: Codec<T>, bytes: Uint8Array): T {
  const r = new Reader(bytes);
  const v = codec.decode(r);
  r.done(codec.name);
  return v;
}

// ---- primitives ---------------------------------------------------------

function prim<T>(name: string, encode: (w: Writer, v: T) => void, decode: (r: Reader) => T): Codec<T> {
  return { name, encode, decode };
}

export const u8: Codec<number> = prim('UINT8', (w, v) => w.u8(v), (r) => r.u8());
export const u16: Codec<number> = prim('UINT16', (w, v) => w.u16(v), (r) => r.u16());
export const u32: Codec<number> = prim('UINT32', (w, v) => w.u32(v), (r) => r.u32());
export const i32: Codec<number> = prim('INT32', (w, v) => w.i32(v), (r) => r.i32());
export const u64: Codec<bigint> = prim('UINT64', (w, v) => w.u64(v), (r) => r.u64());

/** A UINT8/16/32 under another (spec) name, e.g. `alias('TPM_ALG_ID', u16)`. */
export function alias<T>(name: string, c: Codec<T>): Codec<T> {
  return { name, encode: c.encode, decode: (r) => c.decode(r) };
}

/** TPMI_YES_NO: a byte that must be 0 or 1. */
export const yesNo: Codec<boolean> = prim(
  'TPMI_YES_NO',
  (w, v) => w.u8(v ? 1 : 0),
  (r) => {
    const v = r.u8('TPMI_YES_NO');
    if (v > 1) r.fail(`TPMI_YES_NO must be 0 or 1, got ${v}`);
    return v === 1;
  },
);

/** Exactly `n` bytes with no size prefix. */
export function fixedBytes(name: string, n: number): Codec<Uint8Array> {
  return prim(
    name,
    (w, v) => {
      if (v.length !== n) throw new TpmEncodeError(`${name} must be ${n} bytes, got ${v.length}`);
      w.bytes(v);
    },
    (r) => r.bytesN(n, name),
  );
}

/** A TPM2B of plain bytes: UINT16 size || bytes. The decoded value is exactly the bytes received. */
export function tpm2b(name: string, maxSize = 0xffff): Codec<Uint8Array> {
  return asTpm2b(prim(
    name,
    (w, v) => {
      if (!(v instanceof Uint8Array)) throw new TpmEncodeError(`${name} must be a Uint8Array`);
      if (v.length > maxSize) throw new TpmEncodeError(`${name} is ${v.length} bytes; at most ${maxSize} allowed`);
      w.u16(v.length).bytes(v);
    },
    (r) => {
      const n = r.u16(`${name}.size`);
      if (n > maxSize) r.fail(`${name}.size ${n} exceeds its maximum ${maxSize}`, name);
      return r.bytesN(n, name);
    },
  ));
}

function asTpm2b<T>(c: Codec<T>): Codec<T> {
  return { ...c, isTpm2b: true };
}

/** Bytes counted by a u32 (used by a few wire formats outside Part 2). */
export function bytes32(name: string, maxSize: number): Codec<Uint8Array> {
  return prim(
    name,
    (w, v) => {
      if (v.length > maxSize) throw new TpmEncodeError(`${name} is ${v.length} bytes; at most ${maxSize} allowed`);
      w.u32(v.length).bytes(v);
    },
    (r) => {
      const n = r.u32(`${name}.size`);
      if (n > maxSize) r.fail(`${name}.size ${n} exceeds its maximum ${maxSize}`, name);
      return r.bytesN(n, name);
    },
  );
}

// ---- exact-bytes memory for sized structures ---------------------------

const RAW = Symbol('tpm2b.raw');

function deepFreeze(v: unknown): void {
  if (v === null || typeof v !== 'object' || ArrayBuffer.isView(v) || Object.isFrozen(v)) return;
  Object.freeze(v);
  for (const x of Object.values(v as object)) deepFreeze(x);
}

/**
 * The exact bytes (without the u16 size) a structure was decoded from, if it
 * came out of a `sized()` codec or `unmarshalExact`; names and hashes are
 * computed over these.
 */
export function rawBytes(value: object): Uint8Array | undefined {
  return (value as { [RAW]?: Uint8Array })[RAW];
}

/** Decode all of `r`, freeze the value and remember the exact bytes (see `rawBytes`). */
function decodeKeepingBytes<T extends object>(name: string, inner: Codec<T>, r: Reader): T {
  const v = inner.decode(r);
  r.done(name);
  // A value of a sized() codec (unmarshalExact of a TPM2B) is frozen and already knows its bytes.
  if (Object.isFrozen(v)) return v;
  Object.defineProperty(v, RAW, { value: r.bytes.slice(), enumerable: false });
  deepFreeze(v);
  return v;
}

function decodeSizedBody<T extends object>(name: string, inner: Codec<T>, r: Reader, n: number): T {
  return decodeKeepingBytes(name, inner, r.sub(n, name));
}

/**
 * Like `unmarshal`, for a structure that arrives without its TPM2B size (a
 * TPMT_PUBLIC in go-attestation JSON or a go-tpm-tools ImportBlob): the value
 * is frozen and keeps its exact bytes, as if it came out of `sized()`.
 */
export function unmarshalExact<T extends object>(codec: Codec<T>, bytes: Uint8Array): T {
  return decodeKeepingBytes(codec.name, codec, new Reader(bytes));
}

function encodeSizedBody<T extends object>(name: string, inner: Codec<T>, w: Writer, v: T): void {
  const raw = rawBytes(v) ?? marshal(inner, v);
  if (raw.length > 0xffff) throw new TpmEncodeError(`${name} is ${raw.length} bytes; at most 65535 allowed`);
  w.u16(raw.length).bytes(raw);
}

/**
 * A TPM2B wrapping a structure: UINT16 size || T. A decoded value is frozen
 * and remembers the exact bytes it came from (see `rawBytes`), which are what
 * is re-encoded, so a value passes through unchanged. Build a new object (e.g.
 * with spread) to change it.
 */
export function sized<T extends object>(name: string, inner: Codec<T>): Codec<T> {
  return {
    name,
    isTpm2b: true,
    encode: (w, v) => encodeSizedBody(name, inner, w, v),
    decode(r) {
      const n = r.u16(`${name}.size`);
      if (n === 0) r.fail(`${name} is empty`, name);
      return decodeSizedBody(name, inner, r, n);
    },
  };
}

/** Like `sized`, but an empty TPM2B (size 0) is `null`. */
export function sizedOrEmpty<T extends object>(name: string, inner: Codec<T>): Codec<T | null> {
  return {
    name,
    isTpm2b: true,
    encode: (w, v) => (v === null ? void w.u16(0) : encodeSizedBody(name, inner, w, v)),
    decode(r) {
      const n = r.u16(`${name}.size`);
      return n === 0 ? null : decodeSizedBody(name, inner, r, n);
    },
  };
}

// ---- composites ----------------------------------------------------------

function encodeFields(name: string, fields: Fields, w: Writer, v: Record<string, unknown>): void {
  for (const k of Object.keys(fields)) {
    if (!(k in v)) throw new TpmEncodeError(`${name}.${k} is missing`);
    try {
      fields[k]!.encode(w, v[k]);
    } catch (e) {
      if (e instanceof TpmEncodeError && !e.message.startsWith(`${name}.`)) throw new TpmEncodeError(`${name}.${k}: ${e.message}`);
      throw e;
    }
  }
}

function decodeFields(fields: Fields, r: Reader, out: Record<string, unknown>): void {
  for (const k of Object.keys(fields)) out[k] = fields[k]!.decode(r);
}

/** A structure codec, exposing its fields (execute() looks at the first one for parameter encryption). */
export interface StructCodec<T> extends Codec<T> {
  readonly fields: Fields;
}

/** A structure: fields in declaration order. */
export function struct<F extends Fields>(name: string, fields: F): StructCodec<Simplify<StructOf<F>>> {
  return {
    name,
    fields,
    encode: (w, v) => encodeFields(name, fields, w, v as Record<string, unknown>),
    decode(r) {
      const out: Record<string, unknown> = {};
      decodeFields(fields, r, out);
      return out as Simplify<StructOf<F>>;
    },
  };
}

/**
 * A counted list (TPML_*): count || item*. `maxCount` bounds the count before
 * anything is allocated, so hostile input cannot make us loop or allocate.
 */
export function list<T>(name: string, item: Codec<T>, opts: { count?: Codec<number>; maxCount?: number } = {}): Codec<T[]> {
  const count = opts.count ?? u32;
  const maxCount = opts.maxCount ?? 1024;
  return {
    name,
    encode(w, v) {
      if (v.length > maxCount) throw new TpmEncodeError(`${name} has ${v.length} entries; at most ${maxCount} allowed`);
      count.encode(w, v.length);
      for (const x of v) item.encode(w, x);
    },
    decode(r) {
      const n = count.decode(r);
      if (n > maxCount) r.fail(`${name}.count ${n} exceeds its maximum ${maxCount}`, name);
      const out: T[] = [];
      for (let i = 0; i < n; i++) out.push(item.decode(r));
      return out;
    },
  };
}

type TaggedOf<Tag extends string, P extends Fields, C extends Fields, V extends Record<number, Fields>> = {
  [K in keyof V & number]: Simplify<StructOf<P> & { -readonly [T in Tag]: K } & StructOf<C> & StructOf<V[K]>>;
}[keyof V & number];

/**
 * A structure containing a union selected by a tag field (TPMT_PUBLIC,
 * TPMS_ATTEST, TPMT_SIGNATURE, TPMT_SYM_DEF, ...). Layout: `prefix` fields,
 * the tag, `common` fields, then the fields of the variant the tag selects.
 * The decoded type is a discriminated union on the tag, so tag and contents
 * cannot disagree.
 */
export function tagged<
  const Tag extends string,
  V extends Record<number, Fields>,
  P extends Fields = Record<never, never>,
  C extends Fields = Record<never, never>,
>(
  name: string,
  def: { prefix?: P; tag: Tag; tagCodec?: Codec<number>; common?: C; variants: V },
): Codec<TaggedOf<Tag, P, C, V>> {
  const tagCodec = def.tagCodec ?? u16;
  const prefix = def.prefix ?? ({} as P);
  const common = def.common ?? ({} as C);
  const variants = def.variants as Record<number, Fields>;
  const hex = (t: number) => `0x${t.toString(16).padStart(4, '0')}`;
  return {
    name,
    encode(w, value) {
      const v = value as Record<string, unknown>;
      const tag = v[def.tag] as number;
      const variant = variants[tag];
      if (variant === undefined) throw new TpmEncodeError(`${name}.${def.tag} ${hex(tag)} is not supported`);
      encodeFields(name, prefix, w, v);
      tagCodec.encode(w, tag);
      encodeFields(name, common, w, v);
      encodeFields(name, variant, w, v);
    },
    decode(r) {
      const out: Record<string, unknown> = {};
      decodeFields(prefix, r, out);
      const at = r.offset;
      const tag = tagCodec.decode(r);
      const variant = variants[tag];
      if (variant === undefined) throw new TpmDecodeError(`${name}.${def.tag} ${hex(tag)} is unknown or unsupported`, r.base + at, name);
      out[def.tag] = tag;
      decodeFields(common, r, out);
      decodeFields(variant, r, out);
      return out as TaggedOf<Tag, P, C, V>;
    },
  };
}

/** A codec computed from another one lazily (for recursive or late-bound definitions). */
export function lazy<T>(name: string, get: () => Codec<T>): Codec<T> {
  return { name, encode: (w, v) => get().encode(w, v), decode: (r) => get().decode(r) };
}

/** A codec that writes and reads nothing (for empty union arms such as TPM_ALG_NULL). */
export const empty: Codec<Record<never, never>> = { name: 'empty', encode() {}, decode: () => ({}) };

/** Map a codec's decoded value (e.g. bytes -> a friendlier shape), both ways. */
export function mapped<A, B>(name: string, c: Codec<A>, to: (a: A, r: Reader) => B, from: (b: B) => A): Codec<B> {
  return { name, encode: (w, v) => c.encode(w, from(v)), decode: (r) => to(c.decode(r), r) };
}
