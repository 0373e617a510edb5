// PEM armour for NewKeyResponse.public (FORMATS.md "CertificationParameters").
import { FormatError } from './errors.js';

/** Encodes a PKIX SubjectPublicKeyInfo (DER) as a PEM "PUBLIC KEY" block. */
export function encodePublicKeyPem(spkiDer: Uint8Array): Uint8Array {
  const b64 = Buffer.from(spkiDer.buffer, spkiDer.byteOffset, spkiDer.byteLength).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  const text = `-----BEGIN PUBLIC KEY-----\n${lines.join('\n')}\n-----END PUBLIC KEY-----\n`;
  return new TextEncoder().encode(text);
}

/**
 * Decodes the first PEM "PUBLIC KEY" block to its DER SubjectPublicKeyInfo. Also accepts the
 * seed's mislabelled "RSA PUBLIC KEY" block, which holds PKIX too.
 */
export function decodePublicKeyPem(pem: Uint8Array | string): Uint8Array {
  const text = typeof pem === 'string' ? pem : new TextDecoder().decode(pem);
  const m = /-----BEGIN (RSA )?PUBLIC KEY-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END \1?PUBLIC KEY-----/.exec(text);
  if (m === null || m[2] === undefined) throw new FormatError('public', 'no PEM "PUBLIC KEY" block');
  const body = m[2].replace(/[\r\n]/g, '');
  if (body.length === 0 || body.length % 4 !== 0) throw new FormatError('public', 'invalid base64 in PEM block');
  const der = Buffer.from(body, 'base64');
  return new Uint8Array(der.buffer, der.byteOffset, der.byteLength);
}
