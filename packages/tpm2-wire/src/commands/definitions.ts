/**
 * Command definitions (Part 3). Handles marked `auth: true` carry an `@` in
 * the spec's command tables. Everything else is derived by `execute()`.
 */
import { i32, u16, u32, u8, yesNo } from '../types/codec.js';
import { TPM_CC as CC } from '../types/constants.js';
import * as S from '../types/structures.js';
import { defineCommand } from './spec.js';

const AUTH = { auth: true } as const;

// ---- start-up, testing, random (Part 3, 9, 10, 16) -------------------------
export const Startup = defineCommand({ name: 'TPM2_Startup', code: CC.Startup, handles: [], params: { startupType: u16 }, response: {} });
export const Shutdown = defineCommand({ name: 'TPM2_Shutdown', code: CC.Shutdown, handles: [], params: { shutdownType: u16 }, response: {} });
export const SelfTest = defineCommand({ name: 'TPM2_SelfTest', code: CC.SelfTest, handles: [], params: { fullTest: yesNo }, response: {} });
export const GetRandom = defineCommand({ name: 'TPM2_GetRandom', code: CC.GetRandom, handles: [], params: { bytesRequested: u16 }, response: { randomBytes: S.TPM2B_DIGEST } });
export const StirRandom = defineCommand({ name: 'TPM2_StirRandom', code: CC.StirRandom, handles: [], params: { inData: S.TPM2B_SENSITIVE_DATA }, response: {} });

// ---- sessions and policy (Part 3, 11, 23) ----------------------------------
export const StartAuthSession = defineCommand({
  name: 'TPM2_StartAuthSession', code: CC.StartAuthSession,
  handles: [{ name: 'tpmKey' }, { name: 'bind' }],
  params: { nonceCaller: S.TPM2B_NONCE, encryptedSalt: S.TPM2B_ENCRYPTED_SECRET, sessionType: u8, symmetric: S.TPMT_SYM_DEF, authHash: S.TPMI_ALG_HASH },
  responseHandles: ['sessionHandle'],
  response: { nonceTPM: S.TPM2B_NONCE },
});
export const PolicyRestart = defineCommand({ name: 'TPM2_PolicyRestart', code: CC.PolicyRestart, handles: [{ name: 'sessionHandle' }], params: {}, response: {} });
export const PolicyPCR = defineCommand({
  name: 'TPM2_PolicyPCR', code: CC.PolicyPCR, handles: [{ name: 'policySession' }],
  params: { pcrDigest: S.TPM2B_DIGEST, pcrs: S.TPML_PCR_SELECTION }, response: {},
});
export const PolicySecret = defineCommand({
  name: 'TPM2_PolicySecret', code: CC.PolicySecret, handles: [{ name: 'authHandle', ...AUTH }, { name: 'policySession' }],
  params: { nonceTPM: S.TPM2B_NONCE, cpHashA: S.TPM2B_DIGEST, policyRef: S.TPM2B_NONCE, expiration: i32 },
  response: { timeout: S.TPM2B_TIMEOUT, policyTicket: S.TPMT_TK_AUTH },
});
export const PolicyAuthValue = defineCommand({ name: 'TPM2_PolicyAuthValue', code: CC.PolicyAuthValue, handles: [{ name: 'policySession' }], params: {}, response: {} });
export const PolicyPassword = defineCommand({ name: 'TPM2_PolicyPassword', code: CC.PolicyPassword, handles: [{ name: 'policySession' }], params: {}, response: {} });
export const PolicyCommandCode = defineCommand({ name: 'TPM2_PolicyCommandCode', code: CC.PolicyCommandCode, handles: [{ name: 'policySession' }], params: { code: u32 }, response: {} });
export const PolicyOR = defineCommand({ name: 'TPM2_PolicyOR', code: CC.PolicyOR, handles: [{ name: 'policySession' }], params: { pHashList: S.TPML_DIGEST }, response: {} });
export const PolicyGetDigest = defineCommand({
  name: 'TPM2_PolicyGetDigest', code: CC.PolicyGetDigest, handles: [{ name: 'policySession' }], params: {}, response: { policyDigest: S.TPM2B_DIGEST },
});

