/**
 * HMAC, policy and trial sessions (Part 1, 19 "Session-based Authorizations"
 * and 21 "Session-based encryption"): session key derivation, command and
 * response HMACs with nonce rolling, and AES-CFB parameter encryption.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { concatBytes, constantTimeEqual } from '../bytes/hex.js';
import { TPMA_SESSION, TPM_ALG, TPM_SE } from '../types/constants.js';
import type { TPMS_AUTH_COMMAND, TPMS_AUTH_RESPONSE, TPMT_SYM_DEF } from '../types/structures.js';
import { digestSize, hmac } from '../crypto/hash.js';
import { kdfa } from '../crypto/kdf.js';
import { TpmAuthError } from '../errors/index.js';
import { TPM_RC } from '../errors/rc.js';
import type { AuthEntity, AuthSession, CommandContext, ResponseContext } from './session.js';

export type SessionType = 'hmac' | 'policy' | 'trial';
export const SESSION_TYPE: Readonly<Record<SessionType, number>> = { hmac: TPM_SE.HMAC, policy: TPM_SE.POLICY, trial: TPM_SE.TRIAL };

/** AES-128-CFB, the parameter-encryption algorithm every TPM implements. */
export const AES128_CFB: TPMT_SYM_DEF = { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB };

export interface SessionState {
  handle: number;
  type: SessionType;
  hashAlg: number;
  symmetric: TPMT_SYM_DEF;
  sessionKey: Uint8Array;
  nonceCaller: Uint8Array;
  nonceTPM: Uint8Array;
  /** Handle and authValue of the bind entity, for bound sessions. */
  bind?: { handle: number; auth: Uint8Array };
  attributes: number;
}

/**
 * A started HMAC, policy or trial session. Pass it in `sessions` of any
 * command. Attributes: continueSession is set by default (flush the session
 * with `tpm.flushContext(session.handle)` when done, or clear it for the last
 * use); `decrypt`/`encrypt` request parameter encryption.
 */
export class Session implements AuthSession {
  readonly handle: number;
  readonly type: SessionType;
  readonly hashAlg: number;
  readonly symmetric: TPMT_SYM_DEF;
  private readonly sessionKey: Uint8Array;
  private readonly bind?: { handle: number; auth: Uint8Array };
  private nonceCaller: Uint8Array;
  private _nonceTPM: Uint8Array;
  private _attributes: number;
  private _effective: number;
  /** Set by PolicyAuthValue: the entity's authValue goes into the HMAC key. */
  authValueNeeded = false;
  /** Set by PolicyPassword: the authValue is sent in clear as the HMAC. */
  passwordNeeded = false;
  /** False once the session has been closed by the TPM (continueSession clear, or a failed command). */
  open = true;

  constructor(s: SessionState) {
    this.handle = s.handle;
    this.type = s.type;
    this.hashAlg = s.hashAlg;
    this.symmetric = s.symmetric;
    this.sessionKey = s.sessionKey;
    this.nonceCaller = s.nonceCaller;
    this._nonceTPM = s.nonceTPM;
    this._attributes = s.attributes;
    this._effective = s.attributes;
    if (s.bind) this.bind = s.bind;
  }

  /** The TPMA_SESSION bits for the current command (configured bits less those that do not apply). */
  get attributes(): number {
    return this._effective;
  }
  /** The configured TPMA_SESSION bits. */
  get configuredAttributes(): number {
    return this._attributes;
  }
  get nonceTPM(): Uint8Array {
    return this._nonceTPM;
  }
  /** Whether the session has a session key (it was salted or bound). */
  get keyed(): boolean {
    return this.sessionKey.length > 0;
  }

