// The `run` flow (ARCHITECTURE.md "packages/verifier — the CLI"): every RPC of an attestor,
// each payload verified with the steps of this folder, in the order a verifier needs them.
import { type KeyObject, randomBytes, randomUUID } from 'node:crypto';
import { status as Status } from '@grpc/grpc-js';
import { TPM_ALG, bankName, objectName, toHex, type PcrValues, type SecureBootFact, type TPMT_PUBLIC } from '@tpmds/tpm2-wire';
import type { AttestorClient, GetGCEEKSigningKeyResult, HealthStatus } from '@tpmds/protocol/proto';
import { type Check, type StepResult, errorText } from './checks.js';
import { verifyEk } from './ek.js';
import { verifyAk } from './ak.js';
import { makeChallenge, verifyAttest } from './attest.js';
import { type ExpectedPcrs, type PcrBankValues, verifyPlatform } from './quote.js';
import { makeImportBlob, makeSigningKeyImport, verifyImportBlob, verifyImportSigningKey } from './import.js';
import { verifyNewKey } from './newkey.js';
import { verifySign } from './sign.js';
import { instanceCheck, verifyGceAk } from './gce-ak.js';
import type { GceInstanceInfo } from './gce.js';
import type { KeyType } from './keys.js';

/**
 * The calls `runAll` makes: those of `AttestorClient` (a test may pass its own). A client without
 * the cloud attestation key's two is treated as a target that does not offer the key.
 */
export type VerifierRpc = Pick<AttestorClient, 'healthCheck' | 'getEKCert' | 'getAK' | 'attest' | 'quote' | 'importBlob' | 'importSigningKey' | 'newKey' | 'sign'> &
  Partial<Pick<AttestorClient, 'getGCEEKSigningKey' | 'signGCEEK'>>;

/** The steps of `run`, in order; each is also a subcommand of the CLI. */
export const STEPS = ['health', 'ek', 'ak', 'attest', 'quote', 'import-blob', 'import-signing-key', 'new-key', 'sign', 'gce-ak'] as const;
export type StepName = (typeof STEPS)[number];

/** What each step needs run before it. */
export const STEP_DEPENDENCIES: Readonly<Record<StepName, readonly StepName[]>> = {
  health: [],
  ek: [],
  ak: [],
  attest: ['ek', 'ak'],
  quote: ['ak'],
  // The AK and a verified quote give the PCR values the PCR-bound blobs are sealed to.
  'import-blob': ['ek', 'ak', 'quote'],
  'import-signing-key': ['ek'],
  'new-key': ['ak'],
  sign: ['ak', 'new-key'],
  'gce-ak': [],
};

const TITLES: Readonly<Record<StepName, string>> = {
  health: 'Health (grpc.health.v1 "verifier.Verifier")',
  ek: 'EK certificate (GetEKCert)',
  ak: 'Attestation key (GetAK)',
  attest: 'Credential activation (Attest)',
  quote: 'Quote and event log (Quote)',
  'import-blob': 'Sealed data import (ImportBlob)',
  'import-signing-key': 'Signing key import (ImportSigningKey)',
  'new-key': 'New TPM key certified by the AK (NewKey)',
  sign: 'Signature (Sign)',
  'gce-ak': 'Cloud attestation key (GetGCEEKSigningKey, SignGCEEK)',
};

/** Options of {@link runAll}. */
export interface RunOptions {
  uid?: string;
  kid?: string;
  keyType?: KeyType;
  /** EK certificate trust anchors (DER); empty: the chain is not checked. */
  ekRoots?: readonly Uint8Array[];
  ekIntermediates?: readonly Uint8Array[];
  expectedPcrs?: ExpectedPcrs;
  /** Accept a quote without a firmware event log (a warning instead of a failure). */
  allowMissingEventLog?: boolean;
  /** Trust anchors and untrusted intermediates (DER) for the cloud attestation key's certificate. */
  akRoots?: readonly Uint8Array[];
  akIntermediates?: readonly Uint8Array[];
  /**
   * Fail the gce-ak step when the target offers no cloud attestation key (UNIMPLEMENTED, or
   * FAILED_PRECONDITION: its TPM has no template). Default: the step is skipped with a note.
   */
  requireGceAk?: boolean;
  /** Run only these steps (plus what they need); default all of {@link STEPS}. */
  steps?: readonly StepName[];
  /** Deadline of each RPC in ms (default 120 s: RSA key generation on a real TPM is slow). */
  callTimeoutMs?: number;
  /** Told about each step as it completes (progress output). */
  onStep?: (step: StepReport) => void;
  /** Shown in the report. */
  target?: string;
}