// ---- objects (Part 3, 12) ---------------------------------------------------
const creationParams = { inSensitive: S.TPM2B_SENSITIVE_CREATE, inPublic: S.TPM2B_PUBLIC, outsideInfo: S.TPM2B_DATA, creationPCR: S.TPML_PCR_SELECTION };
const creationResponse = { outPublic: S.TPM2B_PUBLIC, creationData: S.TPM2B_CREATION_DATA, creationHash: S.TPM2B_DIGEST, creationTicket: S.TPMT_TK_CREATION };
export const CreatePrimary = defineCommand({
  name: 'TPM2_CreatePrimary', code: CC.CreatePrimary, handles: [{ name: 'primaryHandle', ...AUTH }],
  params: creationParams, responseHandles: ['objectHandle'], response: { ...creationResponse, name: S.TPM2B_NAME },
});
export const Create = defineCommand({
  name: 'TPM2_Create', code: CC.Create, handles: [{ name: 'parentHandle', ...AUTH }],
  params: creationParams, response: { outPrivate: S.TPM2B_PRIVATE, ...creationResponse },
});
export const Load = defineCommand({
  name: 'TPM2_Load', code: CC.Load, handles: [{ name: 'parentHandle', ...AUTH }],
  params: { inPrivate: S.TPM2B_PRIVATE, inPublic: S.TPM2B_PUBLIC }, responseHandles: ['objectHandle'], response: { name: S.TPM2B_NAME },
});
export const LoadExternal = defineCommand({
  name: 'TPM2_LoadExternal', code: CC.LoadExternal, handles: [],
  params: { inPrivate: S.TPM2B_SENSITIVE, inPublic: S.TPM2B_PUBLIC, hierarchy: S.TPM_HANDLE }, responseHandles: ['objectHandle'], response: { name: S.TPM2B_NAME },
});
export const ReadPublic = defineCommand({
  name: 'TPM2_ReadPublic', code: CC.ReadPublic, handles: [{ name: 'objectHandle' }], params: {},
  response: { outPublic: S.TPM2B_PUBLIC, name: S.TPM2B_NAME, qualifiedName: S.TPM2B_NAME },
});
export const ActivateCredential = defineCommand({
  name: 'TPM2_ActivateCredential', code: CC.ActivateCredential, handles: [{ name: 'activateHandle', ...AUTH }, { name: 'keyHandle', ...AUTH }],
  params: { credentialBlob: S.TPM2B_ID_OBJECT, secret: S.TPM2B_ENCRYPTED_SECRET }, response: { certInfo: S.TPM2B_DIGEST },
});
export const MakeCredential = defineCommand({
  name: 'TPM2_MakeCredential', code: CC.MakeCredential, handles: [{ name: 'handle' }],
  params: { credential: S.TPM2B_DIGEST, objectName: S.TPM2B_NAME }, response: { credentialBlob: S.TPM2B_ID_OBJECT, secret: S.TPM2B_ENCRYPTED_SECRET },
});
export const Unseal = defineCommand({ name: 'TPM2_Unseal', code: CC.Unseal, handles: [{ name: 'itemHandle', ...AUTH }], params: {}, response: { outData: S.TPM2B_SENSITIVE_DATA } });
export const ObjectChangeAuth = defineCommand({
  name: 'TPM2_ObjectChangeAuth', code: CC.ObjectChangeAuth, handles: [{ name: 'objectHandle', ...AUTH }, { name: 'parentHandle' }],
  params: { newAuth: S.TPM2B_AUTH }, response: { outPrivate: S.TPM2B_PRIVATE },
});

// ---- duplication (Part 3, 13) -------------------------------------------------
export const Duplicate = defineCommand({
  name: 'TPM2_Duplicate', code: CC.Duplicate, handles: [{ name: 'objectHandle', ...AUTH }, { name: 'newParentHandle' }],
  params: { encryptionKeyIn: S.TPM2B_DATA, symmetricAlg: S.TPMT_SYM_DEF_OBJECT },
  response: { encryptionKeyOut: S.TPM2B_DATA, duplicate: S.TPM2B_PRIVATE, outSymSeed: S.TPM2B_ENCRYPTED_SECRET },
});
export const Import = defineCommand({
  name: 'TPM2_Import', code: CC.Import, handles: [{ name: 'parentHandle', ...AUTH }],
  params: { encryptionKey: S.TPM2B_DATA, objectPublic: S.TPM2B_PUBLIC, duplicate: S.TPM2B_PRIVATE, inSymSeed: S.TPM2B_ENCRYPTED_SECRET, symmetricAlg: S.TPMT_SYM_DEF_OBJECT },
  response: { outPrivate: S.TPM2B_PRIVATE },
});

