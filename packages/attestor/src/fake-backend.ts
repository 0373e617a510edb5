// An in-memory stand-in for the TPM backend, for tests and development (TPMDS_FAKE_BACKEND=1).
// It follows the contract's bookkeeping (idempotent GetAK, NOT_FOUND, ALREADY_EXISTS) and signs
// with real software keys, but its TPM structures are placeholders and nothing is persisted:
// it proves nothing about a TPM.
import { createHash, createPrivateKey, generateKeyPair, randomBytes, sign as cryptoSign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import type { AttestationParameters, ImportBlob, PlatformParameters } from '@tpmds/protocol/formats';
import type { AttestorBackend, CheckedEncryptedCredential, CloudAkResult, EKCertResult, KeyType, NewKeyResult } from './backend.js';
import { AttestorError } from './errors.js';
import { refKey } from './keystore.js';
import type { Logger } from './log.js';
import type { TpmMetrics } from './metrics.js';

const generateKeyPairAsync = promisify(generateKeyPair);

/** Options of {@link FakeBackend}. */
export interface FakeBackendOptions {
  /** Delay of every call, to have calls in flight (default 0). */
  latencyMs?: number;
  /** Not ready until this many ms after construction (default 0). */
  readyAfterMs?: number;
  logger?: Logger;
  metrics?: TpmMetrics;
}

interface SoftKey {
  keyType: KeyType;
  privateKey: KeyObject;
  spki: Uint8Array;
}

/** In-memory fake of AttestorBackend. */
export class FakeBackend implements AttestorBackend {
  readonly #opts: FakeBackendOptions;
  readonly #readyAt: number;
  #readyOverride: boolean | undefined;
  readonly #eks = new Map<KeyType, Promise<SoftKey>>();
  readonly #aks = new Map<string, { keyType: KeyType; params: AttestationParameters }>();
  readonly #keys = new Map<string, SoftKey>();
  /** Calls per method, for tests. */
  readonly calls: Record<string, number> = {};
  /** Whether close() ran. */
  closed = false;

  constructor(options: FakeBackendOptions = {}) {
    this.#opts = options;
    this.#readyAt = Date.now() + (options.readyAfterMs ?? 0);
  }

  /** Forces ready() (true/false), or back to the readyAfterMs schedule (undefined). */
  setReady(ready: boolean | undefined): void {
    this.#readyOverride = ready;
  }

  ready(): boolean {
    if (this.closed) return false;
    return this.#readyOverride ?? Date.now() >= this.#readyAt;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  async #enter(method: string): Promise<void> {
    this.calls[method] = (this.calls[method] ?? 0) + 1;
    if (this.closed) throw new AttestorError('UNAVAILABLE', 'backend is closed');
    const ms = this.#opts.latencyMs ?? 0;
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
    this.#opts.metrics?.observeTpmCommand(`FAKE_${method}`, ms / 1000);
  }

  async getEKCert(_identity: string, keyType: KeyType): Promise<EKCertResult> {
    await this.#enter('getEKCert');
    let ek = this.#eks.get(keyType);
    if (ek === undefined) {
      ek = softKey(keyType);
      this.#eks.set(keyType, ek);
    }
    return { ekPub: (await ek).spki, ekCert: null };
  }

  async getAK(identity: string, uid: string, keyType: KeyType): Promise<AttestationParameters> {
    await this.#enter('getAK');
    const have = this.#aks.get(refKey(identity, uid));
    if (have !== undefined) {
      if (have.keyType !== keyType) {
        throw new AttestorError('ALREADY_EXISTS', `uid "${uid}" already has an ${have.keyType} AK`);
      }
      return have.params;
    }
    const params: AttestationParameters = {
      public: placeholder('fake AK public', uid, keyType),
      useTCSDActivationFormat: false,
      createData: placeholder('fake creation data', uid),
      createAttestation: placeholder('fake creation attestation', uid),
      createSignature: placeholder('fake creation signature', uid),
    };
    this.#aks.set(refKey(identity, uid), { keyType, params });
    return params;
  }

  /** The fake "activates" a credential by returning the Credential's contents. */
  async attest(identity: string, uid: string, credential: CheckedEncryptedCredential): Promise<Uint8Array> {
    await this.#enter('attest');
    this.#requireAK(identity, uid);
    return credential.credential.subarray(2);
  }

  async quote(identity: string, uid: string, nonce: Uint8Array): Promise<PlatformParameters> {
    await this.#enter('quote');
    const ak = this.#requireAK(identity, uid);
    return {
      tpmVersion: 2,
      public: ak.params.public,
      quotes: [{ version: 2, quote: concat(placeholder('fake quote', uid), nonce), signature: placeholder('fake signature', uid) }],
      pcrs: Array.from({ length: 24 }, (_, index) => ({ index, digest: new Uint8Array(32), digestAlg: 5 })),
      eventLog: new Uint8Array(0), // the server adds the logs
    };
  }

  /** The fake "unseals" by returning the blob's duplicate bytes. */
  async importBlob(_identity: string, _uid: string, blob: ImportBlob): Promise<Uint8Array> {
    await this.#enter('importBlob');
    return blob.duplicate;
  }

  async importSigningKey(identity: string, uid: string, kid: string, blob: ImportBlob): Promise<Uint8Array> {
    await this.#enter('importSigningKey');
    const id = refKey(identity, uid, kid);
    if (this.#keys.has(id)) throw new AttestorError('ALREADY_EXISTS', `key "${kid}" of uid "${uid}" already exists`);
    const keyType: KeyType = blob.publicArea[0] === 0x00 && blob.publicArea[1] === 0x23 ? 'ecc' : 'rsa';
    const key = await softKey(keyType);
    if (this.#keys.has(id)) throw new AttestorError('ALREADY_EXISTS', `key "${kid}" of uid "${uid}" already exists`);
    this.#keys.set(id, key);
    return signWith(key, new TextEncoder().encode(uid));
  }

  async newKey(identity: string, uid: string, kid: string, keyType: KeyType): Promise<NewKeyResult> {
    await this.#enter('newKey');
    this.#requireAK(identity, uid);
    const id = refKey(identity, uid, kid);
    if (this.#keys.has(id)) throw new AttestorError('ALREADY_EXISTS', `key "${kid}" of uid "${uid}" already exists`);
    const key = await softKey(keyType);
    if (this.#keys.has(id)) throw new AttestorError('ALREADY_EXISTS', `key "${kid}" of uid "${uid}" already exists`);
    this.#keys.set(id, key);
    return {
      publicKey: key.spki,
      certification: {
        public: placeholder('fake key public', `${uid}/${kid}`),
        createData: null,
        createAttestation: placeholder('fake certify attestation', `${uid}/${kid}`),
        createSignature: placeholder('fake certify signature', `${uid}/${kid}`),
      },
    };
  }

  async sign(identity: string, uid: string, kid: string, data: Uint8Array): Promise<Uint8Array> {
    await this.#enter('sign');
    const key = this.#keys.get(refKey(identity, uid, kid));
    if (key === undefined) throw new AttestorError('NOT_FOUND', `key "${kid}" of uid "${uid}" does not exist`);
    return signWith(key, data);
  }

  /** The fake has no TPM NV, so no cloud attestation-key template (as on any machine outside such a cloud). */
  async getGCEEKSigningKey(_identity: string, keyType: KeyType): Promise<CloudAkResult> {
    await this.#enter('getGCEEKSigningKey');
    throw noCloudAk(keyType);
  }

  async signGCEEK(_identity: string, keyType: KeyType): Promise<Uint8Array> {
    await this.#enter('signGCEEK');
    throw noCloudAk(keyType);
  }

  #requireAK(identity: string, uid: string): { keyType: KeyType; params: AttestationParameters } {
    const ak = this.#aks.get(refKey(identity, uid));
    if (ak === undefined) throw new AttestorError('NOT_FOUND', `uid "${uid}" has no AK (call GetAK first)`);
    return ak;
  }
}

async function softKey(keyType: KeyType): Promise<SoftKey> {
  // Generated straight to DER: exporting a KeyObject the generation job returned can deadlock
  // Node 20 (see the verifier's makeSigningKeyImport).
  const { privateKey, publicKey } =
    keyType === 'ecc'
      ? await generateKeyPairAsync('ec', { namedCurve: 'P-256', publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } })
      : await generateKeyPairAsync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } });
  return { keyType, privateKey: createPrivateKey({ key: privateKey, format: 'der', type: 'pkcs8' }), spki: new Uint8Array(publicKey) };
}

function signWith(key: SoftKey, data: Uint8Array): Uint8Array {
  // RSA: PKCS#1 v1.5 over SHA-256; ECC: DER ECDSA over SHA-256 (the contract's Sign formats).
  return new Uint8Array(cryptoSign('sha256', data, key.privateKey));
}

function placeholder(...parts: string[]): Uint8Array {
  return new Uint8Array(createHash('sha256').update(parts.join('\0')).update(randomBytes(0)).digest());
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function noCloudAk(keyType: KeyType): AttestorError {
  return new AttestorError('FAILED_PRECONDITION', `this TPM has no cloud attestation-key template (NV ${keyType === 'ecc' ? '0x01c10003' : '0x01c10001'})`);
}
