/**
 * Verification of TPM signatures and attestations (TPM 2.0 Part 2, 10.12
 * TPMS_ATTEST; Part 3, 18 "Attestation Commands"): Quote, Certify and
 * CertifyCreation, as a remote verifier (go-attestation, go-tpm-tools,
 * keylime, tpm2_checkquote) checks them.
 */
import { constants, verify as nodeVerify } from 'node:crypto';
import { bytesEqual, toHex } from '../bytes/hex.js';
import { unmarshal } from '../types/codec.js';
import { TPMA_OBJECT, TPM_ALG, TPM_ECC, TPM_GENERATED_VALUE, TPM_ST, algName } from '../types/constants.js';
import { TPMS_ATTEST, TPMS_CREATION_DATA, type TPMT_PUBLIC, type TPMT_SIGNATURE } from '../types/structures.js';
import { pcrValuesDigest, type PcrValues } from '../policy/calculator.js';
import { hash, nodeHashName } from './hash.js';
import { publicToKeyObject, signatureToDer } from './keys.js';
import { objectName } from './names.js';
import { AttestationError, TpmCryptoError } from './errors.js';

/** A decoded TPMS_ATTEST of one type. */
export type TPMS_ATTEST_QUOTE = Extract<TPMS_ATTEST, { type: typeof TPM_ST.ATTEST_QUOTE }>;
export type TPMS_ATTEST_CERTIFY = Extract<TPMS_ATTEST, { type: typeof TPM_ST.ATTEST_CERTIFY }>;
export type TPMS_ATTEST_CREATION = Extract<TPMS_ATTEST, { type: typeof TPM_ST.ATTEST_CREATION }>;

/**
 * Verifies a TPM signature over `message` with an RSA or ECC public key
 * (Part 1, 11.2 / Part 2, 11.3.4): RSASSA-PKCS1-v1_5, RSAPSS (any salt
 * length; TPMs use the digest length or the maximum) or ECDSA, with the hash
 * named in the signature. Returns false for a bad signature or a signature
 * algorithm that does not fit the key; throws TpmCryptoError for algorithms
 * we do not implement (HMAC, ECDAA, SM2, ECSCHNORR).
 */
export function verifySignature(pub: TPMT_PUBLIC, message: Uint8Array, sig: TPMT_SIGNATURE): boolean {
  if (sig.sigAlg === TPM_ALG.RSASSA || sig.sigAlg === TPM_ALG.RSAPSS) {
    if (pub.type !== TPM_ALG.RSA) return false;
    const key = publicToKeyObject(pub);
    const padding = sig.sigAlg === TPM_ALG.RSASSA ? { padding: constants.RSA_PKCS1_PADDING } : { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO };
    return nodeVerify(nodeHashName(sig.hash), message, { key, ...padding }, sig.sig);
  }
  if (sig.sigAlg === TPM_ALG.ECDSA) {
    if (pub.type !== TPM_ALG.ECC) return false;
    return nodeVerify(nodeHashName(sig.hash), message, { key: publicToKeyObject(pub), dsaEncoding: 'der' }, signatureToDer(sig));
  }
  if (sig.sigAlg === TPM_ALG.NULL) return false;
  throw new TpmCryptoError(`signature algorithm ${algName(sig.sigAlg)} is not supported`, 'unsupported');
}

function checkSignature(signer: TPMT_PUBLIC, attestBytes: Uint8Array, sig: TPMT_SIGNATURE): void {
  let ok: boolean;
  try {
    ok = verifySignature(signer, attestBytes, sig);
  } catch (e) {
    throw new AttestationError('signature', (e as Error).message);
  }
  if (!ok) throw new AttestationError('signature', `the ${algName(sig.sigAlg)} signature does not verify with the attestation key`);
}

function decodeAttest(attestBytes: Uint8Array): TPMS_ATTEST {
  try {
    return unmarshal(TPMS_ATTEST, attestBytes);
  } catch (e) {
    throw new AttestationError('decode', `TPMS_ATTEST does not decode: ${(e as Error).message}`);
  }
}

function checkHeader(att: TPMS_ATTEST, type: number, nonce: Uint8Array | undefined): void {
  if (att.magic !== TPM_GENERATED_VALUE) throw new AttestationError('magic', `magic is 0x${att.magic.toString(16)}, not TPM_GENERATED_VALUE (not produced by a TPM)`);
  if (att.type !== type) throw new AttestationError('type', `attestation type is 0x${att.type.toString(16)}; 0x${type.toString(16)} expected`);
  if (nonce !== undefined && !bytesEqual(att.extraData, nonce)) throw new AttestationError('nonce', 'extraData does not equal the expected nonce');
}

