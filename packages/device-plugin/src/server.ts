// The DevicePlugin gRPC service (kubelet device-plugin API v1beta1) on a Unix socket in the
// kubelet's device-plugin directory. The kubelet deletes every socket there when it restarts;
// ensureServing() notices and serves on a fresh socket (registration.ts then registers again).
import { lstat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { AllocateError, checkDeviceIds, containerAllocation } from './allocate.js';
import type { DevicePluginConfig } from './config.js';
import type { DeviceState, TpmDevices } from './devices.js';
import { v1beta1 } from './gen/api.js';
import type { Logger } from './log.js';
import { errorMessage } from './log.js';
import { pluginOptions } from './registration.js';

export interface DevicePluginServerOptions {
  config: DevicePluginConfig;
  devices: TpmDevices;
  /** Makes sure the read-write mount Allocate hands out is usable (the state directory: a stat when it is). */
  prepareMounts: () => Promise<void>;
  logger: Logger;
}

function listResponse(devices: DeviceState[]): v1beta1.ListAndWatchResponse {
  return new v1beta1.ListAndWatchResponse({ devices: devices.map((d) => new v1beta1.Device({ ID: d.id, health: d.health })) });
}

function grpcError(code: grpc.status, message: string): grpc.ServiceError {
  return Object.assign(new Error(message), { code, details: message, metadata: new grpc.Metadata() });
}

export class DevicePluginServer {
  readonly #o: DevicePluginServerOptions;
  readonly socketPath: string;
  #server: grpc.Server | undefined;
  /** Inode of the socket we bound, to tell it from a file someone else put at the same path. */
  #ino: number | undefined;
  readonly #streams = new Set<grpc.ServerWritableStream<v1beta1.Empty, v1beta1.ListAndWatchResponse>>();

  constructor(options: DevicePluginServerOptions) {
    this.#o = options;
    this.socketPath = join(options.config.pluginDir, options.config.socketName);
  }

  #handlers(): grpc.UntypedServiceImplementation {
    const { config, devices, logger } = this.#o;
    const getDevicePluginOptions: grpc.handleUnaryCall<v1beta1.Empty, v1beta1.DevicePluginOptions> = (_call, cb) => {
      cb(null, pluginOptions());
    };
    const listAndWatch: grpc.handleServerStreamingCall<v1beta1.Empty, v1beta1.ListAndWatchResponse> = (call) => {
      this.#streams.add(call);
      logger.info('ListAndWatch stream opened', { devices: devices.ids.length, healthy: devices.present });
      const unsubscribe = devices.subscribe((list) => call.write(listResponse(list)));
      const done = (): void => {
        unsubscribe();
        this.#streams.delete(call);
      };
      call.on('cancelled', () => {
        logger.info('ListAndWatch stream closed by the kubelet');
        done();
      });
      call.on('close', done);
      call.write(listResponse(devices.list()));
    };
    const getPreferredAllocation: grpc.handleUnaryCall<v1beta1.PreferredAllocationRequest, v1beta1.PreferredAllocationResponse> = (call, cb) => {
      // Every ID is the same TPM: prefer the required IDs, then the first available ones.
      const responses = call.request.container_requests.map((r) => {
        const chosen = [...r.must_include_deviceIDs];
        for (const id of r.available_deviceIDs) {
          if (chosen.length >= r.allocation_size) break;
          if (!chosen.includes(id)) chosen.push(id);
        }
        return new v1beta1.ContainerPreferredAllocationResponse({ deviceIDs: chosen });
      });
      cb(null, new v1beta1.PreferredAllocationResponse({ container_responses: responses }));
    };
    const allocate: grpc.handleUnaryCall<v1beta1.AllocateRequest, v1beta1.AllocateResponse> = (call, cb) => {
      void (async () => {
        const requests = call.request.container_requests;
        for (const r of requests) checkDeviceIds(r.devices_ids, devices.ids);
        await devices.check();
        if (!devices.present) {
          const why = devices.error === undefined ? 'is missing on this node' : `cannot be checked on this node: ${devices.error}`;
          throw new AllocateError('FAILED_PRECONDITION', `TPM device ${config.device} ${why}`);
        }
        try {
          await this.#o.prepareMounts();
        } catch (e) {
          throw new AllocateError('INTERNAL', errorMessage(e));
        }
        const a = containerAllocation(config);
        const response = new v1beta1.AllocateResponse({
          container_responses: requests.map(
            () =>
              new v1beta1.ContainerAllocateResponse({
                envs: new Map(Object.entries(a.envs)),
                mounts: a.mounts.map((m) => new v1beta1.Mount({ container_path: m.containerPath, host_path: m.hostPath, read_only: m.readOnly })),
                devices: a.devices.map((d) => new v1beta1.DeviceSpec({ container_path: d.containerPath, host_path: d.hostPath, permissions: d.permissions })),
              }),
          ),
        });
        logger.info('allocated', { containers: requests.length, devices: requests.map((r) => r.devices_ids.join(',')).join(' ') });
        return response;
      })().then(
        (res) => cb(null, res),
        (e: unknown) => {
          const code = e instanceof AllocateError ? grpc.status[e.code] : grpc.status.INTERNAL;
          logger.error('Allocate refused', { code: grpc.status[code], error: errorMessage(e) });
          cb(grpcError(code, errorMessage(e)));
        },
      );
    };
    const preStartContainer: grpc.handleUnaryCall<v1beta1.PreStartContainerRequest, v1beta1.PreStartContainerResponse> = (_call, cb) => {
      cb(null, new v1beta1.PreStartContainerResponse());
    };
    return {
      GetDevicePluginOptions: getDevicePluginOptions,
      ListAndWatch: listAndWatch,
      GetPreferredAllocation: getPreferredAllocation,
      Allocate: allocate,
      PreStartContainer: preStartContainer,
    } as grpc.UntypedServiceImplementation;
  }

  /** Serves on the socket (replacing a stale socket file of an earlier run). */
  async start(): Promise<void> {
    const st = await lstat(this.socketPath).catch(() => undefined);
    if (st !== undefined) {
      if (!st.isSocket()) throw new Error(`${this.socketPath} exists and is not a socket`);
      await unlink(this.socketPath);
    }
    const server = new grpc.Server();
    server.addService(v1beta1.UnimplementedDevicePluginService.definition as unknown as grpc.ServiceDefinition, this.#handlers());
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(`unix:${this.socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
    }).catch((e: unknown) => {
      server.forceShutdown();
      throw new Error(`cannot serve on ${this.socketPath}: ${errorMessage(e)}`, { cause: e });
    });
    this.#server = server;
    this.#ino = (await lstat(this.socketPath)).ino;
    this.#o.logger.info('device plugin serving', { socket: this.socketPath });
  }

  /** Whether our socket is still in place (the kubelet removes it when it restarts). */
  async socketIntact(): Promise<boolean> {
    const st = await lstat(this.socketPath).catch(() => undefined);
    return st !== undefined && st.ino === this.#ino;
  }

  /** Restarts on a fresh socket when ours was removed; resolves true when it did. */
  async ensureServing(): Promise<boolean> {
    if (this.#server !== undefined && (await this.socketIntact())) return false;
    this.#o.logger.warn('plugin socket gone (kubelet restarted?): serving on a new one', { socket: this.socketPath });
    await this.#shutdown(false);
    await this.start();
    return true;
  }

  async #shutdown(removeSocket: boolean): Promise<void> {
    for (const s of this.#streams) s.end();
    this.#streams.clear();
    this.#server?.forceShutdown();
    this.#server = undefined;
    if (removeSocket && (await this.socketIntact())) await unlink(this.socketPath).catch(() => undefined);
    this.#ino = undefined;
  }

  /** Stops serving and removes our socket. */
  async stop(): Promise<void> {
    await this.#shutdown(true);
    this.#o.logger.info('device plugin stopped', { socket: this.socketPath });
  }
}
