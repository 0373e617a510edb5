/**
 * TPM 2.0 structures (Part 2: Structures) as declarative codecs. The decoded
 * TypeScript type of each is `Infer<typeof NAME>` and is exported as a type
 * of the same name.
 */
import {
  type Codec, type Infer, alias, empty, fixedBytes, list, sized, sizedOrEmpty, struct, tagged, tpm2b,
  u16, u32, u64, u8, yesNo,
} from './codec.js';
import { TPM_ALG, TPM_CAP, TPM_ST, HASH_SIZE } from './constants.js';
import { TpmEncodeError } from '../bytes/errors.js';

const A = TPM_ALG;

// ---- base types --------------------------------------------------------
export const TPM_ALG_ID = alias('TPM_ALG_ID', u16);
export const TPMI_ALG_HASH = alias('TPMI_ALG_HASH', u16);
export const TPM_HANDLE = alias('TPM_HANDLE', u32);
export const TPMA_OBJECT_BITS = alias('TPMA_OBJECT', u32);

// ---- TPM2B byte buffers (10.4) ------------------------------------------
export const TPM2B_DIGEST = tpm2b('TPM2B_DIGEST', 64);
export const TPM2B_DATA = tpm2b('TPM2B_DATA', 66);
export const TPM2B_NONCE = tpm2b('TPM2B_NONCE', 64);
export const TPM2B_AUTH = tpm2b('TPM2B_AUTH', 64);
export const TPM2B_EVENT = tpm2b('TPM2B_EVENT', 1024);
export const TPM2B_MAX_BUFFER = tpm2b('TPM2B_MAX_BUFFER', 4096);
export const TPM2B_MAX_NV_BUFFER = tpm2b('TPM2B_MAX_NV_BUFFER', 4096);
export const TPM2B_TIMEOUT = tpm2b('TPM2B_TIMEOUT', 8);
export const TPM2B_NAME = tpm2b('TPM2B_NAME', 2 + 64);
export const TPM2B_SENSITIVE_DATA = tpm2b('TPM2B_SENSITIVE_DATA', 256);
export const TPM2B_PUBLIC_KEY_RSA = tpm2b('TPM2B_PUBLIC_KEY_RSA', 512);
export const TPM2B_PRIVATE_KEY_RSA = tpm2b('TPM2B_PRIVATE_KEY_RSA', 512);
export const TPM2B_ECC_PARAMETER = tpm2b('TPM2B_ECC_PARAMETER', 128);
export const TPM2B_SYM_KEY = tpm2b('TPM2B_SYM_KEY', 64);
export const TPM2B_DERIVE = tpm2b('TPM2B_DERIVE', 2 * 64 + 4);
export const TPM2B_PRIVATE = tpm2b('TPM2B_PRIVATE', 4096);
export const TPM2B_ID_OBJECT = tpm2b('TPM2B_ID_OBJECT', 2 + 64 + 2 + 64 + 16);
export const TPM2B_ENCRYPTED_SECRET = tpm2b('TPM2B_ENCRYPTED_SECRET', 512);
export const TPM2B_CONTEXT_DATA = tpm2b('TPM2B_CONTEXT_DATA', 4096);
export const TPM2B_TEMPLATE = tpm2b('TPM2B_TEMPLATE', 1024);
export const TPM2B_SENSITIVE_CREATE_DATA = TPM2B_SENSITIVE_DATA;

// ---- PCR selection (10.6) -----------------------------------------------
/** The pcrSelect bitmap: UINT8 sizeofSelect || BYTE[sizeofSelect]. */
const PCR_SELECT: Codec<Uint8Array> = {
  name: 'TPMS_PCR_SELECT',
  encode(w, v) {
    if (v.length > 32) throw new TpmEncodeError(`pcrSelect is ${v.length} bytes; at most 32 allowed`);
    w.u8(v.length).bytes(v);
  },
  decode(r) {
    const n = r.u8('sizeofSelect');
    if (n > 32) r.fail(`TPMS_PCR_SELECT.sizeofSelect ${n} exceeds its maximum 32`, 'TPMS_PCR_SELECT');
    return r.bytesN(n, 'pcrSelect');
  },
};
export const TPMS_PCR_SELECTION = struct('TPMS_PCR_SELECTION', { hash: TPMI_ALG_HASH, pcrSelect: PCR_SELECT });
export type TPMS_PCR_SELECTION = Infer<typeof TPMS_PCR_SELECTION>;
export const TPML_PCR_SELECTION = list('TPML_PCR_SELECTION', TPMS_PCR_SELECTION, { maxCount: 16 });
export type TPML_PCR_SELECTION = Infer<typeof TPML_PCR_SELECTION>;

