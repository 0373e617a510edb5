/**
 * The real AttestorBackend: the gRPC semantics of ARCHITECTURE.md on top of
 * AttestorTpm (the TPM flows) and a key store (TPM-wrapped blobs only).
 */
import {
  TPMA_OBJECT, TPM_ALG, TPM_CC, TPM_RC, TPMT_PUBLIC, TPMT_SIGNATURE, TpmAuthError, TpmDecodeError, TpmError, algName, commandName,
  TPMS_ECC_POINT, TPM2B_ENCRYPTED_SECRET, TPM2B_ID_OBJECT, TPM2B_PRIVATE, TPM2B_PUBLIC, marshal, pcrPolicyStep, pcrSelection, publicAreaBytes, publicToSpkiDer, signatureToDer, unmarshal, unmarshalExact,
  type PolicyStep,
} from '@tpmds/tpm2-wire';
import type { AttestationParameters, ImportBlob, PlatformParameters } from '@tpmds/protocol/formats';
import { AttestorError } from './errors.js';
import type { AttestorBackend, CallOptions, CheckedEncryptedCredential, CloudAkResult, EKCertResult, KeyType, NewKeyResult } from './backend.js';
import { refKey, type KeyRecord, type KeyStore, type NewKeyRecord } from './keystore.js';
import { AttestorTpm, TpmFlowError, type FlowTag, type PrimaryKind, type UncertifiedKey, type WrappedKey } from './tpm/attestor-tpm.js';
import type { KeyPool } from './key-pool.js';

/** Go crypto.Hash numbers of the PCR banks (go-attestation PCR.DigestAlg). */
const GO_HASH: Readonly<Record<number, number>> = { [TPM_ALG.SHA1]: 3, [TPM_ALG.SHA256]: 5, [TPM_ALG.SHA384]: 6, [TPM_ALG.SHA512]: 7 };

export interface TpmBackendOptions {
  /** Warnings that are not errors (TPM not reachable). */
  warn?: (message: string) => void;
  info?: (message: string) => void;
  /** Keys created ahead of need (--key-pool): NewKey and a first GetAK take one when there is one. */
  pool?: KeyPool;
  /** Most decoded key records kept in memory (default 10,000; least recently used go first). */
  maxCachedRecords?: number;
}

/** A stored record and its key, decoded once. */
interface CachedRecord {
  record: KeyRecord;
  key: WrappedKey;
}

export class TpmBackend implements AttestorBackend {
  constructor(
    private readonly tpm: AttestorTpm,
    private readonly store: KeyStore,
    private readonly opts: TpmBackendOptions,
  ) {}

  /**
   * Records are never changed once written, so those read are kept, decoded (keys are looked up
   * on every Sign and Quote): a bounded LRU beside the store.
   */
  private readonly records = new Map<string, CachedRecord>();

  /** The record (and decoded key) of `uid`'s AK or `uid/kid`'s key in `identity`'s namespace, or undefined. */
  private async cached(identity: string, uid: string, kid?: string): Promise<CachedRecord | undefined> {
    const id = refKey(identity, uid, kid);
    const hit = this.records.get(id);
    if (hit) {
      this.records.delete(id);
      this.records.set(id, hit);
      return hit;
    }
    const ref = kid === undefined ? { identity, uid } : { identity, uid, kid };
    if (!(await this.store.has(ref))) return undefined;
    return this.remember(await this.store.get(ref), fromRecord);
  }

  /**
   * Keeps `record` (just read, or just written by GetAK/NewKey: a NewKey right after its GetAK,
   * and the first Sign, need not read the disk) as the most recently used, with its key.
   */
  private remember(record: KeyRecord, key: WrappedKey | ((r: KeyRecord) => WrappedKey)): CachedRecord {
    const entry = { record, key: typeof key === 'function' ? key(record) : key };
    const id = refKey(record.identity, record.uid, record.kid);
    this.records.delete(id);
    this.records.set(id, entry);
    if (this.records.size > (this.opts.maxCachedRecords ?? 10_000)) this.records.delete(this.records.keys().next().value as string);
    return entry;
  }

