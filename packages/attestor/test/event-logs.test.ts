// The event logs Quote ships (event-logs.ts): re-read only when a file changed, each log's state
// logged at start (size and SHA-256, or why it is missing), /readyz and /metrics saying what is
// missing, and every QuoteResponse carrying both logs or why not.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodePlatformParameters } from '@tpmds/protocol/formats';
import { EventLogFile, EventLogs, encodedEventLog } from '../src/event-logs.js';
import { Logger } from '../src/log.js';
import { httpGet, startFake, tempDir } from './helpers.js';


const sha256hex = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

describe('attestor event logs', () => {
  let dirs: { dir: string; cleanup: () => void };
  beforeEach(() => {
    dirs = tempDir();
  });
  afterEach(() => dirs.cleanup());

  it('re-reads a file only when its size, mtime, ctime or inode changed', async () => {
    const path = join(dirs.dir, 'log');
    writeFileSync(path, 'first');
    const f = new EventLogFile('firmware', path);
    assert.equal((await f.read()).status, 'ok');
    for (let i = 0; i < 5; i++) await f.read();
    assert.equal(f.reads, 1, 'unchanged: read once');
    appendFileSync(path, ' and more');
    assert.equal(new TextDecoder().decode((await f.read()).bytes), 'first and more');
    assert.equal(f.reads, 2);
    // The device plugin replaces its copy with a rename: a new inode.
    writeFileSync(join(dirs.dir, 'next'), 'replaced!!!!!!');
    renameSync(join(dirs.dir, 'next'), path);
    const s = await f.read();
    assert.equal(new TextDecoder().decode(s.bytes), 'replaced!!!!!!');
    assert.equal(s.sha256, sha256hex('replaced!!!!!!'));
    assert.equal(f.reads, 3);
    await f.read();
    assert.equal(f.reads, 3);
  });

  it('calls that find the same change at once (a Quote and the readiness poll) share one read; its JSON is encoded once per change', async () => {
    const path = join(dirs.dir, 'log');
    writeFileSync(path, 'first');
    const f = new EventLogFile('firmware', path);
    const states = await Promise.all(Array.from({ length: 5 }, () => f.read()));
    assert.equal(f.reads, 1);
    assert.ok(states.every((s) => s === states[0]));
    assert.equal(encodedEventLog(states[0]!), encodedEventLog(await f.read()), 'encoded once for an unchanged log');
    appendFileSync(path, '!');
    const changed = await f.read();
    assert.equal(new TextDecoder().decode(encodedEventLog(changed).json), JSON.stringify(Buffer.from('first!').toString('base64')));
    // A missing file keeps its state until it appears.
    const later = new EventLogFile('firmware', join(dirs.dir, 'later'));
    const missing = await later.read();
    assert.equal(missing.status, 'missing');
    assert.equal(await later.read(), missing);
    writeFileSync(join(dirs.dir, 'later'), 'here');
    assert.deepEqual([(await later.read()).status, later.reads], ['ok', 1]);
  });

  it('a missing or empty firmware log is a problem naming the file; an absent userspace log is none', async () => {
    const missing = await new EventLogFile('firmware', join(dirs.dir, 'nope')).read();
    assert.equal(missing.status, 'missing');
    assert.match(missing.problem, /nope: no such file/);
    writeFileSync(join(dirs.dir, 'empty'), '');
    const empty = await new EventLogFile('firmware', join(dirs.dir, 'empty')).read();
    assert.deepEqual([empty.status, empty.bytes.length], ['empty', 0]);
    assert.match(empty.problem, /empty is empty/);
    const absent = await new EventLogFile('userspace', join(dirs.dir, 'nope')).read();
    assert.deepEqual([absent.status, absent.problem], ['absent', '']);
    mkdirSync(join(dirs.dir, 'd'));
    const dir = await new EventLogFile('firmware', join(dirs.dir, 'd')).read();
    assert.equal(dir.status, 'unreadable');
    assert.match(dir.problem, /is a directory/);
  });

  it('Quote carries both logs; start-up logs their size and digest; quotes do not re-read unchanged logs', async () => {
    const fw = join(dirs.dir, 'binary_bios_measurements');
    const us = join(dirs.dir, 'tpm2-measure.log');
    writeFileSync(fw, 'firmware log bytes');
    writeFileSync(us, '\x1e{"pcr":11}\n');
    const eventLogs = new EventLogs({ eventLog: fw, userspaceLog: us }, new Logger('error'));
    const t = await startFake({ config: { eventLog: fw, userspaceLog: us }, start: { eventLogs } });
    try {
      await t.client.getAK({ uid: 'q' });
      for (let i = 0; i < 3; i++) {
        const r = await t.client.quote({ uid: 'q', nonce: new Uint8Array(8) });
        assert.equal(new TextDecoder().decode(decodePlatformParameters(r.platformAttestation).eventLog!), 'firmware log bytes');
        assert.equal(new TextDecoder().decode(r.userspaceEventLog), '\x1e{"pcr":11}\n');
        assert.deepEqual([r.eventLogProblem, r.userspaceEventLogProblem], ['', '']);
      }
      assert.deepEqual([eventLogs.firmware.reads, eventLogs.userspace.reads], [1, 1], 'each log read once for three quotes');
      appendFileSync(us, '\x1e{"pcr":15}\n');
      const r = await t.client.quote({ uid: 'q', nonce: new Uint8Array(8) });
      assert.equal(new TextDecoder().decode(r.userspaceEventLog), '\x1e{"pcr":11}\n\x1e{"pcr":15}\n');
      assert.deepEqual([eventLogs.firmware.reads, eventLogs.userspace.reads], [1, 2]);
    } finally {
      await t.stop();
    }

    const t2 = await startFake({ config: { eventLog: fw, userspaceLog: us } });
    try {
      const line = t2.log.lines.find((l) => l['msg'] === 'event log' && l['log'] === 'firmware');
      assert.ok(line, 'a start-up line for the firmware log');
      assert.deepEqual([line['path'], line['bytes'], line['sha256']], [fw, 18, sha256hex('firmware log bytes')]);
      assert.ok(t2.log.lines.some((l) => l['msg'] === 'event log' && l['log'] === 'userspace'));
      const ready = await httpGet(t2.running.healthAddress, '/readyz');
      assert.deepEqual([ready.status, ready.body], [200, 'ready\n']);
      const metrics = (await httpGet(t2.running.healthAddress, '/metrics')).body;
      assert.match(metrics, /^tpmds_event_log_status\{log="firmware",status="ok"\} 1$/m);
      assert.match(metrics, /^tpmds_event_log_status\{log="firmware",status="missing"\} 0$/m);
      assert.match(metrics, /^tpmds_event_log_bytes\{log="firmware"\} 18$/m);
    } finally {
      await t2.stop();
    }
  });

  it('a missing firmware log: said once at start, in /readyz (still ready), /metrics and every QuoteResponse, never per call', async () => {
    const fw = join(dirs.dir, 'no-such-log');
    const t = await startFake({ config: { eventLog: fw, userspaceLog: join(dirs.dir, 'no-userspace-log') } });
    try {
      await t.client.getAK({ uid: 'q' });
      for (let i = 0; i < 3; i++) {
        const r = await t.client.quote({ uid: 'q', nonce: new Uint8Array(8) });
        assert.deepEqual(decodePlatformParameters(r.platformAttestation).eventLog, new Uint8Array(0));
        assert.match(r.eventLogProblem, /no-such-log: no such file/);
        assert.deepEqual([r.userspaceEventLog.length, r.userspaceEventLogProblem], [0, '']);
      }
      const warnings = t.log.lines.filter((l) => typeof l['msg'] === 'string' && (l['msg'] as string).startsWith('firmware event log not sent'));
      assert.equal(warnings.length, 1, 'one warning, not one per quote');
      assert.match(String(warnings[0]!['msg']), /no-such-log: no such file/);
      const ready = await httpGet(t.running.healthAddress, '/readyz');
      assert.equal(ready.status, 200, 'keys are still served');
      assert.match(ready.body, /^ready\nfirmware event log missing: .*no-such-log: no such file.*; quotes carry no firmware log\n$/);
      assert.match((await httpGet(t.running.healthAddress, '/metrics')).body, /^tpmds_event_log_status\{log="firmware",status="missing"\} 1$/m);
      assert.match((await httpGet(t.running.healthAddress, '/metrics')).body, /^tpmds_event_log_status\{log="userspace",status="absent"\} 1$/m);
      // The log appears (the device plugin's first copy): noticed without a restart, said once.
      writeFileSync(fw, 'late log');
      const r = await t.client.quote({ uid: 'q', nonce: new Uint8Array(8) });
      assert.equal(r.eventLogProblem, '');
      assert.equal(new TextDecoder().decode(decodePlatformParameters(r.platformAttestation).eventLog!), 'late log');
      assert.ok(t.log.lines.some((l) => l['msg'] === 'event log changed' && l['log'] === 'firmware' && l['sha256'] === sha256hex('late log')));
    } finally {
      await t.stop();
    }
  });
});