  /** Replace the TPMA_SESSION bits for the next commands (continueSession, decrypt, encrypt, audit). */
  setAttributes(attributes: number): this {
    if (attributes & (TPMA_SESSION.decrypt | TPMA_SESSION.encrypt)) {
      if (this.symmetric.algorithm === TPM_ALG.NULL) throw new TypeError('parameter encryption needs a session started with a symmetric algorithm');
    }
    this._attributes = attributes & 0xff;
    this._effective = this._attributes;
    return this;
  }
  /** Add TPMA_SESSION bits (e.g. `TPMA_SESSION.decrypt | TPMA_SESSION.encrypt`). */
  with(bits: number): this {
    return this.setAttributes(this._attributes | bits);
  }

  prepare(mask = 0xff): void {
    if (!this.open) throw new TypeError(`session 0x${this.handle.toString(16)} is closed`);
    this._effective = this._attributes & mask;
    this.nonceCaller = randomNonce(digestSize(this.hashAlg));
  }

  /** The authValue that goes into the HMAC key for `entity` (Part 1, 19.6.8). */
  private authFor(entity: AuthEntity | undefined): Uint8Array {
    if (!entity) return new Uint8Array(0);
    if (this.type !== 'hmac') return this.authValueNeeded ? trimAuth(entity.auth) : new Uint8Array(0);
    // A session bound to this very entity already has its authValue in the session key.
    if (this.bind && this.bind.handle === entity.handle) return new Uint8Array(0);
    return trimAuth(entity.auth);
  }

  /**
   * The parameter-encryption key: KDFa(sessionKey || authValue, "CFB", ...) (Part 1, 21.1). Unlike
   * the HMAC key, a session that authorizes an entity always adds that entity's authValue, bound to
   * it or not, HMAC or policy session (reference code ParseSessionBuffer/BuildResponseSession: "no
   * matter if the handle is the session bound entity or not"); an extra session (no entity) adds none.
   */
  private symKey(entity: AuthEntity | undefined, nonceNewer: Uint8Array, nonceOlder: Uint8Array): { key: Uint8Array; iv: Uint8Array } {
    const s = this.symmetric;
    if (s.algorithm !== TPM_ALG.AES || s.mode !== TPM_ALG.CFB) throw new TypeError('only AES-CFB parameter encryption is supported');
    const bits = s.keyBits;
    const auth = entity ? trimAuth(entity.auth) : new Uint8Array(0);
    const material = kdfa(this.hashAlg, concatBytes(this.sessionKey, auth), 'CFB', nonceNewer, nonceOlder, bits + 128);
    return { key: material.subarray(0, bits / 8), iv: material.subarray(bits / 8) };
  }

  encryptParameter(data: Uint8Array, entity?: AuthEntity): Uint8Array {
    const { key, iv } = this.symKey(entity, this.nonceCaller, this._nonceTPM);
    return aesCfb(true, key, iv, data);
  }

  decryptParameter(data: Uint8Array, entity?: AuthEntity): Uint8Array {
    const { key, iv } = this.symKey(entity, this._nonceTPM, this.nonceCaller);
    return aesCfb(false, key, iv, data);
  }

  private hmacKey(entity: AuthEntity | undefined): Uint8Array {
    return concatBytes(this.sessionKey, this.authFor(entity));
  }

  async authorize(ctx: CommandContext, entity: AuthEntity | undefined, extraNonces: Uint8Array = new Uint8Array(0)): Promise<TPMS_AUTH_COMMAND> {
    const base = { sessionHandle: this.handle, nonce: this.nonceCaller, sessionAttributes: this._effective };
    if (this.type !== 'hmac' && this.passwordNeeded) return { ...base, hmac: entity?.auth ?? new Uint8Array(0) };
    const key = this.hmacKey(entity);
    if (this.type !== 'hmac' && key.length === 0) return { ...base, hmac: new Uint8Array(0) };
    const cpHash = await ctx.cpHash(this.hashAlg);
    const mac = hmac(this.hashAlg, key, cpHash, this.nonceCaller, this._nonceTPM, extraNonces, Uint8Array.of(this._effective));
    return { ...base, hmac: mac };
  }

