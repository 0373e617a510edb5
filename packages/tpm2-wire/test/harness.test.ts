// Tests of the swtpm test harness itself (test/fixtures/swtpm.ts). They talk to swtpm with hand-built
// bytes and tpm2-tools only, never through @tpmds/tpm2-wire, so a bug in our stack cannot hide a bug here.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  EK_P256_CERT_NV,
  EK_P256_HANDLE,
  EK_RSA_CERT_NV,
  EK_RSA_HANDLE,
  SRK_HANDLE,
  isProcessRunning,
  liveTempDirs,
  openSwtpmState,
  provisionSwtpmState,
  startSwtpm,
  withSwtpm,
  type SwtpmInstance,
  type SwtpmTransport,
} from './fixtures/swtpm.js';

const TRANSPORTS: SwtpmTransport[] = ['unix', 'tcp', 'device'];
/** TPM2_GetRandom(16): tag NO_SESSIONS, size 12, TPM_CC_GetRandom (0x17B), bytesRequested 16. */
const GET_RANDOM_16 = Uint8Array.of(0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x7b, 0x00, 0x10);
const STARTUP_CLEAR = Uint8Array.of(0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x44, 0x00, 0x00);
/** TCG EK Credential Profile 2.0, B.3.3/B.3.4: PolicySecret(TPM_RH_ENDORSEMENT), the L-1/L-2 authPolicy. */
const EK_POLICY_A_SHA256 = '837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa';

const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;

