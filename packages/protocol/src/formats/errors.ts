/**
 * A payload that does not decode. `field` names where decoding stopped, e.g.
 * `PlatformParameters.Quotes[1].Signature`; the message never contains payload bytes.
 */
export class FormatError extends Error {
  override readonly name = 'FormatError';
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}
