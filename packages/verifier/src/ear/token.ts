// EAR tokens (draft-ietf-rats-ear-04) as signed JWTs: the claims a run's appraisal gives, signing
// with ES256 (EC P-256) or EdDSA (Ed25519), and reading a token back, in the draft's spelling and
// the one Veraison's releases used before it (`ear.status`, `ear.trustworthiness-vector`, ...).
// Claim names and checks follow Veraison's `ear` crate 0.6.0 (interop/rust-ear tests both ways).
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { CompactSign, compactVerify, errors as joseErrors } from 'jose';
import { TPM_ALG, fromHex, pcrValuesDigest, toHex } from '@tpmds/tpm2-wire';
import { type Ar4siClaim, type Tier, AR4SI_CLAIMS, isAr4siClaim, isClaimValue, isTier, tierOf, valueName, worseTier } from './ar4si.js';
import type { Appraisal, AppraisalCheck, AppraisalInput } from './policy.js';
import type { RunReport } from '../verify/run.js';

/** The EAR profile of draft-ietf-rats-ear-04 (what the `ear` crate 0.6.0 writes as EAR_PROFILE). */
export const EAR_PROFILE = 'tag:ietf.org,2026:rats/ear#04';
/** The profile of Veraison's EAR before the draft (crate <= 0.5), read but never written. */
export const EAR_PROFILE_PRE_DRAFT = 'tag:github.com,2023:veraison/ear';
/** `ear_verifier_id.developer` of the tokens tpmds-verifier writes. */
const VERIFIER_DEVELOPER = 'tpmds';

export type EarAlgorithm = 'ES256' | 'EdDSA';

/** A key, token or claim problem; the message names it. */
export class EarError extends Error {
  override readonly name = 'EarError';
}

function keyAlgorithm(key: KeyObject, source: string, role: string): EarAlgorithm {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  const what = key.asymmetricKeyType === 'ec' ? `an EC ${key.asymmetricKeyDetails?.namedCurve ?? ''} key` : `an ${key.asymmetricKeyType ?? 'unknown'} key`;
  throw new EarError(`${source}: ${what}; the ${role} must be EC P-256 (ES256) or Ed25519 (EdDSA)`);
}

/** The signing key of a PEM (PKCS#8, SEC1 "EC PRIVATE KEY") and the JWS algorithm its type gives. */
export function signingKeyFromPem(pem: string | Uint8Array, source = 'the key'): { key: KeyObject; alg: EarAlgorithm } {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: Buffer.from(pem), format: 'pem' });
  } catch (e) {
    throw new EarError(`${source}: not a PEM private key (${(e as Error).message})`);
  }
  return { key, alg: keyAlgorithm(key, source, 'signing key') };
}

/** The verification key of a PEM public key, certificate or private key, and its JWS algorithm. */
export function verificationKeyFromPem(pem: string | Uint8Array, source = 'the key'): { key: KeyObject; alg: EarAlgorithm } {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(pem), format: 'pem' });
  } catch (e) {
    throw new EarError(`${source}: not a PEM public key or certificate (${(e as Error).message})`);
  }
  return { key, alg: keyAlgorithm(key, source, 'verification key') };
}

/** A run's checks and facts as the policy input: every check, plus `<step>.notRun` for each step not run. */
export function appraisalInputFromReport(report: RunReport): AppraisalInput {
  const checks: AppraisalCheck[] = [];
  for (const s of report.steps) {
    if (s.skipped) checks.push({ name: `${s.step}.notRun`, ok: false, detail: s.skipped });
    checks.push(...s.checks);
  }
  return { checks, facts: { ...report.facts, keyType: report.keyType } };
}

function hexToBase64url(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64url');
}

/** The quote's pcrDigest of a bank's PCRs 0-23 (SHA-256 over the values in order; the run checks the quote covers all 24). */
function pcrDigest(values: Readonly<Record<string, string>>): string | undefined {
  const pcrs = new Map<number, Uint8Array>();
  for (let i = 0; i < 24; i++) {
    const v = values[String(i)];
    if (v === undefined) return undefined;
    pcrs.set(i, fromHex(v));
  }
  return toHex(pcrValuesDigest(TPM_ALG.SHA256, pcrs));
}

