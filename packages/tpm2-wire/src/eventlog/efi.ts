/**
 * Decoders for the UEFI structures carried in event data (PFP 10.4.5, UEFI 2.x):
 * UEFI_VARIABLE_DATA, UEFI_IMAGE_LOAD_EVENT, EFI_GUID and device paths.
 * Event data is untrusted input: every length is checked before use, and errors are
 * EventLogError with the absolute offset (pass the event's `dataOffset` as `base`).
 */
import { Reader } from '../bytes/reader.js';
import { toHex } from '../bytes/hex.js';
import { EventLogError, decoding } from './errors.js';


/** An EFI_GUID (UEFI 2.x, appendix A: Data1..3 little-endian) as lowercase 8-4-4-4-12 text. */
export function formatGuid(b: Uint8Array): string {
  if (b.length !== 16) throw new RangeError(`EFI_GUID needs 16 bytes, got ${b.length}`);
  const le = (from: number, n: number): string => toHex(Uint8Array.from(b.subarray(from, from + n)).reverse());
  return `${le(0, 4)}-${le(4, 2)}-${le(6, 2)}-${toHex(b.subarray(8, 10))}-${toHex(b.subarray(10, 16))}`;
}

/** The 16 bytes of an EFI_GUID from its 8-4-4-4-12 text. */
export function parseGuid(text: string): Uint8Array {
  const m = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i.exec(text);
  if (!m) throw new Error(`not a GUID: ${JSON.stringify(text)}`);
  const hex = (s: string): number[] => s.match(/../g)!.map((x) => parseInt(x, 16));
  return new Uint8Array([
    ...hex(m[1]!).reverse(),
    ...hex(m[2]!).reverse(),
    ...hex(m[3]!).reverse(),
    ...hex(m[4]!),
    ...hex(m[5]!),
  ]);
}

/** UCS-2 / UTF-16LE text, without a trailing NUL. */
export function decodeUtf16le(b: Uint8Array): string {
  const s = new TextDecoder('utf-16le').decode(b.length % 2 ? b.subarray(0, b.length - 1) : b);
  const nul = s.indexOf('\0');
  return nul < 0 ? s : s.slice(0, nul);
}

/** UEFI_VARIABLE_DATA (PFP 10.4.5 / UEFI_VARIABLE_DATA): the payload of EV_EFI_VARIABLE_* events. */
export interface UefiVariableData {
  /** VariableName: the vendor GUID. */
  readonly guid: string;
  /** UnicodeName. */
  readonly name: string;
  /** VariableData. */
  readonly value: Uint8Array;
  /** Bytes after VariableData (0 for well-formed data; shim once appended one, go-attestation #157). */
  readonly trailingBytes: number;
}

function u64Length(r: Reader, what: string, unit: number): number {
  const at = r.base + r.offset;
  const n = r.u64le(what);
  if (n > BigInt(Math.floor(r.remaining / unit))) {
    throw new EventLogError(`${what} ${n} exceeds the ${r.remaining} byte(s) left`, at, what);
  }
  return Number(n);
}

/** Parses UEFI_VARIABLE_DATA: GUID, UINT64 UnicodeNameLength (characters), UINT64 VariableDataLength, name, data. */
export function parseUefiVariableData(data: Uint8Array, base = 0): UefiVariableData {
  return decoding(() => {
    const r = new Reader(data, base);
    const guid = formatGuid(r.bytesN(16, 'VariableName'));
    const nameLength = u64Length(r, 'UnicodeNameLength', 2);
    const dataLength = u64Length(r, 'VariableDataLength', 1);
    const name = decodeUtf16le(r.bytesN(nameLength * 2, 'UnicodeName'));
    const value = r.bytesN(dataLength, 'VariableData');
    return { guid, name, value, trailingBytes: r.remaining };
  });
}

/** UEFI_IMAGE_LOAD_EVENT (PFP 10.4.5): the payload of EV_EFI_BOOT_SERVICES_* and EV_EFI_RUNTIME_SERVICES_DRIVER. */
export interface UefiImageLoadEvent {
  readonly imageLocationInMemory: bigint;
  readonly imageLengthInMemory: bigint;
  readonly imageLinkTimeAddress: bigint;
  readonly devicePath: Uint8Array;
}

/**
 * Parses UEFI_IMAGE_LOAD_EVENT. Its length fields are UINTN: `uintnSize` is the Spec ID
 * event's value (1: 32-bit, 2: 64-bit; 64-bit when unknown).
 */
