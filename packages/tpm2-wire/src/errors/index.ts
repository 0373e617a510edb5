import { commandName } from '../types/constants.js';
import { decodeRc, type DecodedRc } from './rc.js';

export { TPM_RC, decodeRc, type DecodedRc } from './rc.js';
export { TpmDecodeError, TpmEncodeError } from '../bytes/errors.js';

/**
 * A TPM answered a command with a non-zero response code. `rc` is the full
 * code as received; `base` drops the handle/parameter/session number so it
 * can be compared with `TPM_RC.*` (e.g. `err.base === TPM_RC.HANDLE`).
 */
export class TpmError extends Error {
  override readonly name = 'TpmError';
  readonly base: number;
  readonly decoded: DecodedRc;
  constructor(
    readonly rc: number,
    readonly command: number,
  ) {
    const d = decodeRc(rc);
    super(`${commandName(command)} failed with 0x${rc.toString(16).padStart(3, '0')}: ${d.text}`);
    this.decoded = d;
    this.base = d.base;
  }
  /** True when this is the given base code (TPM_RC.*). */
  is(base: number): boolean {
    return this.base === base;
  }
}

/** The TPM could not be reached or the connection failed (address, device, socket, timeout). */
export class TpmTransportError extends Error {
  override readonly name = 'TpmTransportError';
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** A response that does not authenticate (bad response HMAC, unexpected session data). */
export class TpmAuthError extends Error {
  override readonly name = 'TpmAuthError';
}