/**
 * The attester claims (`ear_attester_claims`) of a run: the TPM facts behind the verdict, only
 * those the run verified. Names: tpm_ek_name, tpm_ak_name (hex TPM names: nameAlg || digest),
 * tpm_key_type (rsa | ecc), tpm_ek_certificate {subject, issuer, serial_number},
 * tpm_pcr_digests {bank: hex} (SHA-256 over PCRs 0-23 of the bank, the quote's pcrDigest),
 * tpm_pcrs {bank: {index: hex}}, tpm_secure_boot (enabled | disabled | unknown),
 * tpm_event_log_events (number of events in the replayed log).
 */
export function attesterClaims(report: RunReport): Record<string, unknown> {
  const f = report.facts;
  const out: Record<string, unknown> = {};
  if (f.ekName) out['tpm_ek_name'] = f.ekName;
  if (f.akName) out['tpm_ak_name'] = f.akName;
  out['tpm_key_type'] = report.keyType;
  if (f.ekCertificate) out['tpm_ek_certificate'] = { subject: f.ekCertificate.subject, issuer: f.ekCertificate.issuer, serial_number: f.ekCertificate.serialNumber };
  if (f.pcrs) {
    const digests: Record<string, string> = {};
    for (const [bank, values] of Object.entries(f.pcrs)) {
      const d = pcrDigest(values);
      if (d) digests[bank] = d;
    }
    if (Object.keys(digests).length > 0) out['tpm_pcr_digests'] = digests;
    out['tpm_pcrs'] = f.pcrs;
  }
  if (f.secureBoot) out['tpm_secure_boot'] = f.secureBoot;
  if (f.eventLogEvents !== undefined) out['tpm_event_log_events'] = f.eventLogEvents;
  return out;
}

/** One submod's claims, as the draft names them. */
export interface EarSubmod {
  ear_status: Tier;
  ear_trustworthiness_vector?: Partial<Record<Ar4siClaim, number>>;
  ear_appraisal_policy_ids?: string[];
  ear_attester_claims?: Record<string, unknown>;
  ear_verifier_claims?: Record<string, unknown>;
}

/** The EAR claims set (JWT payload), as the draft names them. */
export interface EarClaims {
  eat_profile: string;
  iat: number;
  exp?: number;
  ear_verifier_id: { developer: string; build: string };
  eat_nonce?: string | string[];
  ear_status?: Tier;
  submods: Record<string, EarSubmod>;
}

export interface EarClaimsOptions {
  /** The submod's name; default `tpm:<EK name hex>` (`tpm:unknown-ek` when the EK was not read). */
  submod?: string;
  /** The verifier's build ("tpmds-verifier 0.1.0"). */
  build: string;
  /** Seconds since the epoch; default now. */
  now?: number;
}

/** The EAR of a run appraised by a policy: one submod for the attested TPM. */
export function earClaims(report: RunReport, appraisal: Appraisal, opts: EarClaimsOptions): EarClaims {
  const vector: Partial<Record<Ar4siClaim, number>> = {};
  for (const c of AR4SI_CLAIMS) if (appraisal.vector[c]) vector[c] = appraisal.vector[c]!.value;
  const failed = [...report.failed, ...appraisal.referenceChecks.filter((c) => !c.ok).map((c) => c.name)];
  const submod: EarSubmod = {
    ear_status: appraisal.status,
    ...(Object.keys(vector).length > 0 ? { ear_trustworthiness_vector: vector } : {}),
    ear_appraisal_policy_ids: [appraisal.policyId],
    ear_attester_claims: attesterClaims(report),
    ear_verifier_claims: { tpmds_checks_failed: failed, tpmds_checks_warned: report.warnings },
  };
  const name = opts.submod ?? `tpm:${report.facts.ekName ?? 'unknown-ek'}`;
  return {
    eat_profile: EAR_PROFILE,
    iat: opts.now ?? Math.floor(Date.now() / 1000),
    ear_verifier_id: { developer: VERIFIER_DEVELOPER, build: opts.build },
    ...(report.quoteNonce ? { eat_nonce: hexToBase64url(report.quoteNonce) } : {}),
    submods: { [name]: submod },
  };
}