  private async record(identity: string, uid: string, kid?: string): Promise<KeyRecord | undefined> {
    return (await this.cached(identity, uid, kid))?.record;
  }

  async getEKCert(identity: string, keyType: KeyType, call: CallOptions = {}): Promise<EKCertResult> {
    return this.guard('GetEKCert', async () => {
      const ek = await this.tpm.ek(keyType, tag(identity, 'GetEKCert', call));
      return { ekPub: publicToSpkiDer(ek.public), ekCert: ek.certificate };
    });
  }

  async getAK(identity: string, uid: string, keyType: KeyType, call: CallOptions = {}): Promise<AttestationParameters> {
    return this.guard('GetAK', async () => {
      const existing = await this.record(identity, uid);
      if (existing) return sameTypeAk(existing, uid, keyType);
      await this.store.quota.checkRoom(identity);
      const ak = await this.fromPool('ak', keyType, (pooled) => this.tpm.createAk(keyType, tag(identity, 'GetAK', call), pooled));
      const params: AttestationParameters = {
        public: publicAreaBytes(ak.key.public),
        useTCSDActivationFormat: false,
        createData: ak.createData,
        createAttestation: ak.createAttestation,
        createSignature: marshal(TPMT_SIGNATURE, ak.createSignature),
      };
      try {
        this.remember(await this.store.create({ identity, uid }, toRecord(ak.key, { createData: params.createData, createAttestation: params.createAttestation, createSignature: params.createSignature })), ak.key);
        return params;
      } catch (e) {
        // A concurrent GetAK for the same uid won: return its AK (GetAK is idempotent), unless it
        // made an AK of the other type.
        if (e instanceof AttestorError && e.code === 'ALREADY_EXISTS') return sameTypeAk(await this.store.get({ identity, uid }), uid, keyType);
        throw e;
      }
    });
  }

  private async ak(identity: string, uid: string): Promise<WrappedKey> {
    const ak = await this.cached(identity, uid);
    if (!ak) throw new AttestorError('NOT_FOUND', `uid ${uid} has no AK: call GetAK first`);
    return ak.key;
  }

  /**
   * `create(pooled)` with a key of `kind` and `keyType` from the pool when it has one; without
   * one, or when the pooled key no longer loads (the TPM was cleared since it was made), `create()`
   * makes a new key on the request path. The TPM work on a pooled key and the removal of its pool
   * file run at once; this returns (and the caller writes the key's record) only after the removal
   * is durable, so a crash can never leave one key both handed out and in the pool.
   */
  private async fromPool<T>(kind: 'ak' | 'key', keyType: KeyType, create: (pooled?: UncertifiedKey) => Promise<T>): Promise<T> {
    const taken = this.opts.pool?.take(kind, keyType);
    if (taken === undefined) return create();
    const what = `a pooled ${keyType.toUpperCase()} ${kind === 'ak' ? 'AK' : 'signing key'}`;
    const [made, removed] = await Promise.allSettled([create(taken.key), taken.removed]);
    if (removed.status === 'rejected') {
      this.opts.warn?.(`${what} cannot be handed out: ${(removed.reason as Error).message}; creating one now`);
      return create();
    }
    if (made.status === 'fulfilled') return made.value;
    const e: unknown = made.reason;
    if (e instanceof TpmFlowError && e.code === 'FAILED_PRECONDITION') {
      this.opts.warn?.(`${what} no longer loads (the TPM was cleared since it was made): creating one now`);
      return create();
    }
    throw e;
  }

  async attest(identity: string, uid: string, credential: CheckedEncryptedCredential, call: CallOptions = {}): Promise<Uint8Array> {
    return this.guard('Attest', async () => {
      const ak = await this.ak(identity, uid);
      const secret = unmarshal(TPM2B_ENCRYPTED_SECRET, credential.secret);
      const ekType = ekTypeOfSecret(secret, 'Attest encryptedCredentials.Secret');
      return this.tpm.activateCredential(ak, ekType, unmarshal(TPM2B_ID_OBJECT, credential.credential), secret, tag(identity, 'Attest', call));
    });
  }

