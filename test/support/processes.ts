/**
 * Bookkeeping for the processes and temporary directories a test fixture creates, with a last-resort
 * cleanup when the Node process ends. Shared by the swtpm fixture (packages/tpm2-wire/test/fixtures/
 * swtpm.ts), the Kubernetes API server harness (test/k8s/kube.ts) and the tests that spawn daemons.
 *
 *   const p = trackProcess(child.pid);           // remembered with its /proc start time
 *   ...
 *   await stopProcesses([p], { graceMs: 3000, killWaitMs: 5000 });  // SIGTERM, wait, SIGKILL, wait
 *   untrackProcesses([p]);
 *
 *   const dir = await makeTempDir('tpmds-x-');   // short path (Unix socket paths < 108 bytes)
 *   await removeTempDir(dir);
 *
 * Safety net (installed once per process, by the first `trackProcess` or `makeTempDir`): on 'exit',
 * every tracked process that is still there is SIGKILLed and every tracked directory removed. On
 * SIGTERM and SIGHUP the same happens, then the signal is re-raised, unless the program has a handler
 * of its own for that signal: a program with its own signal handler stops its instances itself (and
 * exits, and then 'exit' runs).
 *
 * "Gone" means reaped (no /proc/PID entry) or the PID now belongs to another process (its start
 * time differs). A zombie is not gone: a killed daemon may linger as a zombie for a while (~2 s here
 * for an orphan that PID 1 reaps), and waiting for "gone" waits until it is reaped.
 */
import { readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TrackedProcess {
  readonly pid: number;
  /** /proc/PID/stat field 22, so a reused PID is not mistaken for ours. */
  readonly startTime: string | undefined;
}

const liveProcesses = new Set<TrackedProcess>();
const tempDirs = new Set<string>();
let safetyNetInstalled = false;

/** Installs the exit/SIGTERM/SIGHUP safety net (idempotent; `trackProcess` and `makeTempDir` call it). */
export function installSafetyNet(): void {
  if (safetyNetInstalled) return;
  safetyNetInstalled = true;
  process.on('exit', emergencyCleanup);
  for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      // A program with its own handler stops its instances itself (and exits: then 'exit' runs).
      if (process.listenerCount(signal) > 1) return;
      // Otherwise clean up, then let the signal do what it would have done without us.
      emergencyCleanup();
      process.off(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

function emergencyCleanup(): void {
  for (const p of liveProcesses) {
    if (!isGone(p)) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  liveProcesses.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

function procStat(pid: number): { state: string; startTime: string } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ..."; comm may contain spaces and parentheses, so split after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', startTime: fields[19] ?? '' };
}

/** Remembers a spawned process (PID and start time) so the safety net kills it if it is still there at exit. */
export function trackProcess(pid: number): TrackedProcess {
  installSafetyNet();
  const p = { pid, startTime: procStat(pid)?.startTime };
  liveProcesses.add(p);
  return p;
}

/** Forgets processes (once they are gone, or when someone else is now responsible for them). */
export function untrackProcesses(procs: Iterable<TrackedProcess>): void {
  for (const p of procs) liveProcesses.delete(p);
}

/** Gone = no /proc entry (reaped) or the PID now belongs to another process. A zombie is not gone. */
export function isGone(p: TrackedProcess): boolean {
  const s = procStat(p.pid);
  return s === undefined || (p.startTime !== undefined && s.startTime !== p.startTime);
}

/** True when the PID is alive and not a zombie. */
export function isProcessRunning(pid: number): boolean {
  const s = procStat(pid);
  return s !== undefined && s.state !== 'Z';
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Waits until every process is gone (reaped); false when `timeoutMs` passed first. */
export async function waitGone(procs: readonly TrackedProcess[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (procs.every(isGone)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(20);
  }
}

/** Sends `signal` to every process that is not gone. */
export function signalAll(procs: readonly TrackedProcess[], signal: NodeJS.Signals): void {
  for (const p of procs) {
    if (isGone(p)) continue;
    try {
      process.kill(p.pid, signal);
    } catch {
      // exited meanwhile
    }
  }
}

/**
 * Stops processes by PID: SIGTERM to those still there, wait up to `graceMs` until all are reaped,
 * then SIGKILL the rest and wait up to `killWaitMs`. True when all are gone. Leaves them tracked
 * (`untrackProcesses` when done). Someone must reap them: Node for its own children, PID 1 or a
 * subreaper for orphans.
 */
export async function stopProcesses(
  procs: readonly TrackedProcess[],
  options: { graceMs: number; killWaitMs: number },
): Promise<boolean> {
  signalAll(procs, 'SIGTERM');
  if (await waitGone(procs, options.graceMs)) return true;
  signalAll(procs, 'SIGKILL');
  return waitGone(procs, options.killWaitMs);
}

/** A fresh temporary directory, removed by the safety net unless `removeTempDir` removed it first. */
export async function makeTempDir(prefix: string): Promise<string> {
  installSafetyNet();
  let base = tmpdir();
  // Unix socket paths must stay below 108 bytes; a long TMPDIR would break them.
  if (base.length > 60) base = '/tmp';
  const dir = await mkdtemp(join(base, prefix));
  tempDirs.add(dir);
  return dir;
}

export async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** Keeps a directory made by `makeTempDir` (for a post-mortem): the safety net no longer removes it. */
export function keepTempDir(dir: string): void {
  tempDirs.delete(dir);
}

/** Directories made by `makeTempDir` and not removed yet. */
export function liveTempDirs(): string[] {
  return [...tempDirs];
}
