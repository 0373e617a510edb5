/**
 * Runs a provisioned swtpm for manual use or a demo, and prints where it is as shell assignments:
 *
 *   node --import tsx scripts/swtpm-env.ts [--transport unix|tcp|device] [--state DIR]
 *                                          [--flags ready|needs-init] [--pcr-banks sha1,sha256]
 *
 *   TPMDS_TPM=swtpm:path=/tmp/tpmds-swtpm-run-XXXX/sock     (tpmds-attestor --tpm)
 *   TPM2TOOLS_TCTI=swtpm:path=/tmp/tpmds-swtpm-run-XXXX/sock
 *   EK_CA_ROOT_PEM=...  EK_CA_INTERMEDIATE_PEM=...          (tpmds-verifier --ek-roots / --ek-intermediates)
 *   SWTPM_PID=...
 *
 * Without --state the TPM is fresh and thrown away at the end; with --state DIR it is provisioned into
 * DIR on first use and kept (keys and NV survive between runs). Runs until SIGINT or SIGTERM, then sends
 * TPM2_Shutdown(STATE) and stops swtpm.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  openSwtpmState,
  provisionSwtpmState,
  startSwtpm,
  type ProvisionedState,
  type SwtpmFlags,
  type SwtpmTransport,
} from '../packages/tpm2-wire/test/fixtures/swtpm.js';

const usage = 'usage: swtpm-env.ts [--transport unix|tcp|device] [--state DIR] [--flags ready|needs-init] [--pcr-banks LIST]';

function fail(message: string): never {
  process.stderr.write(`swtpm-env: ${message}\n${usage}\n`);
  process.exit(2);
}

const { values } = (() => {
  try {
    return parseArgs({
      options: {
        transport: { type: 'string', default: 'unix' },
        state: { type: 'string' },
        flags: { type: 'string', default: 'ready' },
        'pcr-banks': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    return fail((e as Error).message);
  }
})();
if (values.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
const transport = values.transport as SwtpmTransport;
if (!['unix', 'tcp', 'device'].includes(transport)) fail(`--transport: unknown transport '${transport}'`);
const flags = values.flags as SwtpmFlags;
if (flags !== 'ready' && flags !== 'needs-init') fail(`--flags: expected ready or needs-init, got '${flags}'`);
const pcrBanks = values['pcr-banks']?.split(',').filter(Boolean);

let state: ProvisionedState | undefined;
if (values.state !== undefined) {
  const dir = values.state;
  state = existsSync(join(dir, 'state.json'))
    ? await openSwtpmState(dir)
    : await provisionSwtpmState({ dir, pcrBanks });
}
const swtpm = await startSwtpm({ transport, flags, state, pcrBanks });

const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
process.stdout.write(
  [
    `TPMDS_TPM=${quote(swtpm.address)}`,
    `TPM2TOOLS_TCTI=${quote(swtpm.tctiForTpm2Tools)}`,
    `EK_CA_ROOT_PEM=${quote(swtpm.caRootPem)}`,
    `EK_CA_INTERMEDIATE_PEM=${quote(swtpm.caIntermediatePem)}`,
    `SWTPM_PID=${swtpm.pid}`,
    '',
  ].join('\n'),
);
process.stderr.write(`swtpm-env: swtpm (${transport}, ${flags}) running; SIGINT or SIGTERM stops it\n`);

const keepAlive = setInterval(() => undefined, 1 << 30);
let stopping = false;
const stop = (signal: NodeJS.Signals) => {
  if (stopping) return;
  stopping = true;
  swtpm
    .stop()
    .then(() => {
      clearInterval(keepAlive);
      process.stderr.write(`swtpm-env: stopped (${signal})\n`);
    })
    .catch((e: unknown) => {
      process.stderr.write(`swtpm-env: stop failed: ${(e as Error).message}\n`);
      process.exitCode = 1;
      clearInterval(keepAlive);
    });
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