  async quote(identity: string, uid: string, nonce: Uint8Array, call: CallOptions = {}): Promise<PlatformParameters> {
    return this.guard('Quote', async () => {
      const ak = await this.ak(identity, uid);
      const banks = await this.tpm.quote(ak, nonce, tag(identity, 'Quote', call));
      return {
        tpmVersion: 2,
        public: publicAreaBytes(ak.public),
        quotes: banks.map((b) => ({ version: 2, quote: b.attestBytes, signature: marshal(TPMT_SIGNATURE, b.signature) })),
        pcrs: banks.flatMap((b) => [...b.pcrs].sort(([x], [y]) => x - y).map(([index, digest]) => ({ index, digest, digestAlg: GO_HASH[b.hashAlg] ?? 0 }))),
        eventLog: new Uint8Array(0), // the server adds the logs (event-logs.ts)
      };
    });
  }

  async importBlob(identity: string, _uid: string, blob: ImportBlob, call: CallOptions = {}): Promise<Uint8Array> {
    return this.guard('ImportBlob', async () => {
      const { publicArea, policy } = decodeBlob(blob);
      if (publicArea.type !== TPM_ALG.KEYEDHASH) throw new AttestorError('INVALID_ARGUMENT', 'ImportBlob: publicArea is not a sealed-data (KEYEDHASH) object');
      const ekType = ekTypeOfSecret(blob.encryptedSeed, 'ImportBlob encryptedSeed');
      return this.tpm.importAndUnseal(ekType, { publicArea, duplicate: blob.duplicate, encryptedSeed: blob.encryptedSeed, policy }, tag(identity, 'ImportBlob', call));
    });
  }

  async importSigningKey(identity: string, uid: string, kid: string, blob: ImportBlob, call: CallOptions = {}): Promise<Uint8Array> {
    return this.guard('ImportSigningKey', async () => {
      const { publicArea, policy } = decodeBlob(blob);
      if (publicArea.type !== TPM_ALG.RSA && publicArea.type !== TPM_ALG.ECC) {
        throw new AttestorError('INVALID_ARGUMENT', 'ImportSigningKey: publicArea is not an RSA or ECC key');
      }
      if (!(publicArea.objectAttributes & TPMA_OBJECT.sign)) throw new AttestorError('INVALID_ARGUMENT', 'ImportSigningKey: the key does not have the sign attribute');
      if (publicArea.objectAttributes & TPMA_OBJECT.restricted) throw new AttestorError('INVALID_ARGUMENT', 'ImportSigningKey: the key is restricted (it would sign only digests the TPM made); import an unrestricted signing key');
      // Sign is SHA-256 with RSASSA or ECDSA: a key whose own scheme is another could never serve it.
      const own = publicArea.parameters.scheme;
      const usable = publicArea.type === TPM_ALG.ECC ? TPM_ALG.ECDSA : TPM_ALG.RSASSA;
      if (own.scheme !== TPM_ALG.NULL && (own.scheme !== usable || !('hashAlg' in own) || own.hashAlg !== TPM_ALG.SHA256)) {
        throw new AttestorError('INVALID_ARGUMENT', `ImportSigningKey: the key's own scheme is ${algName(own.scheme)}${'hashAlg' in own ? `-${algName(own.hashAlg)}` : ''}; Sign needs NULL or ${algName(usable)}-sha256`);
      }
      if (await this.store.has({ identity, uid, kid })) throw new AttestorError('ALREADY_EXISTS', `key ${uid}/${kid} already exists`);
      await this.store.quota.checkRoom(identity);
      const ekType = ekTypeOfSecret(blob.encryptedSeed, 'ImportSigningKey encryptedSeed');
      const key = await this.tpm.importKey(ekType, { publicArea, duplicate: blob.duplicate, encryptedSeed: blob.encryptedSeed }, tag(identity, 'ImportSigningKey', call));
      // Prove the import worked before storing it: sign the uid.
      const sig = await this.tpm.sign(key, new TextEncoder().encode(uid), policy, tag(identity, 'ImportSigningKey', call));
      const record = toRecord(key, undefined);
      if (blob.pcrs && blob.pcrs.pcrs.size > 0) record.pcrPolicy = { hash: blob.pcrs.hash, pcrs: [...blob.pcrs.pcrs.keys()].sort((a, b) => a - b) };
      await this.store.create({ identity, uid, kid }, record);
      return signatureBytes(sig);
    });
  }

