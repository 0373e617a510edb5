/**
 * TPM_RC response codes and their decoding (Part 2, 6.6 "TPM_RC").
 *
 * Format zero (bit 7 clear): bit 8 (VER1) set for TPM 2.0 codes, bit 10 (T)
 * TCG/vendor, bit 11 (S) warning; the error number is bits 0..6.
 * Format one (bit 7 set): the error number is bits 0..5; bit 6 (P) says bits
 * 8..11 are a parameter number, else bits 8..10 are a handle number, or with
 * bit 11 set a session number.
 */
import { commandName } from '../types/constants.js';

/** The base response codes (without handle/parameter/session numbers). */
export const TPM_RC = {
  SUCCESS: 0x000,
  // format zero, RC_VER1 = 0x100
  INITIALIZE: 0x100, FAILURE: 0x101, SEQUENCE: 0x103, PRIVATE: 0x10b, HMAC: 0x119, DISABLED: 0x120,
  EXCLUSIVE: 0x121, AUTH_TYPE: 0x124, AUTH_MISSING: 0x125, POLICY: 0x126, PCR: 0x127, PCR_CHANGED: 0x128,
  UPGRADE: 0x12d, TOO_MANY_CONTEXTS: 0x12e, AUTH_UNAVAILABLE: 0x12f, REBOOT: 0x130, UNBALANCED: 0x131,
  COMMAND_SIZE: 0x142, COMMAND_CODE: 0x143, AUTHSIZE: 0x144, AUTH_CONTEXT: 0x145, NV_RANGE: 0x146,
  NV_SIZE: 0x147, NV_LOCKED: 0x148, NV_AUTHORIZATION: 0x149, NV_UNINITIALIZED: 0x14a, NV_SPACE: 0x14b,
  NV_DEFINED: 0x14c, BAD_CONTEXT: 0x150, CPHASH: 0x151, PARENT: 0x152, NEEDS_TEST: 0x153, NO_RESULT: 0x154,
  SENSITIVE: 0x155,
  // format one, RC_FMT1 = 0x080
  ASYMMETRIC: 0x081, ATTRIBUTES: 0x082, HASH: 0x083, VALUE: 0x084, HIERARCHY: 0x085, KEY_SIZE: 0x087,
  MGF: 0x088, MODE: 0x089, TYPE: 0x08a, HANDLE: 0x08b, KDF: 0x08c, RANGE: 0x08d, AUTH_FAIL: 0x08e,
  NONCE: 0x08f, PP: 0x090, SCHEME: 0x092, SIZE: 0x095, SYMMETRIC: 0x096, TAG: 0x097, SELECTOR: 0x098,
  INSUFFICIENT: 0x09a, SIGNATURE: 0x09b, KEY: 0x09c, POLICY_FAIL: 0x09d, INTEGRITY: 0x09f, TICKET: 0x0a0,
  RESERVED_BITS: 0x0a1, BAD_AUTH: 0x0a2, EXPIRED: 0x0a3, POLICY_CC: 0x0a4, BINDING: 0x0a5, CURVE: 0x0a6,
  ECC_POINT: 0x0a7,
  // warnings, RC_WARN = 0x900
  CONTEXT_GAP: 0x901, OBJECT_MEMORY: 0x902, SESSION_MEMORY: 0x903, MEMORY: 0x904, SESSION_HANDLES: 0x905,
  OBJECT_HANDLES: 0x906, LOCALITY: 0x907, YIELDED: 0x908, CANCELED: 0x909, TESTING: 0x90a,
  REFERENCE_H0: 0x910, REFERENCE_H1: 0x911, REFERENCE_H2: 0x912, REFERENCE_H3: 0x913, REFERENCE_H4: 0x914,
  REFERENCE_H5: 0x915, REFERENCE_H6: 0x916, REFERENCE_S0: 0x918, REFERENCE_S1: 0x919, REFERENCE_S2: 0x91a,
  REFERENCE_S3: 0x91b, REFERENCE_S4: 0x91c, REFERENCE_S5: 0x91d, REFERENCE_S6: 0x91e, NV_RATE: 0x920,
  LOCKOUT: 0x921, RETRY: 0x922, NV_UNAVAILABLE: 0x923,
} as const;

const DESCRIPTIONS: Readonly<Record<number, string>> = {
  0x100: 'TPM not initialized by TPM2_Startup', 0x101: 'commands not being accepted because of a TPM failure',
  0x125: 'command requires an authorization session', 0x126: 'policy failure in math operation or an invalid authPolicy value',
  0x128: 'PCR have changed since checked', 0x142: 'command size value is inconsistent', 0x143: 'command code not supported',
  0x14a: 'NV index not written yet', 0x14b: 'insufficient space for NV allocation', 0x14c: 'NV index already defined',
  0x152: 'the object is not a proper parent', 0x082: 'inconsistent attributes', 0x084: 'value is out of range or not correct for the context',
  0x08b: 'the handle is not correct for the use', 0x08e: 'the authorization HMAC check failed and the DA counter incremented',
  0x095: 'structure is the wrong size', 0x09b: 'the signature is not valid', 0x09d: 'a policy check failed',
  0x09f: 'integrity check failed', 0x0a2: 'authorization failure without DA implications',
  0x0a5: 'public and sensitive portions of an object are not cryptographically bound',
  0x902: 'out of memory for object contexts (flush something)', 0x903: 'out of memory for session contexts',
  0x908: 'the TPM has suspended operation on the command', 0x90a: 'the TPM is performing self-tests',
  0x921: 'authorizations for objects subject to DA protection are not allowed at this time (lockout)',
  0x922: 'the TPM was not able to start the command (retry)', 0x923: 'the command may require writing NV and NV is not accessible',
};

