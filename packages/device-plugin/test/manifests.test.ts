// Offline checks of manifests/: every overlay renders, and what Pod Security "restricted" and the
// privilege model in manifests/README.md promise holds in the rendered objects. (A real API
// server dry-run is a separate harness.)
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMap, isScalar, isSeq, parseAllDocuments, parseDocument } from 'yaml';
import type { Scalar, YAMLMap } from 'yaml';
import { findKustomize, render } from './kustomize.js';
import type { Kustomize } from './kustomize.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const MANIFESTS = join(REPO, 'manifests');
const OVERLAYS = ['dev', 'prod'] as const;
const PRIVILEGED_NS = 'tpmds-system';
const RESOURCE = 'tpmds.io/tpm';

// Loose views of the Kubernetes objects: only what the checks read.
type Obj = Record<string, any>;

interface Pod {
  kind: string;
  name: string;
  namespace: string;
  spec: Obj;
}

const POD_TEMPLATE_KINDS = ['DaemonSet', 'Deployment', 'StatefulSet', 'ReplicaSet', 'Job'];

function podsOf(objects: Obj[]): Pod[] {
  const pods: Pod[] = [];
  for (const o of objects) {
    const base = { kind: o['kind'] as string, name: o['metadata']?.['name'] as string, namespace: o['metadata']?.['namespace'] as string };
    if (o['kind'] === 'Pod') pods.push({ ...base, spec: o['spec'] });
    else if (POD_TEMPLATE_KINDS.includes(o['kind'])) pods.push({ ...base, spec: o['spec']['template']['spec'] });
    else if (o['kind'] === 'CronJob') pods.push({ ...base, spec: o['spec']['jobTemplate']['spec']['template']['spec'] });
  }
  return pods;
}

function containersOf(spec: Obj): Obj[] {
  return [...(spec['initContainers'] ?? []), ...(spec['containers'] ?? []), ...(spec['ephemeralContainers'] ?? [])];
}

function find(objects: Obj[], kind: string, name: string): Obj {
  const o = objects.find((x) => x['kind'] === kind && x['metadata']['name'] === name);
  assert.ok(o, `${kind}/${name} missing`);
  return o;
}

function envOf(container: Obj): Record<string, Obj> {
  return Object.fromEntries((container['env'] ?? []).map((e: Obj) => [e['name'], e]));
}

/** The comment above a mapping (the yaml library keeps it on the map or on its first key). */
function commentOf(m: YAMLMap): string {
  const first = m.items[0]?.key;
  return m.commentBefore ?? (isScalar(first) ? first.commentBefore : undefined) ?? '';
}

/** Volume types Pod Security "restricted" allows. */
const RESTRICTED_VOLUMES = new Set(['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret']);

