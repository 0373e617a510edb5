// Named checks: what every verification step returns instead of throwing.

/** One named check. `warning` marks a check that passed with a caveat (it never fails a run). */
export interface Check {
  /** Stable dotted name, e.g. `ak.certifyCreation`, `quote.sha256`. */
  name: string;
  ok: boolean;
  /** Why it passed or failed, in words; never secret material. */
  detail: string;
  warning?: boolean;
}

/** The result of one verification step: its checks, and the decoded values later steps use. */
export interface StepResult<T> {
  /** True when every check passed (warnings included). */
  ok: boolean;
  checks: Check[];
  /** The decoded values; present even when some checks failed, as far as decoding got. */
  value?: T;
}

/** Accumulates checks for one step. */
export class CheckList {
  readonly checks: Check[] = [];

  pass(name: string, detail: string): void {
    this.checks.push({ name, ok: true, detail });
  }

  fail(name: string, detail: string): void {
    this.checks.push({ name, ok: false, detail });
  }

  warn(name: string, detail: string): void {
    this.checks.push({ name, ok: true, detail, warning: true });
  }

  /** Records `ok ? pass : fail` with the matching detail. */
  expect(name: string, ok: boolean, okDetail: string, failDetail: string): boolean {
    if (ok) this.pass(name, okDetail);
    else this.fail(name, failDetail);
    return ok;
  }

  /**
   * Runs `fn`; a thrown error becomes a failed check (its message is the detail), a returned
   * value is passed through. Returns undefined when it threw.
   */
  attempt<T>(name: string, fn: () => T, okDetail: string | ((v: T) => string)): T | undefined {
    let v: T;
    try {
      v = fn();
    } catch (e) {
      this.fail(name, errorText(e));
      return undefined;
    }
    this.pass(name, typeof okDetail === 'function' ? okDetail(v) : okDetail);
    return v;
  }

  get ok(): boolean {
    return this.checks.every((c) => c.ok);
  }

  result<T>(value?: T): StepResult<T> {
    return value === undefined ? { ok: this.ok, checks: this.checks } : { ok: this.ok, checks: this.checks, value };
  }
}

/** An error's message (without a stack), for a check's detail. */
export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
