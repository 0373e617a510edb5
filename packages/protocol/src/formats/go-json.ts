// Go encoding/json semantics for the go-attestation structs (see FORMATS.md "JSON rules"):
// []byte is standard base64 with padding or null, names match case-insensitively, unknown
// fields are ignored, and a trailing newline (Go's Encoder.Encode) is accepted.
import { FormatError } from './errors.js';

/** A decoded JSON value as JSON.parse returns it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
/** A decoded JSON object. */
export type JsonObject = { [key: string]: JsonValue };

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

/** Parses a JSON document (bytes or text); the top level must be an object. */
export function parseJsonObject(input: Uint8Array | string, what: string): JsonObject {
  let text: string;
  if (typeof input === 'string') {
    text = input;
  } else {
    try {
      text = utf8Decoder.decode(input);
    } catch {
      throw new FormatError(what, 'not valid UTF-8');
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new FormatError(what, 'not valid JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new FormatError(what, `expected a JSON object, got ${jsonTypeName(value)}`);
  }
  return value as JsonObject;
}

/** Serialises like Go's json.Encoder.Encode: compact, with a trailing newline. */
export function serializeJson(value: JsonObject): Uint8Array {
  return utf8Encoder.encode(JSON.stringify(value) + '\n');
}

/** The name of a JSON value's type, for error messages. */
export function jsonTypeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'a boolean';
    case 'object':
      return 'an object';
    default:
      return typeof value;
  }
}

/**
 * Go's field lookup: a key matches a field name case-insensitively and, as Go assigns every
 * matching key in document order, the last match wins. Returns undefined when absent.
 */
export function getField(obj: JsonObject, name: string): JsonValue | undefined {
  const lower = name.toLowerCase();
  let found: JsonValue | undefined;
  for (const key of Object.keys(obj)) {
    if (key.toLowerCase() === lower) found = obj[key];
  }
  return found;
}

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/** Standard base64 with padding; Go's decoder also skips CR and LF. */
export function decodeBase64(text: string, field: string): Uint8Array {
  const s = text.replace(/[\r\n]/g, '');
  if (s.length % 4 !== 0 || !BASE64_RE.test(s)) {
    throw new FormatError(field, 'invalid base64 (standard alphabet with padding expected)');
  }
  const buf = Buffer.from(s, 'base64');
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Standard base64 with padding. */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** A Go []byte: base64 string or null (nil); an absent field is nil too. */
export function readBytes(obj: JsonObject, name: string, path: string): Uint8Array | null {
  const v = getField(obj, name);
  const field = `${path}.${name}`;
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw new FormatError(field, `expected a base64 string or null, got ${jsonTypeName(v)}`);
  return decodeBase64(v, field);
}

/** A Go bool; null or absent leaves false. */
export function readBool(obj: JsonObject, name: string, path: string): boolean {
  const v = getField(obj, name);
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw new FormatError(`${path}.${name}`, `expected a boolean, got ${jsonTypeName(v)}`);
  return v;
}

/** A Go integer in [min, max]; null or absent leaves 0. */
export function readInt(obj: JsonObject, name: string, path: string, min: number, max: number): number {
  const v = getField(obj, name);
  const field = `${path}.${name}`;
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number') throw new FormatError(field, `expected a number, got ${jsonTypeName(v)}`);
  if (!Number.isInteger(v)) throw new FormatError(field, 'expected an integer');
  if (v < min || v > max) throw new FormatError(field, `${v} is out of range [${min}, ${max}]`);
  return v;
}

/** A Go slice of structs: an array or null (nil). */
export function readArray<T>(
  obj: JsonObject,
  name: string,
  path: string,
  item: (value: JsonObject, itemPath: string) => T,
): T[] | null {
  const v = getField(obj, name);
  const field = `${path}.${name}`;
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v)) throw new FormatError(field, `expected an array or null, got ${jsonTypeName(v)}`);
  return v.map((el, i) => {
    const itemPath = `${field}[${i}]`;
    if (el === null) return item({}, itemPath); // Go decodes null into a zero struct
    if (typeof el !== 'object' || Array.isArray(el)) {
      throw new FormatError(itemPath, `expected an object, got ${jsonTypeName(el)}`);
    }
    return item(el, itemPath);
  });
}

/** Go's encoding of a []byte: base64, or null for nil. */
export function bytesValue(bytes: Uint8Array | null | undefined): string | null {
  return bytes == null ? null : encodeBase64(bytes);
}
