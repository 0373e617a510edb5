/**
 * The authorization-area contract between `execute()` and sessions
 * (Part 1, 19 "Authorizations and Acknowledgments"; Part 3, 5.4-5.6).
 *
 * For each command `execute()` calls, on every session in order:
 *   1. `prepare(mask)`          roll nonceCaller (before anything is hashed or encrypted);
 *   2. `encryptParameter()`     on the one session with the decrypt attribute, if the first command parameter is a TPM2B;
 *   3. `authorize(ctx)`         produce the TPMS_AUTH_COMMAND (cpHash is available lazily from ctx);
 * and after a successful response:
 *   4. `verify(ctx, auth)`      check the response HMAC and roll nonceTPM (throws TpmAuthError on mismatch);
 *   5. `decryptParameter()`     on the one session with the encrypt attribute, if the first response parameter is a TPM2B.
 */
import type { TPMS_AUTH_COMMAND, TPMS_AUTH_RESPONSE } from '../types/structures.js';

/** The entity a session authorizes (a handle of the command marked as needing auth). */
export interface AuthEntity {
  handle: number;
  /** The entity's Name (lazy: only computed when a session needs it). */
  name(): Promise<Uint8Array> | Uint8Array;
  /** The entity's authValue (empty when none). */
  auth: Uint8Array;
}

export interface CommandContext {
  readonly commandCode: number;
  /** H_alg(commandCode || names of all handles || parameters as sent), Part 1 18.7. */
  cpHash(hashAlg: number): Promise<Uint8Array>;
}

export interface ResponseContext {
  readonly commandCode: number;
  readonly responseCode: number;
  /** H_alg(responseCode || commandCode || parameters as received), Part 1 18.8. */
  rpHash(hashAlg: number): Uint8Array;
}

export interface AuthSession {
  /** Session handle (TPM_RS_PW for a password). */
  readonly handle: number;
  /** TPMA_SESSION bits this session sends with the current command (after `prepare`). */
  readonly attributes: number;
  /** The current nonceTPM (for other sessions' HMACs); empty for password sessions. */
  readonly nonceTPM: Uint8Array;
  /**
   * Start a command: roll nonceCaller; `mask` clears the attributes that do
   * not apply to this command (decrypt/encrypt where the first parameter is not a TPM2B).
   */
  prepare?(mask: number): void;
  /** Encrypt the first command parameter's data (without its size). Only called when `attributes` has decrypt; `entity` is what this session authorizes. */
  encryptParameter?(data: Uint8Array, entity: AuthEntity | undefined): Uint8Array;
  /** Decrypt the first response parameter's data. Only called when `attributes` has encrypt. */
  decryptParameter?(data: Uint8Array, entity: AuthEntity | undefined): Uint8Array;
  /**
   * Build the command authorization for `entity` (undefined when the session
   * only encrypts or audits). `extraNonces` is nonceTPM of the decrypt and/or
   * encrypt session when those are other sessions and this is the first one
   * (Part 1, 19.6.5); it goes into the HMAC after nonceOlder.
   */
  authorize(ctx: CommandContext, entity: AuthEntity | undefined, extraNonces?: Uint8Array): Promise<TPMS_AUTH_COMMAND> | TPMS_AUTH_COMMAND;
  /** Check the response authorization (HMAC) and roll nonces. */
  verify(ctx: ResponseContext, auth: TPMS_AUTH_RESPONSE, entity: AuthEntity | undefined): void;
  /** Called when the TPM rejected the command: the session may be gone (continueSession is moot). */
  failed?(rc: number): void;
}

/** The password "session" (TPM_RS_PW): sends the entity's authValue in the clear (Part 1, 19.6.4). */
export class PasswordSession implements AuthSession {
  readonly handle = 0x40000009;
  readonly attributes = 0x01;
  readonly nonceTPM = new Uint8Array(0);
  /** `auth` overrides the entity's authValue when given. */
  constructor(private readonly auth?: Uint8Array) {}
  authorize(_ctx: CommandContext, entity: AuthEntity | undefined): TPMS_AUTH_COMMAND {
    return { sessionHandle: this.handle, nonce: new Uint8Array(0), sessionAttributes: this.attributes, hmac: this.auth ?? entity?.auth ?? new Uint8Array(0) };
  }
  verify(): void {}
}

/** A password session with the entity's own authValue. */
export const passwordSession = (auth?: Uint8Array): AuthSession => new PasswordSession(auth);