// ---- hashing, signing (Part 3, 15, 20) -------------------------------------------
export const Hash = defineCommand({
  name: 'TPM2_Hash', code: CC.Hash, handles: [], params: { data: S.TPM2B_MAX_BUFFER, hashAlg: S.TPMI_ALG_HASH, hierarchy: S.TPM_HANDLE },
  response: { outHash: S.TPM2B_DIGEST, validation: S.TPMT_TK_HASHCHECK },
});
export const HashSequenceStart = defineCommand({
  name: 'TPM2_HashSequenceStart', code: CC.HashSequenceStart, handles: [], params: { auth: S.TPM2B_AUTH, hashAlg: S.TPMI_ALG_HASH },
  responseHandles: ['sequenceHandle'], response: {},
});
export const SequenceUpdate = defineCommand({
  name: 'TPM2_SequenceUpdate', code: CC.SequenceUpdate, handles: [{ name: 'sequenceHandle', ...AUTH }], params: { buffer: S.TPM2B_MAX_BUFFER }, response: {},
});
export const SequenceComplete = defineCommand({
  name: 'TPM2_SequenceComplete', code: CC.SequenceComplete, handles: [{ name: 'sequenceHandle', ...AUTH }],
  params: { buffer: S.TPM2B_MAX_BUFFER, hierarchy: S.TPM_HANDLE }, response: { result: S.TPM2B_DIGEST, validation: S.TPMT_TK_HASHCHECK },
});
export const Sign = defineCommand({
  name: 'TPM2_Sign', code: CC.Sign, handles: [{ name: 'keyHandle', ...AUTH }],
  params: { digest: S.TPM2B_DIGEST, inScheme: S.TPMT_SIG_SCHEME, validation: S.TPMT_TK_HASHCHECK }, response: { signature: S.TPMT_SIGNATURE },
});
export const VerifySignature = defineCommand({
  name: 'TPM2_VerifySignature', code: CC.VerifySignature, handles: [{ name: 'keyHandle' }],
  params: { digest: S.TPM2B_DIGEST, signature: S.TPMT_SIGNATURE }, response: { validation: S.TPMT_TK_VERIFIED },
});

// ---- attestation (Part 3, 18) ----------------------------------------------------------
export const Certify = defineCommand({
  name: 'TPM2_Certify', code: CC.Certify, handles: [{ name: 'objectHandle', ...AUTH }, { name: 'signHandle', ...AUTH }],
  params: { qualifyingData: S.TPM2B_DATA, inScheme: S.TPMT_SIG_SCHEME }, response: { certifyInfo: S.TPM2B_ATTEST, signature: S.TPMT_SIGNATURE },
});
export const CertifyCreation = defineCommand({
  name: 'TPM2_CertifyCreation', code: CC.CertifyCreation, handles: [{ name: 'signHandle', ...AUTH }, { name: 'objectHandle' }],
  params: { qualifyingData: S.TPM2B_DATA, creationHash: S.TPM2B_DIGEST, inScheme: S.TPMT_SIG_SCHEME, creationTicket: S.TPMT_TK_CREATION },
  response: { certifyInfo: S.TPM2B_ATTEST, signature: S.TPMT_SIGNATURE },
});
export const Quote = defineCommand({
  name: 'TPM2_Quote', code: CC.Quote, handles: [{ name: 'signHandle', ...AUTH }],
  params: { qualifyingData: S.TPM2B_DATA, inScheme: S.TPMT_SIG_SCHEME, PCRselect: S.TPML_PCR_SELECTION },
  response: { quoted: S.TPM2B_ATTEST, signature: S.TPMT_SIGNATURE },
});