/** TPMT_HA: a digest tagged with its hash algorithm (size implied by the algorithm). */
const haVariants: Record<number, { digest: Codec<Uint8Array> }> = { [A.NULL]: { digest: fixedBytes('TPMU_HA', 0) } };
for (const [alg, size] of Object.entries(HASH_SIZE)) haVariants[Number(alg)] = { digest: fixedBytes('TPMU_HA', size) };
export const TPMT_HA = tagged('TPMT_HA', { tag: 'hashAlg', variants: haVariants });
export type TPMT_HA = { hashAlg: number; digest: Uint8Array };
export const TPML_DIGEST = list('TPML_DIGEST', TPM2B_DIGEST, { maxCount: 8 });
export const TPML_DIGEST_VALUES = list('TPML_DIGEST_VALUES', TPMT_HA as Codec<TPMT_HA>, { maxCount: 16 });

// ---- capabilities (10.8-10.10) --------------------------------------------
export const TPMS_ALG_PROPERTY = struct('TPMS_ALG_PROPERTY', { alg: TPM_ALG_ID, algProperties: u32 });
export type TPMS_ALG_PROPERTY = Infer<typeof TPMS_ALG_PROPERTY>;
export const TPMS_TAGGED_PROPERTY = struct('TPMS_TAGGED_PROPERTY', { property: u32, value: u32 });
export const TPMS_TAGGED_PCR_SELECT = struct('TPMS_TAGGED_PCR_SELECT', { tag: u32, pcrSelect: PCR_SELECT });
export const TPML_ALG_PROPERTY = list('TPML_ALG_PROPERTY', TPMS_ALG_PROPERTY, { maxCount: 256 });
export const TPML_HANDLE = list('TPML_HANDLE', TPM_HANDLE, { maxCount: 256 });
export const TPML_CC = list('TPML_CC', u32, { maxCount: 512 });
export const TPML_CCA = list('TPML_CCA', u32, { maxCount: 512 });
export const TPML_TAGGED_TPM_PROPERTY = list('TPML_TAGGED_TPM_PROPERTY', TPMS_TAGGED_PROPERTY, { maxCount: 256 });
export const TPML_TAGGED_PCR_PROPERTY = list('TPML_TAGGED_PCR_PROPERTY', TPMS_TAGGED_PCR_SELECT, { maxCount: 256 });
export const TPML_ECC_CURVE = list('TPML_ECC_CURVE', u16, { maxCount: 256 });
export const TPMS_CAPABILITY_DATA = tagged('TPMS_CAPABILITY_DATA', {
  tag: 'capability',
  tagCodec: u32,
  variants: {
    [TPM_CAP.ALGS]: { algorithms: TPML_ALG_PROPERTY },
    [TPM_CAP.HANDLES]: { handles: TPML_HANDLE },
    [TPM_CAP.COMMANDS]: { command: TPML_CCA },
    [TPM_CAP.PP_COMMANDS]: { ppCommands: TPML_CC },
    [TPM_CAP.AUDIT_COMMANDS]: { auditCommands: TPML_CC },
    [TPM_CAP.PCRS]: { assignedPCR: TPML_PCR_SELECTION },
    [TPM_CAP.TPM_PROPERTIES]: { tpmProperties: TPML_TAGGED_TPM_PROPERTY },
    [TPM_CAP.PCR_PROPERTIES]: { pcrProperties: TPML_TAGGED_PCR_PROPERTY },
    [TPM_CAP.ECC_CURVES]: { eccCurves: TPML_ECC_CURVE },
  },
});
export type TPMS_CAPABILITY_DATA = Infer<typeof TPMS_CAPABILITY_DATA>;

// ---- tickets, clock (10.7, 10.11) -----------------------------------------
const ticket = (name: string) => struct(name, { tag: u16, hierarchy: TPM_HANDLE, digest: TPM2B_DIGEST });
export const TPMT_TK_CREATION = ticket('TPMT_TK_CREATION');
export const TPMT_TK_VERIFIED = ticket('TPMT_TK_VERIFIED');
export const TPMT_TK_AUTH = ticket('TPMT_TK_AUTH');
export const TPMT_TK_HASHCHECK = ticket('TPMT_TK_HASHCHECK');
export type TPMT_TK = Infer<typeof TPMT_TK_CREATION>;

