// --allow FILE: which identities may call which RPCs. Without a policy every authenticated caller
// may call every RPC (on its own keys: isolation does not depend on the policy). GetEK/GetEKCert
// and GetGCEEKSigningKey return public data and are open to every authenticated caller. SignGCEEK
// needs, besides this policy, an identity named by --allow-node-key (node-key.ts).
//
//   rules:
//     - identities: ["system:serviceaccount:payments:*", "spiffe://example.org/ns/ci/sa/builder"]
//       rpcs: ["GetAK", "Attest", "Quote", "NewKey", "Sign"]
//     - identities: ["system:serviceaccount:secrets:vault"]
//       rpcs: ["*"]
//
// An identity pattern is exact, or ends in "*" to match every identity that starts with what
// precedes it ("system:serviceaccount:payments:*" is every service account of namespace payments).
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../errors.js';

/** The RPCs a policy can name. */
export const POLICY_RPCS = ['GetEKCert', 'GetEK', 'GetAK', 'Attest', 'Quote', 'ImportBlob', 'ImportSigningKey', 'NewKey', 'Sign', 'GetGCEEKSigningKey', 'SignGCEEK'] as const;
export type PolicyRpc = (typeof POLICY_RPCS)[number];
const PUBLIC_RPCS: readonly string[] = ['GetEKCert', 'GetEK', 'GetGCEEKSigningKey'];

interface Rule {
  patterns: string[];
  rpcs: Set<string> | 'all';
}

export class AccessPolicy {
  private constructor(private readonly rules: readonly Rule[]) {}

  /** Whether `identity` may call `rpc`. */
  allows(identity: string, rpc: string): boolean {
    if (PUBLIC_RPCS.includes(rpc)) return true;
    return this.rules.some((r) => (r.rpcs === 'all' || r.rpcs.has(rpc)) && r.patterns.some((p) => matches(p, identity)));
  }

  /** Reads a policy file (JSON or YAML); ConfigError('--allow') saying what is wrong. */
  static async load(file: string): Promise<AccessPolicy> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      throw new ConfigError('--allow', `cannot read ${file}: ${(e as Error).message}`);
    }
    return AccessPolicy.parse(text, file);
  }

  /** Parses policy text (JSON is YAML); `source` names it in errors. */
  static parse(text: string, source = 'policy'): AccessPolicy {
    const bad = (problem: string): ConfigError => new ConfigError('--allow', `${source}: ${problem}`);
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (e) {
      throw bad(`not JSON or YAML: ${(e as Error).message.split('\n')[0]}`);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('expected a mapping with "rules"');
    const unknown = Object.keys(doc).filter((k) => k !== 'rules');
    if (unknown.length > 0) throw bad(`unknown key(s) ${unknown.map((k) => JSON.stringify(k)).join(', ')} (only "rules")`);
    const rules = (doc as { rules?: unknown }).rules;
    if (!Array.isArray(rules)) throw bad('"rules" must be a list');
    return new AccessPolicy(
      rules.map((raw, i) => {
        const at = `rules[${i}]`;
        if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(`${at} must be a mapping with "identities" and "rpcs"`);
        const extra = Object.keys(raw).filter((k) => k !== 'identities' && k !== 'rpcs');
        if (extra.length > 0) throw bad(`${at} has unknown key(s) ${extra.map((k) => JSON.stringify(k)).join(', ')}`);
        const { identities, rpcs } = raw as { identities?: unknown; rpcs?: unknown };
        const strings = (v: unknown, name: string): string[] => {
          if (!Array.isArray(v) || v.length === 0 || !v.every((s) => typeof s === 'string' && s !== '')) {
            throw bad(`${at}.${name} must be a non-empty list of non-empty strings`);
          }
          return v as string[];
        };
        const patterns = strings(identities, 'identities');
        for (const p of patterns) {
          if (p.indexOf('*') !== -1 && p.indexOf('*') !== p.length - 1) throw bad(`${at}.identities: "*" may only end a pattern (${JSON.stringify(p)})`);
        }
        const names = strings(rpcs, 'rpcs');
        if (names.includes('*')) return { patterns, rpcs: 'all' as const };
        for (const n of names) {
          if (!(POLICY_RPCS as readonly string[]).includes(n)) throw bad(`${at}.rpcs: unknown RPC ${JSON.stringify(n)} (one of ${POLICY_RPCS.join(', ')}, or "*")`);
        }
        return { patterns, rpcs: new Set(names) };
      }),
    );
  }
}

function matches(pattern: string, identity: string): boolean {
  return pattern.endsWith('*') ? identity.startsWith(pattern.slice(0, -1)) : pattern === identity;
}
