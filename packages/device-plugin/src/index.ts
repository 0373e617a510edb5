// @tpmds/device-plugin: the kubelet device plugin that hands the attestor pod the node's TPM,
// event log and state directory. The program is tpmds-device-plugin (cli.ts).
export { parseArgs, helpText, ConfigError, FLAGS, type DevicePluginConfig, type ParsedArgs } from './config.js';
export { TpmDevices, deviceIds, type DeviceState, type Health } from './devices.js';
export { containerAllocation, checkDeviceIds, AllocateError, type ContainerAllocation } from './allocate.js';
export { EventLogCopier, defaultSources, FIRMWARE_LOG_NAME, SYSTEMD_LOG_NAME, type LogSource } from './eventlog.js';
export { ensureStateDir } from './state-dir.js';
export { DevicePluginServer } from './server.js';
export { register, RegistrationLoop, API_VERSION } from './registration.js';
export { startDevicePlugin, type RunningDevicePlugin } from './plugin.js';
export { runDevicePlugin } from './cli.js';
export { Logger, type LogLevel } from './log.js';
export { v1beta1 } from './gen/api.js';