/** What a quote must show. */
export interface QuoteExpectations {
  /** extraData must equal this (the verifier's nonce). Omitting it skips the freshness check. */
  nonce?: Uint8Array;
  /** The quoted selection must be exactly these PCRs of this bank, and pcrDigest must be their hash. */
  pcrs?: PcrValues;
}

function selectionIndices(att: TPMS_ATTEST_QUOTE): Map<number, Set<number>> {
  const banks = new Map<number, Set<number>>();
  for (const s of att.attested.pcrSelect) {
    const set = banks.get(s.hash) ?? new Set<number>();
    s.pcrSelect.forEach((byte, i) => {
      for (let bit = 0; bit < 8; bit++) if (byte & (1 << bit)) set.add(i * 8 + bit);
    });
    if (set.size > 0) banks.set(s.hash, set);
  }
  return banks;
}

/**
 * Verifies a TPM2_Quote (Part 3, 18.4): the signature over the TPMS_ATTEST
 * bytes with `akPub`, magic TPM_GENERATED_VALUE, type TPM_ST_ATTEST_QUOTE,
 * extraData == nonce, the quoted selection == the given PCRs, and pcrDigest ==
 * H_sigHash(PCR values in ascending order). Returns the decoded attestation;
 * throws AttestationError naming the failed check.
 */
export function verifyQuote(akPub: TPMT_PUBLIC, attestBytes: Uint8Array, sig: TPMT_SIGNATURE, expect: QuoteExpectations = {}): TPMS_ATTEST_QUOTE {
  checkSignature(akPub, attestBytes, sig);
  const att = decodeAttest(attestBytes);
  checkHeader(att, TPM_ST.ATTEST_QUOTE, expect.nonce);
  const quote = att as TPMS_ATTEST_QUOTE;
  if (expect.pcrs !== undefined) {
    const banks = selectionIndices(quote);
    const want = [...expect.pcrs.values.keys()].sort((a, b) => a - b);
    const got = [...(banks.get(expect.pcrs.hashAlg) ?? [])].sort((a, b) => a - b);
    if (banks.size !== (got.length > 0 ? 1 : 0) || want.join() !== got.join()) {
      const desc = [...banks].map(([h, s]) => `${algName(h)}:[${[...s].sort((a, b) => a - b).join(',')}]`).join(' ') || 'nothing';
      throw new AttestationError('pcrSelection', `quote covers ${desc}; ${algName(expect.pcrs.hashAlg)}:[${want.join(',')}] expected`);
    }
    // TPM2_Quote hashes the PCRs with the signing scheme's hash (Part 3, 18.4.1)
    const digest = pcrValuesDigest('hash' in sig ? sig.hash : akPub.nameAlg, expect.pcrs.values);
    if (!bytesEqual(digest, quote.attested.pcrDigest)) {
      throw new AttestationError('pcrDigest', `pcrDigest ${toHex(quote.attested.pcrDigest)} does not match the PCR values (${toHex(digest)})`);
    }
  }
  return quote;
}

/** Options of `verifyCertify`. */
export interface CertifyExpectations {
  /** extraData must equal this (qualifying data). */
  nonce?: Uint8Array;
  /** objectAttributes bits that must be set / clear on the certified key. */
  attributes?: { set?: number; clear?: number };
}

function checkAttributes(pub: TPMT_PUBLIC, want: { set?: number; clear?: number } | undefined): void {
  if (want === undefined) return;
  const a = pub.objectAttributes;
  const names = (bits: number) =>
    Object.entries(TPMA_OBJECT)
      .filter(([, v]) => bits & v)
      .map(([k]) => k)
      .join(', ');
  const missing = (want.set ?? 0) & ~a;
  if (missing) throw new AttestationError('attributes', `key lacks ${names(missing)}`);
  const extra = (want.clear ?? 0) & a;
  if (extra) throw new AttestationError('attributes', `key must not have ${names(extra)}`);
}

/**
 * Verifies a TPM2_Certify (Part 3, 18.2): the signature with `akPub`, magic,
 * type TPM_ST_ATTEST_CERTIFY, attested name == name of `certifiedPub`, and
 * optionally extraData and the certified key's attributes. Returns the decoded
 * attestation; throws AttestationError naming the failed check.
 */