// ---- PCRs (Part 3, 22) ---------------------------------------------------------------
export const PCR_Read = defineCommand({
  name: 'TPM2_PCR_Read', code: CC.PCR_Read, handles: [], params: { pcrSelectionIn: S.TPML_PCR_SELECTION },
  response: { pcrUpdateCounter: u32, pcrSelectionOut: S.TPML_PCR_SELECTION, pcrValues: S.TPML_DIGEST },
});
export const PCR_Extend = defineCommand({ name: 'TPM2_PCR_Extend', code: CC.PCR_Extend, handles: [{ name: 'pcrHandle', ...AUTH }], params: { digests: S.TPML_DIGEST_VALUES }, response: {} });
export const PCR_Reset = defineCommand({ name: 'TPM2_PCR_Reset', code: CC.PCR_Reset, handles: [{ name: 'pcrHandle', ...AUTH }], params: {}, response: {} });

// ---- hierarchy, DA (Part 3, 24, 25) ------------------------------------------------------
export const DictionaryAttackLockReset = defineCommand({
  name: 'TPM2_DictionaryAttackLockReset', code: CC.DictionaryAttackLockReset, handles: [{ name: 'lockHandle', ...AUTH }], params: {}, response: {},
});

// ---- context management (Part 3, 28) -------------------------------------------------------
export const ContextSave = defineCommand({ name: 'TPM2_ContextSave', code: CC.ContextSave, handles: [{ name: 'saveHandle' }], params: {}, response: { context: S.TPMS_CONTEXT } });
export const ContextLoad = defineCommand({
  name: 'TPM2_ContextLoad', code: CC.ContextLoad, handles: [], params: { context: S.TPMS_CONTEXT }, responseHandles: ['loadedHandle'], response: {},
});
export const FlushContext = defineCommand({ name: 'TPM2_FlushContext', code: CC.FlushContext, handles: [], params: { flushHandle: S.TPM_HANDLE }, response: {} });
export const EvictControl = defineCommand({
  name: 'TPM2_EvictControl', code: CC.EvictControl, handles: [{ name: 'auth', ...AUTH }, { name: 'objectHandle' }],
  params: { persistentHandle: S.TPM_HANDLE }, response: {},
});

// ---- clock, capability (Part 3, 29, 30) ---------------------------------------------------------
export const ReadClock = defineCommand({ name: 'TPM2_ReadClock', code: CC.ReadClock, handles: [], params: {}, response: { currentTime: S.TPMS_TIME_INFO } });
export const GetCapability = defineCommand({
  name: 'TPM2_GetCapability', code: CC.GetCapability, handles: [], params: { capability: u32, property: u32, propertyCount: u32 },
  response: { moreData: yesNo, capabilityData: S.TPMS_CAPABILITY_DATA },
});

// ---- NV (Part 3, 31) -------------------------------------------------------------------------
export const NV_DefineSpace = defineCommand({
  name: 'TPM2_NV_DefineSpace', code: CC.NV_DefineSpace, handles: [{ name: 'authHandle', ...AUTH }],
  params: { auth: S.TPM2B_AUTH, publicInfo: S.TPM2B_NV_PUBLIC }, response: {},
});
export const NV_UndefineSpace = defineCommand({
  name: 'TPM2_NV_UndefineSpace', code: CC.NV_UndefineSpace, handles: [{ name: 'authHandle', ...AUTH }, { name: 'nvIndex' }], params: {}, response: {},
});
export const NV_ReadPublic = defineCommand({
  name: 'TPM2_NV_ReadPublic', code: CC.NV_ReadPublic, handles: [{ name: 'nvIndex' }], params: {}, response: { nvPublic: S.TPM2B_NV_PUBLIC, nvName: S.TPM2B_NAME },
});
export const NV_Read = defineCommand({
  name: 'TPM2_NV_Read', code: CC.NV_Read, handles: [{ name: 'authHandle', ...AUTH }, { name: 'nvIndex' }],
  params: { size: u16, offset: u16 }, response: { data: S.TPM2B_MAX_NV_BUFFER },
});
export const NV_Write = defineCommand({
  name: 'TPM2_NV_Write', code: CC.NV_Write, handles: [{ name: 'authHandle', ...AUTH }, { name: 'nvIndex' }],
  params: { data: S.TPM2B_MAX_NV_BUFFER, offset: u16 }, response: {},
});
