// The appraisal policy: how what a run proved (its named checks and verified facts) becomes an
// AR4SI trustworthiness vector, with reference values for the quoted PCRs. A JSON file
// (`--policy FILE`) or the built-in DEFAULT_POLICY; the format is in the verifier's README.
import { createHash } from 'node:crypto';
import { type Ar4siClaim, type Tier, AR4SI_CLAIMS, isAr4siClaim, isClaimValue, tierOf, valueByName, worseTier } from './ar4si.js';

/** One check of a run, as the policy sees it (the run's checks, and `<step>.notRun` for a step not run). */
export interface AppraisalCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly warning?: boolean;
  readonly detail?: string;
}

/**
 * What a policy appraises: a generic list of checks and a tree of facts. Any step that reports
 * named checks and facts (a replayed event log, a cloud AK, ...) feeds it without a policy change.
 */
export interface AppraisalInput {
  readonly checks: readonly AppraisalCheck[];
  readonly facts: Readonly<Record<string, unknown>>;
}

/** When a rule applies. Exactly one of the keys. Patterns are check names; `*` matches any characters. */
export type Condition =
  /** Some check matching one of the patterns failed. */
  | { readonly failed: readonly string[] }
  /** Some check matching one of the patterns passed with a warning. */
  | { readonly warned: readonly string[] }
  /** Every pattern matches at least one check, and every check they match passed without a warning. */
  | { readonly passed: readonly string[] }
  /** The fact at this dotted path ("secureBoot", "pcrs.sha256.7") is one of the values. */
  | { readonly fact: string; readonly in: readonly (string | number | boolean)[] };

/** Sets `claim` to `value` when `if` holds; a claim's first rule that applies wins. */
export interface Rule {
  readonly if: Condition;
  /** An AR4SI value: a number (-128..127) or the `ear` crate's name for it ("genuine_hw"). */
  readonly value: number | string;
  /** Why, in words (shown by the report). */
  readonly because?: string;
}

/** PCR reference values: bank ("sha256") → PCR index → hex value, or a list of acceptable values. */
export type PcrReferenceValues = Readonly<Record<string, Readonly<Record<string, string | readonly string[]>>>>;

/** Event-log reference values: bank → PCR index → the digests its measured events may have (an allow-list). */
export type EventReferenceValues = Readonly<Record<string, Readonly<Record<string, readonly string[]>>>>;

export interface AppraisalPolicy {
  /** Goes into `ear_appraisal_policy_ids`. Default: "tpmds-policy:sha256:<hash of the file>". */
  readonly id?: string;
  readonly referenceValues?: { readonly pcrs?: PcrReferenceValues; readonly events?: EventReferenceValues };
  /** Rules per AR4SI claim; a claim with no rule, or none that applies, is not set. */
  readonly claims: Readonly<Partial<Record<Ar4siClaim, readonly Rule[]>>>;
}

/** The checks the verifier's steps make whose failure means a signature, nonce or key did not verify. */
const QUOTE_CRYPTO = ['quote.rpc', 'quote.notRun', 'quote.decode', 'quote.ak', 'quote.quotes', 'quote[*', 'quote.sha*'];

/**
 * The built-in policy. hardware: the EK certificate chains to --ek-roots and the credential made
 * for the EK and AK came back activated (no roots or no EK certificate: warning). instance-identity:
 * the AK is a restricted TPM key certified by itself and bound to the EK by credential activation
 * (and a cloud attestation key, where the target offers one, signs and its certificate verifies).
 * executables: every PCR the policy has reference values for holds one of them in a verified quote,
 * and every event of a PCR with event reference values has an allowed digest (no reference values:
 * not claimed). configuration: Secure Boot enabled
 * (disabled: warning; unknown: not claimed). storage-opaque: secrets sealed to the EK (and to the
 * quoted PCRs), imported keys and keys made in the TPM work, and wrong PCR values are refused.
 */
