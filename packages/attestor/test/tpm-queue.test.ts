// Issue 16 section 2, "share the TPM fairly": the order in which flows of different callers reach
// the TPM, counted in TPM commands (never timed). The TPM is swtpm behind a transport that records
// every command code it passes on and can hold the TPM busy.
import assert from 'node:assert/strict';
import { TPM_CC, openTransport, type Transport } from '@tpmds/tpm2-wire';
import { startSwtpm, type SwtpmInstance } from '../../tpm2-wire/test/fixtures/swtpm.js';
import { AttestorTpm, BACKGROUND, INTERNAL, TpmFlowError, type WrappedKey } from '../src/tpm/attestor-tpm.js';
import { FairQueue, QueueRejection } from '../src/tpm/fair-queue.js';
import * as grpc from '@grpc/grpc-js';
import { KeyStore } from '../src/keystore.js';
import { TpmBackend } from '../src/tpm-backend.js';
import { startFake, tempDir } from './helpers.js';

/** What reached the TPM, in order: command codes, and markers the test writes between them. */
type Entry = number | string;

function recording(address: string, log: Entry[], gate: { hold?: Promise<void> }): () => Promise<Transport> {
  return async () => {
    const inner = await openTransport(address);
    return {
      async send(command: Uint8Array): Promise<Uint8Array> {
        log.push(new DataView(command.buffer, command.byteOffset).getUint32(6));
        if (gate.hold) await gate.hold;
        return inner.send(command);
      },
      close: () => inner.close(),
      get startups() {
        return inner.startups;
      },
    };
  };
}

async function rejected(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => assert.fail('expected a rejection'), (e: unknown) => e);
}

describe('AttestorTpm queue: fair between callers (counted in TPM commands)', function () {
  this.timeout(120_000);
  let swtpm: SwtpmInstance;
  let log: Entry[];
  const gate: { hold?: Promise<void> } = {};
  let tpm: AttestorTpm;
  let ak: WrappedKey;
  let key: WrappedKey;

  before(async function () {
    swtpm = await startSwtpm({ transport: 'unix' });
    log = [];
    tpm = new AttestorTpm(swtpm.address, { openTransport: recording(swtpm.address, log, gate) });
    ak = (await tpm.createAk('ecc')).key;
    key = (await tpm.createKey(ak, 'ecc')).key;
  });
  after(async function () {
    await tpm?.close();
    await swtpm?.stop();
  });

  it("one caller's 32 queued Quotes delay another caller's Sign by at most the running flow", async () => {
    log.length = 0;
    const nonce = new Uint8Array(16).fill(7);
    let sawQuote!: () => void;
    const quoting = new Promise<void>((r) => (sawQuote = r));
    const quotes = Array.from({ length: 32 }, () => tpm.quote(ak, nonce, { identity: 'pod-a', method: 'Quote' }));
    // Enqueue the Sign while A's first Quote flow is on the TPM (after its first TPM2_Quote).
    const poll = setInterval(() => log.includes(TPM_CC.Quote) && sawQuote(), 1);
    await quoting;
    clearInterval(poll);
    log.push('enqueue Sign');
    const sign = tpm.sign(key, new Uint8Array([1, 2, 3]), [], { identity: 'pod-b', method: 'Sign' });
    await Promise.all([sign, ...quotes]);

    const at = log.indexOf('enqueue Sign');
    const signAt = log.indexOf(TPM_CC.Sign);
    assert.ok(at >= 0 && signAt > at);
    const between = log.slice(at + 1, signAt);
    // Both keys stay loaded (object cache), so a flow is just its commands: fewer TPM2_Quote
    // between the Sign's enqueue and its TPM2_Sign than one Quote flow has means no further Quote
    // flow of pod-a got in first: the commands before it are the rest of the one that was running.
    assert.ok(!between.includes(TPM_CC.Load), 'both keys are hot');
    const quotesBetween = between.filter((c) => c === TPM_CC.Quote).length;
    const quotesPerFlow = log.filter((c) => c === TPM_CC.Quote).length / 32;
    assert.ok(quotesBetween < quotesPerFlow, `${quotesBetween} TPM2_Quote between, ${quotesPerFlow} per flow`);
    assert.ok(between.length < 20, `${between.length} TPM commands between the Sign's enqueue and its TPM2_Sign`);
    // And pod-a's Quotes all ran, after the Sign too.
    assert.equal(log.filter((c) => c === TPM_CC.Quote).length, 32 * quotesPerFlow);
    assert.ok(log.lastIndexOf(TPM_CC.Quote) > signAt);
  });

  it('a call cancelled while it waits never reaches the TPM', async () => {
    log.length = 0;
    let release!: () => void;
    gate.hold = new Promise<void>((r) => (release = r));
    const busy = tpm.sign(key, new Uint8Array([9]), [], { identity: 'pod-a', method: 'Sign' });
    const ac = new AbortController();
    const cancelled = tpm.sign(key, new Uint8Array([8]), [], { identity: 'pod-b', method: 'Sign', signal: ac.signal });
    ac.abort();
    const e = await rejected(cancelled);
    assert.ok(e instanceof TpmFlowError && e.code === 'CANCELLED', String(e));
    delete gate.hold;
    release();
    await busy;
    assert.equal(log.filter((c) => c === TPM_CC.Sign).length, 1, 'only the running Sign reached the TPM');
    // A signal that fired before the call is refused at once.
    log.length = 0;
    assert.ok((await rejected(tpm.sign(key, new Uint8Array([7]), [], { identity: 'pod-b', method: 'Sign', signal: ac.signal }))) instanceof TpmFlowError);
    assert.deepEqual(log, []);
  });

  it('--tpm-queue-limit: 256 calls wait behind the running one, the 257th is answered RESOURCE_EXHAUSTED', async () => {
    await tpm.close(); // swtpm serves one connection at a time
    const rejects: string[] = [];
    const limited = new AttestorTpm(swtpm.address, { openTransport: recording(swtpm.address, [], gate), queue: { onReject: (r) => rejects.push(r) } });
    try {
      assert.equal(await limited.ready(), true);
      let release!: () => void;
      gate.hold = new Promise<void>((r) => (release = r));
      const running = limited.ready();
      const waiting = Array.from({ length: 256 }, (_, i) => limited.ready().then(() => i));
      await new Promise((r) => setImmediate(r));
      assert.equal(limited.queueDepth, 256);
      const e = await rejected(limited.ek('ecc', { identity: 'pod-c', method: 'GetEKCert' }));
      assert.ok(e instanceof TpmFlowError && e.code === 'RESOURCE_EXHAUSTED', String(e));
      assert.match(e.message, /queue is full \(256 calls waiting\)/);
      assert.deepEqual(rejects, ['full']);
      delete gate.hold;
      release();
      assert.equal(await running, true);
      assert.equal((await Promise.all(waiting)).length, 256);
      assert.equal(limited.queueDepth, 0);
    } finally {
      delete gate.hold;
      await limited.close();
    }
  });
});