/** Signs the claims as a JWS compact JWT (header {alg, typ: "JWT"}). */
export async function signEar(claims: EarClaims, key: KeyObject, alg: EarAlgorithm): Promise<string> {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(claims))).setProtectedHeader({ alg, typ: 'JWT' }).sign(key);
}

/** A submod as read, whichever spelling the token used. */
export interface ReadSubmod {
  status: Tier;
  vector: Partial<Record<Ar4siClaim, number>>;
  policyIds: string[];
  attesterClaims?: Record<string, unknown>;
  verifierClaims?: Record<string, unknown>;
}

/** A verified token. */
export interface VerifiedEar {
  alg: EarAlgorithm;
  /** "draft" (draft-ietf-rats-ear-04) or "pre-draft" (Veraison's `ear.*` names). */
  spelling: 'draft' | 'pre-draft';
  profile: string;
  iat: number;
  exp?: number;
  verifierId: { developer: string; build: string };
  nonce?: string[];
  /** The token's `ear_status`, or the worst submod status when it has none. */
  status: Tier;
  submods: Record<string, ReadSubmod>;
  /** The payload as signed. */
  claims: Record<string, unknown>;
}

export interface VerifyEarOptions {
  /** Refuse a token whose iat is more than this many seconds ago. */
  maxAgeSeconds?: number;
  /** Seconds since the epoch; default now. */
  now?: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function readNonce(v: unknown): string[] {
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0) throw new EarError('eat_nonce: an empty list');
  return list.map((n) => {
    if (typeof n !== 'string' || !/^[A-Za-z0-9_-]+$/.test(n)) throw new EarError(`eat_nonce: ${JSON.stringify(n)} is not base64url text`);
    const len = Buffer.from(n, 'base64url').length;
    if (len < 8 || len > 64) throw new EarError(`eat_nonce: ${len} bytes; a nonce has 8 to 64`);
    return n;
  });
}

function readTier(v: unknown, where: string): Tier {
  if (isTier(v)) return v;
  // CBOR-minded producers may send the tier's integer (0, 2, 32, 96).
  if (isClaimValue(v)) return tierOf(v);
  throw new EarError(`${where}: ${JSON.stringify(v)} is not a trust tier (none, affirming, warning, contraindicated)`);
}

function readSubmod(name: string, v: unknown, spelling: 'draft' | 'pre-draft'): ReadSubmod {
  const where = `submods["${name}"]`;
  if (!isObject(v)) throw new EarError(`${where}: not an object`);
  const key = spelling === 'draft'
    ? { status: 'ear_status', vector: 'ear_trustworthiness_vector', policy: 'ear_appraisal_policy_ids', attester: 'ear_attester_claims', verifier: 'ear_verifier_claims' }
    : { status: 'ear.status', vector: 'ear.trustworthiness-vector', policy: 'ear.appraisal-policy-id', attester: 'ear.veraison.annotated-evidence', verifier: 'ear.veraison.policy-claims' };
  if (!(key.status in v)) throw new EarError(`${where}: no ${key.status}`);
  const status = readTier(v[key.status], `${where}.${key.status}`);
  const vector: Partial<Record<Ar4siClaim, number>> = {};
  const tv = v[key.vector];
  if (tv !== undefined) {
    if (!isObject(tv) || Object.keys(tv).length === 0) throw new EarError(`${where}.${key.vector}: must be a non-empty object`);
    for (const [claim, value] of Object.entries(tv)) {
      if (!isAr4siClaim(claim)) throw new EarError(`${where}.${key.vector}: unknown claim "${claim}"`);
      if (!isClaimValue(value)) throw new EarError(`${where}.${key.vector}.${claim}: ${JSON.stringify(value)} is not an integer -128..127`);
      vector[claim] = value;
    }
  }
  let policyIds: string[] = [];
  const p = v[key.policy];
  if (p !== undefined) {
    const list = spelling === 'pre-draft' && typeof p === 'string' ? [p] : p;
    if (!Array.isArray(list) || list.length === 0 || !list.every((x) => typeof x === 'string')) throw new EarError(`${where}.${key.policy}: must be a non-empty list of strings`);
    policyIds = list as string[];
  }
  const out: ReadSubmod = { status, vector, policyIds };
  for (const [field, k] of [['attesterClaims', key.attester], ['verifierClaims', key.verifier]] as const) {
    const c = v[k];
    if (c === undefined) continue;
    if (!isObject(c) || Object.keys(c).length === 0) throw new EarError(`${where}.${k}: must be a non-empty object`);
    out[field] = c;
  }
  return out;
}

