/**
 * Layer 8 (eventlog) against a real TPM: a log built by `buildEventLog`, its digests extended into
 * swtpm's PCRs, replays to exactly what TPM2_PCR_Read returns (both banks), and a measurement
 * missing from the log shows up as a mismatch of that PCR in every bank.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { EFI_GLOBAL_VARIABLE_GUID, initialPcrValue, uefiVariableData,
  EV,
  TPM_ALG,
  buildEventLog,
  comparePcrs,
  concatBytes,
  eventLogFacts,
  openTpm,
  parseEventLog,
  replayEventLog,
  startupLocalityEventData,
  toHex,
  utf8,
  type EventSpec,
  type Tpm,
} from '../src/index.js';
import { withSwtpm } from './fixtures/swtpm.js';

const BANKS = [TPM_ALG.SHA1, TPM_ALG.SHA256];
const ucs2 = (s: string): Uint8Array => new Uint8Array([...s].flatMap((c) => [c.charCodeAt(0), 0]));
const u64le = (n: number): Uint8Array => new Uint8Array([n & 0xff, (n >> 8) & 0xff, 0, 0, 0, 0, 0, 0]);

/** A firmware-like boot: StartupLocality 0, S-CRTM, Secure Boot on, shim + grub, ExitBootServices. */
function bootEvents(): EventSpec[] {
  const separator = (pcr: number): EventSpec => ({ pcr, type: EV.EV_SEPARATOR, data: new Uint8Array(4) });
  const app = (name: string): EventSpec => {
    const path = concatBytes(new Uint8Array([4, 4, 4 + 2 * (name.length + 1), 0]), ucs2(`${name}\0`), new Uint8Array([0x7f, 0xff, 4, 0]));
    // An EV_EFI_BOOT_SERVICES_APPLICATION digest is the image's Authenticode hash, not a hash of the event data.
    const authenticode = (alg: string) => new Uint8Array(createHash(alg).update(`image ${name}`).digest());
    return {
      pcr: 4,
      type: EV.EV_EFI_BOOT_SERVICES_APPLICATION,
      data: concatBytes(u64le(0x1000), u64le(0x2000), u64le(0), u64le(path.length), path),
      digests: new Map([[TPM_ALG.SHA1, authenticode('sha1')], [TPM_ALG.SHA256, authenticode('sha256')]]),
    };
  };
  return [
    { pcr: 0, type: EV.EV_NO_ACTION, data: startupLocalityEventData(0) },
    { pcr: 0, type: EV.EV_S_CRTM_VERSION, data: ucs2('tpmds test firmware\0') },
    { pcr: 0, type: EV.EV_EFI_PLATFORM_FIRMWARE_BLOB, data: concatBytes(u64le(0xffc00000), u64le(0x400000)) },
    { pcr: 7, type: EV.EV_EFI_VARIABLE_DRIVER_CONFIG, data: uefiVariableData(EFI_GLOBAL_VARIABLE_GUID, 'SecureBoot', new Uint8Array([1])) },
    { pcr: 7, type: EV.EV_EFI_VARIABLE_DRIVER_CONFIG, data: uefiVariableData(EFI_GLOBAL_VARIABLE_GUID, 'PK', new Uint8Array(0)) },
    { pcr: 1, type: EV.EV_EFI_VARIABLE_BOOT, data: uefiVariableData(EFI_GLOBAL_VARIABLE_GUID, 'BootOrder', new Uint8Array([0, 0])) },
    ...[0, 1, 2, 3, 6, 7].map(separator),
    { pcr: 4, type: EV.EV_EFI_ACTION, data: utf8('Calling EFI Application from Boot Option') },
    separator(4),
    separator(5),
    app('\\EFI\\BOOT\\BOOTX64.EFI'),
    app('\\EFI\\debian\\grubx64.efi'),
    { pcr: 8, type: EV.EV_IPL, data: utf8('grub_cmd: linux /vmlinuz root=/dev/sda1\0') },
    { pcr: 14, type: EV.EV_IPL, data: utf8('MokList\0') },
    { pcr: 5, type: EV.EV_EFI_ACTION, data: utf8('Exit Boot Services Invocation') },
    { pcr: 5, type: EV.EV_EFI_ACTION, data: utf8('Exit Boot Services Returned with Success') },
    { pcr: 23, type: 0x0000beef, data: utf8('an event type nobody knows') },
  ];
}

