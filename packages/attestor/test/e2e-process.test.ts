// End to end with the real binary: `node packages/attestor/bin/tpmds-attestor.js` (the built
// attestor; run `pnpm build` first) on a swtpm whose only PCR bank is SHA-256, served on a Unix
// socket; the whole flow for RSA and ECC through the grpc-js client; /metrics afterwards; the
// process's stdout holds JSON log lines and no secret; SIGTERM exits 0 and leaves the TPM empty.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { httpGet } from './helpers.js';
import { join } from 'node:path';
import {
  TPM_ALG,
  buildEventLog,
  certificateMatchesPublic,
  hash,
  pemToDers,
  toHex,
  verifyCertificateChain,
} from '@tpmds/tpm2-wire';
import { startSwtpm, type SwtpmInstance } from '../../tpm2-wire/test/fixtures/swtpm.js';
import {
  ATTESTOR_BIN,
  KEY_TYPES,
  REPO,
  assertLogMatchesQuote,
  bootEvents,
  checkAk,
  checkNewKey,
  checkQuote,
  cleanEnv,
  ekPublicFromSpki,
  encryptedCredential,
  extendLog,
  importBlobBytes,
  spawnAttestor,
  tempDir,
  verifiesWith,
  withTpm,
  type SpawnedAttestor,
} from './e2e-support.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const PCR = 23;

/** The flags of ARCHITECTURE.md's table, with their defaults. */
const ARCHITECTURE_FLAGS: readonly [string, string | undefined][] = [
  ['--listen', '0.0.0.0:50051'],
  ['--tpm', 'device:/dev/tpmrm0'],
  ['--state-dir', '/var/lib/tpmds'],
  ['--event-log', '/sys/kernel/security/tpm0/binary_bios_measurements'],
  ['--tls-cert', undefined],
  ['--tls-key', undefined],
  ['--client-ca', undefined],
  ['--insecure', undefined],
  ['--health-listen', '0.0.0.0:8080'],
  ['--log-level', 'info'],
];


function requireBuilt(): void {
  assert.ok(existsSync(join(REPO, 'packages/attestor/dist/main.js')), 'the attestor is not built: run `pnpm build` first');
}

