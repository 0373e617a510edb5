/**
 * The benchmark's callers, in a worker thread of their own: deployed, the attestor's callers are
 * other processes, so their gRPC and TLS work must not run on the event loop of the servers
 * measured. run.ts posts one job at a time and gets the latencies (ms) or the rate (calls/s) back.
 */
import * as grpc from '@grpc/grpc-js';
import { parentPort } from 'node:worker_threads';
import { AttestorClient } from '@tpmds/protocol';

/** What run.ts asks for: connect a named client, then time Sign calls through it. */
export type CallerJob =
  | { op: 'connect'; name: string; address: string; caPem: string; keyPem: string; certPem: string; targetName: string }
  | { op: 'latencies'; name: string; uid: string; kid: string; n: number }
  | { op: 'quoteLatencies'; name: string; uid: string; nonce: Uint8Array; n: number }
  | { op: 'throughput'; name: string; uid: string; kid: string; callers: number; total: number }
  | { op: 'disconnect'; name: string }
  | { op: 'close' };

const port = parentPort;
if (port === null) throw new Error('callers.ts runs as a worker thread of run.ts');
const clients = new Map<string, AttestorClient>();
const data = new Uint8Array(64).fill(1);

const client = (name: string): AttestorClient => {
  const c = clients.get(name);
  if (c === undefined) throw new Error(`no client named ${name}`);
  return c;
};

async function timed(n: number, call: () => Promise<unknown>): Promise<number[]> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await call();
    xs.push(performance.now() - t0);
  }
  return xs;
}

async function run(job: CallerJob): Promise<unknown> {
  switch (job.op) {
    case 'connect': {
      clients.get(job.name)?.close();
      const creds = grpc.credentials.createSsl(Buffer.from(job.caPem), Buffer.from(job.keyPem), Buffer.from(job.certPem));
      clients.set(job.name, new AttestorClient(job.address, creds, { 'grpc.ssl_target_name_override': job.targetName }));
      await client(job.name).sign({ uid: 'connect', kid: 'connect', data }).catch(() => undefined); // the TLS handshake, not timed
      return null;
    }
    case 'latencies': {
      const c = client(job.name);
      return timed(job.n, () => c.sign({ uid: job.uid, kid: job.kid, data }));
    }
    case 'quoteLatencies': {
      const c = client(job.name);
      return timed(job.n, () => c.quote({ uid: job.uid, nonce: job.nonce }));
    }
    case 'throughput': {
      const c = client(job.name);
      let next = 0;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: job.callers }, async () => {
          while (next++ < job.total) await c.sign({ uid: job.uid, kid: job.kid, data });
        }),
      );
      return job.total / ((performance.now() - t0) / 1000);
    }
    case 'disconnect':
      clients.get(job.name)?.close();
      clients.delete(job.name);
      return null;
    case 'close':
      for (const c of clients.values()) c.close();
      clients.clear();
      return null;
  }
}

port.on('message', (job: CallerJob) => {
  run(job).then(
    (result) => port.postMessage({ result }),
    (e: unknown) => port.postMessage({ error: e instanceof Error ? e.message : String(e) }),
  );
});
