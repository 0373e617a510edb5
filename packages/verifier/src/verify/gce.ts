// Google Cloud's instance identity in EK and AK certificates: the extension
// 1.3.6.1.4.1.11129.2.1.21 that Google's vTPM CA puts into the certificates of a Shielded or
// Confidential VM (go-tpm-tools server/verify.go, gceInstanceInfo):
//
//   SEQUENCE {
//     zone UTF8String, projectNumber INTEGER, projectId UTF8String,
//     instanceId INTEGER, instanceName UTF8String,
//     securityProperties [0] EXPLICIT SEQUENCE {
//       securityVersion [0] EXPLICIT INTEGER OPTIONAL, isProduction [1] EXPLICIT BOOLEAN OPTIONAL, ... } OPTIONAL }
//
// Only a certificate whose chain to Google's roots was verified makes these facts true.
import * as asn1js from 'asn1js';
import type { ParsedCertificate } from '@tpmds/tpm2-wire';

export const GCE_INSTANCE_INFO_OID = '1.3.6.1.4.1.11129.2.1.21';

/** What the extension says about the VM. Integers are decimal strings (instance ids exceed 2^53). */
export interface GceInstanceInfo {
  zone: string;
  projectId: string;
  projectNumber: string;
  instanceId: string;
  instanceName: string;
  securityProperties?: {
    securityVersion?: string;
    /** A production VM (go-tpm-tools trusts the facts only then). */
    isProduction?: boolean;
    /** Further properties by context tag, as Google adds them (their names are not published). */
    other: Record<string, boolean | string>;
  };
}

/** The extension is present but not the structure above. */
export class GceInstanceInfoError extends Error {
  override readonly name = 'GceInstanceInfoError';
}

/** The instance identity in `cert`, or undefined when it has no such extension; GceInstanceInfoError when it does not decode. */
export function gceInstanceInfo(cert: ParsedCertificate): GceInstanceInfo | undefined {
  const ext = cert.pkijs.extensions?.find((e) => e.extnID === GCE_INSTANCE_INFO_OID);
  if (ext === undefined) return undefined;
  return decodeGceInstanceInfo(new Uint8Array(ext.extnValue.valueBlock.valueHexView));
}

/** Decodes the extension's value (the DER inside its OCTET STRING); GceInstanceInfoError when it does not decode. */
export function decodeGceInstanceInfo(der: Uint8Array): GceInstanceInfo {
  try {
    return decodeInstanceInfo(der);
  } catch (e) {
    if (e instanceof GceInstanceInfoError) throw e;
    // asn1js throws untyped errors (RangeError, ...) on some malformed primitives (found by scripts/fuzz.ts).
    throw new GceInstanceInfoError(`the GCE instance-identity extension (${GCE_INSTANCE_INFO_OID}) does not decode: ${(e as Error).message}`);
  }
}

function decodeInstanceInfo(der: Uint8Array): GceInstanceInfo {
  const bad = (what: string) => new GceInstanceInfoError(`the GCE instance-identity extension (${GCE_INSTANCE_INFO_OID}) ${what}`);
  const parsed = asn1js.fromBER(der.slice().buffer);
  if (parsed.offset === -1 || !(parsed.result instanceof asn1js.Sequence)) throw bad('is not a DER SEQUENCE');
  if (parsed.offset !== der.length) throw bad('has bytes after its SEQUENCE');
  const fields = parsed.result.valueBlock.value;
  const text = (i: number, name: string): string => {
    const f = fields[i];
    if (!(f instanceof asn1js.Utf8String)) throw bad(`field ${name} is not a UTF8String`);
    return f.valueBlock.value;
  };
  const integer = (f: unknown, name: string): string => {
    if (!(f instanceof asn1js.Integer)) throw bad(`field ${name} is not an INTEGER`);
    const v = f.toBigInt();
    if (v < 0n) throw bad(`field ${name} is negative`);
    return v.toString();
  };
  const info: GceInstanceInfo = {
    zone: text(0, 'zone'),
    projectNumber: integer(fields[1], 'projectNumber'),
    projectId: text(2, 'projectId'),
    instanceId: integer(fields[3], 'instanceId'),
    instanceName: text(4, 'instanceName'),
  };
  const props = fields[5];
  if (props !== undefined) {
    const inner = contextContent(props, 0);
    if (!(inner instanceof asn1js.Sequence)) throw bad('securityProperties is not [0] EXPLICIT SEQUENCE');
    const sp: NonNullable<GceInstanceInfo['securityProperties']> = { other: {} };
    for (const p of inner.valueBlock.value) {
      const tag = p.idBlock.tagNumber;
      const v = contextContent(p, tag);
      if (tag === 0) sp.securityVersion = integer(v, 'securityVersion');
      else if (tag === 1) {
        if (!(v instanceof asn1js.Boolean)) throw bad('isProduction is not a BOOLEAN');
        sp.isProduction = v.valueBlock.value;
      } else {
        sp.other[`[${tag}]`] = v instanceof asn1js.Boolean ? v.valueBlock.value : v instanceof asn1js.Integer ? v.toBigInt().toString() : Buffer.from(v.toBER(false)).toString('hex');
      }
    }
    info.securityProperties = sp;
  }
  return info;
}

/** The single element inside a constructed context-specific tag `[tag]` (EXPLICIT tagging). */
function contextContent(node: asn1js.AsnType, tag: number): asn1js.AsnType {
  const inner = (node as asn1js.Constructed).valueBlock?.value;
  if (node.idBlock.tagClass !== 3 || node.idBlock.tagNumber !== tag || !Array.isArray(inner) || inner.length !== 1) {
    throw new GceInstanceInfoError(`the GCE instance-identity extension (${GCE_INSTANCE_INFO_OID}) has an unexpected element where [${tag}] EXPLICIT was expected`);
  }
  return inner[0] as asn1js.AsnType;
}

/** One line for a report: "zone us-central1-a, project p (123), instance name (456), production, security version 0". */
export function describeGceInstanceInfo(i: GceInstanceInfo): string {
  const sp = i.securityProperties;
  const extra = sp === undefined ? [] : [
    sp.isProduction === undefined ? undefined : sp.isProduction ? 'production' : 'NOT production',
    sp.securityVersion === undefined ? undefined : `security version ${sp.securityVersion}`,
    ...Object.entries(sp.other).map(([k, v]) => `${k}=${String(v)}`),
  ].filter((s): s is string => s !== undefined);
  return [`zone ${i.zone}`, `project ${i.projectId} (${i.projectNumber})`, `instance ${i.instanceName} (${i.instanceId})`, ...extra].join(', ');
}
