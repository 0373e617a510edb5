/**
 * The facts verifiers decide on, read from a parsed event log: Secure Boot state, EFI boot
 * applications, separators, H-CRTM / StartupLocality, and the known firmware quirks.
 *
 * A log is only as trustworthy as the PCRs it replays to: check it with `comparePcrs`
 * against quoted PCRs first. Event types and data are not covered by the digests, so the
 * facts below also check that the data of the events they rely on hashes to the digest.
 */
import { bytesEqual } from '../bytes/hex.js';
import {
  EFI_ACTION,
  EFI_GLOBAL_VARIABLE_GUID,
  EV,
  SHIM_LOCK_GUID,
} from './constants.js';
import { decodeUtf16le, devicePathToText, parseUefiImageLoadEvent, parseUefiVariableData } from './efi.js';
import { EventLogError } from './errors.js';
import { isSpecIdEventData, startupLocalityOf } from './parse.js';
import type { EventDigest, EventLog, TcgEvent } from './parse.js';
import { bankHash, pcr0Start } from './replay.js';
import type { Pcr0Start } from './replay.js';

/** Secure Boot state from the SecureBoot variable (EV_EFI_VARIABLE_DRIVER_CONFIG, PCR 7, PFP 3.3.4.8). */
export interface SecureBootFact {
  /** 'enabled' (SecureBoot = 1), 'disabled' (0, or empty/absent), 'unknown' (no trustworthy answer). */
  readonly state: 'enabled' | 'disabled' | 'unknown';
  /** Why, in words. */
  readonly reason: string;
  /** `seq` of the SecureBoot event, when there is one. */
  readonly event?: number;
}

/** An EFI application loaded from a boot option (EV_EFI_BOOT_SERVICES_APPLICATION in PCR 4). */
export interface EfiApp {
  readonly seq: number;
  readonly pcr: number;
  /** The image's Authenticode digests (one per bank). */
  readonly digests: readonly EventDigest[];
  /** The image's device path as text, when the event data decodes. */
  readonly devicePath?: string;
}

/** An EV_SEPARATOR event (PFP 3.3.2.2: 00000000h normally, 00000001h or FFFFFFFFh on error). */
export interface SeparatorFact {
  readonly pcr: number;
  readonly seq: number;
  /** 'normal' for 00000000h, 'error' for 00000001h / FFFFFFFFh, 'other' for anything else. */
  readonly value: 'normal' | 'error' | 'other';
  /** Whether the digests equal the hash of the data, in every bank this runtime can hash. */
  readonly digestVerified: boolean;
}

