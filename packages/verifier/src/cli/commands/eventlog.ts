/**
 * `tpmds-verifier eventlog FILE [--userspace FILE] [--json] [--events]`: parse and replay a TCG
 * firmware event log offline (`/sys/kernel/security/tpm0/binary_bios_measurements`), and systemd's
 * userspace log (`/run/log/systemd/tpm2-measure.log`) on top of it.
 *
 * Without --json: a readable summary (events per PCR, replayed PCRs per bank, Secure Boot, EFI
 * applications, separators, quirks). With --json: exactly one JSON document on stdout,
 * `{"events":[{"pcr":0,"type":"EV_…","digests":{"sha256":"<hex>"},"data":"<hex>",…}],"pcrs":{"sha256":{"0":"<hex>",…}}}`
 * (ARCHITECTURE.md, "packages/verifier — the CLI").
 */
import { readFileSync, statSync } from 'node:fs';
import {
  EventLogError,
  UserspaceLogError,
  bankName,
  describeUserspaceRecord,
  describeEvent,
  eventLogFacts,
  eventLogToJson,
  eventTypeName,
  parseEventLog,
  parseUserspaceLog,
  replayEventLog,
  replayUserspaceLog,
  toHex,
  userspaceLogBanks,
  userspacePhases,
} from '@tpmds/tpm2-wire';
import type { EventLog, EventLogFacts, ReplayResult, UserspaceReplay } from '@tpmds/tpm2-wire';
import { EXIT } from '../exit.js';
import type { CliIo, Command } from '../command.js';
import type { Args } from '../flags.js';

/** Firmware logs are tens of kilobytes; refuse anything absurd before reading it. */
const MAX_LOG_BYTES = 64 * 1024 * 1024;