  verify(ctx: ResponseContext, auth: TPMS_AUTH_RESPONSE, entity: AuthEntity | undefined): void {
    this._nonceTPM = auth.nonce;
    if (!(auth.sessionAttributes & TPMA_SESSION.continueSession)) this.open = false;
    if (this.type !== 'hmac' && this.passwordNeeded) {
      if (auth.hmac.length !== 0) throw new TpmAuthError('a policy session with PolicyPassword got a non-empty response HMAC');
      return this.policyUsed();
    }
    const key = this.hmacKey(entity);
    if (this.type !== 'hmac' && key.length === 0 && auth.hmac.length === 0) return this.policyUsed();
    const expected = hmac(this.hashAlg, key, ctx.rpHash(this.hashAlg), auth.nonce, this.nonceCaller, Uint8Array.of(auth.sessionAttributes));
    if (!constantTimeEqual(expected, auth.hmac)) {
      throw new TpmAuthError(`response HMAC of session 0x${this.handle.toString(16)} does not verify: the response was altered or the session key is wrong`);
    }
    this.policyUsed();
  }

  /**
   * After a command it authorized successfully, a continued policy session starts over: the TPM
   * resets its policyDigest and its isAuthValueNeeded/isPasswordNeeded flags when the nonces roll
   * (reference code SessionProcess.c UpdateInternalSession -> SessionResetPolicyData), so ours are
   * cleared as well; otherwise the next policy would wrongly put the authValue into its HMAC.
   */
  private policyUsed(): void {
    if (this.type === 'policy' && this.open) this.resetPolicyFlags();
  }

  failed(rc: number): void {
    // After an error the TPM does not roll nonceTPM; a session stays usable unless the error was about the session itself.
    if (rc === TPM_RC.REFERENCE_S0) this.open = false;
  }

  /** Mark a policy session as reset (after PolicyRestart). */
  resetPolicyFlags(): void {
    this.authValueNeeded = false;
    this.passwordNeeded = false;
  }
}

/**
 * `size` random bytes for a nonceCaller, cut from a pooled block of CSPRNG output: one
 * randomBytes per 4 KiB instead of one per command (a kept session rolls a nonce on every command,
 * and a small randomBytes costs several microseconds). Nonces are public: the pool holds no secret.
 */
export function randomNonce(size: number): Uint8Array {
  if (nonceAt + size > noncePool.length) {
    noncePool = new Uint8Array(randomBytes(Math.max(NONCE_POOL_BYTES, size)));
    nonceAt = 0;
  }
  const nonce = noncePool.slice(nonceAt, nonceAt + size);
  nonceAt += size;
  return nonce;
}
const NONCE_POOL_BYTES = 4096;
let noncePool = new Uint8Array(0);
let nonceAt = 0;

function aesCfb(encrypt: boolean, key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  if (data.length === 0) return data;
  const c = (encrypt ? createCipheriv : createDecipheriv)(`aes-${key.length * 8}-cfb`, key, iv);
  return new Uint8Array(Buffer.concat([c.update(data), c.final()]));
}

/** An authValue as the TPM uses it in keys and HMACs: trailing zero octets removed (reference code EntityGetAuthValue). */
function trimAuth(auth: Uint8Array): Uint8Array {
  let n = auth.length;
  while (n > 0 && auth[n - 1] === 0) n--;
  return n === auth.length ? auth : auth.subarray(0, n);
}

/** Derive the session key (Part 1, 19.6.11): KDFa(hash, authValue(bind) || salt, "ATH", nonceTPM, nonceCaller, digestBits); empty when neither. */
export function deriveSessionKey(hashAlg: number, bindAuth: Uint8Array, salt: Uint8Array, nonceTPM: Uint8Array, nonceCaller: Uint8Array): Uint8Array {
  const secret = concatBytes(trimAuth(bindAuth), salt);
  if (secret.length === 0) return new Uint8Array(0);
  return kdfa(hashAlg, secret, 'ATH', nonceTPM, nonceCaller, digestSize(hashAlg) * 8);
}