export const DEFAULT_POLICY: AppraisalPolicy = {
  id: 'tpmds-policy:default:1',
  claims: {
    hardware: [
      { if: { failed: ['ek.certificate.chain'] }, value: 'contraindicated_hw', because: 'the EK certificate does not chain to --ek-roots' },
      { if: { failed: ['health', 'ek.rpc', 'ek.notRun', 'attest.rpc', 'attest.notRun'] }, value: 'unrecognized_hw', because: 'the EK or credential activation could not be checked' },
      { if: { failed: ['ek.*', 'attest.*'] }, value: 'crypto_failed', because: 'the EK or its credential activation did not verify' },
      { if: { warned: ['ek.certificate*'] }, value: 'unsafe_hw', because: 'the EK is not chained to a manufacturer root (no --ek-roots, or no EK certificate)' },
      { if: { passed: ['ek.certificate.chain', 'attest.secret'] }, value: 'genuine_hw', because: 'the EK certificate chains to --ek-roots and the credential for EK and AK was activated' },
    ],
    'instance-identity': [
      { if: { failed: ['ak.decode', 'ak.keyType', 'ak.certifyCreation', 'ak.attributes', 'attest.secret', ...QUOTE_CRYPTO.filter((p) => p !== 'quote.rpc' && p !== 'quote.notRun')] }, value: 'crypto_failed', because: 'the AK, its credential activation or a quote signature/nonce did not verify' },
      // The cloud attestation key (gce-ak step, when the target offers one) speaks for the instance too.
      { if: { failed: ['gceAk.public', 'gceAk.keyType', 'gceAk.signature', 'gceAk.certificate', 'gceAk.instance'] }, value: 'crypto_failed', because: "the cloud attestation key's signature or certificate did not verify" },
      { if: { failed: ['health', 'ak.*', 'attest.*'] }, value: 'unrecognized_instance', because: 'the AK or credential activation could not be checked' },
      { if: { passed: ['ak.*', 'attest.secret'] }, value: 'recognized_instance', because: 'the AK is a restricted TPM key bound to the EK by credential activation' },
    ],
    executables: [
      { if: { failed: QUOTE_CRYPTO }, value: 'crypto_failed', because: 'no quote verified (signature, nonce or AK)' },
      { if: { failed: ['eventlog*', 'policy.*', 'quote.expectPcr.*'] }, value: 'contraindicated_rt', because: 'a PCR or an event differs from its reference values, or the event log does not replay to the quoted PCRs' },
      { if: { passed: ['policy.*'] }, value: 'approved_rt', because: 'every PCR and event-log reference value of the policy matches the verified quote and log' },
    ],
    configuration: [
      { if: { fact: 'secureBoot', in: ['enabled'] }, value: 'approved_config', because: 'Secure Boot is enabled (from the replayed event log)' },
      { if: { fact: 'secureBoot', in: ['disabled'] }, value: 'unsafe_config', because: 'Secure Boot is disabled' },
    ],
    'storage-opaque': [
      {
        if: { failed: ['importBlob.*', 'importSigningKey.*', 'newKey.*', 'sign.*', 'import-blob.notRun', 'import-signing-key.notRun', 'new-key.notRun', 'sign.notRun'] },
        value: 'unencrypted_secrets',
        because: 'a secret sealed to the TPM, an imported key or a TPM-made key did not behave as a TPM-held one',
      },
      { if: { passed: ['importBlob.unsealed', 'importSigningKey.*', 'newKey.*', 'sign.*'] }, value: 'hw_encrypted_secrets', because: 'secrets and keys are held by the TPM (sealed to the EK, certified by the AK)' },
    ],
  },
};

/** A policy file that cannot be used; the message names the file's problem. */
export class PolicyError extends Error {
  override readonly name = 'PolicyError';
}

/** Hex digits of a digest of each bank a policy may name. */
const HEX_DIGITS: Readonly<Record<string, number>> = { sha1: 40, sha256: 64, sha384: 96, sha512: 128 };

function conditionError(where: string, c: unknown): string | undefined {
  if (typeof c !== 'object' || c === null || Array.isArray(c)) return `${where}: "if" must be an object`;
  const keys = Object.keys(c).sort();
  const obj = c as Record<string, unknown>;
  const patterns = (k: string) => Array.isArray(obj[k]) && (obj[k] as unknown[]).length > 0 && (obj[k] as unknown[]).every((p) => typeof p === 'string' && p !== '');
  if (keys.length === 1 && ['failed', 'warned', 'passed'].includes(keys[0]!)) {
    return patterns(keys[0]!) ? undefined : `${where}: "${keys[0]}" must be a non-empty list of check-name patterns`;
  }
  if (keys.join(',') === 'fact,in') {
    if (typeof obj['fact'] !== 'string' || obj['fact'] === '') return `${where}: "fact" must be a dotted fact name`;
    const values = obj['in'];
    if (!Array.isArray(values) || values.length === 0 || !values.every((v) => ['string', 'number', 'boolean'].includes(typeof v))) return `${where}: "in" must be a non-empty list of values`;
    return undefined;
  }
  return `${where}: "if" needs exactly one of failed, warned, passed, or fact with in (got ${keys.join(', ') || 'nothing'})`;
}

