/**
 * tpmds demo, end to end: a freshly provisioned swtpm is the node's TPM (EK
 * certificates from a local CA, a firmware event log and systemd's userspace
 * log written and measured into its PCRs), `tpmds-attestor` serves it over gRPC, and `tpmds-verifier run`
 * proves everything from the outside — for an RSA and an ECC identity — and signs
 * its verdict as an EAR (EAT Attestation Result) that `tpmds-verifier ear verify` reads back.
 *
 *   bash scripts/setup.sh && pnpm demo
 */
import { generateKeyPairSync } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EFI_GLOBAL_VARIABLE_GUID, uefiVariableData,
  EV, TPM_ALG, TPM_PT, algName, buildEventLog, buildUserspaceLog, concatBytes, hash, openTpm, parseEventLog, parseUserspaceLog,
  phaseRecord, toHex, utf8,
} from '@tpmds/tpm2-wire';
import { Logger, createBackend, defaultConfig, startAttestor, AttestorMetrics } from '@tpmds/attestor';
import { startSwtpm } from '../packages/tpm2-wire/test/fixtures/swtpm.js';

const verifierBin = fileURLToPath(new URL('../packages/verifier/bin/tpmds-verifier.js', import.meta.url));

/** UEFI_VARIABLE_DATA (PFP 10.4.6) for the SecureBoot variable. */
function secureBootVariable(enabled: boolean): Uint8Array {
  return uefiVariableData(EFI_GLOBAL_VARIABLE_GUID, 'SecureBoot', Uint8Array.of(enabled ? 1 : 0));
}

/** A small but realistic UEFI boot: S-CRTM, Secure Boot on, separators, one boot application. */
function bootEvents() {
  const separator = new Uint8Array(4);
  const bootApp = concatBytes(new Uint8Array(24), new Uint8Array(8)); // UEFI_IMAGE_LOAD_EVENT with no device path
  return [
    { pcr: 0, type: EV.EV_S_CRTM_VERSION, data: utf8('tpmds demo firmware 1.0\0') },
    { pcr: 7, type: EV.EV_EFI_VARIABLE_DRIVER_CONFIG, data: secureBootVariable(true) },
    ...[0, 1, 2, 3, 4, 5, 6, 7].map((pcr) => ({ pcr, type: EV.EV_SEPARATOR, data: separator })),
    { pcr: 4, type: EV.EV_EFI_ACTION, data: utf8('Calling EFI Application from Boot Option') },
    {
      pcr: 4, type: EV.EV_EFI_BOOT_SERVICES_APPLICATION, data: bootApp,
      digests: new Map([[TPM_ALG.SHA1, hash(TPM_ALG.SHA1, utf8('shimx64.efi'))], [TPM_ALG.SHA256, hash(TPM_ALG.SHA256, utf8('shimx64.efi'))]]),
    },
    { pcr: 5, type: EV.EV_EFI_ACTION, data: utf8('Exit Boot Services Invocation') },
  ];
}

/**
 * Runs tpmds-verifier with `args`: resolves with its exit code and, with `capture`, its stdout
 * (which otherwise goes to the demo's own, as its stderr always does).
 */
function runVerifier(args: string[], { capture = false } = {}): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [verifierBin, ...args], { stdio: ['ignore', capture ? 'pipe' : 'inherit', 'inherit'] });
    let stdout = '';
    p.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    p.once('error', reject);
    // 'close', not 'exit': a captured stdout is complete only once its pipe has closed.
    p.once('close', (code) => resolve({ code: code ?? 1, stdout }));
  });
}