/** Reads a verified payload: profile, times, verifier id, nonce, submods; throws EarError naming a bad claim. */
function readEarClaims(claims: Record<string, unknown>, opts: VerifyEarOptions = {}): Omit<VerifiedEar, 'alg'> {
  const profile = claims['eat_profile'];
  if (profile !== EAR_PROFILE && profile !== EAR_PROFILE_PRE_DRAFT) {
    throw new EarError(`eat_profile ${JSON.stringify(profile)} is not an EAR profile (expected "${EAR_PROFILE}", or "${EAR_PROFILE_PRE_DRAFT}" before the draft)`);
  }
  const spelling = 'ear.verifier-id' in claims && !('ear_verifier_id' in claims) ? 'pre-draft' : 'draft';
  const iat = claims['iat'];
  if (typeof iat !== 'number' || !Number.isInteger(iat) || iat <= 0) throw new EarError(`iat: ${iat === undefined ? 'missing' : `${JSON.stringify(iat)} is not a positive integer`}`);
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const exp = claims['exp'];
  if (exp !== undefined) {
    if (typeof exp !== 'number' || !Number.isInteger(exp)) throw new EarError(`exp: ${JSON.stringify(exp)} is not an integer`);
    if (exp <= now) throw new EarError(`the token expired ${now - exp} s ago (exp ${new Date(exp * 1000).toISOString()})`);
  }
  if (opts.maxAgeSeconds !== undefined && now - iat > opts.maxAgeSeconds) {
    throw new EarError(`the token is too old: issued ${now - iat} s ago (iat ${new Date(iat * 1000).toISOString()}), --max-age is ${opts.maxAgeSeconds} s`);
  }
  const vidKey = spelling === 'draft' ? 'ear_verifier_id' : 'ear.verifier-id';
  const vid = claims[vidKey];
  if (!isObject(vid) || typeof vid['developer'] !== 'string' || vid['developer'] === '' || typeof vid['build'] !== 'string' || vid['build'] === '') {
    throw new EarError(`${vidKey}: must be an object with non-empty "developer" and "build"`);
  }
  const submods = claims['submods'];
  if (!isObject(submods) || Object.keys(submods).length === 0) throw new EarError('submods: missing or empty (an EAR appraises at least one attester)');
  const read: Record<string, ReadSubmod> = {};
  let worst: Tier = 'none';
  for (const [name, s] of Object.entries(submods)) {
    read[name] = readSubmod(name, s, spelling);
    worst = worseTier(worst, read[name]!.status);
  }
  const statusKey = spelling === 'draft' ? 'ear_status' : 'ear.status';
  let status = worst;
  if (claims[statusKey] !== undefined) {
    status = readTier(claims[statusKey], statusKey);
    if (status !== 'none' && worseTier(status, worst) !== status) throw new EarError(`${statusKey} ${status} is better than the worst submod status ${worst}`);
  }
  const nonce = claims['eat_nonce'] === undefined ? undefined : readNonce(claims['eat_nonce']);
  return {
    spelling, profile: profile as string, iat, ...(exp !== undefined ? { exp: exp as number } : {}),
    verifierId: { developer: vid['developer'] as string, build: vid['build'] as string },
    ...(nonce ? { nonce } : {}), status, submods: read, claims,
  };
}

