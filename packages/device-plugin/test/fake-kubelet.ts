// A fake kubelet for the tests: the Registration service on <dir>/kubelet.sock which, like the
// real one, dials the plugin's socket on Register, asks for its options and watches ListAndWatch.
// restart() behaves like a kubelet restart: kubelet.sock re-created, every plugin socket deleted.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { v1beta1 } from '../src/gen/api.js';

export interface Registration {
  version: string;
  endpoint: string;
  resourceName: string;
  preferredAllocation: boolean;
}

export type DeviceList = { id: string; health: string }[];

export class FakeKubelet {
  readonly dir: string;
  readonly registrations: Registration[] = [];
  /** Every ListAndWatch message, across plugin connections. */
  readonly updates: DeviceList[] = [];
  plugin: v1beta1.DevicePluginClient | undefined;
  /** What Register answers: undefined accepts, a string refuses with that message. */
  refuse: string | undefined;
  #server: grpc.Server | undefined;
  #stream: grpc.ClientReadableStream<v1beta1.ListAndWatchResponse> | undefined;
  #waiters: (() => void)[] = [];

  constructor(dir: string) {
    this.dir = dir;
  }

  get socket(): string {
    return join(this.dir, 'kubelet.sock');
  }

  async start(): Promise<void> {
    const server = new grpc.Server();
    const impl: grpc.UntypedServiceImplementation = {
      Register: ((call: grpc.ServerUnaryCall<v1beta1.RegisterRequest, v1beta1.Empty>, cb: grpc.sendUnaryData<v1beta1.Empty>) => {
        const r = call.request;
        if (this.refuse !== undefined) {
          cb({ code: grpc.status.UNKNOWN, details: this.refuse, message: this.refuse } as grpc.ServiceError);
          return;
        }
        this.registrations.push({
          version: r.version,
          endpoint: r.endpoint,
          resourceName: r.resource_name,
          preferredAllocation: r.options?.get_preferred_allocation_available ?? false,
        });
        cb(null, new v1beta1.Empty());
        this.#connect(r.endpoint);
      }) as grpc.UntypedHandleCall,
    };
    server.addService(v1beta1.UnimplementedRegistrationService.definition as unknown as grpc.ServiceDefinition, impl);
    await new Promise<void>((resolve, reject) => server.bindAsync(`unix:${this.socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
    this.#server = server;
  }

  #connect(endpoint: string): void {
    this.#stream?.cancel();
    this.plugin?.close();
    const plugin = new v1beta1.DevicePluginClient(`unix:${join(this.dir, endpoint)}`, grpc.credentials.createInsecure());
    this.plugin = plugin;
    plugin.GetDevicePluginOptions(new v1beta1.Empty(), (err: grpc.ServiceError | null) => {
      if (err) return;
      const stream = plugin.ListAndWatch(new v1beta1.Empty());
      this.#stream = stream;
      stream.on('data', (m: v1beta1.ListAndWatchResponse) => {
        this.updates.push(m.devices.map((d) => ({ id: d.ID, health: d.health })));
        this.#notify();
      });
      stream.on('error', () => undefined);
    });
    this.#notify();
  }

  #notify(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Resolves once `predicate` holds (checked after every event), or rejects after `ms`. */
  async until(what: string, predicate: () => boolean, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!predicate()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`fake kubelet: timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 50));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  get last(): DeviceList | undefined {
    return this.updates[this.updates.length - 1];
  }

  /** Calls a unary DevicePlugin method on the connected plugin. */
  call<Req, Res>(method: 'Allocate' | 'GetPreferredAllocation' | 'PreStartContainer' | 'GetDevicePluginOptions', request: Req): Promise<Res> {
    const plugin = this.plugin;
    if (plugin === undefined) return Promise.reject(new Error('fake kubelet: no plugin registered'));
    return new Promise((resolve, reject) => {
      (plugin[method] as unknown as (r: Req, cb: (e: grpc.ServiceError | null, v?: Res) => void) => void).call(plugin, request, (e, v) => (e ? reject(e) : resolve(v!)));
    });
  }

  async stop(): Promise<void> {
    this.#stream?.cancel();
    this.#stream = undefined;
    this.plugin?.close();
    this.plugin = undefined;
    this.#server?.forceShutdown();
    this.#server = undefined;
    rmSync(this.socket, { force: true });
  }

  /** Like a kubelet restart: stop, delete every socket in the directory, start again. */
  async restart(): Promise<void> {
    await this.stop();
    for (const f of readdirSync(this.dir)) if (f.endsWith('.sock')) rmSync(join(this.dir, f), { force: true });
    await this.start();
  }
}
