/**
 * `tpmds-verifier eventlog`: the CLI contract (ARCHITECTURE.md, "packages/verifier — the CLI"), run
 * as a child process the way users run it, plus the dispatcher and flag parser in-process.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { TPM_ALG, buildUserspaceLog, phaseRecord } from '@tpmds/tpm2-wire';
import { Args, UsageError, parseFlags, runCli } from '../src/index.js';
import type { Command } from '../src/index.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const TESTDATA = join(REPO, 'testdata');
const MAIN = join(REPO, 'packages/verifier/src/cli/main.ts');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node --import tsx packages/verifier/src/cli/main.ts ...args` from the repository root. */
function cli(args: string[], stdin?: Uint8Array): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: REPO, maxBuffer: 64 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (stdin) child.stdin!.end(stdin);
    else child.stdin!.end();
  });
}

/** In-process run of the dispatcher, capturing output. */
async function run(argv: string[], commands?: readonly Command[]): Promise<Result> {
  let stdout = '';
  let stderr = '';
  const io = { stdout: (t: string) => void (stdout += t), stderr: (t: string) => void (stderr += t) };
  const code = commands ? await runCli(argv, io, commands) : await runCli(argv, io);
  return { code, stdout, stderr };
}

const goTpmTools = JSON.parse(readFileSync(join(TESTDATA, 'go-tpm-tools/eventlogs/expected_pcrs.json'), 'utf8')) as {
  logs: Record<string, { file: string; pcrs: Record<string, Record<string, string>> }>;
};

interface EventLogJson {
  events: { pcr: number; type: string; digests: Record<string, string>; data: string }[];
  pcrs: Record<string, Record<string, string>>;
}