describe('TPM queue through gRPC: a call whose deadline passes while it waits never reaches the TPM', function () {
  this.timeout(120_000);
  let swtpm: SwtpmInstance;
  let state: ReturnType<typeof tempDir>;

  before(async () => {
    swtpm = await startSwtpm({ transport: 'unix' });
    state = tempDir();
  });
  after(async () => {
    await swtpm?.stop();
    state?.cleanup();
  });

  it('Sign with a 300 ms deadline behind a held flow: DEADLINE_EXCEEDED for the caller, no TPM2_Sign, counted as cancelled', async () => {
    const log: Entry[] = [];
    const gate: { hold?: Promise<void> } = {};
    const rejections: string[] = [];
    const tpm = new AttestorTpm(swtpm.address, { openTransport: recording(swtpm.address, log, gate), queue: { onReject: (r) => rejections.push(r) } });
    const backend = new TpmBackend(tpm, await KeyStore.open(state.dir), {});
    const t = await startFake({ backend });
    try {
      await t.client.getAK({ uid: 'u', keyType: 'ecc' });
      await t.client.newKey({ uid: 'u', kid: 'k', keyType: 'ecc' });
      let release!: () => void;
      gate.hold = new Promise<void>((r) => (release = r));
      log.length = 0;
      const held = t.client.getEKCert('ecc'); // its flow is on the TPM, stuck at the gate
      while (log.length === 0) await new Promise((r) => setTimeout(r, 5));
      const e = await rejected(t.client.sign({ uid: 'u', kid: 'k', data: new Uint8Array([1]) }, { deadline: Date.now() + 300 }));
      assert.equal((e as { code?: number }).code, grpc.status.DEADLINE_EXCEEDED);
      await new Promise((r) => setTimeout(r, 50)); // the server's own deadline timer fires too
      delete gate.hold;
      release();
      await held;
      assert.ok(!log.includes(TPM_CC.Sign), 'the expired Sign never reached the TPM');
      assert.deepEqual(rejections, ['cancelled']);
    } finally {
      await t.stop();
    }
  });
});

describe('FairQueue', () => {
  /** Runs flows that finish when the test says; records the order they start in. */
  function harness(limit = 16) {
    const started: string[] = [];
    const finish: (() => void)[] = [];
    const q = new FairQueue({ limit });
    const flow = (identity: string | typeof BACKGROUND | typeof INTERNAL, name: string, signal?: AbortSignal) =>
      q.run({ identity, method: name, signal }, () => {
        started.push(name);
        return new Promise<void>((r) => finish.push(r));
      });
    const step = async (): Promise<void> => {
      finish.shift()?.();
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    };
    return { q, started, flow, step };
  }

  it('serves callers round-robin, one flow each, and background work only when no caller waits', async () => {
    const h = harness();
    void h.flow('a', 'a1');
    void h.flow(BACKGROUND, 'bg1');
    for (const n of ['a2', 'a3', 'a4']) void h.flow('a', n);
    void h.flow('b', 'b1');
    void h.flow('b', 'b2');
    void h.flow(INTERNAL, 'ready');
    void h.flow('c', 'c1');
    for (let i = 0; i < 9; i++) await h.step();
    assert.deepEqual(h.started, ['a1', 'b1', 'ready', 'c1', 'a2', 'b2', 'a3', 'a4', 'bg1']);
  });

  it('a caller that was just served goes behind a newcomer', async () => {
    const h = harness();
    void h.flow('a', 'a1');
    void h.flow('a', 'a2');
    void h.flow('a', 'a3');
    void h.flow('b', 'b1');
    await h.step();
    void h.flow('c', 'c1');
    for (let i = 0; i < 4; i++) await h.step();
    assert.deepEqual(h.started, ['a1', 'b1', 'a2', 'c1', 'a3']);
  });

  it('drops an aborted flow and refuses beyond the limit', async () => {
    const h = harness(2);
    void h.flow('a', 'a1');
    const ac = new AbortController();
    const dropped = h.flow('b', 'b1', ac.signal);
    void h.flow('b', 'b2');
    const full = await rejected(h.flow('c', 'c1'));
    assert.ok(full instanceof QueueRejection && full.reason === 'full');
    ac.abort();
    const e = await rejected(dropped);
    assert.ok(e instanceof QueueRejection && e.reason === 'cancelled');
    assert.equal(h.q.depth, 1);
    for (let i = 0; i < 2; i++) await h.step();
    assert.deepEqual(h.started, ['a1', 'b2']);
  });
});