/** Facts about a boot, read from its event log. */
export interface EventLogFacts {
  readonly secureBoot: SecureBootFact;
  /** EFI applications in PCR 4, in log order. */
  readonly efiApps: readonly EfiApp[];
  /** Every EV_SEPARATOR event, in log order. */
  readonly separators: readonly SeparatorFact[];
  /** PCRs that have at least one EV_SEPARATOR, ascending. */
  readonly separatorPcrs: readonly number[];
  /** Whether PCR 0 holds an H-CRTM measurement (EV_EFI_HCRTM_EVENT). */
  readonly hcrtm: boolean;
  /** How PCR 0 starts (StartupLocality / H-CRTM). */
  readonly pcr0: Pcr0Start;
  /** Whether PCR 5 records "Exit Boot Services Invocation". */
  readonly exitBootServices: boolean;
  /** Measured events (EV_NO_ACTION excluded) per PCR. */
  readonly eventsPerPcr: ReadonlyMap<number, number>;
  /** The S-CRTM version string (EV_S_CRTM_VERSION), when it decodes as text. */
  readonly scrtmVersion?: string;
  /** Known firmware quirks and irregularities found in this log, in words. */
  readonly quirks: readonly string[];
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/**
 * Whether the event's digests match H(data) in every bank we can hash. `data` defaults to the
 * event data. Banks we cannot hash are skipped; an event with no checkable digest is false.
 */
export function digestsMatchData(event: TcgEvent, data: Uint8Array = event.data): boolean {
  let checked = 0;
  for (const d of event.digests) {
    const h = bankHash(d.alg, data);
    if (!h) continue;
    if (!bytesEqual(h, d.digest)) return false;
    checked++;
  }
  return checked > 0;
}

function efiVariable(e: TcgEvent): ReturnType<typeof parseUefiVariableData> | undefined {
  try {
    return parseUefiVariableData(e.data, e.dataOffset);
  } catch (err) {
    if (err instanceof EventLogError) return undefined;
    throw err;
  }
}

function secureBootFact(events: readonly TcgEvent[]): SecureBootFact {
  let found: SecureBootFact | undefined;
  let separator7 = false;
  for (const e of events) {
    if (e.pcr !== 7) continue;
    if (e.type === EV.EV_SEPARATOR) separator7 = true;
    if (e.type !== EV.EV_EFI_VARIABLE_DRIVER_CONFIG) continue;
    const v = efiVariable(e);
    if (!v || v.guid !== EFI_GLOBAL_VARIABLE_GUID || v.name !== 'SecureBoot') continue;
    if (separator7) {
      return { state: 'unknown', reason: `SecureBoot variable measured after the PCR 7 separator (event ${e.seq})`, event: e.seq };
    }
    if (found) return { state: 'unknown', reason: `SecureBoot variable measured twice (events ${found.event} and ${e.seq})`, event: e.seq };
    // PFP: the digest covers the whole UEFI_VARIABLE_DATA; some firmware hashes only VariableData.
    if (!digestsMatchData(e) && !digestsMatchData(e, v.value)) {
      found = { state: 'unknown', reason: `the SecureBoot event's digest does not match its data (event ${e.seq})`, event: e.seq };
    } else if (v.value.length === 0) {
      found = { state: 'disabled', reason: 'SecureBoot variable is empty (firmware without Secure Boot support)', event: e.seq };
    } else if (v.value.length !== 1 || v.value[0]! > 1) {
      found = { state: 'unknown', reason: `SecureBoot variable has unexpected value ${Array.from(v.value).join(',')}`, event: e.seq };
    } else {
      found = v.value[0] === 1
        ? { state: 'enabled', reason: 'SecureBoot variable is 1', event: e.seq }
        : { state: 'disabled', reason: 'SecureBoot variable is 0', event: e.seq };
    }
  }
  return found ?? { state: 'unknown', reason: 'no SecureBoot variable event in PCR 7' };
}

function separatorValue(data: Uint8Array): SeparatorFact['value'] {
  if (data.length !== 4) return 'other';
  const v = (data[0]! | (data[1]! << 8) | (data[2]! << 16) | (data[3]! << 24)) >>> 0;
  if (v === 0) return 'normal';
  return v === 1 || v === 0xffffffff ? 'error' : 'other';
}

/** Reads the facts of a parsed log (see `EventLogFacts`). */
export function eventLogFacts(log: EventLog): EventLogFacts {
  const quirks: string[] = [...log.notes];
  const events = log.events;
  const uintnSize = log.specId?.uintnSize ?? 2;
  const isAction = (e: TcgEvent, text: string): boolean => e.type === EV.EV_EFI_ACTION && bytesEqual(e.data, utf8(text));

  const efiApps: EfiApp[] = [];
  let callingEfiApp = false;
  let appBeforeCalling = false;
  for (const e of events) {
    if (e.pcr !== 4) continue;
    if (isAction(e, EFI_ACTION.CALLING_EFI_APPLICATION)) callingEfiApp = true;
    if (e.type !== EV.EV_EFI_BOOT_SERVICES_APPLICATION) continue;
    if (!callingEfiApp) appBeforeCalling = true;
    let devicePath: string | undefined;
    try {
      const img = parseUefiImageLoadEvent(e.data, uintnSize, e.dataOffset);
      if (img.devicePath.length) devicePath = devicePathToText(img.devicePath);
    } catch (err) {
      if (!(err instanceof EventLogError)) throw err;
    }
    efiApps.push({ seq: e.seq, pcr: e.pcr, digests: e.digests, ...(devicePath !== undefined ? { devicePath } : {}) });
  }

  const separators: SeparatorFact[] = events
    .filter((e) => e.type === EV.EV_SEPARATOR)
    .map((e) => ({ pcr: e.pcr, seq: e.seq, value: separatorValue(e.data), digestVerified: digestsMatchData(e) }));
  const separatorPcrs = [...new Set(separators.map((s) => s.pcr))].sort((a, b) => a - b);

  const eventsPerPcr = new Map<number, number>();
  for (const e of events) if (e.type !== EV.EV_NO_ACTION) eventsPerPcr.set(e.pcr, (eventsPerPcr.get(e.pcr) ?? 0) + 1);

  const exitBootServices = events.some((e) => e.pcr === 5 && isAction(e, EFI_ACTION.EXIT_BOOT_SERVICES_INVOCATION));
  const uefi = events.some((e) => e.type >= EV.EV_EFI_EVENT_BASE && e.type <= 0x800000ff);
  if (uefi && !exitBootServices) {
    quirks.push('no "Exit Boot Services Invocation" event in PCR 5: the firmware did not log ExitBootServices (go-attestation PR #153); EFI application facts are not protected against later PCR 4 extends');
  }
  if (appBeforeCalling) {
    quirks.push('an EFI application was measured into PCR 4 before "Calling EFI Application from Boot Option" (launched by the firmware itself, or a boot manager such as systemd-boot; go-tpm-tools rejects such logs)');
  }

  for (const e of events) {
    if (e.type === EV.EV_EFI_VARIABLE_AUTHORITY) {
      const v = efiVariable(e);
      if (v && v.guid === SHIM_LOCK_GUID && (v.name === 'MokListTrusted' || v.name === 'SbatLevel')) {
        quirks.push(`event ${e.seq}: shim measured ${v.name} as EV_EFI_VARIABLE_AUTHORITY; it is not a Secure Boot authority (go-attestation PR #284)`);
      } else if (!digestsMatchData(e) && e.data.length > 0 && digestsMatchData(e, e.data.subarray(0, e.data.length - 1))) {
        quirks.push(`event ${e.seq}: EV_EFI_VARIABLE_AUTHORITY data has one byte more than its digest covers (old shim bug, go-attestation #157/PR #158)`);
      }
    } else if (e.type === EV.EV_IPL && e.pcr === 14 && bytesEqual(e.data, utf8('MokListTrusted\0'))) {
      quirks.push(`event ${e.seq}: shim measured MokListTrusted into PCR 14 (EV_IPL)`);
    } else if (e.type === EV.EV_NO_ACTION && e.seq === 0 && log.format === 'sha1') {
      const what = startupLocalityOf(e.data) !== undefined ? 'a StartupLocality event' : `${e.data.length} byte(s)`;
      quirks.push(`the first event is an EV_NO_ACTION with ${what}, not a Spec ID event: read as a SHA1-format log (go-attestation PR #208)`);
    } else if (e.type === EV.EV_NO_ACTION && e.seq > 0 && isSpecIdEventData(e.data)) {
      quirks.push(`event ${e.seq}: a second Spec ID event (ignored)`);
    } else if (e.type === EV.EV_EFI_ACTION && e.pcr === 7 && bytesEqual(e.data, utf8('UEFI Debug Mode'))) {
      quirks.push(`event ${e.seq}: a UEFI debugger was present during boot ("UEFI Debug Mode" in PCR 7)`);
    }
  }
  for (const s of separators) {
    if (s.value === 'error') quirks.push(`event ${s.seq}: PCR ${s.pcr} separator signals a firmware error`);
  }
  if (log.trailingZeroBytes > 0) quirks.push(`${log.trailingZeroBytes} zero byte(s) of padding after the last event`);

  const scrtm = events.find((e) => e.pcr === 0 && e.type === EV.EV_S_CRTM_VERSION);
  const scrtmVersion = scrtm ? versionText(scrtm.data) : undefined;
  return {
    secureBoot: secureBootFact(events),
    efiApps,
    separators,
    separatorPcrs,
    hcrtm: events.some((e) => e.pcr === 0 && e.type === EV.EV_EFI_HCRTM_EVENT),
    pcr0: pcr0Start(events),
    exitBootServices,
    eventsPerPcr,
    ...(scrtmVersion !== undefined ? { scrtmVersion } : {}),
    quirks,
  };
}

/** EV_S_CRTM_VERSION data as text: UCS-2 (most UEFI firmware) or ASCII; undefined for binary data. */
function versionText(data: Uint8Array): string | undefined {
  const printable = (s: string): boolean => s.length > 0 && /^[\x20-\x7e]+$/.test(s);
  const ucs2 = data.length >= 2 && data.length % 2 === 0 ? decodeUtf16le(data) : '';
  if (printable(ucs2)) return ucs2;
  const ascii = new TextDecoder('latin1').decode(data).replace(/\0+$/, '');
  return printable(ascii) ? ascii : undefined;
}

/**
 * A short description of an event's data, for listings: the action text, the variable
 * name, the image path, the separator value, the StartupLocality. Undefined when there
 * is nothing readable to say. Never throws.
 */
export function describeEvent(e: TcgEvent, uintnSize = 2): string | undefined {
  try {
    switch (e.type) {
      case EV.EV_NO_ACTION: {
        if (isSpecIdEventData(e.data)) return 'Spec ID Event03';
        const loc = startupLocalityOf(e.data);
        if (loc !== undefined) return `StartupLocality ${loc}`;
        const sig = new TextDecoder('latin1').decode(e.data.subarray(0, 16)).replace(/\0.*$/s, '');
        return /^[\x20-\x7e]{4,}$/.test(sig) ? sig : undefined;
      }
      case EV.EV_SEPARATOR:
        return separatorValue(e.data) === 'normal' ? 'separator' : `separator (${separatorValue(e.data)})`;
      case EV.EV_EFI_ACTION:
      case EV.EV_ACTION:
      case EV.EV_IPL:
      case EV.EV_EFI_HCRTM_EVENT:
      case EV.EV_POST_CODE:
      case EV.EV_S_CRTM_CONTENTS:
      case EV.EV_COMPACT_HASH:
      case EV.EV_OMIT_BOOT_DEVICE_EVENTS: {
        const s = new TextDecoder('utf-8', { fatal: false }).decode(e.data).replace(/\0+$/, '');
        return /^[\x20-\x7e\t]+$/.test(s) ? (s.length > 120 ? `${s.slice(0, 117)}...` : s) : undefined;
      }
      case EV.EV_S_CRTM_VERSION:
        return versionText(e.data);
      case EV.EV_EFI_VARIABLE_DRIVER_CONFIG:
      case EV.EV_EFI_VARIABLE_BOOT:
      case EV.EV_EFI_VARIABLE_BOOT2:
      case EV.EV_EFI_VARIABLE_AUTHORITY: {
        const v = efiVariable(e);
        if (!v) return undefined;
        const value = v.value.length === 1 ? ` = ${v.value[0]}` : ` (${v.value.length} bytes)`;
        return `${v.name} {${v.guid}}${value}`;
      }
      case EV.EV_EFI_BOOT_SERVICES_APPLICATION:
      case EV.EV_EFI_BOOT_SERVICES_DRIVER:
      case EV.EV_EFI_RUNTIME_SERVICES_DRIVER: {
        const img = parseUefiImageLoadEvent(e.data, uintnSize, e.dataOffset);
        return img.devicePath.length ? devicePathToText(img.devicePath) : undefined;
      }
      default:
        return undefined;
    }
  } catch (err) {
    if (err instanceof EventLogError) return undefined;
    throw err;
  }
}
