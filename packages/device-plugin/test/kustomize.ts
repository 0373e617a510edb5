// Finds a kustomize for the manifest checks, and gets one when the machine has none: never a
// silent skip. In order: $TPMDS_KUSTOMIZE (a kustomize binary), `kubectl kustomize`, `kustomize`
// on PATH, a copy cached by an earlier run, then `go install` of the pinned kustomize from the Go
// module proxy into that cache (needs Go; about a minute the first time).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const KUSTOMIZE_MODULE = 'sigs.k8s.io/kustomize/kustomize/v5';
export const KUSTOMIZE_VERSION = 'v5.5.0';

/** argv prefix that renders a kustomization directory given as the last argument. */
export type Kustomize = { argv: string[]; source: string };

function works(argv: string[]): boolean {
  const r = spawnSync(argv[0]!, [...argv.slice(1), '--help'], { stdio: 'ignore', timeout: 30_000 });
  return r.status === 0;
}

function cacheDir(): string {
  return join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'tpmds', `kustomize-${KUSTOMIZE_VERSION}`);
}

export function findKustomize(): Kustomize {
  const explicit = process.env['TPMDS_KUSTOMIZE'];
  if (explicit !== undefined && explicit !== '') {
    if (!works([explicit, 'build'])) throw new Error(`TPMDS_KUSTOMIZE=${explicit} does not run`);
    return { argv: [explicit, 'build'], source: 'TPMDS_KUSTOMIZE' };
  }
  if (works(['kubectl', 'kustomize'])) return { argv: ['kubectl', 'kustomize'], source: 'kubectl kustomize' };
  if (works(['kustomize', 'build'])) return { argv: ['kustomize', 'build'], source: 'kustomize on PATH' };
  const dir = cacheDir();
  const cached = join(dir, 'kustomize');
  if (existsSync(cached) && works([cached, 'build'])) return { argv: [cached, 'build'], source: cached };
  if (spawnSync('go', ['version'], { stdio: 'ignore' }).status !== 0) {
    throw new Error(
      'no kustomize: install kubectl or kustomize, set TPMDS_KUSTOMIZE, or install Go so the test can ' +
        `\`go install ${KUSTOMIZE_MODULE}@${KUSTOMIZE_VERSION}\` into ${dir}`,
    );
  }
  mkdirSync(dir, { recursive: true });
  execFileSync('go', ['install', `${KUSTOMIZE_MODULE}@${KUSTOMIZE_VERSION}`], {
    env: { ...process.env, GOBIN: dir },
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 15 * 60_000,
  });
  if (!works([cached, 'build'])) throw new Error(`go install left no working kustomize at ${cached}`);
  return { argv: [cached, 'build'], source: `go install into ${dir}` };
}

/** Renders a kustomization directory to YAML text. */
export function render(k: Kustomize, dir: string): string {
  return execFileSync(k.argv[0]!, [...k.argv.slice(1), dir], { encoding: 'utf8', maxBuffer: 16 << 20, timeout: 120_000 });
}
