// Issue 12, Quote: the PCR values last read are kept and proven by the quotes themselves, counted in
// TPM commands (never timed). An unchanged TPM costs one TPM2_Quote per bank and no TPM2_PCR_Read;
// an extend (between Quotes, or between a quote and its read), a TPM power cycle: read again, and
// the answer always verifies (quoted again when a PCR changed between the quote and the read).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { TPM_ALG, TPM_CC, TPM_RH, hash, openTpm, openTransport, signingKeyTemplate, srkTemplateEccP256, toHex, type Tpm, type Transport } from '@tpmds/tpm2-wire';
import { withSwtpm, type SwtpmInstance } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { AttestorTpm } from '../src/tpm/attestor-tpm.js';
import { TpmBackend } from '../src/tpm-backend.js';
import { KeyStore } from '../src/keystore.js';
import { startFake, tempDir, type Started } from './helpers.js';
import { checkAk, checkNewKey, checkQuote, expectStatus, type CheckedAk, type CheckedQuote } from './e2e-support.js';
import { startCountedAttestor } from './fixtures/counted.js';

const BANKS = [TPM_ALG.SHA1, TPM_ALG.SHA256];
/** The debug PCR: extended by the tests, reset by a power cycle. */
const PCR = 16;

function commandCode(command: Uint8Array): number {
  return new DataView(command.buffer, command.byteOffset, command.byteLength).getUint32(6);
}

/**
 * An attestor (gRPC server, TpmBackend, AttestorTpm) and an "other process" sharing one swtpm
 * connection (swtpm serves one client at a time). `beforeCommand` runs before each command the
 * attestor sends (the other process may extend a PCR there); `commands` are the attestor's.
 */
interface Rig {
  att: Started;
  other: Tpm;
  commands: number[];
  beforeCommand: ((cc: number) => Promise<void>) | undefined;
  ak: CheckedAk;
  uid: string;
  quote(): Promise<CheckedQuote>;
  count(cc: number): number;
  close(): Promise<void>;
}

async function rig(swtpm: SwtpmInstance, keyType: 'rsa' | 'ecc'): Promise<Rig> {
  const shared = await openTransport(swtpm.address);
  const commands: number[] = [];
  const r = { commands, beforeCommand: undefined } as Partial<Rig> as Rig;
  const attestorTransport: Transport = {
    send: async (c) => {
      const cc = commandCode(c);
      await r.beforeCommand?.(cc);
      commands.push(cc);
      return shared.send(c);
    },
    close: () => Promise.resolve(),
    get startups() {
      return shared.startups;
    },
  };
  const other = await openTpm(undefined, { transport: { send: (c) => shared.send(c), close: () => Promise.resolve(), get startups() { return shared.startups; } } });
  const state = tempDir();
  const tpm = new AttestorTpm(swtpm.address, { openTransport: () => Promise.resolve(attestorTransport) });
  const backend = new TpmBackend(tpm, await KeyStore.open(state.dir), {});
  // No readiness polls (their TPM2_GetRandom) between the commands counted.
  const att = await startFake({ backend, start: { readinessPollMs: 3_600_000 } });
  const uid = `q-${keyType}`;
  const ak = checkAk((await att.client.getAK({ uid, keyType })).ak, keyType);
  return Object.assign(r, {
    att,
    other,
    ak,
    uid,
    async quote() {
      const nonce = new Uint8Array(randomBytes(32));
      return checkQuote((await att.client.quote({ uid, nonce })).platformAttestation, ak, nonce, BANKS);
    },
    count: (cc: number) => commands.filter((c) => c === cc).length,
    async close() {
      await att.stop();
      await other.close();
      await shared.close();
      state.cleanup();
    },
  });
}

/** `PCR` of each bank in a verified quote. */
function pcrOf(q: CheckedQuote): Map<number, Uint8Array> {
  return new Map(BANKS.map((b) => [b, q.pcrs.get(b)!.get(PCR)!]));
}

/** Extends `PCR` in every bank with the digests of `data`; returns each bank's new value, from its value `before`. */
async function extend(tpm: Tpm, before: Map<number, Uint8Array>, data: Uint8Array): Promise<Map<number, Uint8Array>> {
  await tpm.pcrExtend(PCR, BANKS.map((hashAlg) => ({ hashAlg, digest: hash(hashAlg, data) })));
  return new Map(BANKS.map((b) => [b, hash(b, before.get(b)!, hash(b, data))]));
}

