// What is copied out of the host: the firmware event log (securityfs, root:root 0440, so not
// readable by a non-root attestor, and securityfs cannot be mounted into a restricted pod) and
// systemd's userspace measurement log when present. Copies go to one host folder that Allocate
// mounts read-only: files 0440 owned by the attestor's uid:gid, the folder 0750 owned by this
// process's uid and the attestor's gid. A copy is replaced atomically (write + rename) only when
// the source's bytes changed; a source that disappears takes its copy with it.
import { chmod, chown, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from './log.js';
import { errorMessage } from './log.js';
import { every, type Poll } from './poll.js';

export interface LogSource {
  /** Where the plugin reads it. */
  source: string;
  /** File name of the copy. */
  name: string;
  /** Whether its absence deserves a warning (the firmware log) or is normal (systemd's). */
  expected: boolean;
}

export interface EventLogCopierOptions {
  dir: string;
  sources: readonly LogSource[];
  owner: { uid: number; gid: number };
  logger: Logger;
}

/** The copy file names of the two default sources. */
export const FIRMWARE_LOG_NAME = 'binary_bios_measurements';
export const SYSTEMD_LOG_NAME = 'tpm2-measure.log';

export function defaultSources(firmware: string, systemd: string): LogSource[] {
  return [
    { source: firmware, name: FIRMWARE_LOG_NAME, expected: true },
    { source: systemd, name: SYSTEMD_LOG_NAME, expected: false },
  ];
}

async function readIfPresent(path: string): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

export class EventLogCopier {
  readonly #o: EventLogCopierOptions;
  /** What each copy holds (undefined: no copy), to skip rewriting unchanged logs. */
  readonly #copied = new Map<string, Uint8Array | undefined>();
  /** The last problem logged per source, so a persistent one is logged once. */
  readonly #problem = new Map<string, string>();
  #poll: Poll | undefined;

  constructor(options: EventLogCopierOptions) {
    this.#o = options;
  }

  /** Creates the folder (0750, group = the attestor's gid). */
  async prepare(): Promise<void> {
    const { dir, owner } = this.#o;
    try {
      await mkdir(dir, { recursive: true, mode: 0o750 });
      const st = await stat(dir);
      if (!st.isDirectory()) throw new Error('exists and is not a directory');
      if ((st.mode & 0o7777) !== 0o750) await chmod(dir, 0o750);
      if (st.gid !== owner.gid) await chown(dir, st.uid, owner.gid);
    } catch (e) {
      throw new Error(`event log folder ${dir}: ${errorMessage(e)}`, { cause: e });
    }
  }

  /** Copies every source whose bytes changed (a problem is logged, and the last good copy kept). */
  async #refresh(): Promise<void> {
    for (const s of this.#o.sources) {
      try {
        await this.#refreshOne(s);
      } catch (e) {
        const msg = errorMessage(e);
        if (this.#problem.get(s.name) !== msg) this.#o.logger.error('cannot copy log', { source: s.source, error: msg });
        this.#problem.set(s.name, msg);
      }
    }
  }

  async #refreshOne(s: LogSource): Promise<void> {
    const target = join(this.#o.dir, s.name);
    const bytes = await readIfPresent(s.source);
    const onDisk = (await stat(target).catch(() => undefined)) !== undefined;
    if (bytes === undefined) {
      if (s.expected && this.#problem.get(s.name) !== 'missing') {
        this.#o.logger.warn('log source missing: containers get no copy', { source: s.source });
      }
      this.#problem.set(s.name, 'missing');
      this.#copied.set(s.name, undefined);
      if (onDisk) await unlink(target);
      return;
    }
    this.#problem.delete(s.name);
    if (onDisk && sameBytes(this.#copied.get(s.name), bytes)) return;
    const tmp = join(this.#o.dir, `.${basename(s.name)}.tmp`);
    await unlink(tmp).catch(() => undefined);
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    // chmod first: once the file belongs to the attestor only CAP_FOWNER could change its mode.
    await chmod(tmp, 0o440);
    await chown(tmp, this.#o.owner.uid, this.#o.owner.gid);
    await rename(tmp, target);
    this.#copied.set(s.name, bytes);
    this.#o.logger.info('log copied', { source: s.source, copy: target, bytes: bytes.length });
  }

  /** Copies the logs now, then every `intervalMs` until stop(). */
  async start(intervalMs: number): Promise<void> {
    await this.#refresh();
    this.#poll = every(intervalMs, () => this.#refresh());
  }

  async stop(): Promise<void> {
    await this.#poll?.stop();
    this.#poll = undefined;
  }
}