  async newKey(identity: string, uid: string, kid: string, keyType: KeyType, call: CallOptions = {}): Promise<NewKeyResult> {
    return this.guard('NewKey', async () => {
      const ak = await this.ak(identity, uid);
      if (await this.store.has({ identity, uid, kid })) throw new AttestorError('ALREADY_EXISTS', `key ${uid}/${kid} already exists`);
      await this.store.quota.checkRoom(identity);
      const { key, certify } = await this.fromPool('key', keyType, (pooled) => this.tpm.createKey(ak, keyType, tag(identity, 'NewKey', call), pooled));
      const certification = { public: publicAreaBytes(key.public), createData: null, createAttestation: certify.attestBytes, createSignature: marshal(TPMT_SIGNATURE, certify.signature) };
      this.remember(await this.store.create({ identity, uid, kid }, toRecord(key, certification)), key);
      return { publicKey: publicToSpkiDer(key.public), certification };
    });
  }

  async sign(identity: string, uid: string, kid: string, data: Uint8Array, call: CallOptions = {}): Promise<Uint8Array> {
    return this.guard('Sign', async () => {
      const hit = await this.cached(identity, uid, kid);
      if (!hit) throw new AttestorError('NOT_FOUND', `no key ${uid}/${kid}`);
      const rec = hit.record;
      // A PCR-bound key: PolicyPCR over the recorded selection with the PCRs' current values.
      const policy: PolicyStep[] = rec.pcrPolicy ? [{ type: 'PolicyPCR', selection: pcrSelection(rec.pcrPolicy.hash, rec.pcrPolicy.pcrs), pcrDigest: new Uint8Array(0) }] : [];
      return signatureBytes(await this.tpm.sign(hit.key, data, policy, tag(identity, 'Sign', call)));
    });
  }

  async getGCEEKSigningKey(identity: string, keyType: KeyType, call: CallOptions = {}): Promise<CloudAkResult> {
    return this.guard('GetGCEEKSigningKey', async () => {
      const ak = await this.tpm.cloudAk(keyType, tag(identity, 'GetGCEEKSigningKey', call));
      return { publicKey: publicToSpkiDer(ak.public), certificate: ak.certificate };
    });
  }

  async signGCEEK(identity: string, keyType: KeyType, data: Uint8Array, call: CallOptions = {}): Promise<Uint8Array> {
    return this.guard('SignGCEEK', async () => signatureBytes(await this.tpm.cloudAkSign(keyType, data, tag(identity, 'SignGCEEK', call))));
  }

  private lastNotReady: string | undefined;

  /** Whether the TPM answers; a change (unreachable, reachable again) is logged once, with the reason. */
  async ready(): Promise<boolean> {
    const tpmOk = await this.tpm.ready();
    // A state directory that cannot take records (read-only, full) makes the attestor not ready too.
    const storeProblem = tpmOk ? await this.store.writeProblem() : null;
    const ok = tpmOk && storeProblem === null;
    const reason = storeProblem ?? this.tpm.notReadyReason;
    if (!ok && reason !== this.lastNotReady) this.opts.warn?.(storeProblem !== null ? `not ready: ${reason}` : `TPM not ready: ${reason}`);
    if (ok && this.lastNotReady !== undefined) this.opts.info?.('TPM reachable and state directory writable again');
    this.lastNotReady = ok ? undefined : reason;
    return ok;
  }

