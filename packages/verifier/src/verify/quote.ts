// Quote: go-attestation PlatformParameters (FORMATS.md "PlatformParameters"): every quote
// verified with the AK, the PCR values it covers, the event log replayed against them,
// expected PCR values, and the Secure Boot state the (verified) log records.
import {
  EV, TPMS_ATTEST, TPM_ALG, TPM_ST, bankName, bytesEqual, comparePcrs, describeMismatch, describeUserspaceRecord, eventLogFacts,
  explainUserspaceMismatch, indicesOf, objectName, parseEventLog, parseUserspaceLog, replayUserspaceLog, toHex, unmarshal, userspaceLogBanks, userspacePhases, verifyQuote,
  type EventLog, type EventLogFacts, type PcrBanks, type PcrRef, type SecureBootFact, type TPMT_PUBLIC, type UserspaceLog,
} from '@tpmds/tpm2-wire';
import { GoCryptoHash, decodePlatformParameters, requireBytes, type PlatformParameters } from '@tpmds/protocol/formats';
import { CheckList, errorText, type StepResult } from './checks.js';
import { decodePublicArea, decodeSignature } from './keys.js';

/** PCR values by bank (TPM_ALG_ID) and index. */
export type PcrBankValues = Map<number, Map<number, Uint8Array>>;
/** Expected PCR values: bank (TPM_ALG_ID) -> index -> lowercase hex. */
export type ExpectedPcrs = Map<number, Map<number, string>>;

/** Options of {@link verifyPlatform}. */
export interface PlatformOptions {
  /** The AK from GetAK (verified there); the quotes must be signed by it. */
  akPublic: TPMT_PUBLIC;
  /** The nonce sent in the QuoteRequest. */
  nonce: Uint8Array;
  expectedPcrs?: ExpectedPcrs;
  /**
   * Accept a quote without a firmware event log (a warning instead of a failure): for TPMs that
   * have none, such as swtpm or VMs without measured boot. --expect-pcr checks still run.
   */
  allowMissingEventLog?: boolean;
  /** QuoteResponse.userspaceEventLog: systemd's userspace measurement log (empty: none). */
  userspaceLog?: Uint8Array;
  /** QuoteResponse.eventLogProblem: the attestor's word on why the firmware log is empty. */
  eventLogProblem?: string;
  /** QuoteResponse.userspaceEventLogProblem: why the userspace log is empty although the node has one. */
  userspaceEventLogProblem?: string;
}

/** What the userspace log established (only when it replayed to the quoted PCRs). */
export interface UserspaceLogValue {
  records: number;
  /** The boot phases it records, in order (e.g. enter-initrd, leave-initrd, sysinit, ready). */
  phases: string[];
  /** Bank name -> PCRs it explains. */
  pcrs: Record<string, number[]>;
}

/** What a verified Quote yields. */
export interface PlatformValue {
  /** PCR values covered by a verified quote, per bank. */
  pcrs: PcrBankValues;
  /** Secure Boot state from the event log, when the log replays to the verified PCRs. */
  secureBoot?: SecureBootFact;
  /** Facts of the verified event log. */
  facts?: EventLogFacts;
  /**
   * bank -> PCR -> digests of the events the log extended into it, in log order: only the PCRs
   * whose replayed value equals a verified quote's (so every digest here is proven by the quote).
   */
  eventDigests?: Record<string, Record<string, string[]>>;
  /** Number of events in the log (0 when empty). */
  eventCount: number;
  /** The verified userspace log, when one was sent. */
  userspace?: UserspaceLogValue;
  params: PlatformParameters;
}

/** Go `crypto.Hash` (PCR.DigestAlg) -> TPM_ALG_ID. */
const GO_HASH_TO_ALG: ReadonlyMap<number, number> = new Map([
  [GoCryptoHash.SHA1, TPM_ALG.SHA1],
  [GoCryptoHash.SHA256, TPM_ALG.SHA256],
  [GoCryptoHash.SHA384, TPM_ALG.SHA384],
  [GoCryptoHash.SHA512, TPM_ALG.SHA512],
]);
const DIGEST_SIZE: ReadonlyMap<number, number> = new Map([
  [TPM_ALG.SHA1, 20],
  [TPM_ALG.SHA256, 32],
  [TPM_ALG.SHA384, 48],
  [TPM_ALG.SHA512, 64],
]);
const ALL_PCRS = Array.from({ length: 24 }, (_, i) => i).join(',');