export function verifyCertify(
  akPub: TPMT_PUBLIC,
  attestBytes: Uint8Array,
  sig: TPMT_SIGNATURE,
  certifiedPub: TPMT_PUBLIC,
  expect: CertifyExpectations = {},
): TPMS_ATTEST_CERTIFY {
  checkSignature(akPub, attestBytes, sig);
  const att = decodeAttest(attestBytes);
  checkHeader(att, TPM_ST.ATTEST_CERTIFY, expect.nonce);
  const cert = att as TPMS_ATTEST_CERTIFY;
  if (!bytesEqual(cert.attested.name, objectName(certifiedPub))) throw new AttestationError('name', 'attested name is not the name of the certified key');
  checkAttributes(certifiedPub, expect.attributes);
  return cert;
}

/** Options of `verifyCertifyCreation`. */
export interface CertifyCreationOptions {
  /** The key whose creation is certified, when it is not the AK itself (default: self-certification). */
  certifiedPub?: TPMT_PUBLIC;
  /** Whether the certified key must be restricted (default true, as for an AK) or must not be. */
  restricted?: boolean;
  /** extraData must equal this. */
  nonce?: Uint8Array;
}

const MIN_RSA_BITS = 2048;
const SECURE_CURVES: readonly number[] = [TPM_ECC.NIST_P256, TPM_ECC.NIST_P384, TPM_ECC.NIST_P521];

/**
 * Verifies a TPM2_CertifyCreation of an AK (Part 3, 18.3) with the checks of
 * go-attestation `ActivationParameters.Generate`: the signature by `akPub`
 * over the attestation; TPMS_CREATION_DATA and TPMS_ATTEST decode; type
 * TPM_ST_ATTEST_CREATION; key of at least RSA-2048 or a NIST P-256/384/521
 * curve; creationHash == H_nameAlg(createData); magic; fixedTPM, fixedParent,
 * sensitiveDataOrigin set and restricted as expected; attested objectName ==
 * name of the key. Returns the decoded attestation; throws AttestationError.
 */
export function verifyCertifyCreation(
  akPub: TPMT_PUBLIC,
  createData: Uint8Array,
  attestBytes: Uint8Array,
  sig: TPMT_SIGNATURE,
  opts: CertifyCreationOptions = {},
): TPMS_ATTEST_CREATION {
  const pub = opts.certifiedPub ?? akPub;
  checkSignature(akPub, attestBytes, sig);
  try {
    unmarshal(TPMS_CREATION_DATA, createData);
  } catch (e) {
    throw new AttestationError('decode', `TPMS_CREATION_DATA does not decode: ${(e as Error).message}`);
  }
  const att = decodeAttest(attestBytes);
  if (att.type !== TPM_ST.ATTEST_CREATION) throw new AttestationError('type', `attestation type is 0x${att.type.toString(16)}; 0x${TPM_ST.ATTEST_CREATION.toString(16)} expected`);
  const creation = att as TPMS_ATTEST_CREATION;
  if (pub.type === TPM_ALG.RSA) {
    if (pub.parameters.keyBits < MIN_RSA_BITS) throw new AttestationError('keyStrength', `RSA-${pub.parameters.keyBits} is below ${MIN_RSA_BITS} bits`);
  } else if (pub.type === TPM_ALG.ECC) {
    if (!SECURE_CURVES.includes(pub.parameters.curveID)) throw new AttestationError('keyStrength', `curve 0x${pub.parameters.curveID.toString(16)} is not accepted`);
  } else {
    throw new AttestationError('keyStrength', `key type ${algName(pub.type)} is not an asymmetric key`);
  }
  let createHash: Uint8Array;
  try {
    createHash = hash(pub.nameAlg, createData);
  } catch (e) {
    throw new AttestationError('creationHash', (e as Error).message);
  }
  if (!bytesEqual(creation.attested.creationHash, createHash)) throw new AttestationError('creationHash', 'creationHash is not the hash of the creation data');
  checkHeader(creation, TPM_ST.ATTEST_CREATION, opts.nonce);
  const restricted = opts.restricted ?? true;
  checkAttributes(pub, {
    set: TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | (restricted ? TPMA_OBJECT.restricted : 0),
    clear: restricted ? 0 : TPMA_OBJECT.restricted,
  });
  if (!bytesEqual(creation.attested.objectName, objectName(pub))) throw new AttestationError('name', 'attested objectName is not the name of the key');
  return creation;
}