  async close(): Promise<void> {
    await this.opts.pool?.close();
    await this.tpm.close();
  }

  /** Map TPM-side failures to the gRPC status that tells the caller what happened. */
  private async guard<T>(rpc: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw mapError(rpc, e);
    }
  }
}

/** The TPM queue's tag of a flow for `identity`'s call of `method`. */
function tag(identity: string, method: string, call: CallOptions): FlowTag {
  return { identity, method, signal: call.signal };
}

function toRecord(key: WrappedKey, evidence: { createData: Uint8Array | null; createAttestation: Uint8Array | null; createSignature: Uint8Array | null } | undefined): NewKeyRecord {
  const r: NewKeyRecord = { keyType: key.keyType, parent: key.parent, public: marshal(TPM2B_PUBLIC, key.public), private: marshal(TPM2B_PRIVATE, key.private) };
  if (evidence) r.evidence = evidence;
  return r;
}

const PARENTS: readonly string[] = ['srk', 'ek-rsa', 'ek-ecc'];

function fromRecord(r: KeyRecord): WrappedKey {
  if (!PARENTS.includes(r.parent)) throw new AttestorError('DATA_LOSS', `key record ${r.uid}${r.kid ? `/${r.kid}` : ''} names an unknown parent ${JSON.stringify(r.parent)}`);
  try {
    return { keyType: r.keyType, public: unmarshal(TPM2B_PUBLIC, r.public), private: unmarshal(TPM2B_PRIVATE, r.private), parent: r.parent as PrimaryKind };
  } catch (e) {
    throw new AttestorError('DATA_LOSS', `key record ${r.uid}${r.kid ? `/${r.kid}` : ''} does not hold a TPM2B_PUBLIC and TPM2B_PRIVATE: ${(e as Error).message}`);
  }
}

/** The uid's existing AK when it is of the requested type; ALREADY_EXISTS otherwise. */
function sameTypeAk(r: KeyRecord, uid: string, keyType: KeyType): AttestationParameters {
  if (r.keyType !== keyType) {
    throw new AttestorError('ALREADY_EXISTS', `uid ${uid} already has an ${r.keyType.toUpperCase()} AK; it cannot also get an ${keyType.toUpperCase()} one`);
  }
  return akParams(r);
}

function akParams(r: KeyRecord): AttestationParameters {
  const e = r.evidence;
  if (!e?.createData || !e.createAttestation || !e.createSignature) throw new AttestorError('DATA_LOSS', `the AK record of ${r.uid} lacks its creation evidence`);
  return { public: publicAreaBytes(fromRecord(r).public), useTCSDActivationFormat: false, createData: e.createData, createAttestation: e.createAttestation, createSignature: e.createSignature };
}

function signatureBytes(sig: TPMT_SIGNATURE): Uint8Array {
  return signatureToDer(sig);
}

/** Which EK a seed/secret was made for: an RSA-2048 OAEP ciphertext (256 bytes) or a P-256 TPMS_ECC_POINT (2+32+2+32). */
function ekTypeOfSecret(secret: Uint8Array, what: string): KeyType {
  if (secret.length === 256) return 'rsa';
  try {
    const point = unmarshal(TPMS_ECC_POINT, secret);
    if (point.x.length <= 32 && point.y.length <= 32) return 'ecc';
  } catch {
    // neither shape: said below
  }
  throw new AttestorError('INVALID_ARGUMENT', `${what} is neither an RSA-2048 ciphertext (256 bytes) nor a P-256 point (${secret.length} bytes)`);
}

