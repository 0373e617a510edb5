/**
 * systemd's userspace measurement log (tpm2-measure.log): the JSON-SEQ/CEL-JSON parser, its
 * errors on bad input, and the replay on top of the firmware log's PCR values, checked against
 * swtpm PCRs extended exactly as the logs say.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  EV, TPM_ALG, UserspaceLogError, buildEventLog, buildUserspaceLog, bytesEqual, explainUserspaceMismatch, initialPcrValue, openTpm,
  parseEventLog, parseUserspaceLog, phaseRecord, replayEventLog, replayUserspaceLog, toHex, userspaceLogBanks, userspacePhases, utf8, type Tpm, type UserspaceRecordSpec,
} from '../src/index.js';
import { withSwtpm } from './fixtures/swtpm.js';

const sha256 = (b: Uint8Array | string): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest());
const sha1 = (b: Uint8Array | string): Uint8Array => new Uint8Array(createHash('sha1').update(b).digest());
const PHASES = ['enter-initrd', 'leave-initrd', 'sysinit', 'ready'];
const BOOT: UserspaceRecordSpec[] = [
  ...PHASES.slice(0, 2).map(phaseRecord),
  { pcr: 15, data: utf8('machine-id:0123456789abcdef0123456789abcdef'), string: 'machine-id:0123456789abcdef0123456789abcdef', eventType: 'machine-id' },
  ...PHASES.slice(2).map(phaseRecord),
];

/** A record exactly as systemd writes it (RS, JSON, LF). */
const record = (o: unknown): string => `\x1e${JSON.stringify(o)}\n`;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function errorOf(bytes: Uint8Array): UserspaceLogError {
  try {
    parseUserspaceLog(bytes);
  } catch (e) {
    assert.ok(e instanceof UserspaceLogError, `a UserspaceLogError, not ${String(e)}`);
    return e;
  }
  assert.fail('parsed');
}

