// What the CLI reads besides its flags: input files named on the command line, and its own version.
import { readFileSync } from 'node:fs';
import { UsageError } from './exit.js';

/** The bytes of `path`, named on the command line as `label` (e.g. "--ca", "TOKEN"): a UsageError saying why it cannot be read. */
export function readInputFile(label: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`${label} ${path}: cannot read (${code === 'ENOENT' ? 'no such file' : (e as Error).message})`);
  }
}

/** This package's version (package.json). */
export function verifierVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}
