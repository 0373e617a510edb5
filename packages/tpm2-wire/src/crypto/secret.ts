/**
 * Labeled secret sharing ("secret value" / seed encryption, TPM 2.0 Part 1,
 * 11.4.10.4 and Annex B.10.3 (RSA-OAEP) / C.6.1 (ECDH one-pass)): how
 * MakeCredential (label IDENTITY), duplication/Import (DUPLICATE) and salted
 * sessions (SECRET) get a seed to a key's owner.
 */
import {
  type KeyObject, constants, createECDH, createHash, privateDecrypt, publicEncrypt, randomBytes,
} from 'node:crypto';
import { concatBytes, utf8 } from '../bytes/hex.js';
import { marshal, unmarshal } from '../types/codec.js';
import { TPM_ALG, algName } from '../types/constants.js';
import { TPMS_ECC_POINT, type TPMT_PUBLIC } from '../types/structures.js';
import { digestSize, nodeHashName } from './hash.js';
import { kdfe } from './kdf.js';
import { curveInfo, fixedLength, publicToKeyObject } from './keys.js';
import { TpmCryptoError } from './errors.js';

/** The labels of the secret-sharing uses (Part 1, 11.4.10.4). */
export type SecretLabel = 'IDENTITY' | 'DUPLICATE' | 'SECRET';

/** Test and interop hooks for `createSeed`; leave them unset in production. */
export interface CreateSeedOptions {
  /** RSA: the seed to encrypt (default: random, `seedLength` bytes). */
  seed?: Uint8Array;
  /** RSA: seed length in bytes (default: digest size of the OAEP hash). */
  seedLength?: number;
  /** RSA: a fixed OAEP seed (hLen bytes) to make the ciphertext deterministic. */
  oaepSeed?: Uint8Array;
  /** ECC: a fixed ephemeral private scalar (big-endian) instead of a random one. */
  ephemeralPrivateKey?: Uint8Array;
}

/** A seed and its encryption to a key (TPM2B_ENCRYPTED_SECRET contents). */
export interface EncryptedSeed {
  /** The shared seed (secret). */
  seed: Uint8Array;
  /** TPM2B_ENCRYPTED_SECRET contents: the RSA-OAEP ciphertext, or a marshalled TPMS_ECC_POINT. */
  encryptedSecret: Uint8Array;
}

/**
 * The hash of RSA-OAEP secret sharing: the key's OAEP scheme hash if it has
 * one, else its nameAlg (as the TPM and go-tpm choose it).
 */
export function oaepHashAlg(pub: Extract<TPMT_PUBLIC, { type: 0x0001 }>): number {
  const s = pub.parameters.scheme;
  if (s.scheme === TPM_ALG.OAEP && s.hashAlg !== TPM_ALG.NULL) return s.hashAlg;
  return pub.nameAlg;
}

function mgf1(hashName: string, seed: Uint8Array, len: number): Uint8Array {
  const out = new Uint8Array(len);
  const c = new Uint8Array(4);
  for (let i = 0, at = 0; at < len; i++) {
    new DataView(c.buffer).setUint32(0, i);
    const d = createHash(hashName).update(seed).update(c).digest();
    out.set(d.subarray(0, Math.min(d.length, len - at)), at);
    at += d.length;
  }
  return out;
}