function assertPcr(q: CheckedQuote, expected: Map<number, Uint8Array>, what: string): void {
  for (const [bank, value] of expected) assert.equal(toHex(q.pcrs.get(bank)!.get(PCR)!), toHex(value), `${what}: PCR ${PCR} of bank 0x${bank.toString(16)}`);
}

/** Another process flushes everything the rig's attestor keeps loaded and loads its own signing keys, which take those handle numbers. */
async function takeOverHandles(r: Rig): Promise<void> {
  const ours = (await r.other.getLoadedHandles()).filter((h) => h >>> 24 === 0x80);
  for (const h of await r.other.getLoadedHandles()) await r.other.flushContext(h);
  const srk = await r.other.createPrimary(TPM_RH.OWNER, srkTemplateEccP256());
  const foreign = [srk.handle];
  for (const keyType of ['ecc', 'rsa'] as const) {
    const c = await r.other.create(srk.handle, signingKeyTemplate(keyType));
    foreign.push((await r.other.load(srk.handle, c.private, c.public)).handle);
  }
  assert.ok(ours.some((h) => foreign.includes(h)), `a foreign object took one of our handles (${ours.map((h) => h.toString(16))} vs ${foreign.map((h) => h.toString(16))})`);
}

describe('Quote: PCR values kept and proven by the quote (counted in TPM commands) @swtpm', function () {
  this.timeout(180_000);
  const swtpm = withSwtpm({ transport: 'unix' });

  it('repeated Quote RPCs with unchanged PCRs: one TPM2_Quote per active bank and no TPM2_PCR_Read (per-command metrics)', async () => {
    const t = await startCountedAttestor(swtpm().address);
    const count = t.count;
    try {
      for (const keyType of ['ecc', 'rsa'] as const) {
        const uid = `u-${keyType}`;
        const ak = checkAk((await t.client.getAK({ uid, keyType })).ak, keyType);
        const quote = async (): Promise<CheckedQuote> => {
          const nonce = new Uint8Array(randomBytes(20));
          return checkQuote((await t.client.quote({ uid, nonce })).platformAttestation, ak, nonce, BANKS);
        };
        const first = await quote();
        const before = { quote: count(TPM_CC.Quote), read: count(TPM_CC.PCR_Read) };
        const n = 10;
        for (let i = 0; i < n; i++) assert.deepEqual((await quote()).pcrs, first.pcrs);
        assert.equal(count(TPM_CC.Quote) - before.quote, n * BANKS.length, `${keyType}: one TPM2_Quote per bank per Quote RPC`);
        assert.equal(count(TPM_CC.PCR_Read) - before.read, 0, `${keyType}: no TPM2_PCR_Read`);
      }
    } finally {
      await t.stop();
    }
  });

  it('a PCR extended by another process between Quotes: the next Quote reads again, carries the new value and verifies; the one after reads nothing', async () => {
    const r = await rig(swtpm(), 'ecc');
    try {
      const first = await r.quote();
      r.commands.length = 0;
      await r.quote();
      assert.deepEqual(r.commands, [TPM_CC.Quote, TPM_CC.Quote], 'unchanged: the quotes alone');
      const expected = await extend(r.other, pcrOf(first), new Uint8Array([1, 2, 3]));
      r.commands.length = 0;
      const after = await r.quote();
      assertPcr(after, expected, 'after the extend');
      assert.equal(r.count(TPM_CC.Quote), BANKS.length, 'quoted once');
      assert.ok(r.count(TPM_CC.PCR_Read) > 0, 'read again');
      r.commands.length = 0;
      assertPcr(await r.quote(), expected, 'next call');
      assert.deepEqual(r.commands, [TPM_CC.Quote, TPM_CC.Quote], 'the new values kept');
    } finally {
      await r.close();
    }
  });

  it('a PCR extended between the quote and the read: quoted again, the answer is consistent and verifies', async () => {
    const r = await rig(swtpm(), 'rsa');
    try {
      const first = await r.quote();
      // Make the kept values stale, then extend once more just before the read that follows.
      const stale = await extend(r.other, pcrOf(first), new Uint8Array([4]));
      let expected: Map<number, Uint8Array> | undefined;
      r.beforeCommand = async (cc) => {
        if (cc !== TPM_CC.PCR_Read) return;
        r.beforeCommand = undefined;
        expected = await extend(r.other, stale, new Uint8Array([5]));
      };
      r.commands.length = 0;
      const q = await r.quote(); // checkQuote: every quote verifies over the values sent
      assert.ok(expected, 'the race happened');
      assertPcr(q, expected, 'after the racing extend');
      const reads = r.count(TPM_CC.PCR_Read);
      assert.ok(reads > 0);
      const quotes = r.commands.filter((c) => c === TPM_CC.Quote || c === TPM_CC.PCR_Read).map((c) => (c === TPM_CC.Quote ? 'Q' : 'R')).join('');
      assert.equal(quotes, `QQ${'R'.repeat(reads)}QQ`, 'quote, read (raced), quote again: its digest is that of the values read');
      r.commands.length = 0;
      assertPcr(await r.quote(), expected, 'next call');
      assert.deepEqual(r.commands, [TPM_CC.Quote, TPM_CC.Quote]);
    } finally {
      await r.close();
    }
  });

  it('PCRs extended before every TPM2_Quote: UNAVAILABLE naming the race after 3 attempts, then fine once they rest', async () => {
    const r = await rig(swtpm(), 'ecc');
    try {
      await r.quote();
      let i = 0;
      r.beforeCommand = async (cc) => {
        if (cc === TPM_CC.Quote) await r.other.pcrExtend(PCR, BANKS.map((hashAlg) => ({ hashAlg, digest: hash(hashAlg, new Uint8Array([i++])) })));
      };
      r.commands.length = 0;
      const e = await expectStatus(r.att.client.quote({ uid: r.uid, nonce: new Uint8Array(8) }), grpc.status.UNAVAILABLE, 'PCRs that never rest');
      assert.match(e.details, /changed between TPM2_Quote and TPM2_PCR_Read in 3 attempts/);
      assert.equal(r.count(TPM_CC.Quote), 3 * BANKS.length, 'three attempts');
      r.beforeCommand = undefined;
      await r.quote();
    } finally {
      await r.close();
    }
  });

  it('the same during NewKey: the key is certified by the AK (qualifiedSigner and certified Name checked), not by the foreign key at its handle', async () => {
    const r = await rig(swtpm(), 'ecc');
    try {
      await r.quote();
      await takeOverHandles(r);
      r.commands.length = 0;
      checkNewKey(await r.att.client.newKey({ uid: r.uid, kid: 'after-takeover', keyType: 'ecc' }), r.ak, 'ecc');
      assert.ok(r.count(TPM_CC.Certify) >= 2, 'certified again after the foreign signer');
    } finally {
      await r.close();
    }
  });

  it('another process flushes the kept AK and loads its own signing keys at the handle numbers: the Quote is still by the AK (its qualifiedSigner checked) and verifies', async () => {
    const r = await rig(swtpm(), 'ecc');
    try {
      await r.quote();
      await takeOverHandles(r);
      r.commands.length = 0;
      await r.quote(); // checkQuote: signed by the AK
      assert.ok(r.count(TPM_CC.Quote) > BANKS.length, 'quoted again after the foreign signer');
      assert.ok(r.count(TPM_CC.Load) >= 1, 'the AK loaded again');
    } finally {
      await r.close();
    }
  });

  it('a TPM power cycle resets the PCRs: the next Quote reads again and verifies with the reset values', async () => {
    const r = await rig(swtpm(), 'rsa');
    try {
      const first = await r.quote();
      const extended = await extend(r.other, pcrOf(first), new Uint8Array([9]));
      assertPcr(await r.quote(), extended, 'extended');
      for (let cycle = 0; cycle < 2; cycle++) {
        await swtpm().powerCycle();
        r.commands.length = 0;
        const q = await r.quote();
        assertPcr(q, new Map(BANKS.map((b) => [b, new Uint8Array(b === TPM_ALG.SHA1 ? 20 : 32)])), `cycle ${cycle}: PCR ${PCR} reset`);
        // The first reset changed PCR 16: read again. After the second the PCRs equal the kept
        // (reset) values again, so the quotes prove them and nothing is read.
        if (cycle === 0) assert.ok(r.count(TPM_CC.PCR_Read) > 0, 'read again after the reset');
        else assert.equal(r.count(TPM_CC.PCR_Read), 0, 'the same reset values: proven by the quotes');
        r.commands.length = 0;
        await r.quote();
        assert.deepEqual(r.commands, [TPM_CC.Quote, TPM_CC.Quote], `cycle ${cycle}: the reset values kept`);
      }
    } finally {
      await r.close();
    }
  });
});
