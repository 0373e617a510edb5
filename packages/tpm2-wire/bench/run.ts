/**
 * Benchmarks: the cost tpmds adds on top of the TPM, reported as ratios
 * against the raw TPM command time measured in the same run (these machines
 * are shared and noisy: absolute times mean little, ratios measured side by
 * side do). Raw = a hand-built command written to swtpm's socket and its
 * response read back, no library involved.
 *
 *   pnpm bench [--iterations N]
 */
import net from 'node:net';
import {
  TPM_ALG, TPM_RH, TPMA_SESSION, hash, marshal, openTpm, srkTemplateEccP256, signingKeyTemplate, TPM2, TPM_ST,
  type Tpm,
} from '../src/index.js';
import { Writer } from '../src/bytes/writer.js';
import { startSwtpm } from '../test/fixtures/swtpm.js';

const iterations = Number(process.argv[process.argv.indexOf('--iterations') + 1]) || 300;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function time(n: number, f: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < Math.min(20, n); i++) await f(); // warm-up
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await f();
    xs.push(performance.now() - t0);
  }
  return median(xs);
}

/** A raw client: one socket, one command in one write, read one response. */
async function rawClient(path: string) {
  const sock = net.createConnection(path);
  await new Promise((res, rej) => sock.once('connect', res).once('error', rej));
  sock.setNoDelay(true);
  let buf = Buffer.alloc(0);
  let waiter: ((b: Buffer) => void) | undefined;
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    if (buf.length >= 6 && buf.length >= buf.readUInt32BE(2) && waiter) {
      const w = waiter;
      waiter = undefined;
      const out = buf;
      buf = Buffer.alloc(0);
      w(out);
    }
  });
  return {
    send(cmd: Uint8Array): Promise<Buffer> {
      return new Promise((res) => {
        waiter = res;
        sock.write(cmd);
      });
    },
    close() {
      sock.destroy();
    },
  };
}

function rawSignCommand(keyHandle: number, digest: Uint8Array): Uint8Array {
  const auth = new Writer().u32(0x40000009).u16(0).u8(1).u16(0).finish();
  const params = marshal(TPM2.Sign.params, { digest, inScheme: { scheme: TPM_ALG.NULL }, validation: { tag: 0x8024, hierarchy: TPM_RH.NULL, digest: new Uint8Array(0) } });
  const w = new Writer().u16(TPM_ST.SESSIONS).u32(0).u32(TPM2.Sign.code).u32(keyHandle).u32(auth.length).bytes(auth).bytes(params);
  const b = w.finish();
  new DataView(b.buffer).setUint32(2, b.length);
  return b;
}

const sw = await startSwtpm({ transport: 'unix' });
const path = sw.address.slice('swtpm:path='.length);
const rows: { name: string; raw: number; ours: number }[] = [];
let tpm: Tpm | undefined;
try {
  // Set up a loaded ECC signing key with the library, then measure raw vs library on the same TPM.
  tpm = await openTpm(sw.address);
  const srk = await tpm.createPrimary(TPM_RH.OWNER, srkTemplateEccP256());
  const k = await tpm.create(srk.handle, signingKeyTemplate('ecc'));
  const key = await tpm.load(srk.handle, k.private, k.public);
  const digest = hash(TPM_ALG.SHA256, new Uint8Array(32));
  const t = tpm;

  // The library and the raw client take turns on the one data connection swtpm serves.
  const libGetRandom = await time(iterations, () => t.getRandom(32));
  const libSign = await time(iterations, () => t.sign(key.handle, digest));
  const session = await t.startAuthSession({ salt: { handle: srk.handle, public: srk.public } });
  session.with(TPMA_SESSION.decrypt | TPMA_SESSION.encrypt);
  const libSignSession = await time(iterations, () => t.sign(key.handle, digest, { sessions: [session] }));
  await t.flushContext(session.handle);
  await t.close();
  tpm = undefined;

  const raw = await rawClient(path);
  const getRandomCmd = Uint8Array.from([0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x7b, 0, 32]);
  const rawGetRandom = await time(iterations, () => raw.send(getRandomCmd));
  const signCmd = rawSignCommand(key.handle, digest);
  const rawSign = await time(iterations, () => raw.send(signCmd));
  raw.close();

  rows.push({ name: 'GetRandom(32)', raw: rawGetRandom, ours: libGetRandom });
  rows.push({ name: 'Sign ECDSA P-256 (password session)', raw: rawSign, ours: libSign });
  rows.push({ name: 'Sign ECDSA P-256 (salted HMAC session, encrypt+decrypt)', raw: rawSign, ours: libSignSession });

  tpm = await openTpm(sw.address);
  await tpm.flushContext(key.handle);
  await tpm.flushContext(srk.handle);
} finally {
  await tpm?.close();
  await sw.stop();
}

console.log(`tpmds benchmarks (median of ${iterations}; ratio = library time / raw TPM command time in this run)\n`);
console.log('operation'.padEnd(58) + 'raw ms'.padStart(9) + 'ours ms'.padStart(9) + 'ratio'.padStart(8));
for (const r of rows) {
  console.log(r.name.padEnd(58) + r.raw.toFixed(3).padStart(9) + r.ours.toFixed(3).padStart(9) + `${(r.ours / r.raw).toFixed(2)}x`.padStart(8));
}
