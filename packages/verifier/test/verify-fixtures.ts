// Real attestor payloads made directly on swtpm with @tpmds/tpm2-wire (no attestor involved):
// what each RPC of the Verifier service returns, built the way FORMATS.md describes, so the
// verify functions are tested against TPM output rather than against themselves.
import { createHash } from 'node:crypto';
import {
  TPMT_SIGNATURE, TPM_ALG, TPM_RH, TPM2B_PUBLIC, akTemplate, marshal, pcrPolicyStep, pcrSelection, publicToPem, publicToSpkiDer,
  rawBytes, signatureToDer, signingKeyTemplate, type KeyType, type Session, type TPMT_PUBLIC, type Tpm,
} from '@tpmds/tpm2-wire';
import {
  GoCryptoHash, TPM_VERSION_20, decodeEncryptedCredential, decodeImportBlob, encodeAttestationParameters, encodeCertificationParameters,
  encodePlatformParameters, requireBytes, type PCR, type Quote,
} from '../src/formats/index.js';
import { decodePublicArea } from '../src/verify/index.js';
import { EK_P256_HANDLE, EK_RSA_HANDLE, SRK_HANDLE } from '../../tpm2-wire/test/fixtures/swtpm.js';

/** A key created under the SRK: its public area and wrapped private part (loaded only while used). */
export interface KeyBlob {
  public: TPMT_PUBLIC;
  private: Uint8Array;
}

export const ekHandle = (keyType: KeyType): number => (keyType === 'ecc' ? EK_P256_HANDLE : EK_RSA_HANDLE);

const TPMT_PUBLIC_BYTES = (pub: TPMT_PUBLIC): Uint8Array => marshal(TPM2B_PUBLIC, pub).subarray(2);
const sigBytes = (sig: TPMT_SIGNATURE): Uint8Array => marshal(TPMT_SIGNATURE, sig);
const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest());

/** Loads `key` under the SRK for the duration of `f`, then flushes it (swtpm has 3 object slots). */
export async function withKey<T>(tpm: Tpm, key: KeyBlob, f: (handle: number) => Promise<T>): Promise<T> {
  const { handle } = await tpm.load(SRK_HANDLE, key.private, key.public);
  try {
    return await f(handle);
  } finally {
    await tpm.flushContext(handle);
  }
}

/** A policy session satisfying the EK's PolicySecret(TPM_RH_ENDORSEMENT); flushed after `f`. */
async function withEkPolicy<T>(tpm: Tpm, f: (s: Session) => Promise<T>): Promise<T> {
  const s = await tpm.startAuthSession({ type: 'policy', symmetric: { algorithm: TPM_ALG.NULL } });
  try {
    await tpm.policySecret(TPM_RH.ENDORSEMENT, s);
    return await f(s);
  } finally {
    await tpm.flushContext(s.handle);
  }
}

/** GetEKCertResponse: the EK's SPKI and its certificate from NV. */
export async function ekResponse(tpm: Tpm, keyType: KeyType): Promise<{ ekPub: Uint8Array; ekCert: Uint8Array }> {
  const { public: pub } = await tpm.readPublic(ekHandle(keyType));
  return { ekPub: publicToSpkiDer(pub), ekCert: (await tpm.readEkCertificate(keyType)) ?? new Uint8Array(0) };
}

/**
 * GetAKResponse.ak: a key made from `template` (default: go-attestation's AK) under the SRK,
 * TPM2_CertifyCreation signed by itself, as AttestationParameters JSON.
 */
export async function makeAk(tpm: Tpm, keyType: KeyType, template: TPMT_PUBLIC = akTemplate(keyType)): Promise<{ json: Uint8Array; key: KeyBlob; parts: { public: Uint8Array; createData: Uint8Array; createAttestation: Uint8Array; createSignature: Uint8Array } }> {
  const c = await tpm.create(SRK_HANDLE, template);
  const key = { public: c.public, private: c.private };
  const cert = await withKey(tpm, key, (h) => tpm.certifyCreation(h, h, c.creationHash, c.creationTicket));
  const parts = {
    public: TPMT_PUBLIC_BYTES(c.public),
    createData: rawBytes(c.creationData)!,
    createAttestation: cert.attestBytes,
    createSignature: sigBytes(cert.signature),
  };
  return { json: encodeAttestationParameters({ ...parts, useTCSDActivationFormat: false }), key, parts };
}

/** What the attestor does for Attest: ActivateCredential of an EncryptedCredential JSON with the AK and the EK. */
export async function activate(tpm: Tpm, ak: KeyBlob, ekType: KeyType, encryptedCredentials: Uint8Array): Promise<Uint8Array> {
  const ec = decodeEncryptedCredential(encryptedCredentials);
  const credential = requireBytes(ec.credential, 'Credential').subarray(2);
  const secret = requireBytes(ec.secret, 'Secret').subarray(2);
  return withKey(tpm, ak, (h) =>
    withEkPolicy(tpm, (s) => tpm.activateCredential(h, ekHandle(ekType), credential, secret, { sessions: [undefined, s] })),
  );
}