export function parseUefiImageLoadEvent(data: Uint8Array, uintnSize = 2, base = 0): UefiImageLoadEvent {
  return decoding(() => {
    const r = new Reader(data, base);
    const uintn = (what: string): bigint => (uintnSize === 1 ? BigInt(r.u32le(what)) : r.u64le(what));
    const imageLocationInMemory = r.u64le('ImageLocationInMemory');
    const imageLengthInMemory = uintn('ImageLengthInMemory');
    const imageLinkTimeAddress = uintn('ImageLinkTimeAddress');
    const at = r.base + r.offset;
    const pathLength = uintn('LengthOfDevicePath');
    if (pathLength > BigInt(r.remaining)) {
      throw new EventLogError(`LengthOfDevicePath ${pathLength} exceeds the ${r.remaining} byte(s) left`, at, 'LengthOfDevicePath');
    }
    const devicePath = r.bytesN(Number(pathLength), 'DevicePath');
    return { imageLocationInMemory, imageLengthInMemory, imageLinkTimeAddress, devicePath };
  });
}

const hex = (n: number | bigint): string => `0x${n.toString(16)}`;

/** One EFI_DEVICE_PATH_PROTOCOL node as text, in the spirit of UEFI 10.6 "Device Path to Text". */
function nodeText(type: number, subtype: number, body: Uint8Array): string {
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  if (type === 0x01 && subtype === 0x01 && body.length >= 2) return `Pci(${hex(body[1]!)},${hex(body[0]!)})`;
  if (type === 0x02 && subtype === 0x01 && body.length >= 8) {
    const hid = v.getUint32(0, true);
    const uid = v.getUint32(4, true);
    const id = (hid & 0xffff) === 0x41d0 ? `PNP${(hid >>> 16).toString(16).toUpperCase().padStart(4, '0')}` : hex(hid);
    return `Acpi(${id},${hex(uid)})`;
  }
  if (type === 0x03) {
    const names: Record<number, string> = { 0x01: 'Atapi', 0x02: 'Scsi', 0x05: 'USB', 0x0b: 'MAC', 0x0c: 'IPv4', 0x0d: 'IPv6', 0x12: 'Sata', 0x17: 'NVMe', 0x18: 'Uri', 0x1a: 'eMMC' };
    return `${names[subtype] ?? `Msg(${subtype})`}`;
  }
  if (type === 0x04 && subtype === 0x01 && body.length >= 38) {
    const part = v.getUint32(0, true);
    const sigType = body[37];
    const sig = sigType === 2 ? formatGuid(body.slice(20, 36)) : toHex(body.slice(20, 24));
    return `HD(${part},${sigType === 2 ? 'GPT' : 'MBR'},${sig})`;
  }
  if (type === 0x04 && subtype === 0x04) return decodeUtf16le(body);
  if (type === 0x04 && subtype === 0x06 && body.length >= 16) return `FvFile(${formatGuid(body.slice(0, 16))})`;
  if (type === 0x04 && subtype === 0x07 && body.length >= 16) return `Fv(${formatGuid(body.slice(0, 16))})`;
  if (type === 0x04 && subtype === 0x08 && body.length >= 20) {
    return `Offset(${hex(v.getBigUint64(4, true))},${hex(v.getBigUint64(12, true))})`;
  }
  return `Path(${type},${subtype})`;
}

/**
 * A readable rendering of an EFI device path (UEFI 10.3), e.g.
 * `Acpi(PNP0A03,0x0)/Pci(0x3,0x0)/HD(1,GPT,…)/\EFI\BOOT\BOOTX64.EFI`. Never throws: a
 * malformed path ends in `<malformed>`.
 */
export function devicePathToText(dp: Uint8Array): string {
  const parts: string[] = [];
  let at = 0;
  let instance: string[] = [];
  while (at < dp.length) {
    if (dp.length - at < 4) {
      instance.push('<malformed>');
      break;
    }
    const type = dp[at]!;
    const subtype = dp[at + 1]!;
    const len = dp[at + 2]! | (dp[at + 3]! << 8);
    if (len < 4 || at + len > dp.length) {
      instance.push('<malformed>');
      break;
    }
    at += len;
    if (type === 0x7f) {
      parts.push(instance.join('/'));
      instance = [];
      if (subtype === 0xff) break;
      continue;
    }
    instance.push(nodeText(type, subtype, dp.subarray(at - len + 4, at)));
  }
  if (instance.length) parts.push(instance.join('/'));
  return parts.join(',');
}