/** A usage error in a `--expect-pcr` value. */
export class ExpectPcrError extends Error {
  override readonly name = 'ExpectPcrError';
}

/**
 * Parses `--expect-pcr IDX:HEX`: PCR index 0-23 and its value in hex; the bank follows from
 * the length (40 hex digits sha1, 64 sha256, 96 sha384, 128 sha512). Throws ExpectPcrError.
 */
export function parseExpectPcr(text: string): { bank: number; index: number; hex: string } {
  const m = /^(\d{1,2}):(?:0x)?([0-9a-fA-F]+)$/.exec(text.trim());
  if (m === null) throw new ExpectPcrError(`--expect-pcr ${JSON.stringify(text)}: expected IDX:HEX, e.g. 16:${'0'.repeat(64)}`);
  const index = Number(m[1]);
  if (index > 23) throw new ExpectPcrError(`--expect-pcr ${JSON.stringify(text)}: PCR index ${index} is not 0-23`);
  const hex = m[2]!.toLowerCase();
  const bank = [...DIGEST_SIZE].find(([, size]) => size * 2 === hex.length)?.[0];
  if (bank === undefined) {
    throw new ExpectPcrError(`--expect-pcr ${JSON.stringify(text)}: ${hex.length} hex digits fit no bank (40 sha1, 64 sha256, 96 sha384, 128 sha512)`);
  }
  return { bank, index, hex };
}

/** Collects parsed `--expect-pcr` values into a map; a PCR given twice with different values is an error. */
export function expectedPcrMap(values: readonly string[]): ExpectedPcrs {
  const out: ExpectedPcrs = new Map();
  for (const v of values) {
    const { bank, index, hex } = parseExpectPcr(v);
    const m = out.get(bank) ?? new Map<number, string>();
    const prev = m.get(index);
    if (prev !== undefined && prev !== hex) throw new ExpectPcrError(`--expect-pcr gives two values for ${bankName(bank)} PCR ${index}`);
    m.set(index, hex);
    out.set(bank, m);
  }
  return out;
}

function indexList(indices: Iterable<number>): string {
  return [...indices].sort((a, b) => a - b).join(',');
}

/**
 * Verifies a QuoteResponse.platformAttestation: each quote's signature with `opts.akPublic`,
 * tag QUOTE, magic, extraData == nonce, selection == the PCR values of that bank (all 24), and
 * pcrDigest (with `verifyQuote`); every bank's PCR values are covered by a quote; then the event
 * log is replayed against the verified PCRs, `expectedPcrs` are compared, and the Secure Boot
 * state is read from the log; systemd's userspace log is replayed on top of the firmware log and
 * compared with the PCRs it extends. A missing or empty firmware log fails (the quote cannot be
 * explained) unless `allowMissingEventLog`.
 */