describe('eventlog: a written log extended into swtpm replays to PCR_Read @swtpm', function () {
  this.timeout(60_000);
  const swtpm = withSwtpm({ pcrBanks: ['sha1', 'sha256'] });
  let tpm: Tpm;
  before(async () => {
    tpm = await openTpm(swtpm().address);
  });
  after(async () => {
    await tpm?.close();
  });

  it('every PCR of a fresh TPM holds initialPcrValue, the value both replays start from (17-22 all ones)', async () => {
    const all = Array.from({ length: 24 }, (_, i) => i);
    for (const alg of BANKS) {
      for (const [pcr, v] of await tpm.readPcrs(alg, all)) assert.equal(toHex(v), toHex(initialPcrValue(pcr, v.length)), `PCR ${pcr} bank ${alg}`);
    }
  });

  it('replays to exactly the PCR values the TPM reports, in both banks, and reads the facts back', async () => {
    const log = parseEventLog(buildEventLog(bootEvents(), BANKS));
    const touched = [...new Set(log.events.filter((e) => e.type !== EV.EV_NO_ACTION).map((e) => e.pcr))].sort((a, b) => a - b);
    // A fresh TPM after TPM2_Startup(CLEAR) at locality 0: these PCRs start at zero, as the log assumes.
    for (const alg of BANKS) {
      for (const [pcr, v] of await tpm.readPcrs(alg, touched)) assert.ok(v.every((b) => b === 0), `PCR ${pcr} bank ${alg} is not reset`);
    }
    for (const e of log.events) {
      if (e.type === EV.EV_NO_ACTION) continue;
      await tpm.pcrExtend(e.pcr, e.digests.map((d) => ({ hashAlg: d.alg, digest: d.digest })));
    }
    const read = new Map<number, Map<number, Uint8Array>>();
    for (const alg of BANKS) read.set(alg, await tpm.readPcrs(alg, touched));

    const replay = replayEventLog(log);
    for (const alg of BANKS) {
      assert.deepEqual([...replay.banks.get(alg)!.keys()], touched);
      for (const pcr of touched) assert.equal(toHex(replay.banks.get(alg)!.get(pcr)!), toHex(read.get(alg)!.get(pcr)!), `PCR ${pcr} bank ${alg}`);
    }
    const c = comparePcrs(log, read, { workarounds: false });
    assert.ok(c.ok);
    assert.equal(c.matched.length, touched.length * BANKS.length);
    assert.deepEqual(c.mismatched, []);

    const facts = eventLogFacts(log);
    assert.equal(facts.secureBoot.state, 'enabled');
    assert.deepEqual(facts.efiApps.map((a) => a.devicePath), ['\\EFI\\BOOT\\BOOTX64.EFI', '\\EFI\\debian\\grubx64.efi']);
    assert.equal(facts.exitBootServices, true);
    assert.deepEqual(facts.separatorPcrs, [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(facts.quirks, []);
  });

  it('a measurement the log does not record is reported as a mismatch of that PCR in each bank', async () => {
    const log = parseEventLog(buildEventLog(bootEvents(), BANKS));
    await tpm.pcrExtend(8, BANKS.map((alg) => ({ hashAlg: alg, digest: new Uint8Array(alg === TPM_ALG.SHA1 ? 20 : 32).fill(0x5a) })));
    const touched = [...new Set(log.events.map((e) => e.pcr))];
    const read = new Map<number, Map<number, Uint8Array>>();
    for (const alg of BANKS) read.set(alg, await tpm.readPcrs(alg, touched));
    const c = comparePcrs(log, read);
    assert.equal(c.ok, false);
    assert.deepEqual(c.mismatched.map((m) => [m.pcr, m.bank]), [[8, TPM_ALG.SHA1], [8, TPM_ALG.SHA256]]);
    for (const m of c.mismatched) assert.deepEqual(m.quoted, read.get(m.bank)!.get(8));
  });
});