/** One step of a run. */
export interface StepReport {
  step: StepName;
  title: string;
  ok: boolean;
  /** Why the step did not run (a step it needs failed, or the target is unreachable). */
  skipped?: string;
  checks: Check[];
}

/** The outcome of a run: JSON-friendly (the CLI prints it with `--json`). */
export interface RunReport {
  ok: boolean;
  target?: string;
  uid: string;
  kid: string;
  /** The kid the imported signing key was stored under. */
  importKid: string;
  keyType: KeyType;
  steps: StepReport[];
  /** Names of the failed checks, and "<step> (not run)" for steps skipped, in order. */
  failed: string[];
  warnings: string[];
  /** The nonce the quote was asked for (hex), once the quote step ran. */
  quoteNonce?: string;
  /** Verified facts (only what the checks established). */
  facts: {
    ekName?: string;
    ekCertificate?: { subject: string; issuer: string; serialNumber: string; notBefore: string; notAfter: string };
    akName?: string;
    /** PCR values covered by a verified quote: bank -> index (decimal string) -> hex. */
    pcrs?: Record<string, Record<string, string>>;
    secureBoot?: SecureBootFact['state'];
    eventLogEvents?: number;
    /** Digests of the measured events of a log that replays to the verified PCRs: bank -> PCR (decimal string) -> hex, in log order. */
    eventDigests?: Record<string, Record<string, string[]>>;
    /** The verified systemd userspace log: record count, boot phases in order, the PCRs it explains per bank. */
    userspaceLog?: { records: number; phases: string[]; pcrs: Record<string, number[]> };
    newKeyName?: string;
    /** Google's instance identity from a certificate (EK or cloud attestation key), when one carries it. */
    gceInstance?: GceInstanceInfo & { source: 'ek' | 'gce-ak'; verified: boolean };
    /** The cloud attestation key: SHA-256 of its SPKI, and its certificate. */
    gceAk?: { keyType: KeyType; spkiSha256: string; certificate?: { subject: string; issuer: string; serialNumber: string; notBefore: string; notAfter: string } };
  };
}

/** The kid the `run` flow imports its signing key under: `kid` + "-import", within the 128-character limit. */
export function importKidFor(kid: string): string {
  return `${kid.slice(0, 121)}-import`;
}

/** "14 UNAVAILABLE: No connection established" for a grpc-js error, else the message. */
export function rpcErrorText(e: unknown): string {
  const err = e as { code?: unknown; details?: unknown };
  if (typeof err?.code === 'number' && Status[err.code] !== undefined) {
    const details = typeof err.details === 'string' && err.details !== '' ? err.details : errorText(e);
    // grpc-js appends an empty "Resolution note: " to connection failures.
    return `${Status[err.code]}: ${details.replace(/\.? ?Resolution note: ?$/, '')}`;
  }
  return errorText(e);
}

