// Shared test helpers: an in-process attestor on a fake backend and a client for it.
import * as grpc from '@grpc/grpc-js';
import { AttestorClient } from '@tpmds/protocol/proto';
import { mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig } from '../src/config.js';
import type { AttestorConfig } from '../src/config.js';
import { FakeBackend } from '../src/fake-backend.js';
import type { FakeBackendOptions } from '../src/fake-backend.js';
import type { AttestorBackend } from '../src/backend.js';
import { Logger } from '../src/log.js';
import { startAttestor } from '../src/server.js';
import type { RunningAttestor, StartOptions } from '../src/server.js';

/** Collects log lines as parsed JSON. */
export class MemoryLog {
  readonly lines: Record<string, unknown>[] = [];
  readonly raw: string[] = [];
  write(line: string): void {
    this.raw.push(line);
    this.lines.push(JSON.parse(line) as Record<string, unknown>);
  }
}

export function tempDir(prefix = 'tpmds-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Started {
  running: RunningAttestor;
  backend: AttestorBackend;
  client: AttestorClient;
  log: MemoryLog;
  config: AttestorConfig;
  stop(): Promise<void>;
}

/** Starts an insecure attestor on 127.0.0.1 ports chosen by the kernel. */
export async function startFake(
  opts: {
    backend?: AttestorBackend;
    fake?: FakeBackendOptions;
    config?: Partial<AttestorConfig>;
    start?: StartOptions;
    credentials?: grpc.ChannelCredentials;
    clientOptions?: Partial<grpc.ChannelOptions>;
  } = {},
): Promise<Started> {
  const state = tempDir();
  const log = new MemoryLog();
  const config: AttestorConfig = {
    ...defaultConfig(),
    listen: '127.0.0.1:0',
    healthListen: '127.0.0.1:0',
    insecure: true,
    stateDir: state.dir,
    logLevel: 'debug',
    ...opts.config,
  };
  const backend = opts.backend ?? new FakeBackend(opts.fake);
  let running: RunningAttestor;
  try {
    running = await startAttestor(config, backend, { logger: new Logger('debug', log), readinessPollMs: 50, ...opts.start });
  } catch (e) {
    state.cleanup();
    throw e;
  }
  const client = new AttestorClient(running.address, opts.credentials ?? grpc.credentials.createInsecure(), opts.clientOptions);
  return {
    running,
    backend,
    client,
    log,
    config,
    stop: async () => {
      client.close();
      await running.close();
      state.cleanup();
    },
  };
}

/** Resolves with the rejection of `p` (fails if it resolves). */
export async function rejection(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as grpc.ServiceError;
  }
  throw new Error('expected the call to fail');
}

/** Polls `fn` until it returns true or `ms` pass. */
export async function eventually(fn: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** GET http://ADDRESS/PATH (the attestor's health and metrics port): the status and the body. */
export function httpGet(address: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(`http://${address}${path}`, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}
