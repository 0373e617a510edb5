/**
 * Names of TPM entities (Part 1, 16 "Names"): for objects and NV indices
 * nameAlg || H_nameAlg(public area); for every other handle the handle itself.
 */
import { marshal, rawBytes } from '../types/codec.js';
import { TPM_ALG } from '../types/constants.js';
import { TPMS_NV_PUBLIC, TPMT_PUBLIC } from '../types/structures.js';
import { concatBytes, u16be, u32be } from '../bytes/hex.js';
import { hash } from './hash.js';

/** The exact bytes of a public area: the bytes received when it came from the TPM, else its encoding. */
export function publicAreaBytes(pub: TPMT_PUBLIC): Uint8Array {
  return rawBytes(pub) ?? marshal(TPMT_PUBLIC, pub);
}

/** Name of an object: nameAlg || H_nameAlg(TPMT_PUBLIC). */
export function objectName(pub: TPMT_PUBLIC): Uint8Array {
  if (pub.nameAlg === TPM_ALG.NULL) return new Uint8Array(0);
  return concatBytes(u16be(pub.nameAlg), hash(pub.nameAlg, publicAreaBytes(pub)));
}

/** Name of an NV index: nameAlg || H_nameAlg(TPMS_NV_PUBLIC). */
export function nvName(pub: TPMS_NV_PUBLIC): Uint8Array {
  return concatBytes(u16be(pub.nameAlg), hash(pub.nameAlg, rawBytes(pub) ?? marshal(TPMS_NV_PUBLIC, pub)));
}

/** Name of a handle that is its own name (PCR, session, permanent handles). */
export function handleName(handle: number): Uint8Array {
  return u32be(handle);
}

/** Qualified name (Part 1, 16.6): nameAlg || H_nameAlg(parentQualifiedName || name). */
export function qualifiedName(nameAlg: number, parentQualifiedName: Uint8Array, name: Uint8Array): Uint8Array {
  return concatBytes(u16be(nameAlg), hash(nameAlg, parentQualifiedName, name));
}
