// AR4SI trustworthiness claims and tiers (draft-ietf-rats-ar4si) as EAR carries them
// (draft-ietf-rats-ear-04), with the names and values of Veraison's `ear` crate 0.6.0.

/** The eight trustworthiness claims, in their registered order (CBOR keys 0-7). */
export const AR4SI_CLAIMS = [
  'instance-identity', 'configuration', 'executables', 'file-system',
  'hardware', 'runtime-opaque', 'storage-opaque', 'sourced-data',
] as const;
export type Ar4siClaim = (typeof AR4SI_CLAIMS)[number];

/** The four tiers, best first: `ear_status` and each claim's tier. */
export const TIERS = ['none', 'affirming', 'warning', 'contraindicated'] as const;
export type Tier = (typeof TIERS)[number];

/** Values every claim may take (AR4SI "common" values). */
const COMMON_VALUES: Readonly<Record<string, number>> = {
  verifier_malfunction: -1,
  no_claim: 0,
  unexpected_evidence: 1,
  crypto_failed: 99,
};

/** Each claim's registered values, by the names the `ear` crate gives them. */
export const CLAIM_VALUES: Readonly<Record<Ar4siClaim, Readonly<Record<string, number>>>> = {
  'instance-identity': { recognized_instance: 2, untrustworthy_instance: 96, unrecognized_instance: 97 },
  configuration: { approved_config: 2, safe_config: 3, unsafe_config: 32, unavailable_config: 36, unsupportable_config: 96 },
  executables: { approved_rt: 2, approved_boot: 3, unsafe_rt: 32, unrecognized_rt: 33, contraindicated_rt: 96 },
  'file-system': { approved_fs: 2, unrecognized_fs: 32, contraindicated_fs: 96 },
  hardware: { genuine_hw: 2, unsafe_hw: 32, contraindicated_hw: 96, unrecognized_hw: 97 },
  'runtime-opaque': { encrypted_rt: 2, isolated_rt: 32, visible_rt: 96 },
  'storage-opaque': { hw_encrypted_secrets: 2, sw_encrypted_secrets: 32, unencrypted_secrets: 96 },
  'sourced-data': { trusted_sources: 2, untrusted_sources: 32, contraindicated_sources: 96 },
};

export function isAr4siClaim(name: string): name is Ar4siClaim {
  return (AR4SI_CLAIMS as readonly string[]).includes(name);
}

export function isTier(name: unknown): name is Tier {
  return typeof name === 'string' && (TIERS as readonly string[]).includes(name);
}

/** The tier of a claim value (AR4SI: -1..1 none, -32..31 affirming, -96..95 warning, else contraindicated). */
export function tierOf(value: number): Tier {
  if (value >= -1 && value <= 1) return 'none';
  if (value >= -32 && value < 32) return 'affirming';
  if (value >= -96 && value < 96) return 'warning';
  return 'contraindicated';
}

/** The worse of two tiers (none < affirming < warning < contraindicated, as the crate orders them). */
export function worseTier(a: Tier, b: Tier): Tier {
  return TIERS.indexOf(a) >= TIERS.indexOf(b) ? a : b;
}

/** The registered name of `value` for `claim` ("genuine_hw"), or undefined for an unregistered value. */
export function valueName(claim: Ar4siClaim, value: number): string | undefined {
  for (const table of [CLAIM_VALUES[claim], COMMON_VALUES]) {
    for (const [name, v] of Object.entries(table)) if (v === value) return name;
  }
  return undefined;
}

/** The value named `name` for `claim` (its own or a common one), or undefined. */
export function valueByName(claim: Ar4siClaim, name: string): number | undefined {
  return CLAIM_VALUES[claim][name] ?? COMMON_VALUES[name];
}

/** An integer AR4SI claim value (-128..127). */
export function isClaimValue(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= -128 && v <= 127;
}
