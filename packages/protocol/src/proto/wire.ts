// A strict pre-check of protobuf wire bytes before they reach google-protobuf.
//
// google-protobuf 3.21's BinaryReader trusts length prefixes: a 40-byte message whose nested
// length points far past the end makes it spin for seconds (an easy denial of service on a
// server, or on a verifier talking to a hostile attestor). Every length, varint and fixed field
// is bounds-checked here first, nested messages are checked against their schema, and groups
// (unused by proto3) are refused.

/** Protobuf wire types (encoding guide): VARINT, I64, LEN, I32. Groups (3, 4) are refused. */
export type WireType = 0 | 1 | 2 | 5;

/** Expected wire type of each known field; `message` makes a LEN field a nested message. */
export interface WireSchema {
  readonly [field: number]: WireField;
}

/** One known field: its wire type; `message` makes a LEN field a nested message; `string` names a proto3 string field, whose bytes must be UTF-8. */
export interface WireField {
  readonly wireType: WireType;
  readonly message?: WireSchema;
  readonly string?: string;
}

/** Bytes that are not a well-formed protobuf message of the expected shape. */
export class WireFormatError extends Error {
  override readonly name = 'WireFormatError';
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}

const MAX_DEPTH = 16;

/** Throws WireFormatError unless `bytes` is a well-formed message for `schema`. */
export function checkWire(bytes: Uint8Array, schema: WireSchema, path: string): void {
  walk(bytes, 0, bytes.length, schema, path, 0);
}

function walk(b: Uint8Array, start: number, end: number, schema: WireSchema, path: string, depth: number): void {
  if (depth > MAX_DEPTH) throw new WireFormatError(path, 'messages nested too deeply');
  let pos = start;
  while (pos < end) {
    const [tag, afterTag] = readVarint(b, pos, end, path);
    pos = afterTag;
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    const fieldPath = `${path}.${field}`;
    if (field < 1 || field > 0x1fffffff) throw new WireFormatError(path, `invalid field number ${field}`);
    const known = schema[field];
    if (known !== undefined && known.wireType !== wireType) {
      throw new WireFormatError(fieldPath, `wire type ${wireType}, expected ${known.wireType}`);
    }
    switch (wireType) {
      case 0:
        pos = readVarint(b, pos, end, fieldPath)[1];
        break;
      case 1:
        if (end - pos < 8) throw new WireFormatError(fieldPath, 'truncated fixed64');
        pos += 8;
        break;
      case 5:
        if (end - pos < 4) throw new WireFormatError(fieldPath, 'truncated fixed32');
        pos += 4;
        break;
      case 2: {
        const [len, afterLen] = readVarint(b, pos, end, fieldPath);
        if (len > end - afterLen) throw new WireFormatError(fieldPath, 'length runs past the end of the message');
        if (known?.message !== undefined) walk(b, afterLen, afterLen + len, known.message, fieldPath, depth + 1);
        // google-protobuf silently drops bytes that are not UTF-8 (a uid of 0xff bytes would arrive as "").
        if (known?.string !== undefined) checkUtf8(b.subarray(afterLen, afterLen + len), `${path}.${known.string}`);
        pos = afterLen + len;
        break;
      }
      default:
        throw new WireFormatError(fieldPath, `unsupported wire type ${wireType}`);
    }
  }
}

/** A varint of at most 10 bytes, returned as a number (exact up to 2^53; larger only matters as "too large"). */
function readVarint(b: Uint8Array, pos: number, end: number, path: string): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new WireFormatError(path, 'truncated varint');
    const byte = b[pos++] as number;
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if ((byte & 0x80) === 0) return [value, pos];
  }
  throw new WireFormatError(path, 'varint longer than 10 bytes');
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function checkUtf8(bytes: Uint8Array, name: string): void {
  try {
    UTF8.decode(bytes);
  } catch {
    throw new WireFormatError(name, `not valid UTF-8 (a proto3 string field of ${bytes.length} bytes)`);
  }
}

/** A schema whose fields are all bytes (no string field to check for UTF-8). */
export function lenFields(...fields: number[]): WireSchema {
  return stringAndBytesFields({}, ...fields);
}

/**
 * A schema whose fields are all strings/bytes: `strings` maps a string field's number to its name
 * (its bytes must be UTF-8, reported by that name), `bytes` lists the bytes fields.
 */
export function stringAndBytesFields(strings: Readonly<Record<number, string>>, ...bytes: number[]): WireSchema {
  const schema: Record<number, WireField> = {};
  for (const f of bytes) schema[f] = { wireType: 2 };
  for (const [f, name] of Object.entries(strings)) schema[Number(f)] = { wireType: 2, string: name };
  return schema;
}