describe('tpmds-verifier eventlog (child process)', function () {
  this.timeout(120_000);
  let tmp: string;
  // Child processes are slow to start (tsx): start them all at once, then check each.
  let json: Result, stdin: Result, text: Result, malformed: Result;
  const rhel8 = goTpmTools.logs['Rhel8GCE']!;
  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'tpmds-eventlog-cli-'));
    const truncated = join(tmp, 'truncated.bin');
    writeFileSync(truncated, readFileSync(join(TESTDATA, rhel8.file)).subarray(0, 500));
    const hcrtm = Buffer.from(readFileSync(join(TESTDATA, 'tpm2-tss/binary_measurements_hcrtm.b64'), 'utf8'), 'base64');
    [json, stdin, text, malformed] = await Promise.all([
      cli(['eventlog', join(TESTDATA, rhel8.file), '--json']),
      cli(['eventlog', '-', '--json'], hcrtm),
      cli(['eventlog', join(TESTDATA, rhel8.file)]),
      cli(['eventlog', truncated, '--json']),
    ]);
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('--json prints exactly one JSON document whose pcrs are the real PCRs (go-tpm-tools Rhel8GCE)', () => {
    assert.equal(json.code, 0, json.stderr);
    assert.equal(json.stderr, '');
    assert.ok(json.stdout.endsWith('}\n') && json.stdout.indexOf('\n') === json.stdout.length - 1, 'one JSON document on one line');
    const doc = JSON.parse(json.stdout) as EventLogJson;
    assert.deepEqual(Object.keys(doc), ['events', 'pcrs']);
    assert.deepEqual(Object.keys(doc.pcrs), ['sha1', 'sha256', 'sha384']);
    for (const [bank, pcrs] of Object.entries(rhel8.pcrs)) {
      for (const [idx, hex] of Object.entries(pcrs)) assert.equal(doc.pcrs[bank.toLowerCase()]![idx], hex, `${bank} PCR ${idx}`);
    }
    assert.equal(doc.events.length, 83);
    assert.deepEqual(doc.events[1]!.pcr, 0);
    assert.deepEqual(doc.events[1]!.type, 'EV_S_CRTM_VERSION');
    for (const e of doc.events) {
      assert.equal(typeof e.pcr, 'number');
      assert.match(e.type, /^(EV_[A-Z0-9_]+|0x[0-9a-f]{8})$/);
      for (const [b, d] of Object.entries(e.digests)) assert.ok(/^[a-z0-9_]+$/.test(b) && /^[0-9a-f]+$/.test(d));
      assert.match(e.data, /^[0-9a-f]*$/);
    }
  });

  it('reads a log from stdin (-): the tpm2-tss H-CRTM log replays PCR0 from locality 4', () => {
    assert.equal(stdin.code, 0, stdin.stderr);
    const doc = JSON.parse(stdin.stdout) as EventLogJson;
    assert.equal(doc.pcrs['sha1']!['0'], '15f4e6ca457d1af6bc49511a93ba3500ad69acc5');
    assert.equal(doc.events[1]!.type, 'EV_EFI_HCRTM_EVENT');
  });

  it('the summary shows events per PCR, replayed PCRs, Secure Boot and the EFI applications', () => {
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /Secure Boot\s+enabled/);
    assert.match(text.stdout, /PCR  7\s+8\s+EV_EFI_VARIABLE_DRIVER_CONFIG x5/);
    assert.ok(text.stdout.includes(rhel8.pcrs['SHA256']!['4']!));
    assert.ok(text.stdout.includes('\\EFI\\redhat\\shimx64.efi'));
    assert.match(text.stdout, /EFI applications \(PCR 4\): 3/);
  });

  it('a malformed log: the error and its byte offset on stderr, nothing on stdout, exit 1', () => {
    assert.equal(malformed.code, 1);
    assert.equal(malformed.stdout, '');
    assert.match(malformed.stderr, /^tpmds-verifier eventlog: .*truncated\.bin: malformed event log: truncated input: .* \(at byte offset 467\)\n$/);
  });

  it('--userspace replays systemd\'s log on top of the firmware log: the phases and the PCR values; a truncated one names the record', async () => {
    const phases = ['enter-initrd', 'leave-initrd', 'sysinit', 'ready'];
    const usLog = buildUserspaceLog(phases.map(phaseRecord), [TPM_ALG.SHA1, TPM_ALG.SHA256]);
    const usPath = join(tmp, 'tpm2-measure.log');
    writeFileSync(usPath, usLog);
    // PCR 11 of the firmware log (Rhel8GCE has none there: it starts at zeros) extended with each phase's digest.
    const start = (JSON.parse(json.stdout) as EventLogJson).pcrs['sha256']!['11'] ?? '00'.repeat(32);
    let pcr11 = Buffer.from(start, 'hex');
    for (const p of phases) pcr11 = createHash('sha256').update(pcr11).update(createHash('sha256').update(p).digest()).digest();
    const [doc, summary, bad] = await Promise.all([
      cli(['eventlog', join(TESTDATA, rhel8.file), '--userspace', usPath, '--json']),
      cli(['eventlog', join(TESTDATA, rhel8.file), '--userspace', usPath]),
      (async () => {
        const truncated = join(tmp, 'truncated-measure.log');
        writeFileSync(truncated, usLog.subarray(0, usLog.length - 1));
        return cli(['eventlog', join(TESTDATA, rhel8.file), '--userspace', truncated]);
      })(),
    ]);
    assert.equal(doc.code, 0, doc.stderr);
    const u = (JSON.parse(doc.stdout) as { userspace: { records: number; phases: string[]; pcrs: Record<string, Record<string, string>>; problems: string[] } }).userspace;
    assert.equal(u.records, 4);
    assert.deepEqual(u.phases, phases);
    assert.equal(u.pcrs['sha256']!['11'], pcr11.toString('hex'));
    assert.deepEqual(u.problems, []);
    assert.equal(summary.code, 0, summary.stderr);
    assert.match(summary.stdout, /sha256\s+PCR 11\s+[0-9a-f]{64}\s+\(from the .*\) enter-initrd -> leave-initrd -> sysinit -> ready/);
    assert.equal(bad.code, 1);
    assert.equal(bad.stdout, '');
    assert.match(bad.stderr, /truncated-measure\.log: malformed userspace log: record 4: truncated/);
  });
});

