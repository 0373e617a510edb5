/**
 * Test doubles for the layers above the wire: an in-process scripted transport, helpers that build
 * TPM responses from command specs, and a fake swtpm socket server (Unix socket) whose behaviour a
 * test scripts command by command. Used by the transport, client and property tests; the real TPM
 * is swtpm (fixtures/swtpm.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Reader, Writer, TPM_ST, type AnyCommandSpec, type Transport } from '../../src/index.js';

/** The parts of a raw command (Part 1, 18.2). */
export interface RawCommand {
  tag: number;
  size: number;
  code: number;
  bytes: Uint8Array;
}

export function parseCommand(cmd: Uint8Array): RawCommand {
  const dv = new DataView(cmd.buffer, cmd.byteOffset, cmd.byteLength);
  return { tag: dv.getUint16(0), size: dv.getUint32(2), code: dv.getUint32(6), bytes: cmd };
}

/** Decode a command built from `spec`: its handles and parameters (the authorization area is skipped). */
export function decodeCommand<C extends AnyCommandSpec>(spec: C, cmd: Uint8Array): { handles: number[]; params: Record<string, unknown> } {
  const r = new Reader(cmd);
  const tag = r.u16();
  r.u32();
  r.u32();
  const handles = spec.handles.map(() => r.u32());
  if (tag === TPM_ST.SESSIONS) r.bytesN(r.u32());
  const params = spec.params.decode(r) as Record<string, unknown>;
  r.done('command');
  return { handles, params };
}

/** A response with only a header (an error, or a command without response parameters). */
export function rcResponse(rc: number): Uint8Array {
  const w = new Writer();
  w.u16(TPM_ST.NO_SESSIONS).u32(10).u32(rc);
  return w.finish();
}

/**
 * A successful response to `spec`: response handles, then the response parameters encoded with the
 * spec's own codec. With `sessions` > 0, the SESSIONS layout with that many empty password
 * acknowledgements (nonce empty, continueSession, hmac empty).
 */
export function okResponse<C extends AnyCommandSpec>(
  spec: C,
  values: Record<string, unknown>,
  opts: { handles?: number[]; sessions?: number } = {},
): Uint8Array {
  const pw = new Writer();
  spec.response.encode(pw, values);
  const params = pw.finish();
  const sessions = opts.sessions ?? (spec.handles.some((h) => h.auth) ? 1 : 0);
  const w = new Writer();
  w.u16(sessions > 0 ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS).u32(0).u32(0);
  for (const h of opts.handles ?? []) w.u32(h);
  if (sessions > 0) w.u32(params.length);
  w.bytes(params);
  for (let i = 0; i < sessions; i++) w.u16(0).u8(1).u16(0);
  const out = w.finish();
  new DataView(out.buffer).setUint32(2, out.length);
  return out;
}

/** A transport whose every response comes from `handler` (no queue, no retry: what execute() sees). */
export class ScriptedTransport implements Transport {
  readonly sent: Uint8Array[] = [];
  closed = false;
  constructor(private readonly handler: (cmd: RawCommand) => Uint8Array | Promise<Uint8Array>) {}
  async send(command: Uint8Array): Promise<Uint8Array> {
    this.sent.push(command.slice());
    return this.handler(parseCommand(command));
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  /** Command codes sent so far. */
  codes(): number[] {
    return this.sent.map((c) => parseCommand(c).code);
  }
}

/** GetRandom response with `n` bytes (0xAB, 0xAC, ...). */
export function getRandomResponse(n: number, first = 0xab): Uint8Array {
  const w = new Writer();
  w.u16(TPM_ST.NO_SESSIONS).u32(12 + n).u32(0).u16(n);
  for (let i = 0; i < n; i++) w.u8((first + i) & 0xff);
  return w.finish();
}

// ---- a fake swtpm socket server --------------------------------------------------------------

export interface FakeConnection {
  /** Write raw bytes to the client. */
  write(b: Uint8Array): void;
  /** Close the connection (half a response can be written first). */
  end(): void;
  destroy(): void;
}

export interface FakeServer {
  /** `swtpm:path=...` of the data socket. */
  readonly address: string;
  readonly path: string;
  /** Every complete command received, in order. */
  readonly commands: Uint8Array[];
  /** The size of every 'data' event (to check that each command arrived in one piece). */
  readonly dataEvents: Uint8Array[];
  /** Connections accepted so far. */
  readonly connections: number;
  /** Problems the server noticed (e.g. a second command before the first was answered). */
  readonly violations: string[];
  close(): Promise<void>;
}

/**
 * A Unix-socket server speaking raw TPM framing. `onCommand` answers (or not) each complete command;
 * it gets the connection to write to. The server records a violation when a 'data' event holds anything
 * but exactly one command, or when a command arrives while the previous one is unanswered.
 */
export async function fakeSwtpmServer(
  onCommand: (cmd: RawCommand, conn: FakeConnection, index: number) => void,
): Promise<FakeServer> {
  const dir = await mkdtemp(join(tmpdir().length > 60 ? '/tmp' : tmpdir(), 'tpmds-fake-'));
  const path = join(dir, 'sock');
  const commands: Uint8Array[] = [];
  const dataEvents: Uint8Array[] = [];
  const violations: string[] = [];
  const sockets = new Set<net.Socket>();
  const state = { connections: 0 };
  const server = net.createServer((sock) => {
    state.connections++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    let awaitingAnswer = false;
    const conn: FakeConnection = {
      write: (b) => {
        awaitingAnswer = false;
        sock.write(b);
      },
      end: () => sock.end(),
      destroy: () => sock.destroy(),
    };
    sock.on('data', (d: Buffer) => {
      const chunk = new Uint8Array(d);
      dataEvents.push(chunk);
      if (chunk.length < 10 || parseCommand(chunk).size !== chunk.length) {
        violations.push(`a data event of ${chunk.length} bytes is not exactly one command`);
        return;
      }
      if (awaitingAnswer) violations.push(`command #${commands.length} arrived before the previous one was answered`);
      awaitingAnswer = true;
      commands.push(chunk);
      onCommand(parseCommand(chunk), conn, commands.length - 1);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  return {
    address: `swtpm:path=${path}`,
    path,
    commands,
    dataEvents,
    violations,
    get connections() {
      return state.connections;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
