// A TPM fault injector for the fault tests: a Unix-socket proxy in front of swtpm that the
// attestor reaches as `swtpm:path=<proxy>` (control channel `<proxy>.ctrl`, forwarded too). It can
// switch to another swtpm (a restarted one: the attestor's address stays the same), drop every
// connection (as when swtpm dies), refuse connections while "down", and answer the next commands
// itself with a chosen response code (TPM_RC_RETRY, _YIELDED, _TESTING, _LOCKOUT ...), as a TPM would.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { rmSync } from 'node:fs';

/** Big-endian u32 at `at`. */
const u32 = (b: Buffer, at: number): number => b.readUInt32BE(at);

export class FaultProxy {
  #servers: Server[] = [];
  #sockets = new Set<Socket>();
  /** The swtpm socket path commands go to; undefined: "TPM gone" (connections are dropped). */
  upstream: string | undefined;
  /** Response codes to answer the next commands with, one each, instead of forwarding them. */
  readonly inject: number[] = [];
  /** Commands answered by `inject` so far. */
  injected = 0;
  /** Commands forwarded so far. */
  forwarded = 0;

  private constructor(readonly path: string) {}

  static async start(path: string, upstream: string): Promise<FaultProxy> {
    const p = new FaultProxy(path);
    p.upstream = upstream;
    await p.#listen(path, (down) => p.#data(down));
    await p.#listen(`${path}.ctrl`, (down) => p.#ctrl(down));
    return p;
  }

  /** The attestor's --tpm. */
  get address(): string {
    return `swtpm:path=${this.path}`;
  }

  /** Drops every open connection (data and control), as a dying swtpm does. */
  dropAll(): void {
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }

  async close(): Promise<void> {
    this.dropAll();
    await Promise.all(this.#servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    for (const p of [this.path, `${this.path}.ctrl`]) rmSync(p, { force: true });
  }

  #listen(path: string, onConnection: (s: Socket) => void): Promise<void> {
    rmSync(path, { force: true });
    const server = createServer((s) => {
      this.#track(s);
      onConnection(s);
    });
    this.#servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
  }

  #track(s: Socket): void {
    this.#sockets.add(s);
    s.on('close', () => this.#sockets.delete(s));
    s.on('error', () => undefined);
  }

  /** Control channel: a plain pipe to the upstream's `.ctrl`. */
  #ctrl(down: Socket): void {
    if (this.upstream === undefined) return void down.destroy();
    const up = createConnection(`${this.upstream}.ctrl`);
    this.#track(up);
    up.on('error', () => down.destroy());
    up.on('close', () => down.destroy());
    down.on('close', () => up.destroy());
    down.pipe(up);
    up.pipe(down);
  }

  /** Data channel: whole commands (one write each, as swtpm needs), whole responses. */
  #data(down: Socket): void {
    if (this.upstream === undefined) return void down.destroy();
    const up = createConnection(this.upstream);
    this.#track(up);
    up.on('error', () => down.destroy());
    up.on('close', () => down.destroy());
    down.on('close', () => up.destroy());
    let cmd = Buffer.alloc(0);
    let rsp = Buffer.alloc(0);
    down.on('data', (d: Buffer) => {
      cmd = Buffer.concat([cmd, d]);
      while (cmd.length >= 10 && cmd.length >= u32(cmd, 2)) {
        const size = u32(cmd, 2);
        const one = cmd.subarray(0, size);
        cmd = cmd.subarray(size);
        const rc = this.inject.shift();
        if (rc !== undefined) {
          this.injected++;
          const r = Buffer.alloc(10);
          r.writeUInt16BE(0x8001, 0);
          r.writeUInt32BE(10, 2);
          r.writeUInt32BE(rc, 6);
          down.write(r);
        } else {
          this.forwarded++;
          up.write(Buffer.from(one));
        }
      }
    });
    up.on('data', (d: Buffer) => {
      rsp = Buffer.concat([rsp, d]);
      while (rsp.length >= 10 && rsp.length >= u32(rsp, 2)) {
        const size = u32(rsp, 2);
        down.write(Buffer.from(rsp.subarray(0, size)));
        rsp = rsp.subarray(size);
      }
    });
  }
}