/** QuoteResponse.platformAttestation: one quote per active bank over PCRs 0-23 with `nonce`, the PCR values, and `eventLog`. */
export async function platform(tpm: Tpm, ak: KeyBlob, nonce: Uint8Array, eventLog: Uint8Array | null = null): Promise<Uint8Array> {
  const all = Array.from({ length: 24 }, (_, i) => i);
  const goHash: Record<number, number> = { [TPM_ALG.SHA1]: GoCryptoHash.SHA1, [TPM_ALG.SHA256]: GoCryptoHash.SHA256, [TPM_ALG.SHA384]: GoCryptoHash.SHA384 };
  const quotes: Quote[] = [];
  const pcrs: PCR[] = [];
  await withKey(tpm, ak, async (h) => {
    for (const bank of await tpm.getActivePcrBanks()) {
      const q = await tpm.quote(h, nonce, pcrSelection(bank, all));
      quotes.push({ version: TPM_VERSION_20, quote: q.attestBytes, signature: sigBytes(q.signature) });
      for (const [index, digest] of await tpm.readPcrs(bank, all)) pcrs.push({ index, digest, digestAlg: goHash[bank]! });
    }
  });
  return encodePlatformParameters({ tpmVersion: TPM_VERSION_20, public: TPMT_PUBLIC_BYTES(ak.public), quotes, pcrs, eventLog });
}

/**
 * NewKeyResponse: a signing key from `template` (default: an unrestricted RSA-2048/P-256 key)
 * under the SRK, certified by the AK (TPM2_Certify), PEM public key + CertificationParameters JSON.
 */
export async function newKey(tpm: Tpm, ak: KeyBlob, keyType: KeyType, template: TPMT_PUBLIC = signingKeyTemplate(keyType)): Promise<{ resp: { public: Uint8Array; keyCertification: Uint8Array }; key: KeyBlob }> {
  const c = await tpm.create(SRK_HANDLE, template);
  const key = { public: c.public, private: c.private };
  const cert = await withKey(tpm, key, (kh) => withKey(tpm, ak, (akh) => tpm.certify(kh, akh)));
  const keyCertification = encodeCertificationParameters({
    public: TPMT_PUBLIC_BYTES(c.public), createData: null, createAttestation: cert.attestBytes, createSignature: sigBytes(cert.signature),
  });
  return { resp: { public: new TextEncoder().encode(publicToPem(c.public)), keyCertification }, key };
}

/** SignResponse.signed: SHA-256(data) signed by a loaded SRK child: RSASSA (raw) or ECDSA (ASN.1 DER). */
export async function signWith(tpm: Tpm, key: KeyBlob, data: Uint8Array): Promise<Uint8Array> {
  const scheme = key.public.type === TPM_ALG.ECC ? { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 } : { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 };
  return signatureToDer(await withKey(tpm, key, (h) => tpm.sign(h, sha256(data), { scheme })));
}

/** Import of a go-tpm-tools ImportBlob under the EK (PolicySecret(endorsement) sessions); returns the loaded handle to `f`. */
async function withImported<T>(tpm: Tpm, ekType: KeyType, blobBytes: Uint8Array, f: (handle: number, pub: TPMT_PUBLIC, policyPcrs: ReturnType<typeof decodeImportBlob>['pcrs']) => Promise<T>): Promise<T> {
  const blob = decodeImportBlob(blobBytes);
  const pub = decodePublicArea(blob.publicArea);
  const ek = ekHandle(ekType);
  const priv = await withEkPolicy(tpm, (s) => tpm.import(ek, pub, blob.duplicate, blob.encryptedSeed, { sessions: [s] }));
  const { handle } = await withEkPolicy(tpm, (s) => tpm.load(ek, priv, pub, { sessions: [s] }));
  try {
    return await f(handle, pub, blob.pcrs);
  } finally {
    await tpm.flushContext(handle);
  }
}

/** A policy session for the blob's PCR binding, or none when the blob has none. */
async function withPcrPolicy<T>(tpm: Tpm, pcrs: ReturnType<typeof decodeImportBlob>['pcrs'], f: (sessions: Session[]) => Promise<T>): Promise<T> {
  if (pcrs === undefined) return f([]);
  const s = await tpm.startAuthSession({ type: 'policy', symmetric: { algorithm: TPM_ALG.NULL } });
  try {
    await tpm.applyPolicy(s, [pcrPolicyStep({ hashAlg: pcrs.hash, values: pcrs.pcrs })]);
    return await f([s]);
  } finally {
    await tpm.flushContext(s.handle);
  }
}

/** What the attestor does for ImportBlob: Import + Load under the EK, Unseal (with PolicyPCR when bound). */
export function importAndUnseal(tpm: Tpm, ekType: KeyType, blobBytes: Uint8Array): Promise<Uint8Array> {
  return withImported(tpm, ekType, blobBytes, (h, _pub, pcrs) => withPcrPolicy(tpm, pcrs, (sessions) => tpm.unseal(h, { sessions })));
}

/** What the attestor does for ImportSigningKey: Import + Load under the EK, sign SHA-256(uid) (DER for ECDSA). */
export function importAndConfirm(tpm: Tpm, ekType: KeyType, blobBytes: Uint8Array, uid: string): Promise<Uint8Array> {
  return withImported(tpm, ekType, blobBytes, async (h, pub) => {
    const scheme = pub.type === TPM_ALG.ECC ? { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 } : { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 };
    return signatureToDer(await tpm.sign(h, sha256(new TextEncoder().encode(uid)), { scheme }));
  });
}
