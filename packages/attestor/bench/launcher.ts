/**
 * The attestor's runtime settings as deployed: the environment and node flags on the
 * `#!/usr/bin/env -S NAME=VALUE... node FLAG...` line of bin/tpmds-attestor.js, the file the
 * image's entry point runs. The benchmark starts the attestor with exactly these; the runtime
 * settings test checks the image and the manifests leave them alone.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** bin/tpmds-attestor.js. */
export const LAUNCHER = fileURLToPath(new URL('../bin/tpmds-attestor.js', import.meta.url));

export interface LauncherSettings {
  /** Environment variables the launcher sets (e.g. MALLOC_ARENA_MAX). */
  env: Record<string, string>;
  /** Flags it gives node (e.g. --max-old-space-size=96). */
  nodeFlags: string[];
  /** The settings as written on the line, for reports. */
  text: string;
}

/** The settings on the launcher's first line; throws naming the file when it is not `#!/usr/bin/env -S ... node ...`. */
export function launcherSettings(file = LAUNCHER): LauncherSettings {
  const first = readFileSync(file, 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\/usr\/bin\/env -S (.+)$/.exec(first);
  if (m === null) throw new Error(`${file}: the first line is not "#!/usr/bin/env -S [NAME=VALUE...] node [FLAG...]": ${JSON.stringify(first)}`);
  const words = (m[1] as string).trim().split(/\s+/);
  const env: Record<string, string> = {};
  let i = 0;
  for (; i < words.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[i] as string); i++) {
    const w = words[i] as string;
    env[w.slice(0, w.indexOf('='))] = w.slice(w.indexOf('=') + 1);
  }
  if (words[i] !== 'node') throw new Error(`${file}: the launcher line runs ${JSON.stringify(words[i])}, not node`);
  const nodeFlags = words.slice(i + 1);
  for (const f of nodeFlags) if (!f.startsWith('--')) throw new Error(`${file}: ${JSON.stringify(f)} on the launcher line is not a node flag`);
  return { env, nodeFlags, text: (m[1] as string).trim() };
}