describe('tpmds-attestor binary e2e @swtpm', function () {
  this.timeout(60_000);

  it('--help documents every flag of ARCHITECTURE.md with its TPMDS_* variable and default', () => {
    requireBuilt();
    const r = spawnSync(process.execPath, [ATTESTOR_BIN, '--help'], { cwd: REPO, env: cleanEnv(), encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 0, r.stderr);
    for (const [flag, dflt] of ARCHITECTURE_FLAGS) {
      const line = r.stdout.split('\n').findIndex((l) => new RegExp(`^\\s*${flag}\\b`).test(l));
      assert.ok(line >= 0, `${flag} is documented`);
      const env = `TPMDS_${flag.slice(2).replace(/-/g, '_').toUpperCase()}`;
      assert.ok(r.stdout.includes(env), `${env} is documented`);
      if (dflt !== undefined) {
        const entry = r.stdout.split('\n').slice(line, line + 4).join('\n');
        assert.ok(entry.includes(dflt), `${flag} shows its default ${dflt}:\n${entry}`);
      }
    }
  });

  describe('the whole flow on a SHA-256-only TPM', () => {
    let swtpm: SwtpmInstance;
    let dirs: ReturnType<typeof tempDir>;
    let att: SpawnedAttestor | undefined;
    const eventLog = buildEventLog(bootEvents(), [TPM_ALG.SHA256]);
    let pcr23: Uint8Array;
    const secrets: Uint8Array[] = [];

    before(async function () {
      this.timeout(120_000);
      requireBuilt();
      dirs = tempDir();
      swtpm = await startSwtpm({ transport: 'unix', pcrBanks: ['sha256'] });
      writeFileSync(join(dirs.dir, 'event.log'), eventLog);
      await withTpm(swtpm.address, async (tpm) => {
        assert.deepEqual(await tpm.getActivePcrBanks(), [TPM_ALG.SHA256]);
        await extendLog(tpm, eventLog);
        await tpm.pcrExtend(PCR, { hashAlg: TPM_ALG.SHA256, digest: hash(TPM_ALG.SHA256, enc('binary')) });
        pcr23 = (await tpm.readPcrs(TPM_ALG.SHA256, [PCR])).get(PCR)!;
      });
      att = await spawnAttestor([
        '--tpm', swtpm.address,
        '--listen', `unix:${join(dirs.dir, 'grpc.sock')}`,
        '--health-listen', '127.0.0.1:0',
        '--state-dir', join(dirs.dir, 'state'),
        '--event-log', join(dirs.dir, 'event.log'),
        '--insecure',
        '--log-level', 'debug',
      ]);
    });

    after(async function () {
      this.timeout(30_000);
      if (att && att.child.exitCode === null) {
        att.child.kill('SIGKILL');
        await att.exited;
      }
      await swtpm?.stop();
      dirs?.cleanup();
    });

    for (const kt of KEY_TYPES) {
      it(`${kt.toUpperCase()}: EK cert, AK, Attest, Quote (one SHA-256 quote, the log replays), ImportBlob, ImportSigningKey, NewKey, Sign`, async () => {
        const c = att!.client;
        const uid = `bin-${kt}`;
        const ekRes = await c.getEKCert(kt);
        const ek = ekPublicFromSpki(ekRes.ekPub, kt);
        assert.ok(certificateMatchesPublic(ekRes.ekCert, ek));
        const chain = await verifyCertificateChain(ekRes.ekCert, pemToDers(readFileSync(swtpm.caRootPem, 'utf8')), pemToDers(readFileSync(swtpm.caIntermediatePem, 'utf8')));
        assert.ok(chain.ok, chain.error);

        const ak = checkAk((await c.getAK({ uid, keyType: kt })).ak, kt);
        const secret = new Uint8Array(randomBytes(32));
        secrets.push(secret);
        assert.equal(toHex((await c.attest({ uid, encryptedCredentials: encryptedCredential(ek, ak.name, secret) })).secret), toHex(secret));

        const nonce = new Uint8Array(randomBytes(48));
        const q = checkQuote((await c.quote({ uid, nonce })).platformAttestation, ak, nonce, [TPM_ALG.SHA256]);
        assert.equal(toHex(q.eventLog), toHex(eventLog));
        assert.ok(assertLogMatchesQuote(q.eventLog, q.pcrs) >= 9);

        const data = new Uint8Array(randomBytes(64));
        secrets.push(data);
        const pcrs = { hashAlg: TPM_ALG.SHA256, values: new Map([[PCR, pcr23]]) };
        assert.equal(toHex((await c.importBlob({ uid, encryptedKey: importBlobBytes(ek, { kind: 'sealed', data }, { pcrs }) })).decryptedKey), toHex(data));

        const priv = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
        const imported = await c.importSigningKey({ uid, kid: 'imported', encryptedSigningKey: importBlobBytes(ek, { kind: 'signingKey', privateKey: priv }) });
        assert.ok(verifiesWith(createPublicKey(priv), enc(uid), imported.confirmation));
        assert.ok(verifiesWith(createPublicKey(priv), enc('m'), (await c.sign({ uid, kid: 'imported', data: enc('m') })).signed));

        const { key } = checkNewKey(await c.newKey({ uid, kid: 'made', keyType: 'ecc' }), ak, 'ecc');
        assert.ok(verifiesWith(key, enc('m'), (await c.sign({ uid, kid: 'made', data: enc('m') })).signed));
      });
    }

    it('/metrics shows TPM command latencies and RPC counts; SIGTERM exits 0; stdout is JSON log lines without secrets; the TPM is left empty', async () => {
      const m = await httpGet(att!.healthAddress, '/metrics');
      assert.equal(m.status, 200);
      for (const cmd of ['TPM2_Quote', 'TPM2_ActivateCredential', 'TPM2_Import', 'TPM2_Unseal', 'TPM2_Sign', 'TPM2_Certify', 'TPM2_CertifyCreation', 'TPM2_Create']) {
        assert.match(m.body, new RegExp(`tpmds_tpm_command_duration_seconds_count\\{command="${cmd}"\\} [1-9]`), cmd);
      }
      for (const [method, n] of [['GetEKCert', 2], ['GetAK', 2], ['Attest', 2], ['Quote', 2], ['ImportBlob', 2], ['ImportSigningKey', 2], ['NewKey', 2], ['Sign', 4]] as const) {
        assert.match(m.body, new RegExp(`tpmds_rpc_requests_total\\{method="${method}",code="OK"\\} ${n}\\n`), method);
        assert.match(m.body, new RegExp(`tpmds_rpc_duration_seconds_count\\{method="${method}"\\} ${n}\\n`), method);
      }
      assert.equal((await httpGet(att!.healthAddress, '/readyz')).status, 200);
      for (const service of ['', 'verifier.Verifier', 'attest.Attestor']) assert.equal(await att!.client.healthCheck(service), 'SERVING', `health of "${service}"`);

      assert.equal(await att!.stop(), 0, 'SIGTERM: exit 0');
      const out = att!.stdout();
      const lines = out.split('\n').filter((l) => l !== '');
      const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.equal(parsed.filter((l) => l['msg'] === 'rpc').length, 18, 'one log line per RPC');
      assert.ok(parsed.some((l) => l['msg'] === 'attestor stopped'));
      assert.ok(parsed.every((l) => l['level'] !== 'error'), 'no error logged');
      assert.ok(secrets.length === 4);
      for (const s of secrets) {
        const b = Buffer.from(s);
        for (const form of [b.toString('hex'), b.toString('base64'), b.toString('base64url'), JSON.stringify([...s])]) {
          assert.ok(!out.includes(form) && !att!.stderr().includes(form), 'a secret appears in the output');
        }
      }
      assert.deepEqual(await withTpm(swtpm.address, (tpm) => tpm.getLoadedHandles()), [], 'no transient objects or sessions left');
    });
  });
});
