/**
 * Event types and well-known values of the TCG PC Client Platform Firmware Profile
 * (PFP, version 1.05, section 10.4.1 "Event Types") and of the UEFI specification.
 */
import { algName } from '../types/constants.js';

/** PFP 10.4.1: event types. The EV_EFI_* values are UEFI-specific (0x80000000 and up). */
export const EV = {
  EV_PREBOOT_CERT: 0x00000000,
  EV_POST_CODE: 0x00000001,
  EV_UNUSED: 0x00000002,
  EV_NO_ACTION: 0x00000003,
  EV_SEPARATOR: 0x00000004,
  EV_ACTION: 0x00000005,
  EV_EVENT_TAG: 0x00000006,
  EV_S_CRTM_CONTENTS: 0x00000007,
  EV_S_CRTM_VERSION: 0x00000008,
  EV_CPU_MICROCODE: 0x00000009,
  EV_PLATFORM_CONFIG_FLAGS: 0x0000000a,
  EV_TABLE_OF_DEVICES: 0x0000000b,
  EV_COMPACT_HASH: 0x0000000c,
  EV_IPL: 0x0000000d,
  EV_IPL_PARTITION_DATA: 0x0000000e,
  EV_NONHOST_CODE: 0x0000000f,
  EV_NONHOST_CONFIG: 0x00000010,
  EV_NONHOST_INFO: 0x00000011,
  EV_OMIT_BOOT_DEVICE_EVENTS: 0x00000012,
  EV_POST_CODE2: 0x00000013,
  EV_EFI_EVENT_BASE: 0x80000000,
  EV_EFI_VARIABLE_DRIVER_CONFIG: 0x80000001,
  EV_EFI_VARIABLE_BOOT: 0x80000002,
  EV_EFI_BOOT_SERVICES_APPLICATION: 0x80000003,
  EV_EFI_BOOT_SERVICES_DRIVER: 0x80000004,
  EV_EFI_RUNTIME_SERVICES_DRIVER: 0x80000005,
  EV_EFI_GPT_EVENT: 0x80000006,
  EV_EFI_ACTION: 0x80000007,
  EV_EFI_PLATFORM_FIRMWARE_BLOB: 0x80000008,
  EV_EFI_HANDOFF_TABLES: 0x80000009,
  EV_EFI_PLATFORM_FIRMWARE_BLOB2: 0x8000000a,
  EV_EFI_HANDOFF_TABLES2: 0x8000000b,
  EV_EFI_VARIABLE_BOOT2: 0x8000000c,
  EV_EFI_GPT_EVENT2: 0x8000000d,
  EV_EFI_HCRTM_EVENT: 0x80000010,
  EV_EFI_VARIABLE_AUTHORITY: 0x800000e0,
  EV_EFI_SPDM_FIRMWARE_BLOB: 0x800000e1,
  EV_EFI_SPDM_FIRMWARE_CONFIG: 0x800000e2,
  EV_EFI_SPDM_DEVICE_POLICY: 0x800000e3,
  EV_EFI_SPDM_DEVICE_AUTHORITY: 0x800000e4,
} as const;

const EV_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(EV).map(([k, v]) => [v, k]));

/** Spec name of an event type ("EV_SEPARATOR"), or `0x` + 8 hex digits when unknown. */
export function eventTypeName(type: number): string {
  return EV_NAMES.get(type) ?? `0x${(type >>> 0).toString(16).padStart(8, '0')}`;
}

/** Event type from its spec name, or from a `0x…` hex string; undefined when neither. */
export function eventTypeFromName(name: string): number | undefined {
  const v = (EV as Readonly<Record<string, number>>)[name];
  if (v !== undefined) return v;
  if (/^0x[0-9a-fA-F]{1,8}$/.test(name)) return parseInt(name.slice(2), 16);
  return undefined;
}

const bankNames = new Map<number, string>();

/** A bank's name, lowercase: "sha1", "sha256", "sm3_256", or `0x` + 4 hex digits for one without a name. */
export function bankName(alg: number): string {
  let n = bankNames.get(alg);
  if (n === undefined) {
    n = algName(alg);
    bankNames.set(alg, n);
  }
  return n;
}

/** EFI_GLOBAL_VARIABLE (UEFI 2.x, 3.3): the vendor GUID of SecureBoot, PK, KEK, BootOrder, Boot####. */
export const EFI_GLOBAL_VARIABLE_GUID = '8be4df61-93ca-11d2-aa0d-00e098032b8c';
/** EFI_IMAGE_SECURITY_DATABASE_GUID (UEFI 32.6.1): the vendor GUID of db, dbx, dbt, dbr. */
export const EFI_IMAGE_SECURITY_DATABASE_GUID = 'd719b2cb-3d3a-4596-a3bc-dad00e67656f';
/** shim's SHIM_LOCK_GUID: MokList, MokListX, MokListTrusted, SbatLevel. */
export const SHIM_LOCK_GUID = '605dab50-e046-4300-abb6-3dd810dd8b23';

/** PFP 10.4.4 EV_EFI_ACTION strings measured into PCR 4 and PCR 5. */
export const EFI_ACTION = {
  CALLING_EFI_APPLICATION: 'Calling EFI Application from Boot Option',
  RETURNING_FROM_EFI_APPLICATION: 'Returning from EFI Application from Boot Option',
  EXIT_BOOT_SERVICES_INVOCATION: 'Exit Boot Services Invocation',
  EXIT_BOOT_SERVICES_SUCCESS: 'Exit Boot Services Returned with Success',
  EXIT_BOOT_SERVICES_FAILURE: 'Exit Boot Services Returned with Failure',
} as const;

/** PFP 10.4.5.3: signature of the crypto-agile log's first event (TCG_EfiSpecIdEvent). */
export const SPEC_ID_EVENT03_SIGNATURE = 'Spec ID Event03';
/** TCG_PCClientSpecIDEventStruct of SHA1-format logs written by TPM 1.2 UEFI firmware. */
export const SPEC_ID_EVENT00_SIGNATURE = 'Spec ID Event00';
/** PFP 10.4.5.3 TCG_EfiStartupLocalityEvent signature. */
export const STARTUP_LOCALITY_SIGNATURE = 'StartupLocality';
