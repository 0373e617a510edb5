/** Process entry of `tpmds-verifier` (bin/tpmds-verifier.js imports the built copy of this file). */
import { runCli } from './cli.js';

// A closed pipe (`tpmds-verifier eventlog f | head`) is not an error worth a stack trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
});