/** Verifies a token's signature with `key`, then its profile and claims; throws EarError naming the problem. */
export async function verifyEar(token: string, key: KeyObject, opts: VerifyEarOptions = {}): Promise<VerifiedEar> {
  const alg = keyAlgorithm(key, 'the key', 'verification key');
  const compact = token.trim();
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(compact)) throw new EarError('malformed token: not a JWS compact serialization (three base64url parts separated by dots)');
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(compact.split('.')[0]!, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new EarError('malformed token: the JWS header is not JSON');
  }
  if (header['alg'] !== alg) throw new EarError(`the token is signed with ${JSON.stringify(header['alg'])}, but the key is for ${alg}`);
  let payload: Uint8Array;
  try {
    payload = (await compactVerify(compact, key, { algorithms: [alg] })).payload;
  } catch (e) {
    if (e instanceof joseErrors.JWSSignatureVerificationFailed) throw new EarError('the signature does not verify with this key (wrong key, or the token was altered)');
    throw new EarError(`malformed token: ${(e as Error).message}`);
  }
  let claims: unknown;
  try {
    claims = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    throw new EarError('malformed token: the payload is not JSON');
  }
  if (!isObject(claims)) throw new EarError('malformed token: the payload is not a JSON object');
  return { alg, ...readEarClaims(claims, opts) };
}

function describeValue(claim: string, value: number): string {
  const name = isAr4siClaim(claim) ? valueName(claim, value) : undefined;
  return `${String(value).padStart(3)}  ${(name ?? 'unregistered value').padEnd(22)} ${tierOf(value)}`;
}

/** The trustworthiness vector as lines ("  hardware            2  genuine_hw   affirming"). */
export function formatVector(vector: Partial<Record<Ar4siClaim, number>>, indent = '    '): string[] {
  return AR4SI_CLAIMS.filter((c) => vector[c] !== undefined).map((c) => `${indent}${c.padEnd(18)}${describeValue(c, vector[c]!)}`);
}

/** An attester claim in one line: PCR tables summarised (`--json` has them), objects as key=value. */
function claimText(name: string, v: unknown): string {
  if (name === 'tpm_pcrs' && isObject(v)) return Object.entries(v).map(([bank, pcrs]) => `${bank}: ${isObject(pcrs) ? Object.keys(pcrs).length : 0} PCRs`).join(', ') + ' (values with --json)';
  if (isObject(v)) return Object.entries(v).map(([k, x]) => `${k}=${typeof x === 'string' || typeof x === 'number' ? x : JSON.stringify(x)}`).join(', ');
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
}

/** A verified token, readably. */
export function formatVerifiedEar(v: VerifiedEar): string {
  const lines = [
    `signature  ok (${v.alg})`,
    `profile    ${v.profile}${v.spelling === 'pre-draft' ? ' (pre-draft claim names)' : ''}`,
    `issued     ${new Date(v.iat * 1000).toISOString()}${v.exp !== undefined ? `, expires ${new Date(v.exp * 1000).toISOString()}` : ''}`,
    `verifier   ${v.verifierId.developer} / ${v.verifierId.build}`,
    ...(v.nonce ? [`nonce      ${v.nonce.join(', ')}`] : []),
    `status     ${v.status}`,
  ];
  for (const [name, s] of Object.entries(v.submods)) {
    lines.push(`submod ${name}: ${s.status}`);
    lines.push(...formatVector(s.vector));
    if (s.policyIds.length > 0) lines.push(`    ${'policy'.padEnd(22)}${s.policyIds.join(', ')}`);
    for (const [k, val] of Object.entries(s.attesterClaims ?? {})) lines.push(`    ${k.padEnd(22)}${claimText(k, val)}`);
    const failed = s.verifierClaims?.['tpmds_checks_failed'];
    if (Array.isArray(failed) && failed.length > 0) lines.push(`    ${'failed checks'.padEnd(22)}${failed.join(', ')}`);
  }
  return lines.join('\n') + '\n';
}
