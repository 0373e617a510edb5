// The --auth mode of a configuration, ready to use: its Authenticator and the --allow policy.
import { readFile } from 'node:fs/promises';
import type { AttestorConfig } from '../config.js';
import { ConfigError } from '../errors.js';
import { NoAuthenticator, type Authenticator } from './caller.js';
import { K8sAuthenticator, TokenReviewClient } from './k8s.js';
import { MtlsAuthenticator } from './mtls.js';
import { NodeKeyAccess } from './node-key.js';
import { AccessPolicy } from './policy.js';

export * from './caller.js';
export { MtlsAuthenticator, certificateIdentity } from './mtls.js';
export { AccessPolicy, POLICY_RPCS } from './policy.js';
export { NODE_KEY_RPCS, NodeKeyAccess } from './node-key.js';
export { K8sAuthenticator, KubeApiError, TokenReviewClient, NODE_NAME_EXTRA, unverifiedClaims, type TokenReviewStatus } from './k8s.js';

export interface CallerAuth {
  authenticator: Authenticator;
  /** null: every authenticated caller may call every RPC. */
  policy: AccessPolicy | null;
  /** Who may sign with the node's own keys (--allow-node-key); absent: nobody, except under --auth none. */
  nodeKey?: NodeKeyAccess;
}

/** Builds what `config.auth` and `config.allow` ask for; ConfigError for unreadable files. */
export async function createCallerAuth(
  config: AttestorConfig,
  hooks: { onTokenRefused?: (reason: string, detail: string) => void } = {},
): Promise<CallerAuth> {
  const policy = config.allow !== undefined && config.allow !== '' ? await AccessPolicy.load(config.allow) : null;
  const nodeKey = NodeKeyAccess.of(config.auth, config.allowNodeKey ?? []);
  switch (config.auth) {
    case 'none':
      return { authenticator: new NoAuthenticator(), policy, nodeKey };
    case 'mtls':
      return { authenticator: new MtlsAuthenticator(), policy, nodeKey };
    case 'k8s': {
      let ca: string;
      try {
        ca = await readFile(config.kubeCa, 'utf8');
      } catch (e) {
        throw new ConfigError('--kube-ca', `cannot read ${config.kubeCa}: ${(e as Error).message}`);
      }
      if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError('--kube-ca', `no PEM CERTIFICATE in ${config.kubeCa}`);
      const reviewer = new TokenReviewClient({ url: config.kubeApi as string, ca, tokenFile: config.kubeTokenFile });
      const opts = {
        reviewer,
        audience: config.tokenAudience,
        nodeName: config.nodeName as string,
        cacheSeconds: config.tokenCacheSeconds,
        ...(hooks.onTokenRefused ? { onRefused: hooks.onTokenRefused } : {}),
      };
      return { authenticator: new K8sAuthenticator(opts), policy, nodeKey };
    }
  }
}
