// --allow-node-key: who may sign with the node's own keys (today the cloud attestation key of
// SignGCEEK). Such a key is not kept per caller identity like a uid's AK: a signature by it speaks
// for the whole node, so no caller gets it by default. Entries name identities: under --auth k8s
// "NAMESPACE/SERVICEACCOUNT" (or the full "system:serviceaccount:NAMESPACE:SERVICEACCOUNT"), under
// --auth mtls the certificate identity exactly (a URI SAN or a subject CN). Under --auth none there
// are no identities: every caller is the one shared caller and may, as with every other RPC.
import type { AuthMode, Caller } from './caller.js';
import { ConfigError } from '../errors.js';

/** The RPCs that sign with a node-wide key. */
export const NODE_KEY_RPCS: readonly string[] = ['SignGCEEK'];

/** A Kubernetes namespace or service-account name (RFC 1123 label / subdomain). */
const K8S_NAME = '[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?';
const NS_SA = new RegExp(`^(${K8S_NAME})/(${K8S_NAME})$`);
const FULL_SA = new RegExp(`^system:serviceaccount:${K8S_NAME}:${K8S_NAME}$`);

export class NodeKeyAccess {
  private constructor(
    private readonly mode: AuthMode,
    /** The identities allowed, as the authenticator names them. */
    readonly identities: ReadonlySet<string>,
  ) {}

  /** Whether `caller` may sign with the node's keys. */
  allows(caller: Caller): boolean {
    return this.mode === 'none' || this.identities.has(caller.identity);
  }

  /** The access `entries` (the --allow-node-key values) give under `mode`; ConfigError for an entry that names no identity. */
  static of(mode: AuthMode, entries: readonly string[]): NodeKeyAccess {
    if (mode === 'none' && entries.length > 0) {
      throw new ConfigError('--allow-node-key', 'needs callers with identities: --auth k8s or --auth mtls (under --auth none every caller may already)');
    }
    return new NodeKeyAccess(mode, new Set(entries.map((e) => identityOf(mode, e))));
  }
}

function identityOf(mode: AuthMode, entry: string): string {
  if (entry === '') throw new ConfigError('--allow-node-key', 'an empty entry names nobody');
  if (mode !== 'k8s') return entry;
  if (FULL_SA.test(entry)) return entry;
  const m = NS_SA.exec(entry);
  if (m === null) {
    throw new ConfigError('--allow-node-key', `${JSON.stringify(entry)} is not NAMESPACE/SERVICEACCOUNT (lower-case Kubernetes names, e.g. kube-system/node-attester)`);
  }
  return `system:serviceaccount:${m[1]}:${m[2]}`;
}