export function verifyPlatform(platformJson: Uint8Array, opts: PlatformOptions): StepResult<PlatformValue> {
  const c = new CheckList();
  const params = c.attempt('quote.decode', () => decodePlatformParameters(platformJson), (p) => `PlatformParameters decode: ${p.quotes?.length ?? 0} quote(s), ${p.pcrs?.length ?? 0} PCR value(s)`);
  if (params === undefined) return c.result();

  // The AK the quotes claim: informational, the quotes are verified with the AK from GetAK.
  if (params.public === null || params.public.length === 0) {
    c.warn('quote.ak', 'PlatformParameters.Public is empty; the quotes are verified with the AK from GetAK');
  } else {
    let same = false;
    let why = 'PlatformParameters.Public is another key than the AK from GetAK';
    try {
      same = bytesEqual(objectName(decodePublicArea(params.public)), objectName(opts.akPublic));
    } catch (e) {
      why = `PlatformParameters.Public does not decode: ${errorText(e)}`;
    }
    c.expect('quote.ak', same, 'PlatformParameters.Public is the AK from GetAK', why);
  }

  // PCR values by bank.
  const provided: PcrBankValues = new Map();
  const pcrProblems: string[] = [];
  for (const [i, p] of (params.pcrs ?? []).entries()) {
    const alg = GO_HASH_TO_ALG.get(p.digestAlg);
    if (alg === undefined) {
      pcrProblems.push(`PCRs[${i}]: unknown DigestAlg ${p.digestAlg}`);
      continue;
    }
    if (!Number.isInteger(p.index) || p.index < 0 || p.index > 23) {
      pcrProblems.push(`PCRs[${i}]: index ${p.index} is not 0-23`);
      continue;
    }
    const size = DIGEST_SIZE.get(alg)!;
    if (p.digest === null || p.digest.length !== size) {
      pcrProblems.push(`PCRs[${i}]: ${bankName(alg)} PCR ${p.index} is ${p.digest?.length ?? 0} bytes; ${size} expected`);
      continue;
    }
    const bank = provided.get(alg) ?? new Map<number, Uint8Array>();
    if (bank.has(p.index)) {
      pcrProblems.push(`PCRs[${i}]: ${bankName(alg)} PCR ${p.index} given twice`);
      continue;
    }
    bank.set(p.index, p.digest);
    provided.set(alg, bank);
  }
  c.expect(
    'quote.pcrs',
    pcrProblems.length === 0 && provided.size > 0,
    `PCR values of ${[...provided].map(([alg, m]) => `${bankName(alg)} (${m.size})`).join(', ')}`,
    pcrProblems.length > 0 ? pcrProblems.join('; ') : 'no PCR values',
  );

  // Quotes.
  const verified: PcrBankValues = new Map();
  const quotes = params.quotes ?? [];
  if (quotes.length === 0) c.fail('quote.quotes', 'no quotes in PlatformParameters');
  for (const [i, q] of quotes.entries()) {
    let bank: number | undefined;
    let attestBytes: Uint8Array;
    try {
      attestBytes = requireBytes(q.quote, `Quotes[${i}].Quote`);
      const att = unmarshal(TPMS_ATTEST, attestBytes);
      if (att.type !== TPM_ST.ATTEST_QUOTE) throw new Error(`Quotes[${i}] is a TPMS_ATTEST of type 0x${att.type.toString(16)}, not a quote`);
      const banks = att.attested.pcrSelect.filter((s) => s.pcrSelect.some((b) => b !== 0));
      if (banks.length === 0) {
        c.warn(`quote[${i}]`, 'empty PCR selection (a bank that is not allocated); skipped');
        continue;
      }
      if (banks.length > 1) throw new Error(`Quotes[${i}] covers ${banks.length} banks; one bank per quote expected`);
      bank = banks[0]!.hash;
    } catch (e) {
      c.fail(`quote[${i}]`, errorText(e));
      continue;
    }
    const name = `quote.${bankName(bank)}`;
    const values = provided.get(bank);
    if (values === undefined) {
      c.fail(name, `the quote covers ${bankName(bank)} but no PCR values of that bank were sent`);
      continue;
    }
    try {
      const sig = decodeSignature(requireBytes(q.signature, `Quotes[${i}].Signature`));
      const att = verifyQuote(opts.akPublic, attestBytes, sig, { nonce: opts.nonce, pcrs: { hashAlg: bank, values } });
      const covered = indexList(indicesOf(att.attested.pcrSelect[0]!.pcrSelect));
      if (covered !== ALL_PCRS) {
        c.fail(name, `the quote verifies but covers PCRs ${covered} only; all of 0-23 expected`);
      } else {
        c.pass(name, `signed by the AK; tag ATTEST_QUOTE, magic, nonce, selection ${bankName(bank)} PCRs 0-23, pcrDigest ${toHex(att.attested.pcrDigest)}`);
      }
      verified.set(bank, values);
    } catch (e) {
      c.fail(name, errorText(e));
    }
  }
  for (const bank of provided.keys()) {
    const quoted = c.checks.some((k) => k.name === `quote.${bankName(bank)}`);
    if (!quoted) c.fail(`quote.${bankName(bank)}`, `PCR values of ${bankName(bank)} were sent but no quote covers them`);
  }

  // Expected PCR values (--expect-pcr).
  for (const [bank, want] of opts.expectedPcrs ?? new Map<number, Map<number, string>>()) {
    for (const [index, hex] of [...want].sort((a, b) => a[0] - b[0])) {
      const name = `quote.expectPcr.${bankName(bank)}.${index}`;
      const got = verified.get(bank)?.get(index);
      if (got === undefined) {
        c.fail(name, verified.has(bank) ? `PCR ${index} is not in the verified ${bankName(bank)} quote` : `no verified quote of the ${bankName(bank)} bank`);
      } else {
        c.expect(name, toHex(got) === hex, `${bankName(bank)} PCR ${index} = ${hex}`, `${bankName(bank)} PCR ${index} is ${toHex(got)}; ${hex} expected`);
      }
    }
  }

  // The event logs: systemd's userspace log first (it tells which PCRs it extends after the
  // firmware), then the firmware log against the other PCRs, then the userspace log on top of it.
  let secureBoot: SecureBootFact | undefined;
  let facts: EventLogFacts | undefined;
  let eventDigests: Record<string, Record<string, string[]>> | undefined;
  let eventCount = 0;
  const userspaceBytes = opts.userspaceLog ?? new Uint8Array(0);
  let userspaceLog: UserspaceLog | undefined;
  if (userspaceBytes.length > 0) {
    userspaceLog = c.attempt('eventlog.userspace.parse', () => parseUserspaceLog(userspaceBytes), (l) => `systemd userspace log, ${l.records.length} record(s) for PCRs ${indexList(new Set(l.records.map((r) => r.pcr)))}`);
  } else if (opts.userspaceEventLogProblem) {
    const why = `the attestor sent no userspace event log although the node has one: ${opts.userspaceEventLogProblem}`;
    if (opts.allowMissingEventLog) c.warn('eventlog.userspace', why);
    else c.fail('eventlog.userspace', why);
  }
  const userspacePcrs = new Set(userspaceLog?.records.map((r) => r.pcr) ?? []);
  const firmwareQuoted: PcrBankValues = new Map([...verified].map(([bank, values]) => [bank, new Map([...values].filter(([pcr]) => !userspacePcrs.has(pcr)))]));

  let firmwareLog: EventLog | undefined;
  /** The firmware log's replayed PCR values (replayed once, for its own check and the userspace log's). */
  let firmwareBanks: PcrBanks | undefined;
  const logBytes = params.eventLog ?? new Uint8Array(0);
  if (logBytes.length === 0) {
    const why = `the attestor sent no event log; quotes cannot be explained${opts.eventLogProblem ? ` (the attestor says: ${opts.eventLogProblem})` : ''}`;
    if (opts.allowMissingEventLog) c.warn('eventlog', `${why}; allowed by --allow-missing-eventlog: Secure Boot state unknown`);
    else c.fail('eventlog', `${why}; give the attestor the firmware log, or pass --allow-missing-eventlog for TPMs that have none (swtpm, VMs without measured boot)`);
  } else {
    firmwareLog = c.attempt('eventlog.parse', () => parseEventLog(logBytes), (l) => `${l.format} event log, ${l.events.length} events, banks ${l.banks.map(bankName).join(', ')}`);
    if (firmwareLog !== undefined) {
      const log = firmwareLog;
      eventCount = log.events.length;
      const cmp = comparePcrs(log, firmwareQuoted);
      firmwareBanks = cmp.replay.banks;
      const notes = [...cmp.replay.warnings, ...cmp.workarounds.map((w) => `${bankName(w.bank)} PCR ${w.pcr}: ${w.workaround}`)];
      if (cmp.replay.unsupportedBanks.length > 0) notes.push(`banks not replayed: ${cmp.replay.unsupportedBanks.map(bankName).join(', ')}`);
      if (userspacePcrs.size > 0) notes.push(`${userspacePcrs.size === 1 ? 'PCR' : 'PCRs'} ${indexList(userspacePcrs)} ${userspacePcrs.size === 1 ? 'is' : 'are'} judged with the userspace log`);
      if (cmp.mismatched.length > 0) {
        c.fail('eventlog.replay', `the log does not replay to the quoted PCRs: ${cmp.mismatched.map(describeMismatch).join('; ')}`);
      } else if (cmp.matched.length === 0) {
        c.fail('eventlog.replay', `no PCR of the log could be compared with a verified quote (log banks ${log.banks.map(bankName).join(', ')}, quoted ${[...verified.keys()].map(bankName).join(', ') || 'none'})`);
      } else {
        const byBank = new Map<number, number[]>();
        for (const m of cmp.matched) byBank.set(m.bank, [...(byBank.get(m.bank) ?? []), m.pcr]);
        const matched = [...byBank].map(([b, pcrs]) => `${bankName(b)} PCRs ${indexList(pcrs)}`).join(', ');
        c.pass('eventlog.replay', `the log replays to the quoted values of ${matched}${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`);
        facts = eventLogFacts(log);
        eventDigests = matchedEventDigests(log, cmp.matched);
        secureBoot = facts.secureBoot;
        const sb = `Secure Boot ${secureBoot.state}: ${secureBoot.reason}`;
        if (secureBoot.state === 'unknown') c.warn('eventlog.secureBoot', sb);
        else c.pass('eventlog.secureBoot', sb);
      }
    }
  }

  const userspace = userspaceLog && verifyUserspaceLog(c, userspaceLog, firmwareBanks, verified);
  // Why no userspace log covers systemd's PCRs: said in eventlog.unexplained, next to the failure that caused it.
  const noUserspaceLog =
    userspaceBytes.length > 0 && userspaceLog === undefined
      ? 'the userspace log the attestor sent does not parse (eventlog.userspace.parse)'
      : userspaceBytes.length === 0 && opts.userspaceEventLogProblem
        ? 'the attestor could not send the userspace log (eventlog.userspace)'
        : 'the attestor sent no userspace log covering them (/run/log/systemd/tpm2-measure.log, systemd >= 254)';
  checkUnexplainedSystemdPcrs(c, verified, firmwareBanks, userspacePcrs, opts.allowMissingEventLog === true, noUserspaceLog);
  return c.result({ pcrs: verified, ...(secureBoot ? { secureBoot } : {}), ...(facts ? { facts, eventDigests } : {}), eventCount, ...(userspace ? { userspace } : {}), params });
}