const NAMES: Map<number, string> = new Map(Object.entries(TPM_RC).map(([k, v]) => [v, `TPM_RC_${k}`]));

/** A decoded response code. */
export interface DecodedRc {
  /** The code without handle/parameter/session numbers (compare with `TPM_RC.*`). */
  base: number;
  /** The spec's name, e.g. "TPM_RC_HANDLE", or a hex description for unknown codes. */
  name: string;
  kind: 'success' | 'format-zero' | 'format-one' | 'warning' | 'vendor' | 'tpm1.2' | 'tss-layer';
  parameter?: number;
  handle?: number;
  session?: number;
  /** tpm2-tss layer (bits 16..23) of a 'tss-layer' code. */
  layer?: number;
  /** One readable sentence. */
  text: string;
}

/** tpm2-tss layers (TSS2_*_RC_LAYER), as `tpm2_rc_decode` names them. */
const TSS_LAYERS: Readonly<Record<number, string>> = {
  6: 'FAPI layer', 7: 'ESAPI layer', 8: 'SAPI layer', 9: 'marshalling (MU) layer', 10: 'TCTI layer',
  11: 'resource manager (TPM code)', 12: 'resource manager', 13: 'driver',
};
/** TSS2_BASE_RC_* (tss2_common.h). */
const TSS_BASE_RC: Readonly<Record<number, string>> = {
  1: 'GENERAL_FAILURE', 2: 'NOT_IMPLEMENTED', 3: 'BAD_CONTEXT', 4: 'ABI_MISMATCH', 5: 'BAD_REFERENCE',
  6: 'INSUFFICIENT_BUFFER', 7: 'BAD_SEQUENCE', 8: 'NO_CONNECTION', 9: 'TRY_AGAIN', 10: 'IO_ERROR', 11: 'BAD_VALUE',
  12: 'NOT_PERMITTED', 13: 'INVALID_SESSIONS', 14: 'NO_DECRYPT_PARAM', 15: 'NO_ENCRYPT_PARAM', 16: 'BAD_SIZE',
  17: 'MALFORMED_RESPONSE', 18: 'INSUFFICIENT_CONTEXT', 19: 'INSUFFICIENT_RESPONSE', 20: 'INCOMPATIBLE_TCTI',
  21: 'NOT_SUPPORTED', 22: 'BAD_TCTI_STRUCTURE', 23: 'MEMORY', 24: 'BAD_TR', 25: 'MULTIPLE_DECRYPT_SESSIONS',
  26: 'MULTIPLE_ENCRYPT_SESSIONS', 27: 'RSP_AUTH_FAILED',
};

const hex = (n: number, w = 3) => `0x${n.toString(16).padStart(w, '0')}`;

/** Decode a TPM_RC value into its parts and a readable text. */
export function decodeRc(rc: number): DecodedRc {
  if (rc === 0) return { base: 0, name: 'TPM_RC_SUCCESS', kind: 'success', text: 'TPM_RC_SUCCESS' };
  if (rc >>> 16 !== 0) {
    // tpm2-tss layered codes (tss2_common.h): layer in bits 16..23. Layer 11 (resource manager)
    // carries TPM-format codes; the TSS layers carry TSS2_BASE_RC_* codes, which are not TPM codes.
    const layer = (rc >>> 16) & 0xff;
    const code = rc & 0xffff;
    const layerName = TSS_LAYERS[layer] ?? `software layer ${layer}`;
    if (layer === 11) {
      const inner = decodeRc(code);
      return { ...inner, kind: 'tss-layer', layer, text: `${inner.text} (from the ${layerName})` };
    }
    const base = TSS_BASE_RC[code];
    const name = base ? `TSS2_BASE_RC_${base}` : `TSS2 code ${hex(code)}`;
    return { base: code, name, kind: 'tss-layer', layer, text: `${name} (from the ${layerName})` };
  }
  if (rc & 0x080) {
    const base = 0x080 | (rc & 0x3f);
    const name = NAMES.get(base) ?? `format-one error ${hex(base)}`;
    const out: DecodedRc = { base, name, kind: 'format-one', text: '' };
    let where = '';
    if (rc & 0x040) {
      out.parameter = (rc >> 8) & 0xf;
      where = `parameter ${out.parameter}`;
    } else if (rc & 0x800) {
      out.session = (rc >> 8) & 0x7;
      where = `session ${out.session}`;
    } else {
      out.handle = (rc >> 8) & 0x7;
      where = out.handle === 0 ? '' : `handle ${out.handle}`;
    }
    const desc = DESCRIPTIONS[base];
    out.text = `${name}${where ? ` (${where})` : ''}${desc ? `: ${desc}` : ''}`;
    return out;
  }
  if (!(rc & 0x100)) return { base: rc, name: `TPM 1.2 code ${hex(rc)}`, kind: 'tpm1.2', text: `TPM 1.2 response code ${hex(rc)}` };
  if (rc & 0x400) return { base: rc, name: `vendor code ${hex(rc)}`, kind: 'vendor', text: `vendor-defined response code ${hex(rc)}` };
  const base = rc & 0x97f;
  const kind = rc & 0x800 ? 'warning' : 'format-zero';
  const name = NAMES.get(base) ?? `${kind} ${hex(base)}`;
  const desc = DESCRIPTIONS[base];
  return { base, name, kind, text: `${name}${kind === 'warning' ? ' (warning)' : ''}${desc ? `: ${desc}` : ''}` };
}

/** Name of a command for messages. */
export { commandName };
