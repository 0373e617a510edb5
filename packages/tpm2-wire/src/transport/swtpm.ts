/**
 * `swtpm:` — swtpm's socket server (TCP or Unix socket), raw TPM framing on the
 * data channel. swtpm treats one read() as one command, so every command goes
 * out in a single write and is never pipelined. When the TPM is not powered
 * (TPM_RC_FAILURE on everything) the control channel (port+1 or `<path>.ctrl`)
 * powers it on with CMD_INIT; when it needs TPM2_Startup (TPM_RC_INITIALIZE)
 * we send Startup(CLEAR). See TPM-LAB-NOTES.md.
 */
import net from 'node:net';
import { TpmTransportError } from '../errors/index.js';
import { TPM_RC } from '../errors/rc.js';
import { MessageBuffer, QueuedTransport, fixedFrame, responseCode, tpmFrame, type FrameLength, type TransportOptions } from './base.js';

export type SocketAddress = { host: string; port: number } | { path: string };

/** swtpm control channel commands (swtpm's tpm_ioctl.h). */
export const SWTPM_CTRL = { GET_CAPABILITY: 1, INIT: 2, SHUTDOWN: 3, GET_TPMESTABLISHED: 4, SET_LOCALITY: 5, STOP: 0x0e } as const;

const STARTUP_CLEAR = Uint8Array.from([0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x44, 0, 0]);
const GET_RANDOM_1 = Uint8Array.from([0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x7b, 0, 1]);
const CC_STARTUP = 0x144;

function describe(a: SocketAddress): string {
  return 'path' in a ? a.path : `${a.host}:${a.port}`;
}

function connectError(a: SocketAddress, e: unknown): TpmTransportError {
  const code = (e as NodeJS.ErrnoException)?.code;
  const where = describe(a);
  if (code === 'ECONNREFUSED') return new TpmTransportError(`nothing is listening at ${where} (is swtpm running?)`, code);
  if (code === 'ENOENT') return new TpmTransportError(`socket ${where} does not exist (is swtpm running with --server type=unixio,path=${where}?)`, code);
  if (code === 'EACCES') return new TpmTransportError(`permission denied connecting to ${where}`, code);
  return new TpmTransportError(`cannot connect to ${where}: ${(e as Error)?.message ?? String(e)}`, code);
}

/** One request/response at a time over a kept socket (reconnecting when it was closed). */
export class Channel {
  private sock: net.Socket | undefined;
  private pending: { message: MessageBuffer; resolve: (b: Uint8Array) => void; reject: (e: Error) => void } | undefined;

  constructor(
    private readonly addr: SocketAddress,
    private readonly timeoutMs: number,
  ) {}

  private connect(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const s = 'path' in this.addr ? net.createConnection(this.addr.path) : net.createConnection(this.addr.port, this.addr.host);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new TpmTransportError(`timed out connecting to ${describe(this.addr)}`, 'ETIMEDOUT'));
      }, this.timeoutMs);
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(connectError(this.addr, e));
      });
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        s.setNoDelay(true);
        s.on('data', (d) => this.onData(new Uint8Array(d.buffer, d.byteOffset, d.length)));
        // Events of a socket already given up on (after a timeout or a bad frame) must not fail the
        // request that is by then pending on its successor.
        s.on('error', (e) => {
          if (this.sock === s) this.fail(new TpmTransportError(`connection to ${describe(this.addr)} failed: ${e.message}`, (e as NodeJS.ErrnoException).code));
        });
        s.on('close', () => {
          if (this.sock !== s) return;
          this.sock = undefined;
          this.fail(new TpmTransportError(`${describe(this.addr)} closed the connection mid-response (${this.pending?.message.length ?? 0} bytes received)`, 'EPIPE'));
        });
        resolve(s);
      });
    });
  }

  private onData(d: Uint8Array): void {
    const p = this.pending;
    if (!p) return; // unsolicited bytes are ignored
    try {
      const msg = p.message.push(d, describe(this.addr));
      if (!msg) return;
      this.pending = undefined;
      p.resolve(msg);
    } catch (e) {
      this.fail(e as Error);
      this.drop();
    }
  }

  private fail(e: Error): void {
    const p = this.pending;
    this.pending = undefined;
    p?.reject(e);
  }

  /** Send `data` in one write and resolve with one complete message as `frame` delimits it. */
  async request(data: Uint8Array, frame: FrameLength = tpmFrame): Promise<Uint8Array> {
    if (!this.sock) this.sock = await this.connect();
    const sock = this.sock;
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new TpmTransportError(`no response from ${describe(this.addr)} within ${this.timeoutMs} ms`, 'ETIMEDOUT'));
        this.drop();
      }, this.timeoutMs);
      this.pending = {
        message: new MessageBuffer(frame),
        resolve: (b) => (clearTimeout(timer), resolve(b)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
      sock.write(data);
    });
  }

  /** Abandon the current socket (its state is unknown); the next request connects afresh. */
  private drop(): void {
    const s = this.sock;
    this.sock = undefined;
    s?.destroy();
  }

  close(): void {
    const s = this.sock;
    this.sock = undefined;
    s?.removeAllListeners('close');
    s?.destroy();
    this.fail(new TpmTransportError('connection closed'));
  }
}

