// Wires the concerns together: the device list (devices.ts), the host-side copies and the state
// directory (eventlog.ts, state-dir.ts), the gRPC service (server.ts) and the registration loop
// (registration.ts). cli.ts runs it; tests start it in-process against a fake kubelet.
import type { DevicePluginConfig } from './config.js';
import { TpmDevices } from './devices.js';
import { EventLogCopier, defaultSources } from './eventlog.js';
import type { Logger } from './log.js';
import { RegistrationLoop } from './registration.js';
import { DevicePluginServer } from './server.js';
import { ensureStateDir } from './state-dir.js';

export interface RunningDevicePlugin {
  readonly server: DevicePluginServer;
  readonly devices: TpmDevices;
  readonly eventLogs: EventLogCopier;
  readonly registration: RegistrationLoop;
  /** Stops every loop and the server, and removes the socket. */
  close(): Promise<void>;
}

/** Prepares the host folders, serves, and registers (retrying until the kubelet is there). */
export async function startDevicePlugin(config: DevicePluginConfig, logger: Logger): Promise<RunningDevicePlugin> {
  await ensureStateDir(config.stateDir, config.stateOwner);
  const eventLogs = new EventLogCopier({
    dir: config.eventLogDir,
    sources: defaultSources(config.eventLogSource, config.systemdLogSource),
    owner: config.stateOwner,
    logger,
  });
  await eventLogs.prepare();
  await eventLogs.start(config.eventLogRefreshMs);

  const devices = new TpmDevices(config.count, config.deviceProbe);
  await devices.start(config.pollIntervalMs, (present) => {
    if (present) logger.info('TPM device present: devices Healthy', { device: config.deviceProbe, count: config.count });
    else if (devices.error !== undefined) logger.warn('TPM device cannot be checked: devices Unhealthy', { device: config.deviceProbe, count: config.count, error: devices.error });
    else logger.warn('TPM device missing: devices Unhealthy', { device: config.deviceProbe, count: config.count });
  });

  const server = new DevicePluginServer({
    config,
    devices,
    // The event-log copies are kept fresh by their own timer; Allocate does not re-read them.
    prepareMounts: () => ensureStateDir(config.stateDir, config.stateOwner),
    logger,
  });
  const registration = new RegistrationLoop(config, server, logger);
  try {
    await server.start();
    await registration.start(config.pollIntervalMs);
  } catch (e) {
    await devices.stop();
    await eventLogs.stop();
    await registration.stop();
    await server.stop();
    throw e;
  }
  return {
    server,
    devices,
    eventLogs,
    registration,
    async close() {
      await registration.stop();
      await devices.stop();
      await eventLogs.stop();
      await server.stop();
    },
  };
}
