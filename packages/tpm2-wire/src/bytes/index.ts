export { Reader } from './reader.js';
export { Writer } from './writer.js';
export { TpmDecodeError, TpmEncodeError } from './errors.js';
export { toHex, fromHex, concatBytes, bytesEqual, constantTimeEqual, utf8, u32be, u16be } from './hex.js';
