/**
 * `device:/dev/tpmrm0`: raw TPM framing on a character device through Node's
 * `fs` (the kernel resource manager, /dev/tpm0, or a pty in front of swtpm).
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import { TpmTransportError } from '../errors/index.js';
import { MessageBuffer, QueuedTransport, tpmFrame, type TransportOptions } from './base.js';

/** A TPM character device (`/dev/tpmrm0`, `/dev/tpm0`, a pty): one write per command, reads until the response is complete. */
export class DeviceTransport extends QueuedTransport {
  private fh: fsp.FileHandle | undefined;
  private readonly buf = new Uint8Array(8192);

  private constructor(
    readonly path: string,
    opts: TransportOptions,
  ) {
    super(opts);
  }

  /** Open the device; errors say what is wrong (missing device, permissions, busy). */
  static async open(path: string, opts: TransportOptions = {}): Promise<DeviceTransport> {
    const t = new DeviceTransport(path, opts);
    await t.reopen();
    return t;
  }

  private async reopen(): Promise<void> {
    try {
      this.fh = await fsp.open(this.path, fsc.O_RDWR | fsc.O_NOCTTY);
    } catch (e) {
      throw deviceError(this.path, e);
    }
  }

  protected async exchange(command: Uint8Array): Promise<Uint8Array> {
    if (!this.fh) await this.reopen();
    const fh = this.fh!;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, rej) => {
      timer = setTimeout(() => rej(new TpmTransportError(`no response from ${this.path} within ${this.timeoutMs} ms`, 'ETIMEDOUT')), this.timeoutMs);
    });
    try {
      return await Promise.race([this.roundTrip(fh, command), timeout]);
    } catch (e) {
      // The device state is unknown after a failed exchange: start over with a fresh descriptor.
      this.fh = undefined;
      // Not awaited: FileHandle.close() waits for pending operations, and a read on a device that
      // never answers never completes (the timeout would hang instead of rejecting).
      void fh.close().catch(() => undefined);
      throw e instanceof TpmTransportError ? e : deviceError(this.path, e);
    } finally {
      clearTimeout(timer);
    }
  }

  private async roundTrip(fh: fsp.FileHandle, command: Uint8Array): Promise<Uint8Array> {
    const { bytesWritten } = await fh.write(command, 0, command.length, null);
    if (bytesWritten !== command.length) throw new TpmTransportError(`short write to ${this.path}: ${bytesWritten} of ${command.length} bytes`);
    const msg = new MessageBuffer(tpmFrame);
    for (;;) {
      const { bytesRead } = await fh.read(this.buf, 0, this.buf.length, null);
      if (bytesRead === 0) throw new TpmTransportError(`${this.path} closed mid-response (${msg.length} bytes received)`, 'EPIPE');
      const rsp = msg.push(this.buf.subarray(0, bytesRead), this.path);
      if (rsp) return rsp;
    }
  }

  protected async shutdown(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }
}

function deviceError(path: string, e: unknown): TpmTransportError {
  const code = (e as NodeJS.ErrnoException)?.code;
  switch (code) {
    case 'ENOENT':
      return new TpmTransportError(`TPM device ${path} does not exist (is a TPM present and its driver loaded? in a pod, mount the device)`, code);
    case 'EACCES':
    case 'EPERM':
      return new TpmTransportError(`permission denied opening ${path}: the user needs read/write access to the device, usually membership of its group (e.g. 'tss')`, code);
    case 'EBUSY':
      return new TpmTransportError(`${path} is busy: another process has it open (use /dev/tpmrm0, the resource manager, to share the TPM)`, code);
    case 'EIO':
      return new TpmTransportError(`I/O error on ${path}: the device failed or hung up (for a pty: the process serving it went away)`, code);
    case 'ENXIO':
      return new TpmTransportError(`${path} is not a character device (a Unix socket? use swtpm:path=${path})`, code);
    default:
      return new TpmTransportError(`${path}: ${(e as Error)?.message ?? String(e)}`, code);
  }
}
