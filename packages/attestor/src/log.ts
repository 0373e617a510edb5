// Structured JSON logs, one object per line on stdout. Callers pass identifiers and outcomes
// only: never payloads, secrets or key material.
import type { LogLevel } from './config.js';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Extra fields of a log line. */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

/** Where log lines go (process.stdout by default). */
export interface LogSink {
  write(line: string): unknown;
}

/** A JSON-lines logger with a minimum level. */
export class Logger {
  readonly #min: number;
  readonly #sink: LogSink;
  readonly #base: LogFields;

  constructor(level: LogLevel = 'info', sink: LogSink = process.stdout, base: LogFields = {}) {
    this.#min = RANK[level];
    this.#sink = sink;
    this.#base = base;
  }

  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger {
    const level = (Object.keys(RANK) as LogLevel[]).find((l) => RANK[l] === this.#min) ?? 'info';
    return new Logger(level, this.#sink, { ...this.#base, ...fields });
  }

  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.#min;
  }

  log(level: LogLevel, msg: string, fields: LogFields = {}): void {
    if (!this.enabled(level)) return;
    const line: Record<string, unknown> = { time: new Date().toISOString(), level, msg };
    for (const [k, v] of Object.entries({ ...this.#base, ...fields })) {
      if (v !== undefined && !(k in line)) line[k] = v;
    }
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
