// JSON-lines logs on stdout, one object per line (the attestor's format): identifiers and
// outcomes only.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface LogSink {
  write(line: string): unknown;
}

export class Logger {
  readonly #min: number;
  readonly #sink: LogSink;

  constructor(level: LogLevel = 'info', sink: LogSink = process.stdout) {
    this.#min = LOG_LEVELS.indexOf(level);
    this.#sink = sink;
  }

  log(level: LogLevel, msg: string, fields: LogFields = {}): void {
    if (LOG_LEVELS.indexOf(level) < this.#min) return;
    const line: Record<string, unknown> = { time: new Date().toISOString(), level, msg };
    for (const [k, v] of Object.entries(fields)) if (v !== undefined && !(k in line)) line[k] = v;
    this.#sink.write(JSON.stringify(line) + '\n');
  }

  debug(msg: string, fields?: LogFields): void {
    this.log('debug', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.log('info', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.log('warn', msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.log('error', msg, fields);
  }
}

/** The message of any thrown value. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
