// --auth mtls: the caller is who its client certificate says (the TLS handshake already checked
// it against --client-ca): the first URI subjectAltName (a SPIFFE ID, say), else the subject CN.
import { parseCertificate } from '@tpmds/tpm2-wire';
import { AuthFailure, type Authenticator, type CallCredentials, type Caller } from './caller.js';

const SUBJECT_ALT_NAME = '2.5.29.17';
const COMMON_NAME = '2.5.4.3';
/** GeneralName CHOICE tag of uniformResourceIdentifier (RFC 5280 4.2.1.6). */
const GENERAL_NAME_URI = 6;

/** The identity of a client certificate (DER), or null when it names none. */
export function certificateIdentity(der: Uint8Array): string | null {
  const cert = parseCertificate(der).pkijs;
  for (const ext of cert.extensions ?? []) {
    if (ext.extnID !== SUBJECT_ALT_NAME) continue;
    const names = (ext.parsedValue as { altNames?: { type: number; value: unknown }[] } | undefined)?.altNames ?? [];
    const uri = names.find((n) => n.type === GENERAL_NAME_URI && typeof n.value === 'string' && n.value !== '');
    if (uri !== undefined) return uri.value as string;
  }
  for (const tv of cert.subject.typesAndValues) {
    if (tv.type !== COMMON_NAME) continue;
    const v = (tv.value as { valueBlock?: { value?: unknown } }).valueBlock?.value;
    if (typeof v === 'string' && v !== '') return v;
  }
  return null;
}

/** Most client certificates whose identity is remembered (parsing one costs more than a TPM2_Sign on swtpm). */
const MAX_REMEMBERED = 1024;

export class MtlsAuthenticator implements Authenticator {
  readonly mode = 'mtls' as const;
  /** Identity by certificate DER (a caller presents the same certificate on every call). */
  readonly #identities = new Map<string, string | null>();

  authenticate(credentials: CallCredentials): Promise<Caller> {
    if (credentials.peerCertificate === null) {
      return Promise.reject(new AuthFailure('UNAUTHENTICATED', 'no_credentials', 'no client certificate (this attestor requires mTLS)'));
    }
    const der = credentials.peerCertificate;
    const key = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('latin1');
    let identity = this.#identities.get(key);
    if (identity === undefined) {
      try {
        identity = certificateIdentity(der);
      } catch {
        identity = null;
      }
      if (this.#identities.size >= MAX_REMEMBERED) this.#identities.clear();
      this.#identities.set(key, identity);
    }
    if (identity === null) {
      return Promise.reject(
        new AuthFailure('UNAUTHENTICATED', 'no_identity_in_certificate', 'the client certificate has neither a URI subjectAltName nor a subject CN to identify the caller'),
      );
    }
    return Promise.resolve({ identity, mode: 'mtls' });
  }
}