/** Checks a parsed policy document; throws PolicyError naming the first problem. */
export function validatePolicy(doc: unknown, source = 'the policy'): AppraisalPolicy {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new PolicyError(`${source}: must be a JSON object`);
  const p = doc as Record<string, unknown>;
  for (const k of Object.keys(p)) if (!['id', 'referenceValues', 'claims', 'description'].includes(k)) throw new PolicyError(`${source}: unknown key "${k}" (expected id, description, referenceValues, claims)`);
  if (p['id'] !== undefined && (typeof p['id'] !== 'string' || p['id'] === '')) throw new PolicyError(`${source}: "id" must be a non-empty string`);
  const claims = p['claims'];
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) throw new PolicyError(`${source}: "claims" must be an object of AR4SI claim name → rules`);
  for (const [claim, rules] of Object.entries(claims)) {
    if (!isAr4siClaim(claim)) throw new PolicyError(`${source}: unknown AR4SI claim "${claim}" (expected one of ${AR4SI_CLAIMS.join(', ')})`);
    if (!Array.isArray(rules)) throw new PolicyError(`${source}: claims.${claim} must be a list of rules`);
    rules.forEach((r: unknown, i) => {
      const where = `${source}: claims.${claim}[${i}]`;
      if (typeof r !== 'object' || r === null) throw new PolicyError(`${where}: a rule must be an object with "if" and "value"`);
      const rule = r as Record<string, unknown>;
      for (const k of Object.keys(rule)) if (!['if', 'value', 'because'].includes(k)) throw new PolicyError(`${where}: unknown key "${k}" (expected if, value, because)`);
      const err = conditionError(where, rule['if']);
      if (err) throw new PolicyError(err);
      const v = rule['value'];
      if (typeof v === 'string' ? valueByName(claim, v) === undefined : !isClaimValue(v)) {
        throw new PolicyError(`${where}: value ${JSON.stringify(v)} is not an AR4SI value of ${claim} (an integer -128..127 or a registered name)`);
      }
      if (rule['because'] !== undefined && typeof rule['because'] !== 'string') throw new PolicyError(`${where}: "because" must be a string`);
    });
  }
  const refs = p['referenceValues'];
  if (refs !== undefined) {
    if (typeof refs !== 'object' || refs === null || Array.isArray(refs)) throw new PolicyError(`${source}: "referenceValues" must be an object`);
    for (const [kind, table] of Object.entries(refs)) {
      if (kind !== 'pcrs' && kind !== 'events') throw new PolicyError(`${source}: referenceValues: unknown key "${kind}" (expected pcrs, events)`);
      const where = `${source}: referenceValues.${kind}`;
      if (typeof table !== 'object' || table === null || Array.isArray(table)) throw new PolicyError(`${where} must be an object of bank → PCR → ${kind === 'pcrs' ? 'value' : 'digests'}`);
      for (const [bank, values] of Object.entries(table)) {
        const digits = HEX_DIGITS[bank];
        if (digits === undefined) throw new PolicyError(`${where}: unknown bank "${bank}" (sha1, sha256, sha384, sha512)`);
        const digest = new RegExp(`^[0-9a-f]{${digits}}$`);
        if (typeof values !== 'object' || values === null || Array.isArray(values)) throw new PolicyError(`${where}.${bank} must be an object of PCR index → ${kind === 'pcrs' ? 'value' : 'digests'}`);
        for (const [index, v] of Object.entries(values)) {
          if (!/^(?:[0-9]|1[0-9]|2[0-3])$/.test(index)) throw new PolicyError(`${where}.${bank}: "${index}" is not a PCR index 0-23`);
          const list = Array.isArray(v) ? v : kind === 'pcrs' ? [v] : undefined;
          if (list === undefined || list.length === 0 || !list.every((x) => typeof x === 'string' && digest.test(x.toLowerCase()))) {
            throw new PolicyError(`${where}.${bank}.${index} must be ${kind === 'pcrs' ? `a ${bank} digest of ${digits} hex digits (or a list of them)` : `a list of ${bank} digests of ${digits} hex digits`}`);
          }
        }
      }
    }
  }
  return doc as AppraisalPolicy;
}

/** Parses and checks a JSON policy file's text. */
export function parsePolicy(text: string, source = 'the policy'): AppraisalPolicy {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new PolicyError(`${source}: not JSON (${(e as Error).message})`);
  }
  const policy = validatePolicy(doc, source);
  return policy.id !== undefined ? policy : { ...policy, id: `tpmds-policy:sha256:${createHash('sha256').update(text).digest('hex')}` };
}

/** Whether `name` matches `pattern` (`*` any characters, everything else literal). */
export function matchesPattern(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.split('*').map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return re.test(name);
}

function factAt(facts: Readonly<Record<string, unknown>>, path: string): unknown {
  let v: unknown = facts;
  for (const part of path.split('.')) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, part)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

function holds(c: Condition, input: AppraisalInput): boolean {
  const matching = (patterns: readonly string[]) => input.checks.filter((k) => patterns.some((p) => matchesPattern(p, k.name)));
  if ('failed' in c) return matching(c.failed).some((k) => !k.ok);
  if ('warned' in c) return matching(c.warned).some((k) => k.ok && k.warning === true);
  if ('passed' in c) {
    return c.passed.every((p) => input.checks.some((k) => matchesPattern(p, k.name))) && matching(c.passed).every((k) => k.ok && k.warning !== true);
  }
  const v = factAt(input.facts, c.fact);
  return v !== undefined && c.in.includes(v as string | number | boolean);
}