/** bank -> PCR -> event digests (log order) of the PCRs in `matched`: EV_NO_ACTION events are not extended. */
function matchedEventDigests(log: EventLog, matched: readonly PcrRef[]): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  for (const m of matched) (out[bankName(m.bank)] ??= {})[String(m.pcr)] = [];
  for (const e of log.events) {
    if (e.type === EV.EV_NO_ACTION) continue;
    for (const d of e.digests) out[bankName(d.alg)]?.[String(e.pcr)]?.push(toHex(d.digest));
  }
  return out;
}

/** The PCRs systemd extends after the firmware (systemd.io TPM2_PCR_MEASUREMENTS): kernel-boot, kernel-config, sysexts, system-identity. */
const SYSTEMD_PCRS = [11, 12, 13, 15];

/**
 * When one of systemd's PCRs holds something no log explains (a node whose userspace log did not
 * reach the verifier; systemd < 254 writes none), the quote is still genuine but what those PCRs
 * say about the boot cannot be checked: a failure, like a missing firmware log, unless missing
 * logs are allowed (then a warning).
 */
function checkUnexplainedSystemdPcrs(c: CheckList, verified: PcrBankValues, fromFirmware: PcrBanks = new Map(), userspacePcrs: ReadonlySet<number>, allowMissing: boolean, noUserspaceLog: string): void {
  const unexplained: string[] = [];
  for (const [bank, values] of verified) {
    const pcrs = SYSTEMD_PCRS.filter((pcr) => {
      const v = values.get(pcr);
      return v !== undefined && v.some((b) => b !== 0) && !userspacePcrs.has(pcr) && !fromFirmware.get(bank)?.has(pcr);
    });
    if (pcrs.length > 0) unexplained.push(`${bankName(bank)} PCRs ${indexList(pcrs)}`);
  }
  if (unexplained.length > 0) {
    const why = `${unexplained.join(', ')} hold values no event log explains: systemd measures the boot phases, the kernel command line, system extensions and the machine id there, and ${noUserspaceLog}`;
    if (allowMissing) c.warn('eventlog.unexplained', `${why}; allowed by --allow-missing-eventlog`);
    else c.fail('eventlog.unexplained', `${why}; give the attestor the userspace log (--userspace-log), or pass --allow-missing-eventlog`);
  }
}