const work = await mkdtemp(join(tmpdir(), 'tpmds-demo-'));
console.log('tpmds demo\n==========\n');
console.log('1. Starting swtpm with a freshly provisioned TPM (EK certificates from a local CA) ...');
const sw = await startSwtpm({ transport: 'unix' });
let attestor: Awaited<ReturnType<typeof startAttestor>> | undefined;
let failures = 0;
try {
  // The "firmware": measure a boot into the PCRs and keep its event log, as a real machine's would.
  const tpm = await openTpm(sw.address);
  const banks = await tpm.getActivePcrBanks();
  const log = buildEventLog(bootEvents(), banks);
  for (const e of parseEventLog(log).events) {
    if (e.type === EV.EV_NO_ACTION) continue;
    await tpm.pcrExtend(e.pcr, e.digests.map((d) => ({ hashAlg: d.alg, digest: d.digest })));
  }
  // Then "systemd": the boot phases it measures into PCR 11 after the firmware, with its userspace log.
  const phases = ['enter-initrd', 'leave-initrd', 'sysinit', 'ready'];
  const userspaceLog = buildUserspaceLog(phases.map(phaseRecord), banks);
  for (const r of parseUserspaceLog(userspaceLog).records) await tpm.pcrExtend(r.pcr, [...r.digests].map(([hashAlg, digest]) => ({ hashAlg, digest })));
  const pcrs = await tpm.readPcrs(TPM_ALG.SHA256, [4, 7]);
  const pcr7 = pcrs.get(7)!;
  const props = await tpm.getProperties();
  await tpm.close();
  const logPath = join(work, 'binary_bios_measurements');
  await writeFile(logPath, log);
  const userspaceLogPath = join(work, 'tpm2-measure.log');
  await writeFile(userspaceLogPath, userspaceLog);
  const mfr = props.get(TPM_PT.MANUFACTURER) ?? 0;
  console.log(`   TPM ${sw.address}: manufacturer ${String.fromCharCode(mfr >>> 24, (mfr >>> 16) & 255, (mfr >>> 8) & 255)}, banks ${banks.map(algName).join(', ')}`);
  console.log(`   measured a ${parseEventLog(log).events.length}-event boot (Secure Boot on) into the PCRs; sha256 PCR7 = ${toHex(pcr7).slice(0, 16)}…`);
  console.log(`   and systemd's boot phases into PCR 11 (${phases.join(', ')}), with its userspace log\n`);

  console.log('2. Starting tpmds-attestor on that TPM (plaintext, on a Unix socket: local development mode) ...');
  const config = {
    ...defaultConfig(),
    listen: `unix:${join(work, 'attestor.sock')}`,
    tpm: sw.address,
    stateDir: join(work, 'state'),
    eventLog: logPath,
    userspaceLog: userspaceLogPath, // the demo's, never the host's own /run/log/systemd/tpm2-measure.log
    insecure: true,
    healthListen: '127.0.0.1:0',
    logLevel: 'error' as const,
  };
  const logger = new Logger('error');
  const metrics = new AttestorMetrics();
  attestor = await startAttestor(config, await createBackend(config, metrics, logger), { logger, metrics });
  console.log(`   listening on ${attestor.address}; health and metrics on http://${attestor.healthAddress}\n`);

  // The EAR signing key and an appraisal policy whose reference values are the measured PCR 4 and 7.
  const earKey = generateKeyPairSync('ec', { namedCurve: 'P-256', publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  await writeFile(join(work, 'ear-key.pem'), earKey.privateKey);
  await writeFile(join(work, 'ear-key.pub.pem'), earKey.publicKey);
  const policyRun = await runVerifier(['ear', 'default-policy'], { capture: true });
  if (policyRun.code !== 0) throw new Error(`tpmds-verifier ear default-policy exited ${policyRun.code}`);
  const defaultPolicy = JSON.parse(policyRun.stdout) as Record<string, unknown>;
  await writeFile(join(work, 'policy.json'), JSON.stringify({
    ...defaultPolicy, id: 'tpmds-demo-policy:1', referenceValues: { pcrs: { sha256: { 4: toHex(pcrs.get(4)!), 7: toHex(pcr7) } } },
  }, null, 2));

  for (const keyType of ['rsa', 'ecc'] as const) {
    console.log(`3${keyType === 'rsa' ? 'a' : 'b'}. tpmds-verifier run --key-type ${keyType} (EK chain checked against the local CA, PCR7 expected, a signed EAR)\n`);
    const { code } = await runVerifier([
      'run', '--target', attestor.address, '--insecure', '--key-type', keyType,
      '--ek-roots', sw.caRootPem, '--ek-intermediates', sw.caIntermediatePem, '--expect-pcr', `7:${toHex(pcr7)}`,
      '--ear-out', join(work, `ear-${keyType}.jwt`), '--ear-key', join(work, 'ear-key.pem'), '--policy', join(work, 'policy.json'),
    ]);
    if (code !== 0) failures++;
    console.log('');
  }

  console.log('4. tpmds-verifier ear verify: the ECC run\'s EAR, checked offline with the signer\'s public key\n');
  if ((await runVerifier(['ear', 'verify', join(work, 'ear-ecc.jwt'), '--key', join(work, 'ear-key.pub.pem')])).code !== 0) failures++;
  console.log('');
} finally {
  await attestor?.close();
  await sw.stop();
  await rm(work, { recursive: true, force: true });
}
console.log(failures === 0 ? 'Demo complete: every check passed for both key types, and the signed EAR verifies.' : `Demo: ${failures} verifier run(s) FAILED.`);
process.exitCode = failures === 0 ? 0 : 1;