/**
 * The checks reference values add: `policy.pcr.<bank>.<index>` (the verified quoted value is one of
 * the PCR's reference values) and `policy.event.<bank>.<index>` (every measured event of the PCR in
 * the replayed event log has an allowed digest).
 */
function referenceValueChecks(policy: AppraisalPolicy, facts: Readonly<Record<string, unknown>>): AppraisalCheck[] {
  const out: AppraisalCheck[] = [];
  for (const [bank, values] of Object.entries(policy.referenceValues?.pcrs ?? {})) {
    for (const [index, ref] of Object.entries(values)) {
      const name = `policy.pcr.${bank}.${index}`;
      const accepted = (Array.isArray(ref) ? ref : [ref]).map((x: string) => x.toLowerCase());
      const got = factAt(facts, `pcrs.${bank}.${index}`);
      if (typeof got !== 'string') out.push({ name, ok: false, detail: `${bank} PCR ${index} is not in a verified quote` });
      else if (accepted.includes(got.toLowerCase())) out.push({ name, ok: true, detail: `${bank} PCR ${index} = ${got}, a reference value` });
      else out.push({ name, ok: false, detail: `${bank} PCR ${index} is ${got}; reference value${accepted.length > 1 ? 's' : ''} ${accepted.join(', ')}` });
    }
  }
  for (const [bank, values] of Object.entries(policy.referenceValues?.events ?? {})) {
    for (const [index, allowed] of Object.entries(values)) {
      const name = `policy.event.${bank}.${index}`;
      const accepted = new Set(allowed.map((x) => x.toLowerCase()));
      const digests = factAt(facts, `eventDigests.${bank}.${index}`);
      if (factAt(facts, 'eventDigests') === undefined) {
        out.push({ name, ok: false, detail: `no event log replayed to the verified PCRs: ${bank} PCR ${index} events not checked` });
        continue;
      }
      if (!Array.isArray(digests)) {
        // No event the verified log extended into it replays to a quoted value: nothing here is proven.
        out.push({ name, ok: false, detail: `${bank} PCR ${index}: no logged event explains its quoted value, so its events cannot be checked` });
        continue;
      }
      const list = digests as string[];
      const unknown = list.filter((d) => !accepted.has(d.toLowerCase()));
      if (unknown.length > 0) out.push({ name, ok: false, detail: `${bank} PCR ${index}: ${unknown.length} of ${list.length} event(s) with a digest not in the reference values: ${unknown.join(', ')}` });
      else out.push({ name, ok: true, detail: `${bank} PCR ${index}: all ${list.length} event digest(s) are reference values` });
    }
  }
  return out;
}

/** One claim of the appraisal: its value, tier, and the rule that set it. */
export interface ClaimAppraisal {
  readonly value: number;
  readonly tier: Tier;
  readonly because?: string;
  /** The failed checks the deciding rule's `failed` patterns matched (empty otherwise). */
  readonly failedChecks: readonly string[];
}

export interface Appraisal {
  /** The worst tier of the vector ("none" when no claim is set). */
  readonly status: Tier;
  readonly vector: Readonly<Partial<Record<Ar4siClaim, ClaimAppraisal>>>;
  readonly policyId: string;
  /** The checks the policy's reference values added. */
  readonly referenceChecks: readonly AppraisalCheck[];
}

/** Appraises `input` with `policy`: per claim, the first rule that holds sets it; the status is the worst tier. */
export function appraise(input: AppraisalInput, policy: AppraisalPolicy = DEFAULT_POLICY): Appraisal {
  const referenceChecks = referenceValueChecks(policy, input.facts);
  const all: AppraisalInput = { checks: [...input.checks, ...referenceChecks], facts: input.facts };
  const vector: Partial<Record<Ar4siClaim, ClaimAppraisal>> = {};
  let status: Tier = 'none';
  for (const claim of AR4SI_CLAIMS) {
    const rule = (policy.claims[claim] ?? []).find((r) => holds(r.if, all));
    if (!rule) continue;
    const value = typeof rule.value === 'number' ? rule.value : valueByName(claim, rule.value)!;
    const failedChecks = 'failed' in rule.if ? all.checks.filter((k) => !k.ok && (rule.if as { failed: readonly string[] }).failed.some((p) => matchesPattern(p, k.name))).map((k) => k.name) : [];
    vector[claim] = { value, tier: tierOf(value), ...(rule.because ? { because: rule.because } : {}), failedChecks };
    status = worseTier(status, tierOf(value));
  }
  return { status, vector, policyId: policy.id ?? 'tpmds-policy:unnamed', referenceChecks };
}