/**
 * Replays the userspace log on top of the firmware log's values (or the PCRs' initial values
 * without one) in every verified bank, and compares each PCR it extends with the quote. Checks:
 * eventlog.userspace.records (a phase's digest is the hash of its name), eventlog.userspace.replay.
 */
function verifyUserspaceLog(c: CheckList, log: UserspaceLog, firmware: PcrBanks | undefined, verified: PcrBankValues): UserspaceLogValue | undefined {
  const start: PcrBanks = firmware ?? new Map();
  const banks = userspaceLogBanks(log, verified.keys());
  if (banks.length === 0) {
    const logBanks = [...new Set(log.records.flatMap((r) => [...r.digests.keys()]))];
    c.fail('eventlog.userspace.replay', `no verified quote covers a bank every record has a digest for (log banks ${logBanks.map(bankName).join(', ')}, quoted ${[...verified.keys()].map(bankName).join(', ') || 'none'})`);
    return undefined;
  }
  let replay: ReturnType<typeof replayUserspaceLog>;
  try {
    replay = replayUserspaceLog(log, start, { banks });
  } catch (e) {
    c.fail('eventlog.userspace.replay', errorText(e));
    return undefined;
  }
  if (replay.problems.length > 0) {
    c.fail('eventlog.userspace.records', replay.problems.map((p) => `record ${describeUserspaceRecord(p.record)}: ${p.problem}`).join('; '));
  }
  const mismatches: string[] = [];
  const explained: Record<string, number[]> = {};
  for (const p of replay.pcrs) {
    const quoted = verified.get(p.bank)?.get(p.pcr);
    const name = `${bankName(p.bank)} PCR ${p.pcr}`;
    if (quoted === undefined) {
      mismatches.push(`records ${p.records.map(describeUserspaceRecord).join(', ')} extend ${name}, which no verified quote covers`);
    } else if (!bytesEqual(quoted, p.replayed)) {
      mismatches.push(`${name}: the log replays (from the ${p.startFrom}) to ${toHex(p.replayed)}, quoted ${toHex(quoted)}; ${explainUserspaceMismatch(p, quoted)}`);
    } else {
      (explained[bankName(p.bank)] ??= []).push(p.pcr);
    }
  }
  const phases = userspacePhases(log);
  if (mismatches.length > 0) {
    c.fail('eventlog.userspace.replay', `the userspace log does not replay to the quoted PCRs: ${mismatches.join('; ')}`);
    return undefined;
  }
  const byPcr = new Map<number, string[]>();
  for (const r of log.records) {
    const what = r.eventType === 'phase' && r.string !== undefined ? r.string : describeUserspaceRecord(r).replace(/^#\d+ /, '');
    const list = byPcr.get(r.pcr);
    if (list) list.push(what);
    else byPcr.set(r.pcr, [what]);
  }
  const perPcr = [...byPcr].sort((a, b) => a[0] - b[0]).map(([pcr, what]) => `PCR ${pcr}: ${what.join(' -> ')}`).join('; ');
  c.pass('eventlog.userspace.replay', `the userspace log (${log.records.length} record(s)) replays on top of the ${firmware ? 'firmware log' : 'initial PCR values'} to the quoted ${Object.entries(explained).map(([b, pcrs]) => `${b} PCRs ${indexList(pcrs)}`).join(', ')}; ${perPcr}`);
  if (replay.problems.length > 0) return undefined;
  return { records: log.records.length, phases, pcrs: explained };
}
