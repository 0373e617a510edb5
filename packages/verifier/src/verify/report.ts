// The readable form of a run report: one line per check, grouped by step.
import type { Check, StepResult } from './checks.js';
import type { RunReport, StepReport } from './run.js';

function mark(c: Check): string {
  if (!c.ok) return 'FAIL';
  return c.warning ? 'warn' : 'ok  ';
}

/** The lines of one step: its title, then `ok`/`warn`/`FAIL`, the check's name and why. */
export function formatStep(s: StepReport): string {
  const width = Math.max(28, ...s.checks.map((c) => c.name.length + 2));
  const lines = [`${s.ok ? '✓' : '✗'} ${s.title}`];
  if (s.skipped) lines.push(`  SKIP  ${s.skipped}`);
  for (const c of s.checks) lines.push(`  ${mark(c)}  ${c.name.padEnd(width)}${c.detail}`);
  return lines.join('\n');
}

/** The whole report as text, ending with the verdict (which checks failed). */
export function formatReport(r: RunReport): string {
  const head = `tpmds-verifier${r.target ? ` → ${r.target}` : ''}  uid ${r.uid}  kid ${r.kid}  key type ${r.keyType}`;
  const total = r.steps.reduce((n, s) => n + s.checks.length, 0);
  const verdict = r.ok
    ? `PASS: all ${total} checks passed${r.warnings.length > 0 ? ` (${r.warnings.length} warning(s): ${r.warnings.join(', ')})` : ''}`
    : `FAIL: ${r.failed.length} check(s) failed: ${r.failed.join(', ')}`;
  return [head, '', ...r.steps.map(formatStep), '', verdict, ''].join('\n');
}

/** A single step's checks as text (for library users printing one verification). */
export function formatChecks(title: string, result: StepResult<unknown>): string {
  return formatStep({ step: 'health', title, ok: result.ok, checks: result.checks });
}
