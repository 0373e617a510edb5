// What devices exist: --count interchangeable slots of one shared TPM (the kernel resource
// manager /dev/tpmrm0 multiplexes its users), all Healthy while the device node exists and all
// Unhealthy while it does not. The kubelet stops admitting pods on Unhealthy devices.
import { stat } from 'node:fs/promises';
import { errorMessage } from './log.js';
import { every, type Poll } from './poll.js';

export type Health = 'Healthy' | 'Unhealthy';

export interface DeviceState {
  id: string;
  health: Health;
}

/** Device IDs `tpm-0` ... `tpm-<count-1>` (the kubelet allows at most 63 characters). */
export function deviceIds(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `tpm-${i}`);
}

/** Whether something exists at `path` (a character device on a node, any file in tests). */
export async function deviceExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/**
 * Polls the device node and tells listeners the full device list whenever health changes
 * (and once at start). `list()` is the current state for a new ListAndWatch stream.
 */
export class TpmDevices {
  readonly #ids: string[];
  readonly #probe: string;
  #present: boolean | undefined;
  #error: string | undefined;
  readonly #listeners = new Set<(devices: DeviceState[]) => void>();
  #poll: Poll | undefined;

  constructor(count: number, probePath: string) {
    this.#ids = deviceIds(count);
    this.#probe = probePath;
  }

  get ids(): readonly string[] {
    return this.#ids;
  }

  get present(): boolean {
    return this.#present === true;
  }

  /** Why the last check could not tell whether the device exists (undefined when it could). */
  get error(): string | undefined {
    return this.#error;
  }

  list(): DeviceState[] {
    const health: Health = this.#present === true ? 'Healthy' : 'Unhealthy';
    return this.#ids.map((id) => ({ id, health }));
  }

  /** Checks the device now; returns true when its presence changed. */
  async check(): Promise<boolean> {
    let present: boolean;
    try {
      present = await deviceExists(this.#probe);
      this.#error = undefined;
    } catch (e) {
      present = false; // EACCES and the like: we cannot vouch for the device
      this.#error = errorMessage(e);
    }
    if (present === this.#present) return false;
    this.#present = present;
    const list = this.list();
    for (const l of this.#listeners) l(list);
    return true;
  }

  /** Calls `listener` with the full list on every change; returns the unsubscribe function. */
  subscribe(listener: (devices: DeviceState[]) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Checks once now, then every `intervalMs`; `onChange` hears about presence changes. */
  async start(intervalMs: number, onChange: (present: boolean) => void): Promise<void> {
    const run = async (): Promise<void> => {
      if (await this.check()) onChange(this.present);
    };
    await run();
    this.#poll = every(intervalMs, run);
  }

  async stop(): Promise<void> {
    await this.#poll?.stop();
    this.#poll = undefined;
    this.#listeners.clear();
  }
}
