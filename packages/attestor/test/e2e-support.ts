// Support for the end-to-end tests (e2e-*.test.ts): a real attestor (in-process on the real
// TpmBackend, or the spawned tpmds-attestor binary) on swtpm, driven through the grpc-js client,
// and every payload checked with @tpmds/tpm2-wire's software crypto.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { trackProcess, untrackProcesses } from '../../../test/support/processes.js';
import { launcherSettings } from '../bench/launcher.js';
import {
  AK_ATTRIBUTES,
  EV,
  TPMA_OBJECT,
  TPM_ALG,
  TPM_ECC,
  TPMT_PUBLIC,
  TPMT_SIGNATURE,
  TPM2B_ENCRYPTED_SECRET,
  TPM2B_ID_OBJECT,
  bytesEqual,
  createImportBlob,
  ekTemplateEccP256,
  ekTemplateRsa2048,
  keyObjectToPublic,
  makeCredential,
  marshal,
  objectName,
  openTpm,
  parseEventLog,
  publicToSpkiDer,
  replayEventLog,
  toHex,
  unmarshal,
  utf8,
  verifyCertify,
  verifyCertifyCreation,
  verifyQuote,
  type EventSpec,
  type ImportBlobOptions,
  type ImportPayload,
  type Tpm,
} from '@tpmds/tpm2-wire';
import {
  decodeAttestationParameters,
  decodeCertificationParameters,
  decodePlatformParameters,
  decodePublicKeyPem,
  encodeEncryptedCredential,
  encodeImportBlob,
  type PlatformParameters,
} from '@tpmds/protocol/formats';
import { AttestorClient } from '@tpmds/protocol/proto';
import { createBackend } from '../src/backend-factory.js';
import { defaultConfig, type AttestorConfig } from '../src/config.js';
import { Logger } from '../src/log.js';
import { AttestorMetrics } from '../src/metrics.js';
import { startAttestor, type RunningAttestor } from '../src/server.js';

export type KeyType = 'rsa' | 'ecc';
export const KEY_TYPES: readonly KeyType[] = ['rsa', 'ecc'];

const PKG = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = resolve(PKG, '../..');
export const ATTESTOR_BIN = join(PKG, 'bin/tpmds-attestor.js');