/** EME-OAEP encoding (RFC 8017, 7.1.1 step 2) with a caller-chosen seed. */
function oaepEncode(hashAlg: number, k: number, message: Uint8Array, label: Uint8Array, seed: Uint8Array): Uint8Array {
  const name = nodeHashName(hashAlg);
  const hLen = digestSize(hashAlg);
  if (seed.length !== hLen) throw new TpmCryptoError(`OAEP seed must be ${hLen} bytes`, 'invalid');
  if (message.length > k - 2 * hLen - 2) throw new TpmCryptoError('message too long for RSA-OAEP with this key', 'invalid');
  const lHash = createHash(name).update(label).digest();
  const db = new Uint8Array(k - hLen - 1);
  db.set(lHash, 0);
  db[k - message.length - hLen - 2] = 0x01;
  db.set(message, k - message.length - hLen - 1);
  const dbMask = mgf1(name, seed, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= dbMask[i]!;
  const seedMask = mgf1(name, db, hLen);
  const maskedSeed = seed.map((b, i) => b ^ seedMask[i]!);
  return concatBytes(Uint8Array.of(0), maskedSeed, db);
}

function labelZ(label: SecretLabel): Uint8Array {
  return concatBytes(utf8(label), Uint8Array.of(0));
}

function uncompressed(c: { size: number }, x: Uint8Array, y: Uint8Array): Uint8Array {
  return concatBytes(Uint8Array.of(4), fixedLength(x, c.size, 'x'), fixedLength(y, c.size, 'y'));
}

/**
 * Creates a seed for `parentPub` and encrypts it (Part 1, 11.4.10.4):
 * RSA: OAEP with the key's OAEP/name hash and label `label\0`; the seed is
 * random (`opts.seedLength` bytes, default the hash's digest size).
 * ECC: one-pass ECDH with an ephemeral key on the key's curve; seed =
 * KDFe(nameAlg, Z, label, ephemeral.x, parent.x, digest bits); the
 * encrypted secret is the ephemeral point as TPMS_ECC_POINT.
 */
export function createSeed(parentPub: TPMT_PUBLIC, label: SecretLabel, opts: CreateSeedOptions = {}): EncryptedSeed {
  if (parentPub.type === TPM_ALG.RSA) {
    const hashAlg = oaepHashAlg(parentPub);
    const seed = opts.seed?.slice() ?? new Uint8Array(randomBytes(opts.seedLength ?? digestSize(hashAlg)));
    if (seed.length === 0 || seed.length > digestSize(hashAlg)) {
      throw new TpmCryptoError(`seed must be 1 to ${digestSize(hashAlg)} bytes for ${algName(hashAlg)}`, 'invalid');
    }
    const key = publicToKeyObject(parentPub);
    let encryptedSecret: Uint8Array;
    if (opts.oaepSeed !== undefined) {
      const k = parentPub.unique.length;
      const em = oaepEncode(hashAlg, k, seed, labelZ(label), opts.oaepSeed);
      encryptedSecret = new Uint8Array(publicEncrypt({ key, padding: constants.RSA_NO_PADDING }, em));
    } else {
      encryptedSecret = new Uint8Array(
        publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: nodeHashName(hashAlg), oaepLabel: labelZ(label) }, seed),
      );
    }
    return { seed, encryptedSecret };
  }
  if (parentPub.type === TPM_ALG.ECC) {
    const c = curveInfo(parentPub.parameters.curveID);
    if (parentPub.unique.x.length === 0) throw new TpmCryptoError('ECC public area has no point (a template?)', 'invalid');
    const ecdh = createECDH(c.openssl);
    if (opts.ephemeralPrivateKey !== undefined) ecdh.setPrivateKey(fixedLength(opts.ephemeralPrivateKey, c.size, 'ephemeral key'));
    else ecdh.generateKeys();
    const ephPoint = new Uint8Array(ecdh.getPublicKey());
    const ephX = ephPoint.slice(1, 1 + c.size);
    const ephY = ephPoint.slice(1 + c.size);
    let z: Uint8Array;
    try {
      z = new Uint8Array(ecdh.computeSecret(uncompressed(c, parentPub.unique.x, parentPub.unique.y)));
    } catch (e) {
      throw new TpmCryptoError(`ECDH with the key failed: ${(e as Error).message}`, 'invalid');
    }
    const seed = kdfe(parentPub.nameAlg, z, label, ephX, parentPub.unique.x, digestSize(parentPub.nameAlg) * 8);
    return { seed, encryptedSecret: marshal(TPMS_ECC_POINT, { x: ephX, y: ephY }) };
  }
  throw new TpmCryptoError(`secret sharing to a ${algName(parentPub.type)} key is not supported`, 'unsupported');
}

/**
 * The inverse of `createSeed` with the key's private half, as the TPM does
 * it (RSA-OAEP decryption, or ECDH with the ephemeral point and KDFe).
 * Throws TpmCryptoError('integrity') when the secret does not decrypt.
 */
export function recoverSeed(privateKey: KeyObject, parentPub: TPMT_PUBLIC, label: SecretLabel, encryptedSecret: Uint8Array): Uint8Array {
  if (privateKey.type !== 'private') throw new TpmCryptoError('a private key is required', 'invalid');
  if (parentPub.type === TPM_ALG.RSA) {
    const hashAlg = oaepHashAlg(parentPub);
    try {
      return new Uint8Array(
        privateDecrypt(
          { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: nodeHashName(hashAlg), oaepLabel: labelZ(label) },
          encryptedSecret,
        ),
      );
    } catch {
      throw new TpmCryptoError('encrypted secret does not decrypt with this key and label', 'integrity');
    }
  }
  if (parentPub.type === TPM_ALG.ECC) {
    const c = curveInfo(parentPub.parameters.curveID);
    let point: TPMS_ECC_POINT;
    try {
      point = unmarshal(TPMS_ECC_POINT, encryptedSecret);
    } catch (e) {
      throw new TpmCryptoError(`encrypted secret is not a TPMS_ECC_POINT: ${(e as Error).message}`, 'invalid');
    }
    const jwk = privateKey.export({ format: 'jwk' });
    if (jwk.kty !== 'EC' || jwk.d === undefined) throw new TpmCryptoError('private key is not an ECC key', 'invalid');
    const ecdh = createECDH(c.openssl);
    ecdh.setPrivateKey(fixedLength(new Uint8Array(Buffer.from(jwk.d, 'base64url')), c.size, 'private scalar'));
    let z: Uint8Array;
    try {
      z = new Uint8Array(ecdh.computeSecret(uncompressed(c, point.x, point.y)));
    } catch {
      throw new TpmCryptoError('ephemeral point is not on the key\'s curve', 'integrity');
    }
    return kdfe(parentPub.nameAlg, z, label, point.x, parentPub.unique.x, digestSize(parentPub.nameAlg) * 8);
  }
  throw new TpmCryptoError(`secret sharing to a ${algName(parentPub.type)} key is not supported`, 'unsupported');
}