describe('manifests (rendered offline)', function () {
  // The first run on a machine without kubectl/kustomize builds kustomize with Go.
  this.timeout(15 * 60_000);
  let kustomize: Kustomize;
  const rendered = new Map<string, Obj[]>();

  before(() => {
    kustomize = findKustomize();
    for (const o of OVERLAYS) {
      const docs = parseAllDocuments(render(kustomize, join(MANIFESTS, 'overlays', o)));
      const objects: Obj[] = [];
      for (const d of Array.isArray(docs) ? docs : [docs]) {
        assert.deepEqual(d.errors, [], `overlay ${o}: YAML errors`);
        const js = d.toJS() as Obj | null;
        if (js !== null) objects.push(js);
      }
      rendered.set(o, objects);
    }
  });

  for (const overlay of OVERLAYS) {
    describe(`overlay ${overlay}`, () => {
      const objects = (): Obj[] => rendered.get(overlay)!;

      it('labels namespaces: tpmds and tpmds-client restricted (enforce, warn, audit), only tpmds-system privileged', () => {
        const namespaces = objects().filter((o) => o['kind'] === 'Namespace');
        const labels = (name: string): Obj => find(namespaces, 'Namespace', name)['metadata']['labels'];
        for (const ns of ['tpmds', 'tpmds-client']) {
          for (const mode of ['enforce', 'warn', 'audit']) assert.equal(labels(ns)[`pod-security.kubernetes.io/${mode}`], 'restricted', `${ns} ${mode}`);
        }
        for (const ns of namespaces) {
          const enforce = ns['metadata']['labels']?.['pod-security.kubernetes.io/enforce'];
          if (ns['metadata']['name'] === PRIVILEGED_NS) assert.equal(enforce, 'privileged');
          else assert.equal(enforce, 'restricted', `namespace ${ns['metadata']['name']}`);
        }
        assert.equal(namespaces.some((n) => n['metadata']['name'] === PRIVILEGED_NS), overlay === 'prod');
        // Every namespaced object lands in a namespace this overlay creates.
        const names = new Set(namespaces.map((n) => n['metadata']['name']));
        for (const o of objects()) {
          const ns = o['metadata']['namespace'];
          if (ns !== undefined) assert.ok(names.has(ns), `${o['kind']}/${o['metadata']['name']} in unknown namespace ${ns}`);
        }
      });

      it('outside tpmds-system: no hostPath, no privileged, no host namespaces or ports, only restricted volume types', () => {
        const pods = podsOf(objects()).filter((p) => p.namespace !== PRIVILEGED_NS);
        assert.ok(pods.length >= 2);
        for (const p of pods) {
          const where = `${p.kind}/${p.name}`;
          for (const v of p.spec['volumes'] ?? []) {
            const type = Object.keys(v).filter((k) => k !== 'name');
            assert.equal(type.length, 1, `${where} volume ${v['name']}`);
            assert.ok(RESTRICTED_VOLUMES.has(type[0]!), `${where} volume ${v['name']} is ${type[0]}`);
          }
          for (const k of ['hostNetwork', 'hostPID', 'hostIPC']) assert.notEqual(p.spec[k], true, `${where} ${k}`);
          for (const c of containersOf(p.spec)) {
            assert.notEqual(c['securityContext']?.['privileged'], true, `${where}/${c['name']} privileged`);
            for (const port of c['ports'] ?? []) assert.equal(port['hostPort'], undefined, `${where}/${c['name']} hostPort`);
          }
        }
      });

      it('every container outside tpmds-system is hardened: non-root, read-only root, no escalation, RuntimeDefault seccomp, drop ALL', () => {
        for (const p of podsOf(objects()).filter((x) => x.namespace !== PRIVILEGED_NS)) {
          const pod = p.spec['securityContext'] ?? {};
          assert.notEqual(pod['runAsUser'], 0, `${p.name}: pod runAsUser 0`);
          for (const c of containersOf(p.spec)) {
            const where = `${p.kind}/${p.name}/${c['name']}`;
            const sc = c['securityContext'] ?? {};
            const eff = (k: string): unknown => sc[k] ?? pod[k];
            assert.equal(eff('runAsNonRoot'), true, `${where} runAsNonRoot`);
            const uid = eff('runAsUser');
            assert.ok(typeof uid === 'number' && uid > 0, `${where} runAsUser ${String(uid)}`);
            assert.equal(sc['allowPrivilegeEscalation'], false, `${where} allowPrivilegeEscalation`);
            assert.equal(sc['readOnlyRootFilesystem'], true, `${where} readOnlyRootFilesystem`);
            assert.equal((eff('seccompProfile') as Obj | undefined)?.['type'], 'RuntimeDefault', `${where} seccompProfile`);
            assert.deepEqual(sc['capabilities']?.['drop'], ['ALL'], `${where} capabilities.drop`);
            assert.deepEqual(sc['capabilities']?.['add'] ?? [], [], `${where} capabilities.add`);
          }
        }
      });

      it('Service tpmds-attestor keeps internalTrafficPolicy Local', () => {
        assert.equal(find(objects(), 'Service', 'tpmds-attestor')['spec']['internalTrafficPolicy'], 'Local');
      });

      it('NetworkPolicy: gRPC from tpmds.io/client pods, metrics only from tpmds.io/monitoring namespaces', () => {
        const ingress = find(objects(), 'NetworkPolicy', 'tpmds-attestor')['spec']['ingress'] as Obj[];
        const from = (port: number): Obj[] => ingress.filter((r) => r['ports'].some((p: Obj) => p['port'] === port)).flatMap((r) => r['from']);
        assert.deepEqual(from(50051), [{ namespaceSelector: {}, podSelector: { matchLabels: { 'tpmds.io/client': 'true' } } }]);
        assert.deepEqual(from(8080), [{ namespaceSelector: { matchLabels: { 'tpmds.io/monitoring': 'true' } } }]);
      });

      it('client Job runs in tpmds-client with the label the NetworkPolicy admits', () => {
        const job = find(objects(), 'Job', 'tpmds-verify');
        assert.equal(job['metadata']['namespace'], 'tpmds-client');
        assert.equal(job['spec']['template']['metadata']['labels']['tpmds.io/client'], 'true');
      });
    });
  }

  describe('overlay prod', () => {
    const objects = (): Obj[] => rendered.get('prod')!;
    const attestor = (): Obj => find(objects(), 'DaemonSet', 'tpmds-attestor');

    it('the attestor requests the device plugin resource, and gets TPM, state and event log from it (no env of its own)', () => {
      const ds = attestor();
      assert.equal(ds['metadata']['namespace'], 'tpmds');
      const c = ds['spec']['template']['spec']['containers'].find((x: Obj) => x['name'] === 'attestor');
      assert.equal(c['resources']['limits'][RESOURCE], '1');
      const env = envOf(c);
      for (const k of ['TPMDS_TPM', 'TPMDS_STATE_DIR', 'TPMDS_EVENT_LOG', 'TPMDS_USERSPACE_LOG']) assert.equal(env[k], undefined, `${k} must come from Allocate`);
    });

    it('the attestor authenticates with --auth k8s: TPMDS_AUTH, TPMDS_NODE_NAME from spec.nodeName, its own token, TLS', () => {
      const spec = attestor()['spec']['template']['spec'];
      const env = envOf(spec['containers'][0]);
      assert.equal(env['TPMDS_AUTH']?.['value'], 'k8s');
      assert.equal(env['TPMDS_NODE_NAME']?.['valueFrom']?.['fieldRef']?.['fieldPath'], 'spec.nodeName');
      assert.equal(spec['automountServiceAccountToken'], true);
      assert.equal(env['TPMDS_TLS_CERT']?.['value'], '/etc/tpmds/tls/tls.crt');
      assert.equal(spec['volumes'].find((v: Obj) => v['name'] === 'tls')['secret']['secretName'], 'tpmds-attestor-tls');
      assert.ok(Array.isArray(spec['securityContext']['supplementalGroups']) && spec['securityContext']['supplementalGroups'].length === 1, 'the tss group');
    });

    it('the device plugin advertises that resource, gives files to the attestor\'s uid:gid, and keeps only CAP_CHOWN', () => {
      const dp = find(objects(), 'DaemonSet', 'tpmds-device-plugin');
      assert.equal(dp['metadata']['namespace'], PRIVILEGED_NS);
      const c = dp['spec']['template']['spec']['containers'][0];
      assert.ok(c['args'].includes(`--resource-name=${RESOURCE}`));
      const sc = attestor()['spec']['template']['spec']['securityContext'];
      assert.ok(c['args'].includes(`--state-owner=${sc['runAsUser']}:${sc['runAsGroup']}`));
      assert.notEqual(c['securityContext']['privileged'], true);
      assert.equal(c['securityContext']['allowPrivilegeEscalation'], false);
      assert.deepEqual(c['securityContext']['capabilities'], { drop: ['ALL'], add: ['CHOWN'] });
    });

    it('the device plugin carries a PRIVILEGE comment on every host mount and on what it runs as', () => {
      const doc = parseDocument(readFileSync(join(MANIFESTS, 'device-plugin/daemonset.yaml'), 'utf8'));
      const mounts = doc.getIn(['spec', 'template', 'spec', 'containers', 0, 'volumeMounts'], true);
      assert.ok(isSeq(mounts));
      assert.ok(mounts.items.length >= 5);
      mounts.items.forEach((m, i) => {
        assert.ok(isMap(m));
        // The first item's comment is kept on the sequence.
        const comment = commentOf(m) || (i === 0 ? (mounts.commentBefore ?? '') : '');
        assert.match(comment, /PRIVILEGE:/, `volumeMount ${String(m.get('name'))}`);
      });
      const runAs = doc.getIn(['spec', 'template', 'spec', 'securityContext'], true);
      assert.ok(isMap(runAs));
      assert.match(commentOf(runAs), /PRIVILEGE: uid 0/);
      const caps = doc.getIn(['spec', 'template', 'spec', 'containers', 0, 'securityContext', 'capabilities'], true);
      assert.ok(isMap(caps));
      const add = caps.items.find((p) => isScalar(p.key) && p.key.value === 'add');
      assert.match((add?.key as Scalar | undefined)?.commentBefore ?? '', /PRIVILEGE: CAP_CHOWN/);
    });

    it('the event-log hand-over: only the device plugin mounts securityfs and systemd\'s log folder, read-only; the attestor pod mounts no host path and gets the copies from Allocate', () => {
      const hostMounts: string[] = [];
      for (const p of podsOf(objects())) {
        const hostVolumes = new Map<string, string>((p.spec['volumes'] ?? []).filter((v: Obj) => v['hostPath']).map((v: Obj) => [v['name'], v['hostPath']['path']]));
        for (const c of containersOf(p.spec)) {
          for (const m of c['volumeMounts'] ?? []) {
            const host = hostVolumes.get(m['name']);
            if (host === undefined || !['/sys/kernel/security', '/run/log/systemd', '/sys', '/run', '/'].includes(host)) continue;
            hostMounts.push(`${p.namespace}/${p.name}/${c['name']}:${host}`);
            assert.equal(m['readOnly'], true, `${p.name}/${c['name']} mounts ${host} read-only`);
            // The copier keeps no capability that reads other users' files (uid 0 owns the logs): only CHOWN.
            assert.deepEqual(c['securityContext']['capabilities'], { drop: ['ALL'], add: ['CHOWN'] }, `${p.name}/${c['name']} capabilities`);
            assert.equal(c['securityContext']['privileged'] ?? false, false);
          }
        }
      }
      assert.deepEqual(hostMounts.sort(), ['tpmds-system/tpmds-device-plugin/device-plugin:/run/log/systemd', 'tpmds-system/tpmds-device-plugin/device-plugin:/sys/kernel/security']);
      const pod = attestor()['spec']['template']['spec'];
      assert.deepEqual((pod['volumes'] ?? []).filter((v: Obj) => v['hostPath']), [], 'the attestor pod has no hostPath');
      const args = find(objects(), 'DaemonSet', 'tpmds-device-plugin')['spec']['template']['spec']['containers'][0]['args'] as string[];
      assert.ok(args.includes('--event-log-source=/host/sys/kernel/security/tpm0/binary_bios_measurements'), 'the plugin copies the firmware log');
      assert.ok(args.includes('--systemd-log-source=/host/run/log/systemd/tpm2-measure.log'), 'and systemd\'s userspace log');
      // The prod verifier never accepts a quote without an event log.
      assert.ok(!JSON.stringify(find(objects(), 'Job', 'tpmds-verify')).includes('--allow-missing-eventlog'));
    });

    it('the ClusterRole grants only create on tokenreviews, bound to the attestor\'s ServiceAccount', () => {
      const roles = objects().filter((o) => o['kind'] === 'ClusterRole' || o['kind'] === 'Role');
      assert.equal(roles.length, 1);
      assert.deepEqual(roles[0]!['rules'], [{ apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] }]);
      const binding = find(objects(), 'ClusterRoleBinding', roles[0]!['metadata']['name']);
      assert.deepEqual(binding['subjects'], [{ kind: 'ServiceAccount', name: 'tpmds-attestor', namespace: 'tpmds' }]);
    });

    it('the client Job passes a projected token with audience tpmds (600 s) to tpmds-verifier', () => {
      const spec = find(objects(), 'Job', 'tpmds-verify')['spec']['template']['spec'];
      assert.equal(spec['automountServiceAccountToken'], false);
      const token = spec['volumes'].flatMap((v: Obj) => (v['projected']?.['sources'] ?? []).map((s: Obj) => ({ volume: v['name'], sa: s['serviceAccountToken'] }))).find((x: Obj) => x['sa'] !== undefined);
      assert.deepEqual(token['sa'], { audience: 'tpmds', expirationSeconds: 600, path: 'token' });
      const c = spec['containers'][0];
      const mount = c['volumeMounts'].find((m: Obj) => m['name'] === token['volume']);
      const file = `${mount['mountPath']}/token`;
      assert.equal(c['args'][c['args'].indexOf('--token-file') + 1], file);
      assert.equal(envOf(c)['TPMDS_TOKEN_FILE']?.['value'], file);
    });
  });

  describe('overlay dev', () => {
    const objects = (): Obj[] => rendered.get('dev')!;

    it('the attestor uses an swtpm sidecar over a shared emptyDir, --insecure, no device plugin and no RBAC', () => {
      const spec = find(objects(), 'DaemonSet', 'tpmds-attestor')['spec']['template']['spec'];
      const attestor = spec['containers'].find((c: Obj) => c['name'] === 'attestor');
      const env = envOf(attestor);
      assert.equal(env['TPMDS_TPM']?.['value'], 'swtpm:path=/run/swtpm/sock');
      assert.equal(env['TPMDS_INSECURE']?.['value'], 'true');
      assert.equal(attestor['resources']['limits'][RESOURCE], undefined);
      const swtpm = spec['initContainers'].find((c: Obj) => c['name'] === 'swtpm');
      assert.equal(swtpm['restartPolicy'], 'Always');
      const socketVolume = (c: Obj): string | undefined => c['volumeMounts'].find((m: Obj) => m['mountPath'] === '/run/swtpm')?.['name'];
      assert.equal(socketVolume(swtpm), socketVolume(attestor));
      assert.ok(spec['volumes'].find((v: Obj) => v['name'] === socketVolume(swtpm))['emptyDir']);
      assert.equal(objects().some((o) => o['kind'] === 'ClusterRole' || (o['kind'] === 'DaemonSet' && o['metadata']['name'] === 'tpmds-device-plugin')), false);
    });

    it('the dev client Job accepts quotes without a firmware event log (swtpm has none)', () => {
      assert.ok((find(objects(), 'Job', 'tpmds-verify')['spec']['template']['spec']['containers'][0]['args'] as string[]).includes('--allow-missing-eventlog'));
    });
  });
});
