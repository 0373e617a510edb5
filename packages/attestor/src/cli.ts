// tpmds-attestor's program: flags/env -> backend -> gRPC + HTTP servers; SIGTERM/SIGINT stop
// gracefully (a second signal exits at once). main.ts runs it.
import { readFileSync } from 'node:fs';
import { createBackend } from './backend-factory.js';
import { parseArgs } from './config.js';
import { ConfigError } from './errors.js';
import { Logger } from './log.js';
import { AttestorMetrics } from './metrics.js';
import { startAttestor } from './server.js';

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Where the program writes its --help/--version text and its start-up errors. */
export interface ProgramIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

/**
 * Runs tpmds-attestor with `argv` (without node and the script) and `env`; resolves with the
 * process exit code: 0 (help, version, clean stop), 1 (start-up failure), 2 (bad configuration).
 */
export async function runAttestor(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  io: ProgramIo = process,
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs(argv, env, packageVersion());
  } catch (e) {
    if (e instanceof ConfigError) {
      io.stderr.write(`tpmds-attestor: ${e.message}\n(see tpmds-attestor --help)\n`);
      return 2;
    }
    throw e;
  }
  if (parsed.kind !== 'run') {
    io.stdout.write(parsed.text.endsWith('\n') ? parsed.text : parsed.text + '\n');
    return 0;
  }
  const config = parsed.config;
  const logger = new Logger(config.logLevel);
  const metrics = new AttestorMetrics();

  let backend;
  try {
    backend = await createBackend(config, metrics, logger, env);
  } catch (e) {
    logger.error('cannot start the TPM backend', { error: e instanceof Error ? e.message : String(e) });
    return 1;
  }

  let running;
  try {
    running = await startAttestor(config, backend, { logger, metrics });
  } catch (e) {
    await backend.close().catch(() => undefined);
    if (e instanceof ConfigError) {
      logger.error('cannot start', { flag: e.flag, error: e.message });
      io.stderr.write(`tpmds-attestor: ${e.message}\n`);
      return 2;
    }
    logger.error('cannot start', { error: e instanceof Error ? e.message : String(e) });
    return 1;
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        logger.warn('second signal: exiting without waiting', { signal });
        process.exit(1);
      }
      stopping = true;
      logger.info('signal received: stopping', { signal });
      running.close().then(
        () => resolve(0),
        (e: unknown) => {
          logger.error('shutdown failed', { error: e instanceof Error ? e.message : String(e) });
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
