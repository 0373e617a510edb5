/**
 * Layer 5 (transports). Address parsing; clear errors for a wrong address, a missing device, EACCES,
 * a Unix socket opened as a device (ENXIO), a peer that hangs up mid-response and a TPM that never
 * answers; retry of TPM_RC_RETRY/YIELDED/TESTING with a bounded count; one command in flight (a
 * queue) and each command in a single write. Fakes (a scripted Unix-socket server, a bare pty) drive
 * the failure cases; swtpm drives power-on (CMD_INIT + TPM2_Startup done transparently), recovery
 * after a power cycle, and the TCP flavour.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  openTpm, openTransport, parseTpmAddress, TpmAddressError, TpmTransportError, TpmError, TPM_RC, TPM_CC, TPM_ALG, TPM_RH,
  DEFAULT_TPM_ADDRESS, srkTemplateEccP256, type Tpm,
} from '../src/index.js';
import { startSwtpm, type SwtpmInstance } from './fixtures/swtpm.js';
import { fakeSwtpmServer, getRandomResponse, rcResponse, type FakeServer } from './support/fake-tpm.js';

const GET_RANDOM = TPM_CC.GetRandom;
const bytesRequested = (cmd: Uint8Array) => (cmd[10]! << 8) | cmd[11]!;

async function rejectsWith(p: Promise<unknown>, cls: new (...a: never[]) => Error, message?: RegExp): Promise<Error> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof cls, `expected ${cls.name}, got ${String(caught)}`);
  if (message) assert.match((caught as Error).message, message);
  return caught as Error;
}

/** A pty whose other end is a tiny Python script: 'silent' never answers, 'half' sends half a response and hangs up. */
async function barePty(mode: 'silent' | 'half'): Promise<{ path: string; proc: ChildProcess; stop(): Promise<void> }> {
  const script = [
    'import os, pty, sys, tty, time',
    'm, s = pty.openpty()',
    'tty.setraw(s)',
    'print(os.ttyname(s), flush=True)',
    "if sys.argv[1] == 'half':",
    '    os.read(m, 4096)',
    "    os.write(m, bytes.fromhex('80010000001a0000000000'))",
    '    time.sleep(0.1)',
    '    os.close(m)',
    'time.sleep(60)',
  ].join('\n');
  const proc = spawn('/usr/bin/python3', ['-c', script, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  const path = await new Promise<string>((resolve, reject) => {
    proc.once('error', reject);
    proc.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim()));
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    path,
    proc,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}

describe('transport: addresses', () => {
  it('parses every documented form', () => {
    assert.equal(DEFAULT_TPM_ADDRESS, 'device:/dev/tpmrm0');
    assert.deepEqual(parseTpmAddress('device:/dev/tpmrm0'), { kind: 'device', path: '/dev/tpmrm0' });
    assert.deepEqual(parseTpmAddress('device:/dev/tpm0'), { kind: 'device', path: '/dev/tpm0' });
    assert.deepEqual(parseTpmAddress('device'), { kind: 'device', path: '/dev/tpmrm0' });
    assert.deepEqual(parseTpmAddress('device:'), { kind: 'device', path: '/dev/tpmrm0' });
    assert.deepEqual(parseTpmAddress('swtpm:port=2321'), { kind: 'swtpm', socket: { host: '127.0.0.1', port: 2321 } });
    assert.deepEqual(parseTpmAddress('swtpm:host=10.0.0.5,port=2400'), { kind: 'swtpm', socket: { host: '10.0.0.5', port: 2400 } });
    assert.deepEqual(parseTpmAddress('swtpm:port=2400,host=tpm.local'), { kind: 'swtpm', socket: { host: 'tpm.local', port: 2400 } });
    assert.deepEqual(parseTpmAddress('swtpm:'), { kind: 'swtpm', socket: { host: '127.0.0.1', port: 2321 } });
    assert.deepEqual(parseTpmAddress('swtpm:path=/run/swtpm/sock'), { kind: 'swtpm', socket: { path: '/run/swtpm/sock' } });
    assert.deepEqual(parseTpmAddress('  swtpm:path=/tmp/s  '), { kind: 'swtpm', socket: { path: '/tmp/s' } });
    assert.deepEqual(parseTpmAddress('mssim:host=sim,port=2321'), { kind: 'mssim', socket: { host: 'sim', port: 2321 } });
    assert.deepEqual(parseTpmAddress('mssim:'), { kind: 'mssim', socket: { host: '127.0.0.1', port: 2321 } });
  });

  for (const [address, message] of [
    ['tpm:/dev/tpm0', /unknown kind "tpm"; expected device:\/dev\/tpmrm0, swtpm:port=P.* or mssim:host=H,port=P/],
    ['/dev/tpmrm0', /unknown kind "\/dev\/tpmrm0"/],
    ['mssim:path=/tmp/sim', /mssim takes host and port, not path/],
    ['device:dev/tpm0', /the device path must be absolute/],
    ['swtpm:port=abc', /port "abc" is not a number from 1 to 65534/],
    ['swtpm:port=0', /port "0" is not a number/],
    ['swtpm:port=65535', /port "65535"/],
    ['swtpm:port=-1', /port "-1"/],
    ['swtpm:port=23 21', /port "23 21"/],
    ['swtpm:2321', /"2321" is not key=value/],
    ['swtpm:=1', /"=1" is not key=value/],
    ['swtpm:socket=/x', /unknown key "socket"/],
    ['swtpm:path=/x,port=1', /path excludes host and port/],
    ['swtpm:path=', /empty path/],
  ] as const) {
    it(`rejects ${JSON.stringify(address)} with a clear message`, () => {
      assert.throws(() => parseTpmAddress(address), (e: Error) => {
        assert.ok(e instanceof TpmAddressError);
        assert.match(e.message, /^bad TPM address /);
        assert.ok(e.message.includes(JSON.stringify(address)), 'the message quotes the address');
        assert.match(e.message, message);
        return true;
      });
    });
  }

  it('openTpm rejects a bad address before touching anything', async () => {
    await rejectsWith(openTpm('tcp:localhost'), TpmAddressError);
  });
});

describe('transport: device errors', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tpmds-dev-'));
    chmodSync(dir, 0o755);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a missing device: ENOENT, says the TPM is absent or not mounted', async () => {
    const e = await rejectsWith(openTpm(`device:${dir}/tpmrm0`), TpmTransportError, /does not exist \(is a TPM present and its driver loaded\? in a pod, mount the device\)/);
    assert.equal((e as TpmTransportError).code, 'ENOENT');
    assert.ok(e.message.includes(`${dir}/tpmrm0`));
  });

  it('no permission: EACCES, says which group the user needs (run as an unprivileged user)', async function () {
    this.timeout(30_000);
    const file = join(dir, 'tpm0');
    writeFileSync(file, '');
    chmodSync(file, 0o600);
    const code = `import { openTransport } from ${JSON.stringify(new URL('../src/transport/address.ts', import.meta.url).href)};
      try { await openTransport(${JSON.stringify(`device:${file}`)}); console.log('{"opened":true}'); }
      catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }`;
    let out: string;
    if (process.getuid?.() === 0) {
      // root ignores file modes: open it as 'nobody' in a child process (a real EACCES, no mocking).
      const tmp = mkdtempSync(join(tmpdir(), 'tpmds-nobody-'));
      chmodSync(tmp, 0o777);
      try {
        const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
          uid: 65534, gid: 65534, encoding: 'utf8', timeout: 30_000, cwd: new URL('../../..', import.meta.url).pathname,
          env: { ...process.env, TMPDIR: tmp, HOME: tmp },
        });
        if (r.status !== 0) {
          console.warn(`    (cannot run node as uid 65534 here: ${r.stderr.trim().split('\n')[0]})`);
          this.skip();
        }
        out = r.stdout;
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    } else {
      chmodSync(file, 0o000);
      const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 30_000 });
      out = r.stdout;
    }
    const got = JSON.parse(out.trim().split('\n').pop()!);
    assert.equal(got.name, 'TpmTransportError');
    assert.equal(got.code, 'EACCES');
    assert.match(got.message, /^permission denied opening .*tpm0: the user needs read\/write access to the device, usually membership of its group \(e\.g\. 'tss'\)/);
  });

  it('a Unix socket given as a device: ENXIO, suggests swtpm:path=', async () => {
    const sock = join(dir, 'sock');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      const e = await rejectsWith(openTpm(`device:${sock}`), TpmTransportError, /is not a character device \(a Unix socket\? use swtpm:path=/);
      assert.equal((e as TpmTransportError).code, 'ENXIO');
      assert.ok(e.message.includes(`swtpm:path=${sock}`));
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('a device that never answers: the timeout fires (and does not hang on the pending read)', async function () {
    this.timeout(10_000);
    const pty = await barePty('silent');
    try {
      const tpm = await openTpm(`device:${pty.path}`, { timeoutMs: 200 });
      const t0 = performance.now();
      const e = await rejectsWith(tpm.getRandom(8), TpmTransportError, /no response from .* within 200 ms/);
      assert.equal((e as TpmTransportError).code, 'ETIMEDOUT');
      assert.ok(performance.now() - t0 < 2000, 'rejected promptly');
      await tpm.close();
    } finally {
      await pty.stop();
    }
  });

  it('a device that hangs up mid-response: TpmTransportError', async function () {
    this.timeout(10_000);
    const pty = await barePty('half');
    try {
      const tpm = await openTpm(`device:${pty.path}`, { timeoutMs: 5000 });
      const e = await rejectsWith(tpm.getRandom(16), TpmTransportError, /I\/O error on .*: the device failed or hung up|closed mid-response/);
      assert.ok(['EIO', 'EPIPE'].includes((e as TpmTransportError).code!));
      await tpm.close();
    } finally {
      await pty.stop();
    }
  });
});

describe('transport: swtpm socket against a scripted server', () => {
  let server: FakeServer | undefined;
  let tpm: Tpm | undefined;
  afterEach(async () => {
    await tpm?.close();
    tpm = undefined;
    await server?.close();
    server = undefined;
  });

  it('exchanges commands; every command arrives in one piece (one write each, never pipelined)', async () => {
    server = await fakeSwtpmServer((cmd, conn) => {
      if (cmd.code === GET_RANDOM) conn.write(getRandomResponse(bytesRequested(cmd.bytes)));
      else conn.write(rcResponse(0));
    });
    tpm = await openTpm(server.address);
    assert.equal((await tpm.getRandom(16)).length, 16);
    await tpm.stirRandom(new Uint8Array(128).fill(1));
    await tpm.hash(new Uint8Array(1024).fill(2), TPM_ALG.SHA256).catch(() => undefined); // a 1 KiB command (reply is not a Hash response)
    assert.deepEqual(server.violations, []);
    assert.equal(server.dataEvents.length, server.commands.length);
    assert.ok(server.commands.some((c) => c.length > 1024), 'a large command was sent whole');
  });

  it('queues concurrent commands: one in flight at a time, answers matched in order', async () => {
    server = await fakeSwtpmServer((cmd, conn, i) => {
      // Answer after a random delay, so a second command sent early would be seen by the server.
      setTimeout(() => conn.write(getRandomResponse(bytesRequested(cmd.bytes), i)), Math.random() * 3);
    });
    tpm = await openTpm(server.address);
    const opened = server.commands.length;
    const n = 40;
    const results = await Promise.all(Array.from({ length: n }, (_, k) => tpm!.getRandom(1 + (k % 8))));
    assert.deepEqual(server.violations, []);
    assert.equal(server.commands.length - opened, n);
    results.forEach((r, k) => {
      assert.equal(r.length, 1 + (k % 8));
      assert.equal(r[0], (opened + k) & 0xff, `call ${k} got the answer to command ${opened + k}`);
    });
  });

  for (const [name, rc] of [['TPM_RC_RETRY', TPM_RC.RETRY], ['TPM_RC_YIELDED', TPM_RC.YIELDED], ['TPM_RC_TESTING', TPM_RC.TESTING]] as const) {
    it(`resends on ${name}: two warnings then success is one successful call`, async () => {
      let getRandoms = 0;
      server = await fakeSwtpmServer((cmd, conn) => {
        if (bytesRequested(cmd.bytes) === 1) return conn.write(getRandomResponse(1)); // the open() probe
        getRandoms++;
        conn.write(getRandoms <= 2 ? rcResponse(rc) : getRandomResponse(bytesRequested(cmd.bytes)));
      });
      const exchanges: number[] = [];
      tpm = await openTpm(server.address, { onCommand: (_cc, _ms, r) => exchanges.push(r) });
      const got = await tpm.getRandom(8);
      assert.equal(got.length, 8);
      assert.equal(getRandoms, 3, 'sent three times');
      assert.deepEqual(exchanges.slice(-3), [rc, rc, 0]);
      const cmds = server.commands.slice(-3);
      assert.ok(cmds.every((c) => Buffer.compare(c, cmds[0]!) === 0), 'the same command bytes each time');
    });
  }

  it('gives up after maxRetries and surfaces the warning as a TpmError', async () => {
    let sends = 0;
    server = await fakeSwtpmServer((cmd, conn) => {
      if (bytesRequested(cmd.bytes) === 1) return conn.write(getRandomResponse(1));
      sends++;
      conn.write(rcResponse(TPM_RC.RETRY));
    });
    tpm = await openTpm(server.address, { maxRetries: 2 });
    const e = await rejectsWith(tpm.getRandom(8), TpmError, /TPM2_GetRandom failed with 0x922: TPM_RC_RETRY/);
    assert.equal((e as TpmError).rc, TPM_RC.RETRY);
    assert.equal(sends, 3, 'the first try and two retries');
  });

  it('does not retry other errors, and a genuine TPM_RC_FAILURE passes through (no power-on)', async () => {
    server = await fakeSwtpmServer((cmd, conn) => {
      if (cmd.code === TPM_CC.StirRandom) conn.write(rcResponse(TPM_RC.FAILURE));
      else if (cmd.code === TPM_CC.SelfTest) conn.write(rcResponse(0x1c4));
      else conn.write(getRandomResponse(bytesRequested(cmd.bytes)));
    });
    tpm = await openTpm(server.address);
    const before = server.commands.length;
    await rejectsWith(tpm.selfTest(), TpmError, /TPM_RC_VALUE \(parameter 1\)/);
    assert.equal(server.commands.length, before + 1);
    const e = await rejectsWith(tpm.stirRandom(new Uint8Array(4)), TpmError, /TPM_RC_FAILURE/);
    assert.equal((e as TpmError).rc, TPM_RC.FAILURE);
    // StirRandom, then one probe (GetRandom(1)) that shows the TPM is up; nothing else.
    assert.deepEqual(server.commands.slice(before + 1).map((c) => new DataView(c.buffer).getUint32(6)), [TPM_CC.StirRandom, TPM_CC.GetRandom]);
  });

  it('a peer that closes mid-response: TpmTransportError; the next command reconnects', async () => {
    server = await fakeSwtpmServer((cmd, conn, i) => {
      const rsp = getRandomResponse(bytesRequested(cmd.bytes));
      if (i === 1) {
        conn.write(rsp.subarray(0, 7));
        setTimeout(() => conn.end(), 10);
      } else {
        conn.write(rsp);
      }
    });
    tpm = await openTpm(server.address, { timeoutMs: 5000 });
    const e = await rejectsWith(tpm.getRandom(32), TpmTransportError, /closed the connection mid-response/);
    assert.equal((e as TpmTransportError).code, 'EPIPE');
    assert.equal((await tpm.getRandom(32)).length, 32);
    assert.equal(server.connections, 2);
  });

  it('a TPM that never answers: TpmTransportError after timeoutMs, and the queue moves on', async () => {
    server = await fakeSwtpmServer((cmd, conn, i) => {
      if (i === 1) return; // swallow the first real command
      conn.write(getRandomResponse(bytesRequested(cmd.bytes)));
    });
    tpm = await openTpm(server.address, { timeoutMs: 150 });
    const t0 = performance.now();
    const first = tpm.getRandom(4);
    const second = tpm.getRandom(5);
    const e = await rejectsWith(first, TpmTransportError, /no response from .* within 150 ms/);
    assert.equal((e as TpmTransportError).code, 'ETIMEDOUT');
    assert.ok(performance.now() - t0 < 1500);
    assert.equal((await second).length, 5, 'the queued command runs on a fresh connection');
  });

  it('rejects a response longer than its size field, and an absurd size field', async () => {
    server = await fakeSwtpmServer((cmd, conn, i) => {
      const rsp = getRandomResponse(bytesRequested(cmd.bytes));
      if (i === 1) conn.write(Buffer.concat([rsp, Buffer.from([0, 0])]));
      else if (i === 2) conn.write(Buffer.from('8001ffffffff00000000', 'hex'));
      else conn.write(rsp);
    });
    tpm = await openTpm(server.address);
    await rejectsWith(tpm.getRandom(4), TpmTransportError, /sent 2 byte\(s\) more than (one message|its response size)/);
    await rejectsWith(tpm.getRandom(4), TpmTransportError, /malformed response from the TPM: size field 4294967295/);
    assert.equal((await tpm.getRandom(4)).length, 4);
  });

  it('refuses a malformed command without sending it, and anything after close()', async () => {
    server = await fakeSwtpmServer((cmd, conn) => conn.write(getRandomResponse(bytesRequested(cmd.bytes))));
    const t = await openTransport(server.address);
    const sent = server.commands.length;
    await rejectsWith(t.send(Uint8Array.from([0x80, 0x01, 0, 0, 0, 0x20, 0, 0, 1, 0x7b, 0, 1])), TpmTransportError, /malformed command/);
    await rejectsWith(t.send(new Uint8Array(4)), TpmTransportError, /malformed command/);
    assert.equal(server.commands.length, sent);
    await t.close();
    await t.close(); // idempotent
    await rejectsWith(t.send(Uint8Array.from([0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 1, 0x7b, 0, 1])), TpmTransportError, /the TPM connection is closed/);
  });

  it('nothing at the socket path / port: says whether swtpm is running', async () => {
    const e1 = await rejectsWith(openTpm('swtpm:path=/nonexistent/tpmds/sock'), TpmTransportError, /socket \/nonexistent\/tpmds\/sock does not exist \(is swtpm running/);
    assert.equal((e1 as TpmTransportError).code, 'ENOENT');
    const probe = net.createServer();
    const port = await new Promise<number>((resolve) => probe.listen(0, '127.0.0.1', () => resolve((probe.address() as net.AddressInfo).port)));
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const e2 = await rejectsWith(openTpm(`swtpm:host=127.0.0.1,port=${port}`), TpmTransportError, new RegExp(`nothing is listening at 127\\.0\\.0\\.1:${port} \\(is swtpm running\\?\\)`));
    assert.equal((e2 as TpmTransportError).code, 'ECONNREFUSED');
  });
});

describe('transport: swtpm power management @swtpm', function () {
  this.timeout(60_000);

  it('powers on a TPM that needs CMD_INIT and TPM2_Startup, transparently, on the first command', async () => {
    const s = await startSwtpm({ transport: 'unix', flags: 'needs-init' });
    try {
      const raw = await s.sendRaw(Uint8Array.from([0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 1, 0x7b, 0, 8]));
      assert.equal(new DataView(raw.buffer, raw.byteOffset).getUint32(6), TPM_RC.FAILURE, 'precondition: swtpm is powered off');
      const tpm = await openTpm(s.address);
      try {
        assert.equal((await tpm.getRandom(24)).length, 24);
        await rejectsWith(tpm.startup(), TpmError, /TPM_RC_INITIALIZE/); // already started by the transport
      } finally {
        await tpm.close();
      }
    } finally {
      await s.stop();
    }
  });

  describe('on one swtpm (unix socket)', () => {
    let s: SwtpmInstance;
    before(async () => {
      s = await startSwtpm({ transport: 'unix' });
    });
    after(async () => s?.stop());

    it('recovers after a power cycle: TPM2_Startup is sent transparently on TPM_RC_INITIALIZE', async () => {
      const tpm = await openTpm(s.address);
      try {
        const primary = await tpm.createPrimary(TPM_RH.OWNER, srkTemplateEccP256());
        await tpm.pcrExtend(16, { hashAlg: TPM_ALG.SHA256, digest: new Uint8Array(32).fill(1) });
        const zero = new Uint8Array(32);
        assert.notDeepEqual((await tpm.readPcrs(TPM_ALG.SHA256, [16])).get(16), zero);

        await s.powerCycle(); // CMD_INIT while our connection stays open
        assert.equal((await tpm.getRandom(8)).length, 8, 'the next command just works');
        assert.deepEqual((await tpm.readPcrs(TPM_ALG.SHA256, [16])).get(16), zero, 'it really was a power cycle');
        const gone = await rejectsWith(tpm.readPublic(primary.handle), TpmError, /TPM_RC_REFERENCE_H0/);
        assert.equal((gone as TpmError).rc, TPM_RC.REFERENCE_H0, 'transient objects are gone');
      } finally {
        await tpm.close();
      }
    });

    it('TCP flavour: swtpm:host=127.0.0.1,port=P works the same', async () => {
      const tcp = await startSwtpm({ transport: 'tcp' });
      try {
        assert.match(tcp.address, /^swtpm:host=127\.0\.0\.1,port=\d+$/);
        const tpm = await openTpm(tcp.address);
        try {
          assert.equal((await tpm.getRandom(100)).length, 100);
          await tcp.powerCycle();
          assert.equal((await tpm.getRandom(3)).length, 3, 'power-on via the TCP control channel (port+1)');
        } finally {
          await tpm.close();
        }
      } finally {
        await tcp.stop();
      }
    });
  });

  it('device flavour: after a power cycle the TPM reports TPM_RC_INITIALIZE and startup() fixes it', async () => {
    const s = await startSwtpm({ transport: 'device' });
    try {
      const tpm = await openTpm(s.address);
      try {
        assert.equal((await tpm.getRandom(8)).length, 8);
        await s.powerCycle();
        const e = await rejectsWith(tpm.getRandom(8), TpmError, /TPM_RC_INITIALIZE/);
        assert.equal((e as TpmError).rc, TPM_RC.INITIALIZE);
        await tpm.startup();
        assert.equal((await tpm.getRandom(8)).length, 8);
      } finally {
        await tpm.close();
      }
    } finally {
      await s.stop();
    }
  });
});