/** Microsoft TPM simulator platform commands (TPM 2.0 reference simulator, TpmTcpProtocol.h). */
export const MSSIM = { SIGNAL_POWER_ON: 1, SIGNAL_POWER_OFF: 2, SEND_COMMAND: 8, SIGNAL_NV_ON: 11, SESSION_END: 20 } as const;

/** An MS-simulator response: u32 size || response || u32 0. */
const mssimFrame: FrameLength = (b) => (b.length < 4 ? undefined : 8 + new DataView(b.buffer, b.byteOffset).getUint32(0));

export interface SwtpmTransportOptions extends TransportOptions {
  /** The control channel (swtpm) or platform channel (mssim); default port+1 or `<path>.ctrl`. */
  ctrl?: SocketAddress;
  /** 'raw' TPM framing (swtpm, /dev/tpmrm0 style, the default) or Microsoft-simulator framing ('mssim'). */
  framing?: 'raw' | 'mssim';
}

/**
 * A TPM simulator on a socket: swtpm (raw framing, control channel) or the
 * Microsoft/IBM reference simulator (`mssim`: MS framing, platform channel).
 */
export class SwtpmTransport extends QueuedTransport {
  private readonly data: Channel;
  private readonly ctrlAddr: SocketAddress;
  private readonly framing: 'raw' | 'mssim';
  private startupCount = 0;

  /** How many times this transport started the TPM itself (see Transport.startups). */
  get startups(): number {
    return this.startupCount;
  }

  constructor(
    readonly address: SocketAddress,
    opts: SwtpmTransportOptions = {},
  ) {
    super(opts);
    this.data = new Channel(address, this.timeoutMs);
    this.framing = opts.framing ?? 'raw';
    this.ctrlAddr = opts.ctrl ?? ('path' in address ? { path: `${address.path}.ctrl` } : { host: address.host, port: address.port + 1 });
  }

  /** Connect (and power on / start up the TPM if it needs it). */
  static async open(address: SocketAddress, opts: SwtpmTransportOptions = {}): Promise<SwtpmTransport> {
    const t = new SwtpmTransport(address, opts);
    await t.send(GET_RANDOM_1);
    return t;
  }

  /** One command, framed for the simulator. */
  private async roundTrip(command: Uint8Array): Promise<Uint8Array> {
    if (this.framing === 'raw') return this.data.request(command);
    const msg = new Uint8Array(9 + command.length);
    const dv = new DataView(msg.buffer);
    dv.setUint32(0, MSSIM.SEND_COMMAND);
    dv.setUint8(4, 0); // locality 0
    dv.setUint32(5, command.length);
    msg.set(command, 9);
    const r = await this.data.request(msg, mssimFrame);
    return r.slice(4, r.length - 4);
  }

  protected async exchange(command: Uint8Array): Promise<Uint8Array> {
    let rsp = await this.roundTrip(command);
    const cc = new DataView(command.buffer, command.byteOffset).getUint32(6);
    if (cc === CC_STARTUP) return rsp;
    let rc = responseCode(rsp);
    if (rc === TPM_RC.FAILURE) {
      // Either this command genuinely failed, or the TPM is not powered on: a probe tells which.
      const probe = responseCode(await this.roundTrip(GET_RANDOM_1));
      if (probe === TPM_RC.FAILURE) {
        await this.powerOn();
        rc = TPM_RC.INITIALIZE;
      } else if (probe === TPM_RC.INITIALIZE) {
        rc = TPM_RC.INITIALIZE;
      } else {
        return rsp;
      }
    }
    if (rc === TPM_RC.INITIALIZE) {
      const s = responseCode(await this.roundTrip(STARTUP_CLEAR));
      if (s !== 0 && s !== TPM_RC.INITIALIZE) throw new TpmTransportError(`TPM2_Startup(CLEAR) failed with 0x${s.toString(16)}`);
      this.startupCount++;
      rsp = await this.roundTrip(command);
    }
    return rsp;
  }

  private async powerOn(): Promise<void> {
    if (this.framing === 'raw') {
      await this.control(SWTPM_CTRL.INIT, Uint8Array.from([0, 0, 0, 0]));
    } else {
      await this.control(MSSIM.SIGNAL_POWER_ON);
      await this.control(MSSIM.SIGNAL_NV_ON);
    }
  }

  /**
   * Send a control/platform-channel command (big-endian u32 code + payload);
   * resolves with the u32 result. Uses a separate short-lived connection.
   */
  async control(code: number, payload: Uint8Array = new Uint8Array(0)): Promise<number> {
    const ch = new Channel(this.ctrlAddr, this.timeoutMs);
    try {
      const msg = new Uint8Array(4 + payload.length);
      new DataView(msg.buffer).setUint32(0, code);
      msg.set(payload, 4);
      const r = await ch.request(msg, fixedFrame(4));
      const res = new DataView(r.buffer, r.byteOffset).getUint32(0);
      if (res !== 0) throw new TpmTransportError(`simulator control command ${code} failed with 0x${res.toString(16)}`);
      return res;
    } finally {
      ch.close();
    }
  }

  protected async shutdown(): Promise<void> {
    this.data.close();
  }
}