export const TPMS_CLOCK_INFO = struct('TPMS_CLOCK_INFO', { clock: u64, resetCount: u32, restartCount: u32, safe: yesNo });
export type TPMS_CLOCK_INFO = Infer<typeof TPMS_CLOCK_INFO>;
export const TPMS_TIME_INFO = struct('TPMS_TIME_INFO', { time: u64, clockInfo: TPMS_CLOCK_INFO });

// ---- attestation (10.12) -----------------------------------------------------
export const TPMS_ATTEST = tagged('TPMS_ATTEST', {
  prefix: { magic: u32 },
  tag: 'type',
  common: { qualifiedSigner: TPM2B_NAME, extraData: TPM2B_DATA, clockInfo: TPMS_CLOCK_INFO, firmwareVersion: u64 },
  variants: {
    [TPM_ST.ATTEST_CERTIFY]: { attested: struct('TPMS_CERTIFY_INFO', { name: TPM2B_NAME, qualifiedName: TPM2B_NAME }) },
    [TPM_ST.ATTEST_QUOTE]: { attested: struct('TPMS_QUOTE_INFO', { pcrSelect: TPML_PCR_SELECTION, pcrDigest: TPM2B_DIGEST }) },
    [TPM_ST.ATTEST_CREATION]: { attested: struct('TPMS_CREATION_INFO', { objectName: TPM2B_NAME, creationHash: TPM2B_DIGEST }) },
    [TPM_ST.ATTEST_TIME]: { attested: struct('TPMS_TIME_ATTEST_INFO', { time: TPMS_TIME_INFO, firmwareVersion: u64 }) },
    [TPM_ST.ATTEST_NV]: { attested: struct('TPMS_NV_CERTIFY_INFO', { indexName: TPM2B_NAME, offset: u16, nvContents: TPM2B_MAX_NV_BUFFER }) },
    [TPM_ST.ATTEST_COMMAND_AUDIT]: {
      attested: struct('TPMS_COMMAND_AUDIT_INFO', { auditCounter: u64, digestAlg: TPM_ALG_ID, auditDigest: TPM2B_DIGEST, commandDigest: TPM2B_DIGEST }),
    },
    [TPM_ST.ATTEST_SESSION_AUDIT]: { attested: struct('TPMS_SESSION_AUDIT_INFO', { exclusiveSession: yesNo, sessionDigest: TPM2B_DIGEST }) },
  },
});
export type TPMS_ATTEST = Infer<typeof TPMS_ATTEST>;
export const TPM2B_ATTEST = sized('TPM2B_ATTEST', TPMS_ATTEST);

// ---- algorithm parameters and schemes (11) --------------------------------------
const hashDetail = { hashAlg: TPMI_ALG_HASH };
const symDetail = { keyBits: u16, mode: TPM_ALG_ID };

/** TPMT_SYM_DEF_OBJECT: symmetric algorithm of a storage key (NULL, AES, SM4, CAMELLIA). */
export const TPMT_SYM_DEF_OBJECT = tagged('TPMT_SYM_DEF_OBJECT', {
  tag: 'algorithm',
  variants: { [A.NULL]: {}, [A.AES]: symDetail, [A.SM4]: symDetail, [A.CAMELLIA]: symDetail },
});
export type TPMT_SYM_DEF_OBJECT = Infer<typeof TPMT_SYM_DEF_OBJECT>;
/** TPMT_SYM_DEF: a session's symmetric algorithm; XOR carries a hash algorithm in keyBits. */
export const TPMT_SYM_DEF = tagged('TPMT_SYM_DEF', {
  tag: 'algorithm',
  variants: { [A.NULL]: {}, [A.AES]: symDetail, [A.SM4]: symDetail, [A.CAMELLIA]: symDetail, [A.XOR]: { keyBits: TPMI_ALG_HASH } },
});
export type TPMT_SYM_DEF = Infer<typeof TPMT_SYM_DEF>;