function exec(file: string, args: string[]): Promise<{ stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { encoding: 'buffer', timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${file} ${args.join(' ')}: ${error.message}\n${stderr.toString()}`));
      else resolve({ stdout, stderr: stderr.toString() });
    });
  });
}

/** One raw command over the instance's address, parsed here independently of the harness. */
async function rawExchange(address: string, command: Uint8Array): Promise<Buffer> {
  if (address.startsWith('device:')) {
    const fh = await open(address.slice('device:'.length), 'r+');
    try {
      await fh.write(command);
      let received = Buffer.alloc(0);
      while (received.length < 10 || received.length < received.readUInt32BE(2)) {
        const { bytesRead, buffer } = await fh.read(Buffer.alloc(4096), 0, 4096, null);
        assert.ok(bytesRead > 0, 'pty closed');
        received = Buffer.concat([received, buffer.subarray(0, bytesRead)]);
      }
      return received;
    } finally {
      await fh.close();
    }
  }
  const m = /^swtpm:(?:path=(?<path>[^,]+)|host=(?<host>[^,]+),port=(?<port>\d+))$/.exec(address);
  assert.ok(m?.groups, `unexpected address ${address}`);
  const { path, host, port } = m.groups;
  return new Promise((resolve, reject) => {
    const socket = path ? net.connect({ path }) : net.connect({ host: host!, port: Number(port) });
    let received = Buffer.alloc(0);
    socket.on('connect', () => socket.write(command));
    socket.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
      if (received.length >= 10 && received.length >= received.readUInt32BE(2)) {
        socket.destroy();
        resolve(received);
      }
    });
    socket.on('error', reject);
  });
}

const rcOf = (response: Buffer) => response.readUInt32BE(6);

/** DER certificate -> PEM file, for openssl verify. */
async function writePem(dir: string, name: string, der: Buffer): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, new X509Certificate(der).toString());
  return file;
}

function spkiDer(key: ReturnType<typeof createPublicKey>): Buffer {
  return key.export({ type: 'spki', format: 'der' });
}

/** TPM2_PT_LOCKOUT_COUNTER and TPMA_PERMANENT.inLockout from tpm2_getcap. */
async function lockoutState(swtpm: SwtpmInstance): Promise<{ counter: number; inLockout: boolean }> {
  const text = (await swtpm.tpm2('getcap', ['properties-variable'], { flush: false })).stdout.toString();
  const counter = /TPM2_PT_LOCKOUT_COUNTER:\s*(0x[0-9a-fA-F]+)/.exec(text);
  const inLockout = /inLockout:\s*(\d)/.exec(text);
  assert.ok(counter && inLockout, `unexpected tpm2_getcap output:\n${text}`);
  return { counter: Number(counter[1]), inLockout: inLockout[1] === '1' };
}

/** Authorizes a key that is not noDA (tpm2_createprimary's default attributes), so DA is "in use". */
async function useNonNoDaKey(swtpm: SwtpmInstance, dir: string): Promise<void> {
  const ctx = join(dir, 'primary.ctx');
  await swtpm.tpm2('createprimary', ['-C', 'o', '-G', 'ecc', '-c', ctx], { flush: false });
  await swtpm.tpm2('create', ['-C', ctx, '-G', 'ecc', '-u', join(dir, 'k.pub'), '-r', join(dir, 'k.priv')]);
}

describe('swtpm test harness @swtpm', function () {
  this.timeout(60_000);
  let scratch: string;
  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'tpmds-harness-test-'));
  });
  after(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  for (const transport of TRANSPORTS) {
    describe(`${transport} transport`, () => {
      const swtpm = withSwtpm({ transport });

      it('has an address and TCTI of the documented form', () => {
        const { address, tctiForTpm2Tools } = swtpm();
        if (transport === 'unix') {
          assert.match(address, /^swtpm:path=\/.+\/sock$/);
          assert.ok(existsSync(`${address.slice('swtpm:path='.length)}.ctrl`));
        } else if (transport === 'tcp') {
          const port = Number(/^swtpm:host=127\.0\.0\.1,port=(\d+)$/.exec(address)?.[1]);
          assert.ok(port > 0 && port + 1 < 32768, address);
          assert.deepEqual(swtpm().control, { host: '127.0.0.1', port: port + 1 });
        } else {
          assert.match(address, /^device:\/dev\/pts\/\d+$/);
        }
        assert.equal(tctiForTpm2Tools, address);
      });

      it('answers a hand-built TPM2_GetRandom(16)', async () => {
        const res = await rawExchange(swtpm().address, GET_RANDOM_16);
        assert.equal(res.readUInt16BE(0), 0x8001);
        assert.equal(res.readUInt32BE(2), 28);
        assert.equal(rcOf(res), 0);
        assert.equal(res.readUInt16BE(10), 16);
        // And the harness's own sendRaw agrees.
        assert.equal(rcOf(Buffer.from(await swtpm().sendRaw(GET_RANDOM_16))), 0);
      });

      it('serves the SRK, the RSA EK and the P-256 EK (TCG L-2 template) to tpm2-tools -T', async () => {
        const { tctiForTpm2Tools: tcti } = swtpm();
        const srk = (await exec('tpm2_readpublic', ['-T', tcti, '-c', hex(SRK_HANDLE)])).stdout.toString();
        assert.match(srk, /type:\s*\n?\s*value: rsa/);
        const rsa = (await exec('tpm2_readpublic', ['-T', tcti, '-c', hex(EK_RSA_HANDLE)])).stdout.toString();
        assert.match(rsa, /rsa/);
        assert.match(rsa, new RegExp(`authorization policy: ${EK_POLICY_A_SHA256}`));
        const p256 = (await exec('tpm2_readpublic', ['-T', tcti, '-c', hex(EK_P256_HANDLE)])).stdout.toString();
        assert.match(p256, /curve-id:\s*\n\s*value: NIST p256\n\s*raw: 0x3\n/);
        assert.match(p256, new RegExp(`authorization policy: ${EK_POLICY_A_SHA256}`));
        assert.match(p256, /value: fixedtpm\|fixedparent\|sensitivedataorigin\|adminwithpolicy\|restricted\|decrypt/);
      });

      it('holds EK certificates in NV that chain to the CA root and certify the EKs', async () => {
        const s = swtpm();
        const dir = await mkdtemp(join(scratch, `${transport}-`));
        for (const [nv, handle, copy] of [
          [EK_RSA_CERT_NV, EK_RSA_HANDLE, s.state.ekCertRsaDer],
          [EK_P256_CERT_NV, EK_P256_HANDLE, s.state.ekCertP256Der],
        ] as const) {
          const der = (await exec('tpm2_nvread', ['-T', s.tctiForTpm2Tools, hex(nv), '-C', 'o'])).stdout;
          assert.deepEqual(der, await readFile(copy), 'NV contents equal the state directory copy');
          const pem = await writePem(dir, `${hex(nv)}.pem`, der);
          const verified = await exec('openssl', ['verify', '-CAfile', s.caRootPem, '-untrusted', s.caIntermediatePem, pem]);
          assert.match(verified.stdout.toString(), /: OK/);
          const ekPem = join(dir, `${hex(handle)}.pem`);
          await exec('tpm2_readpublic', ['-T', s.tctiForTpm2Tools, '-c', hex(handle), '-f', 'pem', '-o', ekPem]);
          assert.deepEqual(
            spkiDer(new X509Certificate(der).publicKey),
            spkiDer(createPublicKey(await readFile(ekPem))),
            `certificate in ${hex(nv)} is for the key at ${hex(handle)}`,
          );
        }
        // The P-256 certificate is on the right curve, and the CA root is not the intermediate.
        assert.equal(new X509Certificate(await readFile(s.state.ekCertP256Der)).publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
        assert.notDeepEqual(await readFile(s.caRootPem), await readFile(s.caIntermediatePem));
      });

      it('power cycles: PCRs reset, TPM_RC_INITIALIZE until TPM2_Startup', async () => {
        const s = swtpm();
        await s.tpm2('pcrextend', [`16:sha256=${'ab'.repeat(32)}`]);
        const pcr16 = async () => (await s.tpm2('pcrread', ['sha256:16'])).stdout.toString();
        assert.doesNotMatch(await pcr16(), /0x0{64}/);
        await s.powerCycle();
        assert.equal(rcOf(await rawExchange(s.address, GET_RANDOM_16)), 0x100, 'TPM_RC_INITIALIZE');
        assert.equal(rcOf(await rawExchange(s.address, STARTUP_CLEAR)), 0);
        assert.equal(rcOf(await rawExchange(s.address, GET_RANDOM_16)), 0);
        assert.match(await pcr16(), /16: 0x0{64}/);
        // With { startup: true } the harness starts the TPM itself, as firmware would.
        await s.powerCycle({ startup: true });
        assert.equal(rcOf(await rawExchange(s.address, GET_RANDOM_16)), 0);
      });
    });
  }

  describe('stop()', () => {
    for (const transport of TRANSPORTS) {
      it(`leaves no process, zombie or temporary directory behind (${transport})`, async () => {
        const dirsBefore = liveTempDirs();
        const s = await startSwtpm({ transport });
        const created = liveTempDirs().filter((d) => !dirsBefore.includes(d));
        assert.ok(created.length >= 2, 'a run directory and a state directory');
        assert.equal(s.pids.length, transport === 'device' ? 2 : 1);
        assert.ok(s.pids.every(isProcessRunning));
        await s.stop();
        for (const pid of s.pids) assert.ok(!existsSync(`/proc/${pid}`), `process ${pid} is gone and reaped`);
        for (const dir of created) assert.ok(!existsSync(dir), `${dir} removed`);
        assert.ok(!existsSync(s.stateDir));
        assert.deepEqual(liveTempDirs(), dirsBefore);
        await s.stop(); // idempotent
      });
    }

    it('keeps a state passed in, so swtpm can be restarted on it', async () => {
      const state = await provisionSwtpmState();
      try {
        const first = await startSwtpm({ state, transport: 'unix' });
        await first.tpm2('nvdefine', ['0x01500000', '-C', 'o', '-s', '8', '-a', 'ownerread|ownerwrite|no_da']);
        await first.stop();
        assert.ok(existsSync(state.stateDir));
        const second = await startSwtpm({ state, transport: 'tcp' });
        try {
          const list = (await second.tpm2('getcap', ['handles-nv-index'])).stdout.toString();
          assert.match(list, /0x1500000/);
        } finally {
          await second.stop();
        }
      } finally {
        await state.dispose();
      }
      assert.ok(!existsSync(state.dir));
    });

    it('the exit safety net kills and cleans up what a crashed test left running', async function () {
      this.timeout(30_000);
      const fixture = fileURLToPath(new URL('./fixtures/swtpm.ts', import.meta.url));
      const script = `
        import { startSwtpm, liveTempDirs } from ${JSON.stringify(fixture)};
        const s = await startSwtpm({ transport: 'device' });
        console.log(JSON.stringify({ pids: s.pids, dirs: liveTempDirs() }));
        process.exit(3);`;
      const { pids, dirs } = await new Promise<{ pids: number[]; dirs: string[] }>((resolve, reject) => {
        execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], (error, stdout, stderr) => {
          if (error?.code !== 3) reject(new Error(`child: ${String(error?.message)}\n${stderr}`));
          else resolve(JSON.parse(stdout) as { pids: number[]; dirs: string[] });
        });
      });
      assert.ok(dirs.length >= 3, 'golden, state and run directories');
      for (const dir of dirs) assert.ok(!existsSync(dir), `${dir} removed`);
      // The orphans are SIGKILLed; PID 1 reaps them (~2 s here).
      const deadline = Date.now() + 10_000;
      while (pids.some((pid) => existsSync(`/proc/${pid}`)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      for (const pid of pids) assert.ok(!existsSync(`/proc/${pid}`), `process ${pid} is gone`);
    });
  });

  describe('dictionary-attack lockout', () => {
    it('three fixture runs in a row on one state using a non-noDA key never count towards lockout', async () => {
      const state = await provisionSwtpmState();
      try {
        for (const transport of TRANSPORTS) {
          const s = await startSwtpm({ state, transport });
          try {
            assert.deepEqual(await lockoutState(s), { counter: 0, inLockout: false });
            await useNonNoDaKey(s, scratch);
          } finally {
            await s.stop();
          }
        }
        const s = await startSwtpm({ state });
        try {
          assert.deepEqual(await lockoutState(s), { counter: 0, inLockout: false });
        } finally {
          await s.stop();
        }
      } finally {
        await state.dispose();
      }
    });

    it('an abrupt power cycle after using a non-noDA key counts; an orderly one does not', async () => {
      const s = await startSwtpm();
      try {
        await useNonNoDaKey(s, scratch);
        await s.powerCycle({ orderly: true, startup: true });
        assert.deepEqual(await lockoutState(s), { counter: 0, inLockout: false });
        await useNonNoDaKey(s, scratch);
        await s.powerCycle({ startup: true });
        assert.deepEqual(await lockoutState(s), { counter: 1, inLockout: false });
      } finally {
        await s.stop();
      }
    });
  });

  describe("flags: 'needs-init'", () => {
    const swtpm = withSwtpm({ flags: 'needs-init', transport: 'device' });

    it('is powered off until powerCycle(), then needs TPM2_Startup', async () => {
      const s = swtpm();
      assert.equal(rcOf(await rawExchange(s.address, GET_RANDOM_16)), 0x101, 'TPM_RC_FAILURE before CMD_INIT');
      await s.powerCycle();
      assert.equal(rcOf(await rawExchange(s.address, GET_RANDOM_16)), 0x100, 'TPM_RC_INITIALIZE before Startup');
      assert.equal(rcOf(await rawExchange(s.address, STARTUP_CLEAR)), 0);
      assert.equal(rcOf(await rawExchange(s.address, GET_RANDOM_16)), 0);
    });
  });

  describe('provisionSwtpmState()', () => {
    it('activates only the requested PCR banks', async () => {
      const s = await startSwtpm({ pcrBanks: ['sha256'] });
      try {
        const pcrs = (await s.tpm2('getcap', ['pcrs'])).stdout.toString();
        assert.match(pcrs, /sha256: \[ 0, 1, 2/);
        assert.match(pcrs, /sha1: \[ \]/);
      } finally {
        await s.stop();
      }
    });

    it('copies into a caller-owned directory that dispose() leaves alone and openSwtpmState() reopens', async () => {
      const dir = join(scratch, 'owned-state');
      const state = await provisionSwtpmState({ dir });
      assert.equal(state.temporary, false);
      assert.ok(existsSync(join(dir, 'tpm', 'tpm2-00.permall')));
      await state.dispose();
      assert.ok(existsSync(state.caRootPem));
      await assert.rejects(provisionSwtpmState({ dir }), /already holds a TPM state/);
      const reopened = await openSwtpmState(dir);
      assert.deepEqual(reopened.pcrBanks, ['sha1', 'sha256']);
      assert.equal(reopened.temporary, false);
      await assert.rejects(openSwtpmState(scratch), /does not hold a provisioned state/);
      await assert.rejects(provisionSwtpmState({ pcrBanks: ['md5'] }), /pcrBanks/);
    });
  });
});
