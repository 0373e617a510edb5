// tpmds-device-plugin's program: flags -> startDevicePlugin; SIGTERM/SIGINT stop it and remove
// its socket (a second signal exits at once). main.ts runs it.
import { readFileSync } from 'node:fs';
import { ConfigError, parseArgs } from './config.js';
import { Logger, errorMessage } from './log.js';
import { startDevicePlugin } from './plugin.js';

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export interface ProgramIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

/**
 * Runs tpmds-device-plugin with `argv` (without node and the script); resolves with the exit
 * code: 0 (help, version, stopped by a signal), 1 (failed to start or to stop), 2 (bad flags).
 */
export async function runDevicePlugin(argv: readonly string[], io: ProgramIo = process): Promise<number> {
  const version = packageVersion();
  let parsed;
  try {
    parsed = parseArgs(argv, version);
  } catch (e) {
    if (e instanceof ConfigError) {
      io.stderr.write(`tpmds-device-plugin: ${e.message}\n(see tpmds-device-plugin --help)\n`);
      return 2;
    }
    throw e;
  }
  if (parsed.kind !== 'run') {
    io.stdout.write(parsed.text);
    return 0;
  }
  const config = parsed.config;
  const logger = new Logger(config.logLevel);
  logger.info('starting', {
    version,
    resource: config.resourceName,
    count: config.count,
    socket: `${config.pluginDir}/${config.socketName}`,
    kubelet: config.kubeletSocket,
  });

  let running;
  try {
    running = await startDevicePlugin(config, logger);
  } catch (e) {
    logger.error('cannot start', { error: errorMessage(e) });
    return 1;
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        logger.warn('second signal: exiting without cleaning up', { signal });
        process.exit(1);
      }
      stopping = true;
      logger.info('signal received: stopping', { signal });
      running.close().then(
        () => resolve(0),
        (e: unknown) => {
          logger.error('shutdown failed', { error: errorMessage(e) });
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