export function tempDir(prefix = 'tpmds-e2e-'): { dir: string; cleanup: () => void } {
  // Short paths: Unix socket paths must stay below 108 bytes.
  const base = tmpdir().length > 60 ? '/tmp' : tmpdir();
  const dir = mkdtempSync(join(base, prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Log lines captured from an in-process attestor (raw JSON text and parsed). */
export class CapturedLog {
  readonly raw: string[] = [];
  write(line: string): void {
    this.raw.push(line);
  }
  get lines(): Record<string, unknown>[] {
    return this.raw.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
  get text(): string {
    return this.raw.join('');
  }
}

export interface InProcessAttestor {
  running: RunningAttestor;
  client: AttestorClient;
  metrics: AttestorMetrics;
  log: CapturedLog;
  config: AttestorConfig;
  /** Graceful stop: closes the client, the servers and the TPM connection. */
  stop(): Promise<void>;
}

/**
 * An attestor in this process on the real TPM backend (createBackend, as main.ts builds it),
 * insecure, on ports chosen by the kernel.
 */
export async function startInProcess(opts: { tpm: string; stateDir: string; eventLog: string }): Promise<InProcessAttestor> {
  const att = await startWithConfig({ eventLog: opts.eventLog }, { address: opts.tpm }, opts.stateDir);
  const client = new AttestorClient(att.running.address, grpc.credentials.createInsecure());
  let stopped: Promise<void> | undefined;
  return {
    running: att.running,
    client,
    metrics: att.metrics,
    log: att.log,
    config: att.config,
    stop: () =>
      (stopped ??= (async () => {
        client.close();
        await att.stop();
      })()),
  };
}

/** An in-process attestor on the real TPM backend with any configuration (auth modes, TLS). */
export interface ConfiguredAttestor {
  running: RunningAttestor;
  config: AttestorConfig;
  log: CapturedLog;
  metrics: AttestorMetrics;
  stop(): Promise<void>;
}

/** Starts the real attestor on `swtpm` with `config` over insecure loopback defaults. */
export async function startWithConfig(config: Partial<AttestorConfig>, swtpm: { address: string }, stateDir: string): Promise<ConfiguredAttestor> {
  const log = new CapturedLog();
  const logger = new Logger('debug', log);
  const metrics = new AttestorMetrics();
  const full: AttestorConfig = {
    ...defaultConfig(),
    listen: '127.0.0.1:0',
    healthListen: '127.0.0.1:0',
    tpm: swtpm.address,
    stateDir,
    eventLog: '/nonexistent',
    // Never the host's own systemd log: its measurements are not in swtpm.
    userspaceLog: '/nonexistent',
    logLevel: 'debug',
    insecure: true,
    ...config,
  };
  const backend = await createBackend(full, metrics, logger, {});
  const running = await startAttestor(full, backend, { logger, metrics, shutdownTimeoutMs: 5000, readinessPollMs: 60_000 });
  return { running, config: full, log, metrics, stop: () => running.close() };
}

export interface SpawnedAttestor {
  child: ChildProcess;
  /** Everything the process wrote to stdout (JSON log lines) and stderr. */
  stdout(): string;
  stderr(): string;
  address: string;
  healthAddress: string;
  client: AttestorClient;
  exited: Promise<number | null>;
  /** SIGTERM, then wait for the exit code. */
  stop(): Promise<number | null>;
}

/** The environment without any TPMDS_* of the caller. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TPMDS_')) env[k] = v;
  return { ...env, ...extra };
}

/**
 * Spawns the built `tpmds-attestor` binary as the image runs it (the node flags and environment of
 * its launcher line) and resolves once it logged "attestor listening".
 * `wrap` runs it under another program that execs it (e.g. `setpriv --reuid 10001 ...`).
 */
export function spawnAttestor(args: string[], wrap: string[] = []): Promise<SpawnedAttestor> {
  // As deployed: with the node flags and environment of the launcher's first line (bench/launcher.ts).
  const runtime = launcherSettings();
  const argv = [...wrap, process.execPath, ...runtime.nodeFlags, ATTESTOR_BIN, ...args];
  // Never the host's own systemd log (its measurements are not in swtpm), unless --userspace-log says otherwise.
  const env = cleanEnv({ ...runtime.env, TPMDS_USERSPACE_LOG: '/nonexistent/tpm2-measure.log' });
  const child = spawn(argv[0]!, argv.slice(1), { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  // If mocha exits mid-test, the shared safety net kills the attestor (it must not outlive the run).
  const tracked = child.pid === undefined ? undefined : trackProcess(child.pid);
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  void exited.then(() => tracked && untrackProcesses([tracked]));
  return new Promise((resolveStart, reject) => {
    let started = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`attestor did not start within 15 s:\n${out}\n${err}`));
    }, 15_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (started) return;
      for (const line of out.split('\n')) {
        if (!line.startsWith('{')) continue;
        const l = JSON.parse(line) as Record<string, unknown>;
        if (l['msg'] !== 'attestor listening') continue;
        started = true;
        clearTimeout(timer);
        const address = String(l['address']);
        const client = new AttestorClient(address, grpc.credentials.createInsecure());
        resolveStart({
          child,
          stdout: () => out,
          stderr: () => err,
          address,
          healthAddress: String(l['healthAddress']),
          client,
          exited,
          stop: async () => {
            client.close();
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
            return exited;
          },
        });
        return;
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      if (!started) reject(new Error(`attestor exited early (${code}):\n${out}\n${err}`));
    });
  });
}

/** The gRPC error of a call that must fail. */
export async function rejection(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    if (typeof (e as grpc.ServiceError).code !== 'number') throw e;
    return e as grpc.ServiceError;
  }
  throw new Error('expected the call to fail');
}

/** Asserts that `p` fails with one of `codes`. */
export async function expectStatus(p: Promise<unknown>, codes: grpc.status | readonly grpc.status[], what = ''): Promise<grpc.ServiceError> {
  const e = await rejection(p);
  const want = typeof codes === 'number' ? [codes] : codes;
  assert.ok(
    want.includes(e.code),
    `${what}: got ${grpc.status[e.code]} (${e.details}); expected ${want.map((c) => grpc.status[c]).join(' or ')}`,
  );
  return e;
}

// ---- checks of the payloads ------------------------------------------------------------------

/** The EK's TPMT_PUBLIC rebuilt from GetEKCert's SPKI with the TCG template of its type. */
export function ekPublicFromSpki(spki: Uint8Array, keyType: KeyType): TPMT_PUBLIC {
  const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  return keyObjectToPublic(key, keyType === 'ecc' ? ekTemplateEccP256() : ekTemplateRsa2048());
}

export interface CheckedAk {
  public: TPMT_PUBLIC;
  publicBytes: Uint8Array;
  name: Uint8Array;
  raw: Uint8Array;
}

/**
 * GetAK's AttestationParameters as go-attestation's verifier checks them: CertifyCreation by the
 * AK itself verifies, go-attestation's AK attributes (0x00050472), RSA-2048/RSASSA-SHA256 or
 * P-256/ECDSA-SHA256, nameAlg SHA-256, no TCSD format.
 */
export function checkAk(akJson: Uint8Array, keyType: KeyType): CheckedAk {
  const p = decodeAttestationParameters(akJson);
  assert.equal(p.useTCSDActivationFormat, false);
  assert.ok(p.public && p.createData && p.createAttestation && p.createSignature, 'every AttestationParameters blob is present');
  const pub = unmarshal(TPMT_PUBLIC, p.public);
  const sig = unmarshal(TPMT_SIGNATURE, p.createSignature);
  verifyCertifyCreation(pub, p.createData, p.createAttestation, sig);
  assert.equal(pub.objectAttributes, 0x00050472);
  assert.equal(pub.objectAttributes, AK_ATTRIBUTES);
  assert.equal(pub.nameAlg, TPM_ALG.SHA256);
  if (keyType === 'rsa') {
    assert.equal(pub.type, TPM_ALG.RSA);
    if (pub.type === TPM_ALG.RSA) {
      assert.equal(pub.parameters.keyBits, 2048);
      assert.deepEqual(pub.parameters.scheme, { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 });
    }
    assert.equal(sig.sigAlg, TPM_ALG.RSASSA);
  } else {
    assert.equal(pub.type, TPM_ALG.ECC);
    if (pub.type === TPM_ALG.ECC) {
      assert.equal(pub.parameters.curveID, TPM_ECC.NIST_P256);
      assert.deepEqual(pub.parameters.scheme, { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 });
    }
    assert.equal(sig.sigAlg, TPM_ALG.ECDSA);
  }
  return { public: pub, publicBytes: p.public, name: objectName(pub), raw: akJson };
}

/** An AttestRequest.encryptedCredentials payload: offline MakeCredential to `ekPub` for `akName`. */
export function encryptedCredential(ekPub: TPMT_PUBLIC, akName: Uint8Array, secret: Uint8Array): Uint8Array {
  const made = makeCredential(ekPub, akName, secret);
  return encodeEncryptedCredential({ credential: marshal(TPM2B_ID_OBJECT, made.credentialBlob), secret: marshal(TPM2B_ENCRYPTED_SECRET, made.encryptedSecret) });
}


/** go-tpm-tools ImportBlob protobuf bytes: createImportBlob to `ekPub`. */
export function importBlobBytes(ekPub: TPMT_PUBLIC, payload: ImportPayload, opts: ImportBlobOptions = {}): Uint8Array {
  const b = createImportBlob(ekPub, payload, opts);
  return encodeImportBlob({
    publicArea: marshal(TPMT_PUBLIC, b.publicArea),
    duplicate: b.duplicate,
    encryptedSeed: b.encryptedSeed,
    ...(b.pcrs ? { pcrs: { hash: b.pcrs.hashAlg, pcrs: new Map(b.pcrs.values) } } : {}),
  });
}

const GO_HASH_TO_ALG: Record<number, number> = { 3: TPM_ALG.SHA1, 5: TPM_ALG.SHA256, 6: TPM_ALG.SHA384, 7: TPM_ALG.SHA512 };
export const ALL_PCRS = Array.from({ length: 24 }, (_, i) => i);

export interface CheckedQuote {
  params: PlatformParameters;
  /** bank (TPM_ALG_ID) -> PCR -> value, from the verified quotes. */
  pcrs: Map<number, Map<number, Uint8Array>>;
  eventLog: Uint8Array;
}

/**
 * Quote's PlatformParameters as a verifier checks them: one quote per expected bank, each signed
 * by the AK over the nonce, selecting PCRs 0-23 of its bank, its pcrDigest the hash of the
 * returned PCR values (24 per bank).
 */
export function checkQuote(json: Uint8Array, ak: CheckedAk, nonce: Uint8Array, banks: readonly number[]): CheckedQuote {
  const params = decodePlatformParameters(json);
  assert.equal(params.tpmVersion, 2);
  assert.ok(params.public && bytesEqual(params.public, ak.publicBytes), 'PlatformParameters.Public is the AK');
  const byBank = new Map<number, Map<number, Uint8Array>>();
  for (const p of params.pcrs ?? []) {
    const alg = GO_HASH_TO_ALG[p.digestAlg];
    assert.ok(alg !== undefined, `PCR DigestAlg ${p.digestAlg}`);
    const m = byBank.get(alg) ?? new Map<number, Uint8Array>();
    assert.ok(!m.has(p.index), `PCR ${p.index} of bank ${alg} listed twice`);
    m.set(p.index, p.digest ?? new Uint8Array(0));
    byBank.set(alg, m);
  }
  assert.deepEqual([...byBank.keys()].sort(), [...banks].sort(), 'one set of PCR values per active bank');
  for (const m of byBank.values()) assert.deepEqual([...m.keys()].sort((a, b) => a - b), ALL_PCRS);
  const quotes = params.quotes ?? [];
  assert.equal(quotes.length, banks.length, 'one quote per active bank');
  const quoted = new Set<number>();
  for (const q of quotes) {
    assert.equal(q.version, 2);
    const sig = unmarshal(TPMT_SIGNATURE, q.signature!);
    // The bank this quote covers is the one whose selection it carries.
    let matched: number | undefined;
    for (const [bank, values] of byBank) {
      try {
        verifyQuote(ak.public, q.quote!, sig, { nonce, pcrs: { hashAlg: bank, values } });
        matched = bank;
        break;
      } catch (e) {
        if ((e as { check?: string }).check !== 'pcrSelection') throw e;
      }
    }
    assert.ok(matched !== undefined, 'the quote covers one of the returned banks');
    assert.ok(!quoted.has(matched), 'two quotes of the same bank');
    quoted.add(matched);
  }
  return { params, pcrs: byBank, eventLog: params.eventLog ?? new Uint8Array(0) };
}

/**
 * NewKey's response as a verifier checks it: TPM2_Certify by the AK verifies, attested name ==
 * name of Public, the PEM key == Public, attributes of a TPM-made unrestricted signing key.
 */
export function checkNewKey(res: { public: Uint8Array; keyCertification: Uint8Array }, ak: CheckedAk, keyType: KeyType): { public: TPMT_PUBLIC; key: KeyObject } {
  const pemText = new TextDecoder().decode(res.public);
  assert.match(pemText, /^-----BEGIN PUBLIC KEY-----\n/);
  const spki = decodePublicKeyPem(res.public);
  const c = decodeCertificationParameters(res.keyCertification);
  assert.equal(c.createData, null);
  const pub = unmarshal(TPMT_PUBLIC, c.public!);
  verifyCertify(ak.public, c.createAttestation!, unmarshal(TPMT_SIGNATURE, c.createSignature!), pub, {
    attributes: {
      set: TPMA_OBJECT.sign | TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin,
      clear: TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt,
    },
  });
  assert.equal(toHex(spki), toHex(publicToSpkiDer(pub)), 'the PEM key is the certified Public');
  assert.equal(pub.type, keyType === 'rsa' ? TPM_ALG.RSA : TPM_ALG.ECC);
  return { public: pub, key: createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }) };
}