describe('tpmds-verifier dispatcher and flags (in-process)', () => {
  it('--help for the tool and for each command go to stdout with exit 0', async () => {
    const tool = await run(['--help']);
    assert.equal(tool.code, 0);
    assert.match(tool.stdout, /usage: tpmds-verifier <command>/);
    assert.match(tool.stdout, /eventlog\s+parse and replay/);
    for (const argv of [['eventlog', '--help'], ['eventlog', '-h'], ['help', 'eventlog'], ['eventlog', 'x', '--json', '--help']]) {
      const r = await run(argv);
      assert.equal(r.code, 0, argv.join(' '));
      assert.match(r.stdout, /usage: tpmds-verifier eventlog FILE/);
      assert.match(r.stdout, /--json/);
    }
  });

  it('a missing file: stderr and exit 1', async () => {
    const r = await run(['eventlog', join(tmpdir(), 'tpmds-no-such-log.bin'), '--json']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^tpmds-verifier eventlog: cannot read .*tpmds-no-such-log\.bin: no such file\n$/);
  });

  it('no command, unknown command, unknown flag, wrong arguments: stderr and exit 2', async () => {
    assert.equal((await run([])).code, 2);
    const cases: [string[], RegExp][] = [
      [['nope'], /unknown command "nope"/],
      [['--nope'], /unknown flag --nope/],
      [['eventlog'], /missing FILE/],
      [['eventlog', 'a', 'b'], /unexpected argument "b"/],
      [['eventlog', 'a', '--json=yes'], /--json takes no value/],
      [['eventlog', 'a', '-j'], /unknown flag -j/],
      [['eventlog', 'a', '--jsn'], /unknown flag --jsn/],
      [['evnetlog', 'a'], /unknown command "evnetlog"/],
      [['help', 'nope'], /unknown command "nope"/],
    ];
    for (const [argv, re] of cases) {
      const r = await run(argv);
      assert.equal(r.code, 2, argv.join(' '));
      assert.equal(r.stdout, '');
      assert.match(r.stderr, re);
    }
  });

  it('--version prints the package version', async () => {
    const r = await run(['--version']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^\d+\.\d+\.\d+/);
  });

  it('the flag parser: values, =values, repeatable flags, -- and errors that name the flag', () => {
    const specs = {
      target: { type: 'string', valueName: 'HOST:PORT', description: 't' },
      'ek-roots': { type: 'string', repeatable: true, description: 'r' },
      json: { type: 'boolean', description: 'j' },
    } as const;
    const a = parseFlags(['--target', 'h:1', 'pos', '--ek-roots=a.pem', '--json', '--ek-roots', 'b.pem', '--', '--not-a-flag'], specs);
    assert.ok(a instanceof Args);
    assert.equal(a.string('target'), 'h:1');
    assert.deepEqual(a.strings('ek-roots'), ['a.pem', 'b.pem']);
    assert.equal(a.bool('json'), true);
    assert.deepEqual(a.positionals, ['pos', '--not-a-flag']);
    assert.deepEqual(parseFlags([], specs).strings('ek-roots'), []);
    assert.throws(() => parseFlags(['--target'], specs), (e: unknown) => e instanceof UsageError && /--target needs a value \(HOST:PORT\)/.test(e.message));
    assert.throws(() => parseFlags(['--target', 'a', '--target', 'b'], specs), /more than once/);
    assert.throws(() => parseFlags(['--constructor'], specs), /unknown flag --constructor/);
  });

  it('a new subcommand needs only a Command value (the registry is a list)', async () => {
    const echo: Command = {
      name: 'echo',
      summary: 'echo the arguments',
      usage: 'WORD... [--upper]',
      flags: { upper: { type: 'boolean', description: 'upper case' }, tag: { type: 'string', repeatable: true, description: 'tag' } },
      positionals: { min: 1, max: 9, names: 'WORD' },
      async run(args, io) {
        const s = `${args.positionals.join(' ')} ${args.strings('tag').join(',')}`;
        io.stdout(`${args.bool('upper') ? s.toUpperCase() : s}\n`);
        return 0;
      },
    };
    const r = await run(['echo', 'a', 'b', '--upper', '--tag', 'x', '--tag', 'y'], [echo]);
    assert.deepEqual(r, { code: 0, stdout: 'A B X,Y\n', stderr: '' });
    const failing: Command = { ...echo, name: 'fail', async run() { throw new Error('boom'); } };
    assert.deepEqual(await run(['fail', 'a'], [failing]), { code: 1, stdout: '', stderr: 'tpmds-verifier fail: boom\n' });
  });
});