function rpcCode(e: unknown): number | undefined {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

/** Every step in `wanted` plus what it needs, in the order of {@link STEPS}. */
export function stepsWithDependencies(wanted: readonly StepName[]): StepName[] {
  const need = new Set<StepName>();
  const add = (s: StepName) => {
    if (need.has(s)) return;
    need.add(s);
    for (const d of STEP_DEPENDENCIES[s]) add(d);
  };
  wanted.forEach(add);
  return STEPS.filter((s) => need.has(s));
}

class RpcFailed extends Error {}

/**
 * Runs the verifier flow against an attestor: health, GetEKCert, GetAK, Attest, Quote (fresh
 * nonce), ImportBlob (a fresh secret sealed to the EK; and, with a verified SHA-256 quote, one
 * bound to the quoted PCR 0 and 7 values plus one bound to values the PCRs do not have, which the
 * attestor must refuse), ImportSigningKey, NewKey, Sign. A failed check or RPC never throws: it
 * is in the report, and steps that need its result are skipped.
 */
export async function runAll(client: VerifierRpc, opts: RunOptions = {}): Promise<RunReport> {
  const uid = opts.uid ?? randomUUID();
  const kid = opts.kid ?? randomUUID();
  const keyType = opts.keyType ?? 'rsa';
  const importKid = importKidFor(kid);
  const timeout = opts.callTimeoutMs ?? 120_000;
  const call = () => ({ deadline: new Date(Date.now() + timeout) });
  const steps = stepsWithDependencies(opts.steps ?? STEPS);
  const report: RunReport = { ok: false, ...(opts.target ? { target: opts.target } : {}), uid, kid, importKid, keyType, steps: [], failed: [], warnings: [], facts: {} };

  let ekPublic: TPMT_PUBLIC | undefined;
  let akPublic: TPMT_PUBLIC | undefined;
  let pcrs: PcrBankValues | undefined;
  let newKey: KeyObject | undefined;
  let unreachable = false;

  const runners: Record<StepName, (checks: Check[]) => Promise<void>> = {
    health: async (checks) => {
      let status: HealthStatus;
      try {
        status = await client.healthCheck('verifier.Verifier', call());
      } catch (e) {
        const code = rpcCode(e);
        if (code === Status.UNAVAILABLE || code === Status.DEADLINE_EXCEEDED) unreachable = true;
        checks.push({ name: 'health', ok: false, detail: `health check failed: ${rpcErrorText(e)}` });
        return;
      }
      checks.push({ name: 'health', ok: status === 'SERVING', detail: `verifier.Verifier is ${status}` });
    },
    ek: async (checks) => {
      const resp = await rpc(checks, 'ek', 'GetEKCert', () => client.getEKCert(keyType, call()));
      const r = await verifyEk(resp, { roots: opts.ekRoots ?? [], intermediates: opts.ekIntermediates ?? [], keyType });
      checks.push(...r.checks);
      if (r.value) {
        ekPublic = r.value.ekPublic;
        report.facts.ekName = toHex(objectName(ekPublic));
        const cert = r.value.certificate;
        if (cert) {
          report.facts.ekCertificate = {
            subject: cert.subject, issuer: cert.issuer, serialNumber: cert.serialNumber,
            notBefore: cert.notBefore.toISOString(), notAfter: cert.notAfter.toISOString(),
          };
          // As the seed's client prints it: the VM a Google-issued EK certificate names.
          const verified = r.checks.some((x) => x.name === 'ek.certificate.chain' && x.ok && !x.warning) && r.ok;
          const info = instanceCheck(checks, 'ek.gceInstance', cert, verified);
          if (info) report.facts.gceInstance = { ...info, source: 'ek', verified };
        }
      }
    },
    ak: async (checks) => {
      const resp = await rpc(checks, 'ak', 'GetAK', () => client.getAK({ uid, keyType }, call()));
      const r = verifyAk(resp.ak, keyType);
      checks.push(...r.checks);
      if (r.value) {
        akPublic = r.value.akPublic;
        report.facts.akName = toHex(r.value.akName);
      }
    },
    attest: async (checks) => {
      const challenge = makeChallenge(need(ekPublic, 'the EK'), need(akPublic, 'the AK'));
      const resp = await rpc(checks, 'attest', 'Attest', () => client.attest({ uid, encryptedCredentials: challenge.encryptedCredentials }, call()));
      checks.push(...verifyAttest(challenge, resp.secret).checks);
    },
    quote: async (checks) => {
      const ak = need(akPublic, 'the AK');
      const nonce = new Uint8Array(randomBytes(32));
      report.quoteNonce = toHex(nonce);
      const resp = await rpc(checks, 'quote', 'Quote', () => client.quote({ uid, nonce }, call()));
      const r = verifyPlatform(resp.platformAttestation, {
        akPublic: ak, nonce,
        ...(opts.expectedPcrs ? { expectedPcrs: opts.expectedPcrs } : {}),
        ...(opts.allowMissingEventLog ? { allowMissingEventLog: true } : {}),
        ...(resp.userspaceEventLog ? { userspaceLog: resp.userspaceEventLog } : {}),
        ...(resp.eventLogProblem ? { eventLogProblem: resp.eventLogProblem } : {}),
        ...(resp.userspaceEventLogProblem ? { userspaceEventLogProblem: resp.userspaceEventLogProblem } : {}),
      });
      checks.push(...r.checks);
      if (r.value) {
        pcrs = r.value.pcrs;
        report.facts.pcrs = Object.fromEntries(
          [...pcrs].map(([bank, values]) => [bankName(bank), Object.fromEntries([...values].sort((a, b) => a[0] - b[0]).map(([i, v]) => [String(i), toHex(v)]))]),
        );
        report.facts.secureBoot = r.value.secureBoot?.state ?? 'unknown';
        report.facts.eventLogEvents = r.value.eventCount;
        if (r.value.eventDigests) report.facts.eventDigests = r.value.eventDigests;
        if (r.value.userspace) report.facts.userspaceLog = r.value.userspace;
      }
    },
    'import-blob': async (checks) => {
      const ek = need(ekPublic, 'the EK');
      const secret = new Uint8Array(randomBytes(32));
      const blob = makeImportBlob(ek, secret);
      const resp = await rpc(checks, 'importBlob', 'ImportBlob', () => client.importBlob({ uid, encryptedKey: blob }, call()));
      checks.push(...verifyImportBlob(secret, resp.decryptedKey).checks);
      await pcrBoundImports(checks, ek);
    },
    'import-signing-key': async (checks) => {
      const made = makeSigningKeyImport(need(ekPublic, 'the EK'), keyType);
      const resp = await rpc(checks, 'importSigningKey', 'ImportSigningKey', () =>
        client.importSigningKey({ uid, kid: importKid, encryptedSigningKey: made.encryptedSigningKey }, call()),
      );
      checks.push(...verifyImportSigningKey(resp.confirmation, made.publicKey, uid).checks);
    },
    'new-key': async (checks) => {
      const ak = need(akPublic, 'the AK');
      const resp = await rpc(checks, 'newKey', 'NewKey', () => client.newKey({ uid, kid, keyType }, call()));
      const r = verifyNewKey(resp, ak, keyType);
      checks.push(...r.checks);
      if (r.value) {
        newKey = r.value.publicKey;
        report.facts.newKeyName = toHex(objectName(r.value.keyPublic));
      }
    },
    sign: async (checks) => {
      const key = need(newKey, 'the new key');
      const data = new Uint8Array(randomBytes(64));
      const resp = await rpc(checks, 'sign', 'Sign', () => client.sign({ uid, kid, data }, call()));
      checks.push(...verifySign(resp.signed, data, key, keyType).checks);
    },
    'gce-ak': async (checks) => {
      const offered = (e: unknown): boolean => {
        const code = rpcCode(e);
        return code !== Status.UNIMPLEMENTED && code !== Status.FAILED_PRECONDITION;
      };
      const notOffered = (detail: string): void => {
        checks.push(opts.requireGceAk
          ? { name: 'gceAk.offered', ok: false, detail }
          : { name: 'gceAk.offered', ok: true, warning: true, detail: `${detail}: step skipped` });
      };
      const getKey = client.getGCEEKSigningKey?.bind(client);
      const signKey = client.signGCEEK?.bind(client);
      if (getKey === undefined || signKey === undefined) {
        notOffered('this client has no GetGCEEKSigningKey/SignGCEEK');
        return;
      }
      let key: GetGCEEKSigningKeyResult;
      try {
        key = await getKey(keyType, call());
      } catch (e) {
        if (offered(e)) rpcFailed(checks, 'gceAk', 'GetGCEEKSigningKey', e);
        notOffered(`the target offers no cloud attestation key (${rpcErrorText(e)})`);
        return;
      }
      const nonce = new Uint8Array(randomBytes(32));
      const signed = await rpc(checks, 'gceAk', 'SignGCEEK', () => signKey({ data: nonce, keyType }, call()));
      const r = await verifyGceAk(key, nonce, signed.signed, { keyType, roots: opts.akRoots ?? [], intermediates: opts.akIntermediates ?? [] });
      checks.push(...r.checks);
      if (r.value) {
        const cert = r.value.certificate;
        report.facts.gceAk = {
          keyType, spkiSha256: r.value.spkiSha256,
          ...(cert ? { certificate: { subject: cert.subject, issuer: cert.issuer, serialNumber: cert.serialNumber, notBefore: cert.notBefore.toISOString(), notAfter: cert.notAfter.toISOString() } } : {}),
        };
        if (r.value.instance && !(report.facts.gceInstance?.verified === true && !r.value.chainVerified)) {
          report.facts.gceInstance = { ...r.value.instance, source: 'gce-ak', verified: r.value.chainVerified };
        }
      }
    },
  };

  /** Sealed to the quoted PCR 0 and 7 values (must unseal), and to values they do not have (must be refused). */
  async function pcrBoundImports(checks: Check[], ek: TPMT_PUBLIC): Promise<void> {
    const bank = pcrs?.get(TPM_ALG.SHA256);
    if (bank === undefined || !bank.has(0) || !bank.has(7)) {
      checks.push({ name: 'importBlob.pcrPolicy', ok: true, warning: true, detail: 'no verified SHA-256 quote of PCRs 0 and 7: PCR-bound import not tried' });
      return;
    }
    const good: PcrValues = { hashAlg: TPM_ALG.SHA256, values: new Map([[0, bank.get(0)!], [7, bank.get(7)!]]) };
    const secret = new Uint8Array(randomBytes(32));
    try {
      const resp = await client.importBlob({ uid, encryptedKey: makeImportBlob(ek, secret, { pcrs: good }) }, call());
      checks.push(...verifyImportBlob(secret, resp.decryptedKey, 'importBlob.pcrPolicy').checks.map((c) => ({ ...c, detail: `${c.detail} (sealed to the quoted sha256 PCRs 0 and 7)` })));
    } catch (e) {
      checks.push({ name: 'importBlob.pcrPolicy', ok: false, detail: `ImportBlob sealed to the quoted sha256 PCRs 0 and 7 failed: ${rpcErrorText(e)}` });
    }
    const wrong0 = bank.get(0)!.slice();
    wrong0[0]! ^= 0xff;
    const bad: PcrValues = { hashAlg: TPM_ALG.SHA256, values: new Map([[0, wrong0], [7, bank.get(7)!]]) };
    try {
      await client.importBlob({ uid, encryptedKey: makeImportBlob(ek, new Uint8Array(randomBytes(32)), { pcrs: bad }) }, call());
      checks.push({ name: 'importBlob.pcrPolicyEnforced', ok: false, detail: 'the attestor unsealed data bound to a PCR 0 value the TPM does not have' });
    } catch (e) {
      const code = rpcCode(e);
      checks.push({
        name: 'importBlob.pcrPolicyEnforced',
        ok: code === Status.FAILED_PRECONDITION,
        detail: code === Status.FAILED_PRECONDITION
          ? 'data bound to a PCR 0 value the TPM does not have is refused (FAILED_PRECONDITION)'
          : `data bound to a wrong PCR 0 value: FAILED_PRECONDITION expected, got ${rpcErrorText(e)}`,
      });
    }
  }

  for (const step of steps) {
    const checks: Check[] = [];
    let skipped: string | undefined;
    if (unreachable) {
      skipped = 'not run: the target is unreachable (see health)';
    } else {
      try {
        await runners[step](checks);
      } catch (e) {
        if (e instanceof MissingInput) skipped = `not run: ${e.message}`;
        else if (!(e instanceof RpcFailed)) checks.push({ name: `${step}.error`, ok: false, detail: `unexpected error: ${errorText(e)}` });
      }
    }
    const entry: StepReport = { step, title: TITLES[step], ok: skipped === undefined && checks.every((c) => c.ok), ...(skipped ? { skipped } : {}), checks };
    report.steps.push(entry);
    opts.onStep?.(entry);
  }
  for (const s of report.steps) {
    if (s.skipped) report.failed.push(`${s.step} (not run)`);
    for (const c of s.checks) {
      if (!c.ok) report.failed.push(c.name);
      else if (c.warning) report.warnings.push(c.name);
    }
  }
  report.ok = report.failed.length === 0;
  return report;
}

class MissingInput extends Error {}

/** The value a step needs from an earlier one, or a skip of this step. */
function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new MissingInput(`${what} is not available (an earlier step failed)`);
  return v;
}

/** Runs an RPC; a failure becomes the failed check `<prefix>.rpc` and ends the step. */
async function rpc<T>(checks: Check[], prefix: string, method: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    rpcFailed(checks, prefix, method, e);
  }
}

/** Records `e`, the error of RPC `method`, as the failed check `<prefix>.rpc` and ends the step. */
function rpcFailed(checks: Check[], prefix: string, method: string, e: unknown): never {
  checks.push({ name: `${prefix}.rpc`, ok: false, detail: `${method} failed: ${rpcErrorText(e)}` });
  throw new RpcFailed();
}

/** A single step's result in the report form (for library users who call the verify functions directly). */
export function stepReport(step: StepName, result: StepResult<unknown>): StepReport {
  return { step, title: TITLES[step], ok: result.ok, checks: result.checks };
}