function decodeBlob(blob: ImportBlob): { publicArea: TPMT_PUBLIC; policy: PolicyStep[] } {
  let publicArea: TPMT_PUBLIC;
  try {
    publicArea = unmarshalExact(TPMT_PUBLIC, blob.publicArea);
  } catch (e) {
    throw new AttestorError('INVALID_ARGUMENT', `publicArea is not a TPMT_PUBLIC: ${(e as Error).message}`);
  }
  const policy: PolicyStep[] = [];
  if (blob.pcrs && blob.pcrs.pcrs.size > 0) policy.push(pcrPolicyStep({ hashAlg: blob.pcrs.hash, values: blob.pcrs.pcrs }, publicArea.nameAlg));
  if (publicArea.authPolicy.length > 0 && policy.length === 0) {
    throw new AttestorError('INVALID_ARGUMENT', 'publicArea has an authPolicy but the blob carries no PCR values to satisfy it');
  }
  return { publicArea, policy };
}

const PAYLOAD_REJECTED = new Set<number>([
  TPM_RC.INTEGRITY, TPM_RC.VALUE, TPM_RC.SIZE, TPM_RC.ECC_POINT, TPM_RC.KEY, TPM_RC.BINDING, TPM_RC.ATTRIBUTES,
  TPM_RC.SCHEME, TPM_RC.TYPE, TPM_RC.HASH, TPM_RC.SYMMETRIC, TPM_RC.KEY_SIZE, TPM_RC.CURVE, TPM_RC.INSUFFICIENT,
]);

function mapError(rpc: string, e: unknown): unknown {
  if (e instanceof AttestorError) return e;
  if (e instanceof TpmFlowError) return new AttestorError(e.code, e.message, { cause: e });
  if (e instanceof TpmDecodeError) return new AttestorError('INVALID_ARGUMENT', `${rpc}: a payload does not decode: ${e.message}`, { cause: e });
  if (e instanceof TpmAuthError) return new AttestorError('UNAVAILABLE', `${rpc}: the TPM's response did not authenticate; retry`, { cause: e });
  if (e instanceof TpmError) {
    const cmd = commandName(e.command);
    if (e.command === TPM_CC.PolicyPCR || e.is(TPM_RC.POLICY_FAIL) || e.is(TPM_RC.PCR_CHANGED)) {
      return new AttestorError('FAILED_PRECONDITION', `${rpc}: the PCR policy is not satisfied: the PCRs do not hold the values the object is bound to`, { cause: e });
    }
    if (e.is(TPM_RC.LOCKOUT)) {
      return new AttestorError(
        'FAILED_PRECONDITION',
        `${rpc}: the TPM is in dictionary-attack lockout (TPM_RC_LOCKOUT): it refuses keys without noDA until its lockout recovery time passes or the owner runs TPM2_DictionaryAttackLockReset (tpm2_dictionarylockout --clear-lockout)`,
        { cause: e },
      );
    }
    // The transport resends these (with back-off) before they get here: the TPM stayed busy.
    if (e.is(TPM_RC.RETRY) || e.is(TPM_RC.YIELDED) || e.is(TPM_RC.TESTING)) {
      return new AttestorError('UNAVAILABLE', `${rpc}: the TPM kept answering ${e.decoded.name} (busy or self-testing) after repeated retries; retry later`, { cause: e });
    }
    // (OBJECT_MEMORY and SESSION_MEMORY never get here: AttestorTpm.flow reclaims and answers them itself.)
    if (e.is(TPM_RC.MEMORY) || e.is(TPM_RC.NV_RATE) || e.is(TPM_RC.NV_UNAVAILABLE)) {
      return new AttestorError('UNAVAILABLE', `${rpc}: the TPM is busy (${e.decoded.name}); retry`, { cause: e });
    }
    const payloadCommands: number[] = [TPM_CC.Import, TPM_CC.ActivateCredential, TPM_CC.Load];
    // libtpms answers an undecryptable Import seed with TPM_RC_FAILURE without entering failure mode (ARCHITECTURE.md).
    if (payloadCommands.includes(e.command) && (PAYLOAD_REJECTED.has(e.base) || e.is(TPM_RC.FAILURE))) {
      return new AttestorError('INVALID_ARGUMENT', `${rpc}: the TPM rejected the payload (${cmd}: ${e.decoded.name}): it was not made for this TPM's EK or for this AK, or it is corrupted`, { cause: e });
    }
  }
  return e;
}
