/**
 * X.509 certificates of TPM keys (TCG EK Credential Profile 2.x: EK and AK
 * certificates) with pkijs/asn1js: parsing, matching a certificate to a
 * TPMT_PUBLIC, chain validation, PEM helpers.
 */
import { webcrypto } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { bytesEqual, toHex } from '../bytes/hex.js';
import { TPM_ALG } from '../types/constants.js';
import type { TPMT_PUBLIC } from '../types/structures.js';
import { curveInfo, fixedLength, rsaExponent } from './keys.js';
import { TpmCryptoError } from './errors.js';

/** pkijs's crypto engine over Node's WebCrypto (local: no global engine is set). */
let engine: pkijs.CryptoEngine | undefined;
function cryptoEngine(): pkijs.CryptoEngine {
  engine ??= new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as pkijs.CryptoEngineParameters['crypto'] });
  return engine;
}

function toArrayBuffer(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/** Distinguished name as "2.5.4.3=value, ..." in certificate order (OIDs are what TCG names use). */
function dnString(dn: pkijs.RelativeDistinguishedNames): string {
  const short: Record<string, string> = { '2.5.4.3': 'CN', '2.5.4.6': 'C', '2.5.4.7': 'L', '2.5.4.8': 'ST', '2.5.4.10': 'O', '2.5.4.11': 'OU' };
  return dn.typesAndValues
    .map((tv) => {
      const v = tv.value as { valueBlock?: { value?: unknown } };
      const text = typeof v.valueBlock?.value === 'string' ? v.valueBlock.value : toHex(new Uint8Array(tv.value.toBER(false)));
      return `${short[tv.type] ?? tv.type}=${text}`;
    })
    .join(', ');
}

/** A parsed certificate: the fields verifiers look at, plus the pkijs object for anything else. */
export interface ParsedCertificate {
  der: Uint8Array;
  subject: string;
  issuer: string;
  /** Serial number, lowercase hex. */
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  /** SubjectPublicKeyInfo DER. */
  spki: Uint8Array;
  extensions: { oid: string; critical: boolean }[];
  pkijs: pkijs.Certificate;
}

/** Parses a DER X.509 certificate (RFC 5280); throws TpmCryptoError('invalid') if it does not decode. */
export function parseCertificate(der: Uint8Array): ParsedCertificate {
  let cert: pkijs.Certificate;
  try {
    cert = pkijs.Certificate.fromBER(toArrayBuffer(der));
  } catch (e) {
    throw new TpmCryptoError(`certificate does not decode: ${(e as Error).message}`, 'invalid');
  }
  try {
    return {
      der: der.slice(),
      subject: dnString(cert.subject),
      issuer: dnString(cert.issuer),
      serialNumber: toHex(new Uint8Array(cert.serialNumber.valueBlock.valueHexView)),
      notBefore: cert.notBefore.value,
      notAfter: cert.notAfter.value,
      spki: new Uint8Array(cert.subjectPublicKeyInfo.toSchema().toBER(false)),
      extensions: (cert.extensions ?? []).map((x) => ({ oid: x.extnID, critical: x.critical })),
      pkijs: cert,
    };
  } catch (e) {
    // pkijs/asn1js may throw untyped errors on malformed fields they decoded lazily.
    throw new TpmCryptoError(`certificate does not decode: ${(e as Error).message}`, 'invalid');
  }
}

const RSA_OIDS = ['1.2.840.113549.1.1.1', '1.2.840.113549.1.1.7', '1.2.840.113549.1.1.10'];
const EC_OID = '1.2.840.10045.2.1';
const CURVE_OIDS: Record<string, number> = { '1.2.840.10045.3.1.7': 0x0003, '1.3.132.0.34': 0x0004, '1.3.132.0.35': 0x0005 };

function stripZeros(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

/**
 * Whether the certificate's subject public key is the key of `pub`, compared
 * by value (RSA modulus and exponent, also under the RSAES-OAEP/RSASSA-PSS
 * OIDs some EK certificates use; ECC curve and point), not by encoding.
 */
export function certificateMatchesPublic(certDer: Uint8Array, pub: TPMT_PUBLIC): boolean {
  const spki = parseCertificate(certDer).pkijs.subjectPublicKeyInfo;
  const oid = spki.algorithm.algorithmId;
  const key = new Uint8Array(spki.subjectPublicKey.valueBlock.valueHexView);
  if (RSA_OIDS.includes(oid)) {
    if (pub.type !== TPM_ALG.RSA) return false;
    let parsed: ReturnType<typeof asn1js.fromBER>;
    try {
      parsed = asn1js.fromBER(toArrayBuffer(key));
    } catch {
      // asn1js throws (RangeError, Error) on some malformed primitives inside the key (found by scripts/fuzz.ts)
      return false;
    }
    const seq = parsed.result as asn1js.Sequence;
    if (parsed.offset === -1 || !(seq instanceof asn1js.Sequence) || seq.valueBlock.value.length < 2) return false;
    const [n, e] = seq.valueBlock.value as [asn1js.Integer, asn1js.Integer];
    if (!(n instanceof asn1js.Integer) || !(e instanceof asn1js.Integer)) return false;
    const modulus = stripZeros(new Uint8Array(n.valueBlock.valueHexView));
    const exponent = BigInt('0x' + toHex(new Uint8Array(e.valueBlock.valueHexView)));
    return bytesEqual(modulus, stripZeros(pub.unique)) && exponent === BigInt(rsaExponent(pub.parameters.exponent));
  }
  if (oid === EC_OID) {
    if (pub.type !== TPM_ALG.ECC) return false;
    const params = spki.algorithm.algorithmParams as asn1js.ObjectIdentifier | undefined;
    const curve = params instanceof asn1js.ObjectIdentifier ? CURVE_OIDS[params.valueBlock.toString()] : undefined;
    if (curve === undefined || curve !== pub.parameters.curveID) return false;
    const size = curveInfo(curve).size;
    if (key.length !== 1 + 2 * size || key[0] !== 4) return false;
    try {
      return bytesEqual(key.subarray(1, 1 + size), fixedLength(pub.unique.x, size)) && bytesEqual(key.subarray(1 + size), fixedLength(pub.unique.y, size));
    } catch {
      return false;
    }
  }
  return false;
}

/**
 * Critical extensions whose semantics path validation (pkijs) enforces, or
 * which only name the subject: basicConstraints, keyUsage, extKeyUsage,
 * subjectAltName (TCG: directoryName with TPM manufacturer/model/version),
 * subjectDirectoryAttributes (TCG: TPM specification), certificatePolicies,
 * policyMappings, nameConstraints, policyConstraints, inhibitAnyPolicy, key
 * identifiers. Any other critical extension fails validation (RFC 5280, 4.2).
 */
const HANDLED_CRITICAL = new Set([
  '2.5.29.19', '2.5.29.15', '2.5.29.37', '2.5.29.17', '2.5.29.9', '2.5.29.32', '2.5.29.33', '2.5.29.30', '2.5.29.36', '2.5.29.54',
  '2.5.29.14', '2.5.29.35',
]);

/**
 * Validates the chain leaf -> intermediates -> one of `roots` (RFC 5280 path
 * validation by pkijs' CertificateChainValidationEngine, at `opts.at` or now).
 * Every root is a trust anchor; intermediates are untrusted helpers. Critical
 * extensions of TCG certificates (e.g. a subjectAltName holding only a
 * directoryName with the TPM manufacturer/model/version) are accepted;
 * unknown critical extensions on the path are not.
 */
export async function verifyCertificateChain(
  leafDer: Uint8Array,
  roots: readonly Uint8Array[],
  intermediates: readonly Uint8Array[] = [],
  opts: { at?: Date } = {},
): Promise<{ ok: boolean; error?: string }> {
  let leaf: pkijs.Certificate;
  let trusted: pkijs.Certificate[];
  let others: pkijs.Certificate[];
  try {
    leaf = parseCertificate(leafDer).pkijs;
    trusted = roots.map((r) => parseCertificate(r).pkijs);
    others = intermediates.map((r) => parseCertificate(r).pkijs);
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
  if (trusted.length === 0) return { ok: false, error: 'no trusted root certificates given' };
  const chain = new pkijs.CertificateChainValidationEngine({
    trustedCerts: trusted,
    certs: [...others, leaf],
    checkDate: opts.at ?? new Date(),
  });
  try {
    const r = await chain.verify({}, cryptoEngine());
    if (r.result) {
      for (const c of r.certificatePath ?? [leaf]) {
        const unknown = (c.extensions ?? []).find((x) => x.critical && !HANDLED_CRITICAL.has(x.extnID));
        if (unknown !== undefined) return { ok: false, error: `unhandled critical extension ${unknown.extnID} in certificate "${dnString(c.subject)}"` };
      }
      return { ok: true };
    }
    return { ok: false, error: r.resultMessage || `chain validation failed (code ${r.resultCode})` };
  } catch (e) {
    const err = e as { resultMessage?: string; message?: string };
    return { ok: false, error: err.resultMessage ?? err.message ?? String(e) };
  }
}

/** The DER certificates (or other `label` blocks) in PEM text; DER bytes are returned as one certificate. */
export function pemToDers(text: string | Uint8Array, label = 'CERTIFICATE'): Uint8Array[] {
  if (text instanceof Uint8Array) {
    if (text.length > 0 && text[0] === 0x30) return [text.slice()];
    text = new TextDecoder().decode(text);
  }
  const out: Uint8Array[] = [];
  const re = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`, 'g');
  for (const m of text.matchAll(re)) {
    const body = m[1]!.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) throw new TpmCryptoError(`PEM ${label} block is not base64`, 'invalid');
    out.push(new Uint8Array(Buffer.from(body, 'base64')));
  }
  return out;
}

/** PEM text of DER bytes under `label` (default CERTIFICATE), 64 characters a line. */
export function derToPem(der: Uint8Array, label = 'CERTIFICATE'): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