function readLog(path: string): Uint8Array {
  if (path === '-') return new Uint8Array(readFileSync(0));
  let size: number;
  try {
    size = statSync(path).size;
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  if (size > MAX_LOG_BYTES) throw new Error(`${path} is ${size} bytes; event logs larger than ${MAX_LOG_BYTES} bytes are refused`);
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as Error).message}`);
  }
}

/** "EV_A x2, EV_B" for the measured events of one PCR, in first-seen order. */
function typeSummary(log: EventLog, pcr: number): string {
  const counts = new Map<string, number>();
  for (const e of log.events) {
    if (e.pcr !== pcr || e.type === 3) continue;
    const t = eventTypeName(e.type);
    counts.set(t, (counts.get(t) ?? 0) + 1);
  }
  return [...counts].map(([t, n]) => (n > 1 ? `${t} x${n}` : t)).join(', ');
}

function summary(path: string, log: EventLog, replay: ReplayResult, facts: EventLogFacts, listEvents: boolean): string {
  const out: string[] = [];
  const line = (label: string, value: string): void => void out.push(`${label.padEnd(18)}${value}`);
  const spec = log.specId;
  line('Event log', path);
  line('Format', spec
    ? `crypto agile (Spec ID Event03, spec ${spec.specVersionMajor}.${spec.specVersionMinor} errata ${spec.specErrata}), ${log.events.length} events`
    : `SHA1 format, ${log.events.length} events`);
  line('Banks', log.banks.map(bankName).join(', '));
  const p0 = replay.pcr0;
  line('PCR 0 start', `locality ${p0.locality} (${p0.source === 'default' ? 'no StartupLocality or H-CRTM event' : `${p0.source} event`})`);

  out.push('', 'Events per PCR (EV_NO_ACTION not counted)');
  for (const [pcr, n] of [...facts.eventsPerPcr].sort((a, b) => a[0] - b[0])) {
    out.push(`  PCR ${String(pcr).padStart(2)}  ${String(n).padStart(4)}  ${typeSummary(log, pcr)}`);
  }

  out.push('', 'Replayed PCRs');
  for (const [alg, pcrs] of replay.banks) {
    out.push(`  ${bankName(alg)}`);
    for (const [pcr, v] of pcrs) out.push(`    PCR ${String(pcr).padStart(2)}  ${toHex(v)}`);
  }
  for (const alg of replay.unsupportedBanks) out.push(`  ${bankName(alg)}: not replayed (this runtime cannot compute that hash)`);

  out.push('');
  const sb = facts.secureBoot;
  line('Secure Boot', `${sb.state} (${sb.reason}${sb.event !== undefined && !sb.reason.includes('event') ? `, event ${sb.event}` : ''})`);
  line('H-CRTM', facts.hcrtm ? 'yes (EV_EFI_HCRTM_EVENT in PCR 0)' : 'no');
  line('Separators', facts.separatorPcrs.length ? `PCRs ${facts.separatorPcrs.join(', ')}` : 'none');
  line('ExitBootServices', facts.exitBootServices ? 'logged in PCR 5' : 'not logged');
  if (facts.scrtmVersion !== undefined) line('S-CRTM version', facts.scrtmVersion);
  out.push('', `EFI applications (PCR 4): ${facts.efiApps.length}`);
  for (const app of facts.efiApps) {
    out.push(`  event ${app.seq}  ${app.devicePath ?? '(no device path)'}`);
    for (const d of app.digests) out.push(`    ${bankName(d.alg).padEnd(7)} ${toHex(d.digest)}`);
  }
  if (facts.quirks.length || replay.warnings.length) {
    out.push('', 'Notes');
    for (const q of [...facts.quirks, ...replay.warnings]) out.push(`  - ${q}`);
  }
  if (listEvents) {
    out.push('', 'Events');
    const uintn = log.specId?.uintnSize;
    for (const e of log.events) {
      const d = describeEvent(e, uintn);
      out.push(`  ${String(e.seq).padStart(4)}  PCR ${String(e.pcr).padStart(2)}  ${eventTypeName(e.type)}${d !== undefined ? `  ${d}` : ''}`);
    }
  }
  out.push('');
  return out.join('\n');
}

/** The userspace log's part of the summary: its records, and the PCRs it extends on top of the firmware log. */
function userspaceSummary(path: string, records: number, replay: UserspaceReplay): string {
  const out = ['Userspace log     ' + path, `  ${records} record(s)`];
  for (const p of replay.pcrs) {
    out.push(`  ${bankName(p.bank).padEnd(7)} PCR ${String(p.pcr).padStart(2)}  ${toHex(p.replayed)}  (from the ${p.startFrom}) ${p.records.map((r) => r.string ?? describeUserspaceRecord(r)).join(' -> ')}`);
  }
  for (const q of replay.problems) out.push(`  - ${describeUserspaceRecord(q.record)}: ${q.problem}`);
  out.push('');
  return out.join('\n');
}

/** Reads, parses and replays systemd's userspace log on top of the firmware log's banks (those every record has a digest for). */
function userspace(path: string, firmware: ReplayResult): { records: number; replay: UserspaceReplay; json: Record<string, unknown> } {
  const bytes = readLog(path);
  let replay: UserspaceReplay;
  let records: number;
  let phases: string[];
  try {
    const log = parseUserspaceLog(bytes);
    records = log.records.length;
    phases = userspacePhases(log);
    const banks = userspaceLogBanks(log, firmware.banks.keys());
    if (log.records.length > 0 && banks.length === 0) {
      throw new Error(`${path}: no bank of the firmware log (${[...firmware.banks.keys()].map(bankName).join(', ')}) has a digest in every userspace record`);
    }
    replay = replayUserspaceLog(log, firmware.banks, { banks });
  } catch (e) {
    if (e instanceof UserspaceLogError) throw new Error(`${path}: malformed ${e.message}`);
    throw e;
  }
  const pcrs: Record<string, Record<string, string>> = {};
  for (const p of replay.pcrs) (pcrs[bankName(p.bank)] ??= {})[String(p.pcr)] = toHex(p.replayed);
  return {
    records,
    replay,
    json: { records, phases, pcrs, problems: replay.problems.map((q) => `${describeUserspaceRecord(q.record)}: ${q.problem}`) },
  };
}

export const eventlogCommand: Command = {
  name: 'eventlog',
  summary: 'parse and replay a TCG firmware event log (binary_bios_measurements) offline',
  usage: 'FILE [--userspace FILE] [--json] [--events]',
  description: [
    'Reads a SHA1-format or crypto-agile TCG PC Client event log (FILE, or - for stdin), replays it into',
    'PCR values for every bank it carries (PCR 0 honours StartupLocality and H-CRTM), and reports the',
    'Secure Boot state, the EFI applications, separators and known firmware quirks.',
    'With --userspace, also replays systemd\'s userspace log (tpm2-measure.log, JSON-SEQ of CEL-JSON) on top',
    'of the firmware log\'s PCR values and shows the PCRs it extends with their boot phases.',
    'With --json, prints exactly one JSON document: {"events":[{"pcr","type","digests","data",...}],"pcrs":{bank:{index:hex}}}',
    '(and with --userspace, "userspace":{"records","phases","pcrs":{bank:{index:hex}},"problems"}).',
    'Exit status: 0 when the log parses, 1 when it cannot be read or is malformed (the byte offset is given), 2 for usage errors.',
  ].join('\n'),
  flags: {
    json: { type: 'boolean', description: 'print one JSON document {events, pcrs} instead of the summary' },
    events: { type: 'boolean', description: 'also list every event in the summary' },
    userspace: { type: 'string', valueName: 'FILE', description: "systemd's userspace measurement log (/run/log/systemd/tpm2-measure.log) to replay on top of the firmware log" },
  },
  positionals: { min: 1, max: 1, names: 'FILE (the event log; - for stdin)' },
  async run(args: Args, io: CliIo): Promise<number> {
    const path = args.positionals[0]!;
    const bytes = readLog(path);
    let log: EventLog;
    try {
      log = parseEventLog(bytes);
    } catch (e) {
      if (e instanceof EventLogError) throw new Error(`${path}: malformed event log: ${e.reason} (at byte offset ${e.offset})`);
      throw e;
    }
    const replay = replayEventLog(log);
    const userspacePath = args.string('userspace');
    const us = userspacePath === undefined ? undefined : userspace(userspacePath, replay);
    if (args.bool('json')) {
      if (args.bool('events')) io.stderr('tpmds-verifier eventlog: --events has no effect with --json (the JSON lists every event)\n');
      io.stdout(`${JSON.stringify({ ...eventLogToJson(log, replay.banks), ...(us ? { userspace: us.json } : {}) })}\n`);
    } else {
      io.stdout(summary(path, log, replay, eventLogFacts(log), args.bool('events')) + (us && userspacePath ? userspaceSummary(userspacePath, us.records, us.replay) : ''));
    }
    return EXIT.OK;
  },
};