export const TPMT_KEYEDHASH_SCHEME = tagged('TPMT_KEYEDHASH_SCHEME', {
  tag: 'scheme',
  variants: { [A.NULL]: {}, [A.HMAC]: hashDetail, [A.XOR]: { hashAlg: TPMI_ALG_HASH, kdf: TPM_ALG_ID } },
});
export const TPMT_SIG_SCHEME = tagged('TPMT_SIG_SCHEME', {
  tag: 'scheme',
  variants: {
    [A.NULL]: {}, [A.RSASSA]: hashDetail, [A.RSAPSS]: hashDetail, [A.ECDSA]: hashDetail, [A.SM2]: hashDetail,
    [A.ECSCHNORR]: hashDetail, [A.HMAC]: hashDetail, [A.ECDAA]: { hashAlg: TPMI_ALG_HASH, count: u16 },
  },
});
export type TPMT_SIG_SCHEME = Infer<typeof TPMT_SIG_SCHEME>;
export const TPMT_RSA_SCHEME = tagged('TPMT_RSA_SCHEME', {
  tag: 'scheme',
  variants: { [A.NULL]: {}, [A.RSASSA]: hashDetail, [A.RSAPSS]: hashDetail, [A.OAEP]: hashDetail, [A.RSAES]: {} },
});
export const TPMT_RSA_DECRYPT = TPMT_RSA_SCHEME;
export const TPMT_ECC_SCHEME = tagged('TPMT_ECC_SCHEME', {
  tag: 'scheme',
  variants: {
    [A.NULL]: {}, [A.ECDSA]: hashDetail, [A.ECDH]: hashDetail, [A.ECSCHNORR]: hashDetail, [A.SM2]: hashDetail,
    [A.ECMQV]: hashDetail, [A.ECDAA]: { hashAlg: TPMI_ALG_HASH, count: u16 },
  },
});
export const TPMT_KDF_SCHEME = tagged('TPMT_KDF_SCHEME', {
  tag: 'scheme',
  variants: { [A.NULL]: {}, [A.MGF1]: hashDetail, [A.KDF1_SP800_56A]: hashDetail, [A.KDF2]: hashDetail, [A.KDF1_SP800_108]: hashDetail },
});

export const TPMS_ECC_POINT = struct('TPMS_ECC_POINT', { x: TPM2B_ECC_PARAMETER, y: TPM2B_ECC_PARAMETER });
export type TPMS_ECC_POINT = Infer<typeof TPMS_ECC_POINT>;
export const TPM2B_ECC_POINT = sized('TPM2B_ECC_POINT', TPMS_ECC_POINT);

export const TPMS_RSA_PARMS = struct('TPMS_RSA_PARMS', { symmetric: TPMT_SYM_DEF_OBJECT, scheme: TPMT_RSA_SCHEME, keyBits: u16, exponent: u32 });
export const TPMS_ECC_PARMS = struct('TPMS_ECC_PARMS', { symmetric: TPMT_SYM_DEF_OBJECT, scheme: TPMT_ECC_SCHEME, curveID: u16, kdf: TPMT_KDF_SCHEME });
export const TPMS_KEYEDHASH_PARMS = struct('TPMS_KEYEDHASH_PARMS', { scheme: TPMT_KEYEDHASH_SCHEME });
export const TPMS_SYMCIPHER_PARMS = struct('TPMS_SYMCIPHER_PARMS', { sym: TPMT_SYM_DEF_OBJECT });

// ---- signatures (11.3) ---------------------------------------------------------------
const rsaSig = { hash: TPMI_ALG_HASH, sig: TPM2B_PUBLIC_KEY_RSA };
const eccSig = { hash: TPMI_ALG_HASH, signatureR: TPM2B_ECC_PARAMETER, signatureS: TPM2B_ECC_PARAMETER };
export const TPMT_SIGNATURE = tagged('TPMT_SIGNATURE', {
  tag: 'sigAlg',
  variants: {
    [A.NULL]: {}, [A.RSASSA]: rsaSig, [A.RSAPSS]: rsaSig, [A.ECDSA]: eccSig, [A.ECDAA]: eccSig,
    [A.SM2]: eccSig, [A.ECSCHNORR]: eccSig, [A.HMAC]: { hmac: TPMT_HA as Codec<TPMT_HA> },
  },
});
export type TPMT_SIGNATURE = Infer<typeof TPMT_SIGNATURE>;

