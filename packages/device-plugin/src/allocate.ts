// What a container gets on Allocate: the TPM device (with the device-cgroup rule, which a hostPath
// cannot give), the read-only event-log folder (the firmware log and systemd's userspace log), the read-write state directory, and the attestor's
// environment variables pointing at them. Every device ID is a slot of the same TPM, so a
// container gets the same answer however many IDs it was given.
import type { DevicePluginConfig } from './config.js';
import { FIRMWARE_LOG_NAME, SYSTEMD_LOG_NAME } from './eventlog.js';

export interface DeviceSpecPlan {
  containerPath: string;
  hostPath: string;
  permissions: string;
}

export interface MountPlan {
  containerPath: string;
  hostPath: string;
  readOnly: boolean;
}

export interface ContainerAllocation {
  devices: DeviceSpecPlan[];
  mounts: MountPlan[];
  envs: Record<string, string>;
}

/** An Allocate request the plugin refuses; `code` is the gRPC status name. */
export class AllocateError extends Error {
  override readonly name = 'AllocateError';
  constructor(
    readonly code: 'INVALID_ARGUMENT' | 'FAILED_PRECONDITION' | 'INTERNAL',
    message: string,
  ) {
    super(message);
  }
}

type AllocationConfig = Pick<DevicePluginConfig, 'device' | 'containerDevice' | 'eventLogDir' | 'eventLogMount' | 'stateDir' | 'stateMount'>;

/** The answer for one container (pure: the caller checks the device and prepares the folders). */
export function containerAllocation(config: AllocationConfig): ContainerAllocation {
  return {
    // "rw" and not "rwm": the container must not create device nodes.
    devices: [{ containerPath: config.containerDevice, hostPath: config.device, permissions: 'rw' }],
    mounts: [
      { containerPath: config.eventLogMount, hostPath: config.eventLogDir, readOnly: true },
      { containerPath: config.stateMount, hostPath: config.stateDir, readOnly: false },
    ],
    envs: {
      TPMDS_TPM: `device:${config.containerDevice}`,
      TPMDS_STATE_DIR: config.stateMount,
      TPMDS_EVENT_LOG: `${config.eventLogMount}/${FIRMWARE_LOG_NAME}`,
      // Absent when the node has no userspace log: the attestor then sends none.
      TPMDS_USERSPACE_LOG: `${config.eventLogMount}/${SYSTEMD_LOG_NAME}`,
    },
  };
}

/** Rejects a container request whose IDs are empty or not ours (the kubelet only sends ours). */
export function checkDeviceIds(requested: readonly string[], known: readonly string[]): void {
  if (requested.length === 0) throw new AllocateError('INVALID_ARGUMENT', 'a container request lists no device IDs');
  const unknown = requested.filter((id) => !known.includes(id));
  if (unknown.length > 0) throw new AllocateError('INVALID_ARGUMENT', `unknown device IDs: ${unknown.join(', ')} (this plugin has ${known[0]}..${known[known.length - 1]})`);
}
