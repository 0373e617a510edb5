// The readable form of a run report: one line per check, grouped by step, then the verdict.
import type { Check, StepResult } from './checks.js';
import type { RunReport, StepReport } from './run.js';

function mark(c: Check): string {
  if (!c.ok) return 'FAIL';
  return c.warning ? 'warn' : 'ok  ';
}

/** The lines of one step: its title, then `ok`/`warn`/`FAIL`, the check's name and why. */
export function formatStep(s: Pick<StepReport, 'title' | 'ok' | 'checks'> & { skipped?: string }): string {
  const width = Math.max(32, ...s.checks.map((c) => c.name.length + 2));
  const lines = [`${s.ok ? '✓' : '✗'} ${s.title}`];
  if (s.skipped) lines.push(`  SKIP  ${s.skipped}`);
  for (const c of s.checks) lines.push(`  ${mark(c)}  ${c.name.padEnd(width)}${c.detail}`);
  return lines.join('\n') + '\n';
}

/** The first line of a report: target, uid, kid, key type. */
export function formatHeader(r: Pick<RunReport, 'target' | 'uid' | 'kid' | 'keyType'>): string {
  return `tpmds-verifier${r.target ? ` → ${r.target}` : ''}  uid ${r.uid}  kid ${r.kid}  key type ${r.keyType}\n`;
}

/** The verdict: PASS with the count (and warnings), or FAIL with every failed check and why. */
export function formatVerdict(r: RunReport): string {
  const total = r.steps.reduce((n, s) => n + s.checks.length, 0);
  if (r.ok) return `PASS: all ${total} checks passed${r.warnings.length > 0 ? ` (warnings: ${r.warnings.join(', ')})` : ''}\n`;
  const failed = r.steps.reduce((n, s) => n + s.checks.filter((c) => !c.ok).length, 0);
  const notRun = r.steps.filter((s) => s.skipped).length;
  const lines = [`FAIL: ${failed} of ${total} checks failed${notRun > 0 ? `, ${notRun} step(s) not run` : ''}:`];
  for (const s of r.steps) {
    if (s.skipped) lines.push(`  ${s.step}: ${s.skipped}`);
    for (const c of s.checks) if (!c.ok) lines.push(`  ${c.name}: ${c.detail}`);
  }
  return lines.join('\n') + '\n';
}

/** The whole report as text. */
export function formatReport(r: RunReport): string {
  return [formatHeader(r), ...r.steps.map(formatStep), formatVerdict(r)].join('\n');
}

/** One verification's checks as text, under `title` (for library users printing a single step). */
export function formatChecks(title: string, result: StepResult<unknown>): string {
  return formatStep({ title, ok: result.ok, checks: result.checks });
}
