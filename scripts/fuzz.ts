// Mutation fuzzing of every decoder (test/fuzz/targets.ts): by default 1,000,000 cases per
// decoder, seed 1. Prints one line per decoder (cases, typed rejections, slowest input, time,
// peak heap) and exits 1 if any input threw an untyped error or took over 100 ms.
//
//   node --import tsx scripts/fuzz.ts [--cases N] [--seed S] [--only SUBSTRING] [--exclude SUBSTRING] [--reverse] [--json FILE] [--help]
import { writeFileSync } from 'node:fs';
import { fuzz, type FuzzResult } from '../test/fuzz/engine.js';
import { allTargets } from '../test/fuzz/targets.js';

const USAGE = `usage: node --import tsx scripts/fuzz.ts [options]

Mutation-fuzzes every decoder of test/fuzz/targets.ts; exits 1 if any input threw an untyped
error or took over 100 ms.

  --cases N            cases per decoder (default 1000000)
  --seed S             seed of the mutations (default 1)
  --only SUBSTRING     only decoders whose name contains SUBSTRING
  --exclude SUBSTRING  skip decoders whose name contains SUBSTRING
  --reverse            run the decoders in reverse order
  --json FILE          write the results as JSON (after each decoder)
  --help               this text`;
const KNOWN = new Set(['--cases', '--seed', '--only', '--exclude', '--json']);

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log(USAGE);
  process.exit(0);
}
for (let i = 0; i < args.length; i++) {
  const a = args[i] as string;
  if (a === '--reverse') continue;
  if (!KNOWN.has(a) || args[i + 1] === undefined) {
    console.error(`fuzz.ts: ${KNOWN.has(a) ? `${a} needs a value` : `unknown argument ${a}`}\n\n${USAGE}`);
    process.exit(2);
  }
  i++;
}

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : process.argv[i + 1];
}

function count(name: string, dflt: number): number {
  const v = flag(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) {
    console.error(`fuzz.ts: --${name} must be a whole number, not ${v}`);
    process.exit(2);
  }
  return n;
}

const cases = count('cases', 1_000_000);
const seed = count('seed', 1);
const only = flag('only');
const exclude = flag('exclude');
const jsonOut = flag('json');
const ordered = process.argv.includes('--reverse') ? allTargets().reverse() : allTargets();
const targets = ordered.filter((t) => (only === undefined || t.name.includes(only)) && (exclude === undefined || !t.name.includes(exclude)));
const results: FuzzResult[] = [];
const started = Date.now();
let bad = 0;
for (const t of targets) {
  const r = await fuzz(t, { cases, seed });
  results.push(r);
  bad += r.failures.length;
  console.log(
    `${r.failures.length === 0 ? 'ok  ' : 'FAIL'} ${r.name}: ${r.cases} cases (${r.accepted} accepted, ${r.rejected} typed errors), ` +
      `slowest ${r.slowestMs.toFixed(1)} ms, ${(r.elapsedMs / 1000).toFixed(1)} s, peak heap ${(r.peakHeapBytes / 2 ** 20).toFixed(0)} MiB`,
  );
  for (const f of r.failures) console.log(`     case ${f.case}: ${f.problem}\n     input ${f.inputHex.slice(0, 400)}`);
  if (jsonOut !== undefined) writeFileSync(jsonOut, JSON.stringify({ cases, seed, results }, null, 1));
}
console.log(`${targets.length} decoders, ${cases} cases each, seed ${seed}: ${bad === 0 ? 'no failures' : `${bad} failures`} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exit(bad === 0 ? 0 : 1);
