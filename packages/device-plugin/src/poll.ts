// The one periodic loop behind the device check, the event-log refresh and the registration check:
// the next run starts `intervalMs` after the previous one finished (runs never overlap), and stop()
// waits for a run in flight, so nothing touches the host or the kubelet once it has resolved.

export interface Poll {
  stop(): Promise<void>;
}

/** Runs `job` every `intervalMs` until stop(). `job` handles its own errors (a rejection ends the loop). */
export function every(intervalMs: number, job: () => Promise<unknown>): Poll {
  let stopped = false;
  let current: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const tick = (): void => {
    current = job().then(() => {
      if (!stopped) timer = setTimeout(tick, intervalMs);
    });
  };
  timer = setTimeout(tick, intervalMs);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await current;
    },
  };
}
