/**
 * Raised whenever bytes do not decode: a read past the end of the input, a
 * size field that does not fit, an unknown union selector, trailing bytes.
 * `offset` is the byte offset (from the start of the outermost buffer) where
 * decoding failed; `expected` says what the decoder was reading.
 */
export class TpmDecodeError extends Error {
  override readonly name = 'TpmDecodeError';
  constructor(
    message: string,
    readonly offset: number,
    readonly expected?: string,
  ) {
    super(`${message} (at byte offset ${offset})`);
  }
}

/** Raised when a value cannot be encoded (out of range, wrong length, unknown selector). */
export class TpmEncodeError extends Error {
  override readonly name = 'TpmEncodeError';
}