// ---- objects (12) ------------------------------------------------------------------------
const publicCommon = { nameAlg: TPMI_ALG_HASH, objectAttributes: TPMA_OBJECT_BITS, authPolicy: TPM2B_DIGEST };
/** TPMT_PUBLIC: the public area of an object; `parameters` and `unique` follow `type`. */
export const TPMT_PUBLIC = tagged('TPMT_PUBLIC', {
  tag: 'type',
  common: publicCommon,
  variants: {
    [A.RSA]: { parameters: TPMS_RSA_PARMS, unique: TPM2B_PUBLIC_KEY_RSA },
    [A.ECC]: { parameters: TPMS_ECC_PARMS, unique: TPMS_ECC_POINT },
    [A.KEYEDHASH]: { parameters: TPMS_KEYEDHASH_PARMS, unique: TPM2B_DIGEST },
    [A.SYMCIPHER]: { parameters: TPMS_SYMCIPHER_PARMS, unique: TPM2B_DIGEST },
  },
});
export type TPMT_PUBLIC = Infer<typeof TPMT_PUBLIC>;
export type TPMT_PUBLIC_RSA = Extract<TPMT_PUBLIC, { type: 0x0001 }>;
export type TPMT_PUBLIC_ECC = Extract<TPMT_PUBLIC, { type: 0x0023 }>;
export const TPM2B_PUBLIC = sized('TPM2B_PUBLIC', TPMT_PUBLIC);

/** TPMT_SENSITIVE: the private part of an object (for LoadExternal, Import, duplication). */
export const TPMT_SENSITIVE = tagged('TPMT_SENSITIVE', {
  tag: 'sensitiveType',
  common: { authValue: TPM2B_AUTH, seedValue: TPM2B_DIGEST },
  variants: {
    [A.RSA]: { sensitive: TPM2B_PRIVATE_KEY_RSA },
    [A.ECC]: { sensitive: TPM2B_ECC_PARAMETER },
    [A.KEYEDHASH]: { sensitive: TPM2B_SENSITIVE_DATA },
    [A.SYMCIPHER]: { sensitive: TPM2B_SYM_KEY },
  },
});
export type TPMT_SENSITIVE = Infer<typeof TPMT_SENSITIVE>;
export const TPM2B_SENSITIVE = sizedOrEmpty('TPM2B_SENSITIVE', TPMT_SENSITIVE);

export const TPMS_SENSITIVE_CREATE = struct('TPMS_SENSITIVE_CREATE', { userAuth: TPM2B_AUTH, data: TPM2B_SENSITIVE_DATA });
export type TPMS_SENSITIVE_CREATE = Infer<typeof TPMS_SENSITIVE_CREATE>;
export const TPM2B_SENSITIVE_CREATE = sized('TPM2B_SENSITIVE_CREATE', TPMS_SENSITIVE_CREATE);

export const TPMS_CREATION_DATA = struct('TPMS_CREATION_DATA', {
  pcrSelect: TPML_PCR_SELECTION, pcrDigest: TPM2B_DIGEST, locality: u8, parentNameAlg: TPM_ALG_ID,
  parentName: TPM2B_NAME, parentQualifiedName: TPM2B_NAME, outsideInfo: TPM2B_DATA,
});
export type TPMS_CREATION_DATA = Infer<typeof TPMS_CREATION_DATA>;
export const TPM2B_CREATION_DATA = sized('TPM2B_CREATION_DATA', TPMS_CREATION_DATA);

// ---- NV (13) ------------------------------------------------------------------------------
export const TPMS_NV_PUBLIC = struct('TPMS_NV_PUBLIC', {
  nvIndex: TPM_HANDLE, nameAlg: TPMI_ALG_HASH, attributes: u32, authPolicy: TPM2B_DIGEST, dataSize: u16,
});
export type TPMS_NV_PUBLIC = Infer<typeof TPMS_NV_PUBLIC>;
export const TPM2B_NV_PUBLIC = sized('TPM2B_NV_PUBLIC', TPMS_NV_PUBLIC);

// ---- context (14) -------------------------------------------------------------------------
export const TPMS_CONTEXT = struct('TPMS_CONTEXT', { sequence: u64, savedHandle: TPM_HANDLE, hierarchy: TPM_HANDLE, contextBlob: TPM2B_CONTEXT_DATA });
export type TPMS_CONTEXT = Infer<typeof TPMS_CONTEXT>;

// ---- authorization area (10.13) -------------------------------------------------------------
export const TPMS_AUTH_COMMAND = struct('TPMS_AUTH_COMMAND', { sessionHandle: TPM_HANDLE, nonce: TPM2B_NONCE, sessionAttributes: u8, hmac: TPM2B_AUTH });
export type TPMS_AUTH_COMMAND = Infer<typeof TPMS_AUTH_COMMAND>;
export const TPMS_AUTH_RESPONSE = struct('TPMS_AUTH_RESPONSE', { nonce: TPM2B_NONCE, sessionAttributes: u8, hmac: TPM2B_AUTH });
export type TPMS_AUTH_RESPONSE = Infer<typeof TPMS_AUTH_RESPONSE>;

export { empty };