describe('eventlog: systemd userspace log (tpm2-measure.log)', () => {
  it('parses systemd\'s records: pcr, digests per bank, content string and eventType, numbered from 1', () => {
    const text =
      record({ pcr: 11, digests: [{ hashAlg: 'sha256', digest: toHex(sha256('enter-initrd')) }, { hashAlg: 'SHA1', digest: toHex(sha1('enter-initrd')) }], content_type: 'systemd', content: { string: 'enter-initrd', eventType: 'phase' } }) +
      record({ pcr: 15, digests: [{ hashAlg: 'sha256', digest: 'ab'.repeat(32) }], content_type: 'systemd', content: { string: 'machine-id:x' } });
    const log = parseUserspaceLog(enc(text));
    assert.equal(log.records.length, 2);
    const [a, b] = log.records;
    assert.deepEqual([a!.seq, a!.pcr, a!.string, a!.eventType, a!.contentType, a!.offset], [1, 11, 'enter-initrd', 'phase', 'systemd', 0]);
    assert.deepEqual([...a!.digests.keys()], [TPM_ALG.SHA256, TPM_ALG.SHA1]);
    assert.equal(toHex(a!.digests.get(TPM_ALG.SHA256)!), toHex(sha256('enter-initrd')));
    assert.deepEqual([b!.seq, b!.pcr, b!.eventType], [2, 15, undefined]);
    assert.equal(b!.offset, enc(text).indexOf(0x1e, 1));
    assert.deepEqual(parseUserspaceLog(new Uint8Array(0)).records, [], 'an empty file has no records');
    assert.equal(parseUserspaceLog(enc(`\x1e\x1e${text}`)).records.length, 2, 'empty sequence elements are skipped (RFC 7464)');
  });

  it('buildUserspaceLog writes what parseUserspaceLog reads back', () => {
    const log = parseUserspaceLog(buildUserspaceLog(BOOT, [TPM_ALG.SHA1, TPM_ALG.SHA256]));
    assert.deepEqual(log.records.map((r) => [r.pcr, r.string]), BOOT.map((s) => [s.pcr, s.string]));
    assert.equal(toHex(log.records[3]!.digests.get(TPM_ALG.SHA1)!), toHex(sha1('sysinit')));
  });

  it('bad input is a UserspaceLogError naming the record, never a crash', () => {
    const good = record({ pcr: 11, digests: [{ hashAlg: 'sha256', digest: '00'.repeat(32) }] });
    const cases: [string, RegExp, number][] = [
      [good + good.slice(0, -1), /record 2: truncated: the record does not end with a newline/, 2],
      [good + good.slice(0, 20), /record 2: truncated/, 2],
      ['{"pcr":11}\n', /not a JSON text sequence/, 0],
      [good + '\x1e{"pcr":11,\n', /record 2: not JSON/, 2],
      [record([1, 2]), /record 1: not a JSON object/, 1],
      [record({ digests: [] }), /record 1: no "pcr"/, 1],
      [record({ pcr: 24, digests: [{ hashAlg: 'sha256', digest: '00'.repeat(32) }] }), /"pcr" 24 is not a PCR index 0-23/, 1],
      [record({ pcr: '11', digests: [{ hashAlg: 'sha256', digest: '00'.repeat(32) }] }), /"pcr" "11"/, 1],
      [record({ pcr: 11, digests: [] }), /"digests" is not a non-empty array/, 1],
      [record({ pcr: 11, digests: [{ hashAlg: 'md5', digest: '00'.repeat(16) }] }), /unknown hashAlg "md5"/, 1],
      [record({ pcr: 11, digests: [{ hashAlg: 'sha256', digest: '00'.repeat(20) }] }), /a sha256 digest is 64 hex digits/, 1],
      [record({ pcr: 11, digests: [{ hashAlg: 'sha256', digest: 'zz'.repeat(32) }] }), /64 hex digits/, 1],
      [record({ pcr: 11, digests: [{ hashAlg: 'sha256', digest: '00'.repeat(32) }, { hashAlg: 'sha256', digest: '11'.repeat(32) }] }), /a second sha256 digest/, 1],
      [record({ pcr: 11, digests: [{ hashAlg: 'sha256', digest: '00'.repeat(32) }], content: 'x' }), /"content" is not an object/, 1],
    ];
    for (const [text, re, rec] of cases) {
      const e = errorOf(enc(text));
      assert.match(e.message, re, text);
      assert.equal(e.record, rec, text);
    }
    assert.match(errorOf(new Uint8Array([0x1e, 0xff, 0xfe, 0x0a])).message, /record 1: not JSON/);
  });

  it('replays on top of the firmware values; a PCR the firmware log never touched starts at its initial value', () => {
    const log = parseUserspaceLog(buildUserspaceLog(BOOT, [TPM_ALG.SHA256]));
    const fw = new Map([[TPM_ALG.SHA256, new Map([[11, sha256('stub measured the UKI')]])]]);
    const r = replayUserspaceLog(log, fw);
    assert.deepEqual(r.problems, []);
    assert.deepEqual(r.pcrs.map((p) => [p.pcr, p.startFrom, p.records.length]), [[11, 'firmware log', 4], [15, 'initial value', 1]]);
    let v11 = sha256('stub measured the UKI');
    for (const w of PHASES) v11 = sha256(Buffer.concat([v11, sha256(w)]));
    assert.equal(toHex(r.pcrs[0]!.replayed), toHex(v11));
    assert.equal(toHex(initialPcrValue(17, 4)), 'ffffffff');
    assert.throws(() => replayUserspaceLog(log, fw, { banks: [TPM_ALG.SHA1] }), /record 1: no sha1 digest, so sha1 PCR 11 cannot be replayed/);
  });

  it('userspacePhases lists the boot phases in order; userspaceLogBanks the banks every record covers', () => {
    const machineId = { pcr: 15, data: new TextEncoder().encode('machine-id:0123'), string: 'machine-id:0123', eventType: 'machine-id' };
    const both = parseUserspaceLog(buildUserspaceLog([phaseRecord('enter-initrd'), machineId, phaseRecord('ready')], [TPM_ALG.SHA1, TPM_ALG.SHA256]));
    assert.deepEqual(userspacePhases(both), ['enter-initrd', 'ready']);
    assert.deepEqual(userspaceLogBanks(both, [TPM_ALG.SHA256, TPM_ALG.SHA384, TPM_ALG.SHA1]), [TPM_ALG.SHA256, TPM_ALG.SHA1]);
    const sha256Only = parseUserspaceLog(buildUserspaceLog([phaseRecord('sysinit')], [TPM_ALG.SHA256]));
    assert.deepEqual(userspaceLogBanks(sha256Only, [TPM_ALG.SHA1]), []);
  });

  it('a phase whose digest is not the hash of its name is a problem of that record', () => {
    const forged = buildUserspaceLog([phaseRecord('enter-initrd'), { ...phaseRecord('ready'), data: utf8('something else') }]);
    const r = replayUserspaceLog(parseUserspaceLog(forged), new Map([[TPM_ALG.SHA256, new Map()]]));
    assert.equal(r.problems.length, 1);
    assert.equal(r.problems[0]!.record.seq, 2);
    assert.match(r.problems[0]!.problem, /^its sha256 digest [0-9a-f]{64} is not sha256\("ready"\)/);
  });

  describe('against swtpm PCRs extended exactly as the logs say @swtpm', function () {
    this.timeout(60_000);
    const swtpm = withSwtpm({ pcrBanks: ['sha1', 'sha256'] });

    async function extendAll(tpm: Tpm, firmware: Uint8Array, userspace: Uint8Array): Promise<void> {
      for (const e of parseEventLog(firmware).events) {
        if (e.type === EV.EV_NO_ACTION) continue;
        await tpm.pcrExtend(e.pcr, [...e.digests].map((d) => ({ hashAlg: d.alg, digest: d.digest })));
      }
      for (const r of parseUserspaceLog(userspace).records) {
        await tpm.pcrExtend(r.pcr, [...r.digests].map(([hashAlg, digest]) => ({ hashAlg, digest })));
      }
    }

    it('the userspace replay on top of the firmware replay equals TPM2_PCR_Read; tampering is explained', async () => {
      {
        const tpm = await openTpm(swtpm().address);
        try {
          const banks = [TPM_ALG.SHA1, TPM_ALG.SHA256];
          const firmware = buildEventLog([
            { pcr: 7, type: EV.EV_SEPARATOR, data: new Uint8Array(4) },
            { pcr: 11, type: EV.EV_IPL, data: utf8('.linux section of a UKI') },
          ], banks);
          const userspace = buildUserspaceLog(BOOT, banks);
          await extendAll(tpm, firmware, userspace);
          const fw = replayEventLog(parseEventLog(firmware));
          const replay = replayUserspaceLog(parseUserspaceLog(userspace), fw.banks);
          assert.equal(replay.pcrs.length, 4, '2 PCRs x 2 banks');
          for (const p of replay.pcrs) {
            const [quoted] = [...(await tpm.readPcrs(p.bank, [p.pcr])).values()];
            assert.ok(bytesEqual(p.replayed, quoted!), `bank ${p.bank} PCR ${p.pcr}`);
          }
          const pcr11 = replay.pcrs.find((p) => p.pcr === 11 && p.bank === TPM_ALG.SHA256)!;
          const quoted11 = [...(await tpm.readPcrs(TPM_ALG.SHA256, [11])).values()][0]!;
          assert.equal(pcr11.startFrom, 'firmware log');

          // An extra record: the quote is reached before the log ends, and the extra one is named.
          const extra = replayUserspaceLog(parseUserspaceLog(buildUserspaceLog([...BOOT, phaseRecord('shutdown')], banks)), fw.banks)
            .pcrs.find((p) => p.pcr === 11 && p.bank === TPM_ALG.SHA256)!;
          assert.ok(!bytesEqual(extra.replayed, quoted11));
          assert.match(explainUserspaceMismatch(extra, quoted11), /reached after #5 phase "ready": the log has records the TPM never saw \(#6 phase "shutdown"\)/);
          // A dropped record: no prefix matches.
          const dropped = replayUserspaceLog(parseUserspaceLog(buildUserspaceLog(BOOT.filter((s) => s.string !== 'sysinit'), banks)), fw.banks)
            .pcrs.find((p) => p.pcr === 11 && p.bank === TPM_ALG.SHA256)!;
          assert.ok(!bytesEqual(dropped.replayed, quoted11));
          assert.match(explainUserspaceMismatch(dropped, quoted11), /no prefix of its 3 record\(s\) gives the quoted value/);
        } finally {
          await tpm.close();
        }
      }
    });
  });
});
