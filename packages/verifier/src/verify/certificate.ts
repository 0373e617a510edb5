// The certificate a TPM keeps for one of its keys (the EK's, the cloud attestation key's): whether
// it is there, decodes, is for that key and chains to the roots given, as named checks.
import { certificateMatchesPublic, parseCertificate, verifyCertificateChain, type ParsedCertificate, type TPMT_PUBLIC } from '@tpmds/tpm2-wire';
import { errorText } from './checks.js';
import type { CheckList } from './checks.js';

/** How {@link checkKeyCertificate} checks a key's certificate and names what it finds. */
export interface KeyCertificateOptions {
  /** Name of the checks: `<name>` (there and decodes), `<name>.key`, `<name>.chain`; e.g. `ek.certificate`. */
  name: string;
  /** Trust anchors (DER); empty: the chain is not checked (a warning). */
  roots: readonly Uint8Array[];
  /** Untrusted intermediate certificates (DER). */
  intermediates: readonly Uint8Array[];
  /** Validate the chain at this time (default now). */
  at?: Date;
  /** The CLI flag that gives the roots, as the details name it (e.g. `--ek-roots`). */
  rootsFlag: string;
  /** What an empty certificate means, e.g. "the TPM has no EK certificate for this key": a warning, or a failure when roots are given. */
  missing: string;
  /** Added in parentheses to `missing` when it fails (e.g. where the TPM keeps the certificate). */
  missingNote?: string;
  /**
   * Whether the certificate is for the key: `same`, the detail when it is; `mismatch`, why it is
   * not (undefined: it is). Absent: not compared (the key itself did not verify).
   */
  key?: { same: string; mismatch: (certificate: ParsedCertificate) => string | undefined };
}

/** What {@link checkKeyCertificate} established. */
export interface KeyCertificate {
  /** The decoded certificate; absent when there is none or it does not decode. */
  certificate?: ParsedCertificate;
  /** The certificate's key was compared and is the key. */
  sameKey: boolean;
  /** The certificate chains to one of the roots (false when no roots are given). */
  chained: boolean;
}

/**
 * Checks `der`, the certificate of a key, into `c`: an empty one is a warning, or a failure when
 * there are roots to chain it to; it decodes (subject, issuer, serial and validity in the detail);
 * it is for the key (`opts.key`); it chains to one of `opts.roots` through `opts.intermediates`.
 */
export async function checkKeyCertificate(c: CheckList, der: Uint8Array, opts: KeyCertificateOptions): Promise<KeyCertificate> {
  const result: KeyCertificate = { sameKey: false, chained: false };
  if (der.length === 0) {
    if (opts.roots.length > 0) c.fail(opts.name, `${opts.missing}${opts.missingNote ? ` (${opts.missingNote})` : ''}; it cannot be chained to ${opts.rootsFlag}`);
    else c.warn(opts.name, opts.missing);
    return result;
  }
  const certificate = c.attempt(
    opts.name,
    () => parseCertificate(der),
    (p) => `subject "${p.subject}", issuer "${p.issuer}", serial ${p.serialNumber}, valid ${p.notBefore.toISOString()} to ${p.notAfter.toISOString()}`,
  );
  if (certificate === undefined) return result;
  result.certificate = certificate;
  if (opts.key !== undefined) {
    const mismatch = opts.key.mismatch(certificate);
    result.sameKey = c.expect(`${opts.name}.key`, mismatch === undefined, opts.key.same, mismatch ?? '');
  }
  if (opts.roots.length === 0) {
    c.warn(`${opts.name}.chain`, `no ${opts.rootsFlag} given, chain not checked`);
  } else {
    const r = await verifyCertificateChain(der, opts.roots, opts.intermediates, opts.at ? { at: opts.at } : {});
    result.chained = c.expect(
      `${opts.name}.chain`,
      r.ok,
      `chains to one of ${opts.roots.length} root(s)${opts.intermediates.length > 0 ? ` through ${opts.intermediates.length} intermediate(s) given` : ''}`,
      `does not chain to ${opts.rootsFlag}: ${r.error ?? 'unknown reason'}`,
    );
  }
  return result;
}

/**
 * Why the certificate `der` is not for the key `pub` (compared by key material, with the RSA
 * OIDs TPM certificates use, as tpm2-wire's certificateMatchesPublic does), or undefined when it
 * is; `what` names the key in the detail ("the EK").
 */
export function certificateKeyMismatch(der: Uint8Array, pub: TPMT_PUBLIC, what: string): string | undefined {
  try {
    return certificateMatchesPublic(der, pub) ? undefined : `the certificate is for another key than ${what}`;
  } catch (e) {
    return `the certificate's key cannot be compared: ${errorText(e)}`;
  }
}
