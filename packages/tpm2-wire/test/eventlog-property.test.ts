/**
 * Layer 8 (eventlog): property test. Real logs, mutated (bytes flipped, truncated, size and count
 * fields set to hostile values, bytes inserted or removed), must either parse or throw
 * EventLogError with an offset inside the input — never another error, never a hang or a huge
 * allocation. Whatever parses must also survive replay, facts and the JSON form.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { EventLogError, describeEvent, eventLogFacts, eventLogToJson, parseEventLog, replayEventLog } from '../src/index.js';
import { TESTDATA } from './fixtures/testdata.js';

function load(rel: string): Uint8Array {
  const raw = readFileSync(`${TESTDATA}${rel}`);
  return rel.endsWith('.b64') ? new Uint8Array(Buffer.from(raw.toString('utf8'), 'base64')) : new Uint8Array(raw);
}

const LOGS = [
  'go-tpm-tools/eventlogs/rhel8-uefi.bin',
  'go-tpm-tools/eventlogs/debian-10.bin',
  'tpm2-tss/binary_measurements_hcrtm.b64',
  'go-attestation/sb_cert_eventlog',
  'go-attestation/short_no_action_eventlog',
  'tpm2-tools/specid-vendordata.bin',
].map(load);

/** Interesting 32-bit values for size and count fields. */
const hostileU32 = fc.constantFrom(0, 1, 2, 3, 4, 0x7f, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff);

type Mutation =
  | { kind: 'flip'; at: number; value: number }
  | { kind: 'u32'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; n: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('u32' as const), at: fc.nat(), value: hostileU32 }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 8 }) }),
);

function apply(input: Uint8Array, muts: readonly Mutation[]): Uint8Array {
  let b = input.slice();
  for (const m of muts) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    switch (m.kind) {
      case 'flip':
        b[at] = m.value;
        break;
      case 'u32':
        if (b.length >= 4) new DataView(b.buffer, b.byteOffset).setUint32(Math.min(at, b.length - 4), m.value, true);
        break;
      case 'truncate':
        b = b.slice(0, at);
        break;
      case 'insert': {
        const out = new Uint8Array(b.length + m.bytes.length);
        out.set(b.subarray(0, at));
        out.set(m.bytes, at);
        out.set(b.subarray(at), at + m.bytes.length);
        b = out;
        break;
      }
      case 'delete':
        b = new Uint8Array([...b.subarray(0, at), ...b.subarray(at + m.n)]);
        break;
    }
  }
  return b;
}

describe('eventlog: mutated real logs only ever give EventLogError (property)', () => {
  it('parse → EventLogError with an in-range offset, or a log that replays, explains and serialises', () => {
    let parsed = 0;
    let rejected = 0;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: LOGS.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (which, muts) => {
        const bytes = apply(LOGS[which]!, muts);
        let log;
        try {
          log = parseEventLog(bytes);
        } catch (e) {
          if (!(e instanceof EventLogError)) throw e;
          assert.ok(e.offset >= 0 && e.offset <= bytes.length, `offset ${e.offset} outside 0..${bytes.length}`);
          rejected++;
          return;
        }
        parsed++;
        const replay = replayEventLog(log);
        eventLogFacts(log);
        for (const e of log.events) describeEvent(e, log.specId?.uintnSize);
        JSON.stringify(eventLogToJson(log, replay.banks));
      }),
      { numRuns: 400, seed: 0x7e4d5, endOnFailure: true },
    );
    // Both outcomes occur, so the property exercises the parser and the consumers of its output.
    assert.ok(parsed > 10 && rejected > 10, `parsed ${parsed}, rejected ${rejected}`);
  });

  it('random bytes, with or without a valid Spec ID header in front, give EventLogError or parse', () => {
    const header = LOGS[0]!.subarray(0, 32 + 41); // rhel8: TCG_PCR_EVENT + TCG_EfiSpecIdEvent (3 banks)
    fc.assert(
      fc.property(fc.boolean(), fc.uint8Array({ maxLength: 300 }), (withHeader, tail) => {
        const bytes = withHeader ? new Uint8Array([...header, ...tail]) : tail;
        try {
          parseEventLog(bytes);
        } catch (e) {
          if (!(e instanceof EventLogError)) throw e;
        }
      }),
      { numRuns: 300, seed: 42 },
    );
  });
});