/** Verifies a Sign/confirmation signature: SHA-256, RSA PKCS#1 v1.5 or ECDSA ASN.1 DER. */
export function verifiesWith(key: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  if (key.asymmetricKeyType === 'ec') return nodeVerify('sha256', data, { key, dsaEncoding: 'der' }, signature);
  return nodeVerify('sha256', data, key, signature);
}

// ---- TPM-side helpers (our own Tpm client, only while no attestor holds the connection) -------

export async function withTpm<T>(address: string, f: (tpm: Tpm) => Promise<T>): Promise<T> {
  const tpm = await openTpm(address);
  try {
    return await f(tpm);
  } finally {
    await tpm.close();
  }
}

/** A firmware-like measured boot for a crypto-agile log (digests computed from the data). */
export function bootEvents(): EventSpec[] {
  const ucs2 = (s: string): Uint8Array => new Uint8Array([...s].flatMap((c) => [c.charCodeAt(0), 0]));
  const separator = (pcr: number): EventSpec => ({ pcr, type: EV.EV_SEPARATOR, data: new Uint8Array(4) });
  return [
    { pcr: 0, type: EV.EV_S_CRTM_VERSION, data: ucs2('tpmds e2e firmware\0') },
    { pcr: 0, type: EV.EV_POST_CODE, data: utf8('POST CODE') },
    { pcr: 1, type: EV.EV_PLATFORM_CONFIG_FLAGS, data: utf8('config') },
    ...[0, 1, 2, 3, 4, 5, 6, 7].map(separator),
    { pcr: 4, type: EV.EV_EFI_ACTION, data: utf8('Calling EFI Application from Boot Option') },
    { pcr: 8, type: EV.EV_IPL, data: utf8('grub_cmd: linux /vmlinuz root=/dev/sda1\0') },
    { pcr: 9, type: EV.EV_IPL, data: utf8('/boot/initrd.img\0') },
    { pcr: 5, type: EV.EV_EFI_ACTION, data: utf8('Exit Boot Services Invocation') },
    { pcr: 5, type: EV.EV_EFI_ACTION, data: utf8('Exit Boot Services Returned with Success') },
  ];
}

/** Extends every measured event of `log` into the TPM's PCRs (each bank with its digest). */
export async function extendLog(tpm: Tpm, log: Uint8Array): Promise<void> {
  for (const e of parseEventLog(log).events) {
    if (e.type === EV.EV_NO_ACTION) continue;
    await tpm.pcrExtend(e.pcr, e.digests.map((d) => ({ hashAlg: d.alg, digest: d.digest })));
  }
}

/**
 * The replayed log against the quoted PCRs: every PCR the log extends, in every quoted bank,
 * equals its quoted value. Returns how many PCR values were compared.
 */
export function assertLogMatchesQuote(log: Uint8Array, quoted: Map<number, Map<number, Uint8Array>>): number {
  const replay = replayEventLog(parseEventLog(log));
  let compared = 0;
  for (const [bank, pcrs] of quoted) {
    const replayed = replay.banks.get(bank);
    assert.ok(replayed && replayed.size > 0, `the log replays bank ${bank}`);
    for (const [pcr, value] of replayed) {
      assert.equal(toHex(value), toHex(pcrs.get(pcr)!), `PCR ${pcr} of bank 0x${bank.toString(16)}: replayed log vs quote`);
      compared++;
    }
  }
  return compared;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
