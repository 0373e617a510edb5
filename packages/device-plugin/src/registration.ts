// Registration with the kubelet (v1beta1.Registration/Register on kubelet.sock), and again
// whenever the kubelet restarts: a restarted kubelet re-creates kubelet.sock (new inode) and
// deletes every plugin socket, so each tick checks both and re-registers after either change.
// Until the kubelet answers, every tick tries again (a persistent error is logged once).
import { stat } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import type { DevicePluginConfig } from './config.js';
import { v1beta1 } from './gen/api.js';
import type { Logger } from './log.js';
import { errorMessage } from './log.js';
import { every, type Poll } from './poll.js';

export const API_VERSION = 'v1beta1';
const REGISTER_TIMEOUT_MS = 5000;

/** What the plugin supports: sent on Register and answered by GetDevicePluginOptions (they must agree). */
export function pluginOptions(): v1beta1.DevicePluginOptions {
  return new v1beta1.DevicePluginOptions({ pre_start_required: false, get_preferred_allocation_available: true });
}

/** One Register call; rejects with the kubelet's error (e.g. resource name taken, bad version). */
export async function register(config: Pick<DevicePluginConfig, 'kubeletSocket' | 'socketName' | 'resourceName'>): Promise<void> {
  const client = new v1beta1.RegistrationClient(`unix:${config.kubeletSocket}`, grpc.credentials.createInsecure());
  try {
    await new Promise<void>((resolve, reject) => {
      client.Register(
        new v1beta1.RegisterRequest({
          version: API_VERSION,
          endpoint: config.socketName,
          resource_name: config.resourceName,
          options: pluginOptions(),
        }),
        { deadline: Date.now() + REGISTER_TIMEOUT_MS },
        (err: grpc.ServiceError | null) => (err ? reject(new Error(`Register with ${config.kubeletSocket} failed: ${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`)) : resolve()),
      );
    });
  } finally {
    client.close();
  }
}

export interface Serving {
  /** Serves on a fresh socket if ours is gone; true when it restarted. */
  ensureServing(): Promise<boolean>;
}

async function inode(path: string): Promise<number | undefined> {
  const st = await stat(path).catch(() => undefined);
  return st?.ino;
}

export class RegistrationLoop {
  readonly #config: DevicePluginConfig;
  readonly #serving: Serving;
  readonly #logger: Logger;
  /** kubelet.sock's inode at our last successful registration (undefined: not registered). */
  #registeredWith: number | undefined;
  #everRegistered = false;
  #lastProblem: string | undefined;
  #poll: Poll | undefined;

  constructor(config: DevicePluginConfig, serving: Serving, logger: Logger) {
    this.#config = config;
    this.#serving = serving;
    this.#logger = logger;
  }

  get registered(): boolean {
    return this.#registeredWith !== undefined;
  }

  #problem(msg: string, fields: Record<string, string> = {}): void {
    if (this.#lastProblem === msg) return;
    this.#lastProblem = msg;
    this.#logger.warn(msg, fields);
  }

  /** One check: serve, then register if the kubelet is new to us. */
  async tick(): Promise<void> {
    if (await this.#serving.ensureServing()) this.#registeredWith = undefined;
    const kubelet = await inode(this.#config.kubeletSocket);
    if (kubelet === undefined) {
      if (this.#registeredWith !== undefined) this.#logger.warn('kubelet socket gone: will register when it is back', { socket: this.#config.kubeletSocket });
      this.#registeredWith = undefined;
      this.#problem('waiting for the kubelet socket', { socket: this.#config.kubeletSocket });
      return;
    }
    if (kubelet === this.#registeredWith) return;
    try {
      await register(this.#config);
    } catch (e) {
      this.#problem('registration failed: will retry', { error: errorMessage(e) });
      return;
    }
    const again = this.#everRegistered;
    this.#everRegistered = true;
    this.#registeredWith = kubelet;
    this.#lastProblem = undefined;
    this.#logger.info(again ? 'registered with the kubelet again' : 'registered with the kubelet', {
      resource: this.#config.resourceName,
      endpoint: this.#config.socketName,
    });
  }

  /** Ticks now and then every `intervalMs` until stop(). */
  async start(intervalMs: number): Promise<void> {
    await this.tick();
    this.#poll = every(intervalMs, () => this.tick().catch((e: unknown) => this.#problem('device plugin check failed', { error: errorMessage(e) })));
  }

  async stop(): Promise<void> {
    await this.#poll?.stop();
    this.#poll = undefined;
  }
}
