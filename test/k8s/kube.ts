/**
 * Kubernetes API server harness for the @k8s tests: a real kube-apiserver and etcd (built from the
 * pinned Go module beside this file by build.sh) on loopback, with their own CA, serving certificate,
 * service-account signing key, RBAC (+ Node authorizer), PodSecurity admission and an admin client
 * certificate (system:masters). No kubelet, scheduler or controller-manager: Pods never run, there is
 * no `default` ServiceAccount (create the ones you need), and deletions that need a controller or a
 * kubelet to complete (graceful Pod deletion, namespace deletion) never complete.
 *
 * Typical use in a mocha test (the title must contain @k8s):
 *
 *   describe('token review @k8s', () => {
 *     const kube = withKube();           // starts in before(), stops in after(); skips without Go
 *     it('reviews', async () => {
 *       const k = kube();
 *       await k.createNamespace('demo');
 *       ...
 *     });
 *   });
 *
 * Lifetime rules follow the swtpm fixture (packages/tpm2-wire/test/fixtures/swtpm.ts): every process
 * is stopped by PID and reaped in `stop()`; anything still running when the Node process exits is
 * SIGKILLed and every temporary directory removed by an 'exit' safety net.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPair } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { keepTempDir, makeTempDir, removeTempDir, sleep, stopProcesses, trackProcess, untrackProcesses, type TrackedProcess } from '../support/processes.js';

const BUILD_SCRIPT = fileURLToPath(new URL('./build.sh', import.meta.url));
const generateKeyPairAsync = promisify(generateKeyPair);

/** The ServiceAccount issuer and default API audience of the harness's API server. */
export const KUBE_ISSUER = 'https://kubernetes.default.svc.cluster.local';
/** The key under which the API server reports a pod-bound token's node (TokenReview user.extra). */
export const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';

// ---------------------------------------------------------------------------------------------
// Types

export interface KubeBinaries {
  readonly binDir: string;
  readonly kubeApiServer: string;
  readonly kubectl: string;
  readonly etcd: string;
}

export interface KubeStartOptions {
  /** Extra kube-apiserver flags (appended; a later flag wins), e.g. `--feature-gates=...`. */
  apiServerArgs?: string[];
  /** Readiness timeout for each process start. Default 120 s (a loaded 2-core machine is slow). */
  readyTimeoutMs?: number;
}

/** Who a request is made as. Default: the admin (client certificate in system:masters). */
export type KubeIdentity =
  | { token: string }
  | { cert: string; key: string } // PEM text
  | { anonymous: true };

export interface KubeRequestOptions {
  as?: KubeIdentity;
  /** Default `application/json`; use `application/merge-patch+json` etc. for PATCH. */
  contentType?: string;
  timeoutMs?: number;
}

export interface KubeResponse<T = any> {
  status: number;
  /** Parsed JSON when the body is JSON, else the text. */
  body: T;
  /** The texts of the `Warning` response headers (e.g. PodSecurity's "would violate ..."). */
  warnings: string[];
  headers: http.IncomingHttpHeaders;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid: string;
  labels?: Record<string, string>;
  resourceVersion?: string;
  deletionTimestamp?: string;
  [k: string]: unknown;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: any;
  status?: any;
}

export interface TokenRequestOptions {
  /** Default ['tpmds']. */
  audiences?: string[];
  /** Default 3600 (the API server's minimum is 600). */
  expirationSeconds?: number;
  /** Bind the token to this Pod (name and uid; the API server checks both). */
  boundPod?: { name: string; uid: string };
}

export interface IssuedToken {
  token: string;
  expirationTimestamp: string;
}

export interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
  audiences?: string[];
  error?: string;
}

export interface Kube {
  /** `https://127.0.0.1:PORT` */
  readonly server: string;
  readonly port: number;
  /** Admin kubeconfig (JSON, file paths to the certificates). */
  readonly kubeconfig: string;
  /** PEM text and path of the cluster CA (issues the serving and the admin certificate). */
  readonly caPem: string;
  readonly caFile: string;
  /** Admin client certificate (O=system:masters) and key, PEM text. */
  readonly adminCert: string;
  readonly adminKey: string;
  /** The ServiceAccount token issuer (`KUBE_ISSUER`); also the API server's default audience. */
  readonly issuer: string;
  /** The ServiceAccount signing key's public half (PEM), for offline JWT checks. */
  readonly serviceAccountPublicKeyPem: string;
  /** The harness's temporary directory (certificates, etcd data, logs). */
  readonly dir: string;
  readonly binaries: KubeBinaries;
  /** PIDs of the running processes (apiServer is undefined while stopped). */
  pids(): { etcd: number; apiServer: number | undefined };

  /** One REST call (JSON in, JSON out); never throws for an HTTP status, only for transport errors. */
  request<T = any>(method: string, path: string, body?: unknown, options?: KubeRequestOptions): Promise<KubeResponse<T>>;
  /** Runs the built kubectl with the admin kubeconfig (or `--token` when `as` is given); never throws for a non-zero exit. */
  kubectl(args: string[], options?: { input?: string; as?: { token: string }; timeoutMs?: number }): Promise<KubectlResult>;

  // Conveniences (each throws with the API server's message on a non-2xx answer).
  createNamespace(name: string, labels?: Record<string, string>): Promise<KubeObject>;
  /** A Node object (no kubelet behind it). */
  createNode(name: string): Promise<KubeObject>;
  createServiceAccount(namespace: string, name: string): Promise<KubeObject>;
  /** A Pod bound to `nodeName` (never runs). Default image `registry.invalid/tpmds-test:0`. */
  createPod(namespace: string, name: string, options: { nodeName: string; serviceAccountName: string; spec?: Record<string, unknown> }): Promise<KubeObject>;
  /** Deletes a Pod; `gracePeriodSeconds: 0` is a force delete (gone at once); otherwise the Pod only
   * gets a deletionTimestamp (no kubelet completes it). Returns the API server's answer body. */
  deletePod(namespace: string, name: string, options?: { gracePeriodSeconds?: number }): Promise<KubeObject>;
  /** TokenRequest API: POST .../serviceaccounts/SA/token. */
  requestToken(namespace: string, serviceAccount: string, options?: TokenRequestOptions): Promise<IssuedToken>;
  /** TokenReview (as the admin unless `as` is given); returns `status`. Throws on a non-201 answer. */
  tokenReview(token: string, audiences?: string[], as?: KubeIdentity): Promise<TokenReviewStatus>;
  /** ClusterRole `name` allowing only `create` on `tokenreviews` (authentication.k8s.io), bound to the
   * ServiceAccount with a ClusterRoleBinding of the same name (both created if missing). */
  grantTokenReview(namespace: string, serviceAccount: string, name?: string): Promise<void>;
  /** Writes a kubeconfig that authenticates with `token` (for a process under test); returns its path. */
  writeKubeconfig(token: string, name?: string): Promise<string>;
  /** Lays out what a pod sees (token, ca.crt, namespace under one folder, like
   * /var/run/secrets/kubernetes.io/serviceaccount) and the in-cluster environment variables. */
  writeInClusterFiles(token: string, namespace: string, name?: string): Promise<{ dir: string; env: Record<string, string> }>;

  /** Stops the API server only (etcd keeps the data); requests then fail with ECONNREFUSED. */
  stopApiServer(): Promise<void>;
  /** Starts it again on the same port with the same CA, keys and data; resolves when /readyz is ok. */
  startApiServer(): Promise<void>;
  restartApiServer(): Promise<void>;
  /** The tails of the API server's and etcd's logs (for failure messages). */
  logTail(): string;
  /** Stops both processes by PID, reaps them and removes the temporary directory. Idempotent. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Binaries

let binariesPromise: Promise<KubeBinaries | { skip: string }> | undefined;

/**
 * Locates the binaries: `TPMDS_K8S_BIN` (a folder with kube-apiserver, kubectl and etcd) if set,
 * otherwise test/k8s/build.sh, which returns at once when they are built and builds them (minutes)
 * when they are not. `{ skip }` when Go is missing; throws when the build fails.
 */
export function kubeBinaries(): Promise<KubeBinaries | { skip: string }> {
  binariesPromise ??= (async () => {
    let binDir = process.env['TPMDS_K8S_BIN'];
    if (!binDir) {
      const result = await run('bash', [BUILD_SCRIPT, '--strict', '--quiet'], { timeoutMs: 60 * 60_000, inheritStderr: true });
      if (result.code === 3) return { skip: 'k8s: Go not found, skipping the API-server tests' };
      if (result.code !== 0) throw new Error(`test/k8s/build.sh failed (exit ${result.code}):\n${result.stderr.slice(-4000)}`);
      binDir = result.stdout.trim().split('\n').pop()!;
    }
    const b = { binDir, kubeApiServer: join(binDir, 'kube-apiserver'), kubectl: join(binDir, 'kubectl'), etcd: join(binDir, 'etcd') };
    for (const f of [b.kubeApiServer, b.kubectl, b.etcd]) if (!existsSync(f)) throw new Error(`k8s harness: ${f} is missing`);
    return b;
  })();
  return binariesPromise;
}

// ---------------------------------------------------------------------------------------------
// Running instances. Processes and the temp dir are tracked by test/support/processes.ts (the
// scheme the swtpm fixture uses too), with a last-resort cleanup when the Node process exits.

const liveKubes = new Set<Kube>();

/** Every Kube still running (e.g. for a mocha root afterAll). */
export async function stopAllKubes(): Promise<void> {
  await Promise.all([...liveKubes].map((k) => k.stop()));
}

// ---------------------------------------------------------------------------------------------
// Helpers

function run(
  file: string,
  args: string[],
  options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; inheritStderr?: boolean } = {},
): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { env: options.env ?? process.env, timeout: options.timeoutMs ?? 120_000, maxBuffer: 64 << 20, encoding: 'utf8' },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          reject(new Error(`${file} ${args.join(' ')}: ${error.message}\n${stderr}`));
          return;
        }
        resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
      },
    );
    if (options.inheritStderr) child.stderr?.on('data', (d: string) => process.stderr.write(d));
    if (options.input !== undefined) child.stdin?.end(options.input);
    else child.stdin?.end();
  });
}

function runOk(file: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, timeout: 60_000, encoding: 'utf8' }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`${file} ${args.join(' ')} failed: ${error.message}\n${stderr}`));
      else resolve();
    });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

const portsInUse = new Set<number>();

/** A free loopback port below 32768 (the ephemeral range starts there). */
async function pickPort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (portsInUse.has(port)) continue;
    if (await portFree(port)) {
      portsInUse.add(port);
      return port;
    }
  }
  throw new Error('no free TCP port below 32768');
}

function tail(file: string, max = 4000): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text.slice(-max);
  } catch {
    return '';
  }
}

interface Managed {
  child: ChildProcess;
  tracked: TrackedProcess;
  exited: Promise<void>;
}

function startProcess(file: string, args: string[], logFile: string): Managed {
  // Output straight into a log file: no pipe that could fill up, and the log survives for diagnostics.
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(file, args, { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`could not start ${file}`);
  const tracked = trackProcess(child.pid);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  child.on('error', () => undefined);
  return { child, tracked, exited };
}

async function stopProcess(m: Managed | undefined): Promise<void> {
  if (!m) return;
  // SIGTERM, SIGKILL after 15 s; then wait as long as it takes for Node to reap it.
  await stopProcesses([m.tracked], { graceMs: 15_000, killWaitMs: Infinity });
  await m.exited; // Node has reaped it
  untrackProcesses([m.tracked]);
}

function httpGet(url: string, agent: http.Agent | undefined, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith('https:') ? https : http;
    const req = mod.get(url, { agent, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function waitReady(
  what: string,
  probe: () => Promise<boolean>,
  m: Managed,
  timeoutMs: number,
  diagnostics: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void m.exited.then(() => (exited = true));
  let last = '';
  for (;;) {
    if (exited) throw new Error(`${what} exited during start (exit ${m.child.exitCode ?? m.child.signalCode}):\n${diagnostics()}`);
    try {
      if (await probe()) return;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() >= deadline) throw new Error(`${what} not ready within ${timeoutMs} ms (${last}):\n${diagnostics()}`);
    await sleep(200);
  }
}

function check<T>(what: string, r: KubeResponse<T>, ...ok: number[]): T {
  const accepted = ok.length ? ok : [200, 201];
  if (!accepted.includes(r.status)) {
    const message = typeof r.body === 'object' && r.body !== null && 'message' in r.body ? (r.body as { message: string }).message : JSON.stringify(r.body);
    throw new Error(`${what}: HTTP ${r.status}: ${message}`);
  }
  return r.body;
}

// ---------------------------------------------------------------------------------------------
// PKI (openssl for the certificates, node:crypto for the ServiceAccount key)

async function makePki(dir: string): Promise<void> {
  const days = '7';
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await runOk('openssl', ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', days, '-subj', '/CN=tpmds-test-kube-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  const leaf = (name: string, subj: string, ext: string[]) =>
    runOk('openssl', ['req', '-x509', '-CA', 'ca.crt', '-CAkey', 'ca.key', ...ec, '-keyout', `${name}.key`, '-out', `${name}.crt`,
      '-days', days, '-subj', subj, '-addext', 'basicConstraints=critical,CA:FALSE',
      '-addext', 'keyUsage=critical,digitalSignature,keyEncipherment', ...ext.flatMap((e) => ['-addext', e])], dir);
  await leaf('apiserver', '/CN=kube-apiserver', [
    'extendedKeyUsage=serverAuth',
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1',
  ]);
  await leaf('admin', '/O=system:masters/CN=tpmds-test-admin', ['extendedKeyUsage=clientAuth']);
  // Generated straight to PEM (exporting a freshly generated KeyObject can deadlock Node 20: test/support/keygen-guard.mjs).
  const { privateKey, publicKey } = await generateKeyPairAsync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  await writeFile(join(dir, 'sa.key'), privateKey, { mode: 0o600 });
  await writeFile(join(dir, 'sa.pub'), publicKey);
}

function kubeconfigJson(server: string, caFile: string, user: Record<string, string>): string {
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'tpmds-test', cluster: { server, 'certificate-authority': caFile } }],
      users: [{ name: 'tpmds-test-user', user }],
      contexts: [{ name: 'tpmds-test', context: { cluster: 'tpmds-test', user: 'tpmds-test-user' } }],
      'current-context': 'tpmds-test',
    },
    null,
    2,
  );
}

// ---------------------------------------------------------------------------------------------
// Start

/**
 * Starts etcd and kube-apiserver on loopback. Throws (with the log tails) if either does not come up;
 * call `kubeBinaries()` first if you want to skip rather than fail on a machine without Go.
 */
export async function startKube(options: KubeStartOptions = {}): Promise<Kube> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startKubeOnce(options);
    } catch (e) {
      // A port taken between the check and the bind: try other ports.
      if (attempt < 3 && /address already in use/i.test((e as Error).message)) continue;
      throw e;
    }
  }
}

async function startKubeOnce(options: KubeStartOptions): Promise<Kube> {
  const found = await kubeBinaries();
  if ('skip' in found) throw new Error(found.skip);
  const binaries = found;
  const readyTimeoutMs = options.readyTimeoutMs ?? 120_000;

  const dir = await makeTempDir('tpmds-kube-');

  let etcd: Managed | undefined;
  let apiServer: Managed | undefined;
  const ports: number[] = [];
  const etcdLog = join(dir, 'etcd.log');
  const apiLog = join(dir, 'kube-apiserver.log');
  const logTail = () => `--- kube-apiserver (${apiLog}) ---\n${tail(apiLog)}\n--- etcd (${etcdLog}) ---\n${tail(etcdLog, 2000)}`;

  const cleanup = async () => {
    await stopProcess(apiServer);
    await stopProcess(etcd);
    for (const p of ports) portsInUse.delete(p);
    if (process.env['TPMDS_K8S_KEEP']) keepTempDir(dir);
    else await removeTempDir(dir);
  };

  try {
    await makePki(dir);
    const caFile = join(dir, 'ca.crt');
    const caPem = readFileSync(caFile, 'utf8');
    const adminCert = readFileSync(join(dir, 'admin.crt'), 'utf8');
    const adminKey = readFileSync(join(dir, 'admin.key'), 'utf8');
    const adminAgent = new https.Agent({ ca: caPem, cert: adminCert, key: adminKey, keepAlive: false });

    // etcd
    const etcdPort = await pickPort();
    const peerPort = await pickPort();
    ports.push(etcdPort, peerPort);
    await mkdir(join(dir, 'etcd'), { mode: 0o700 });
    etcd = startProcess(binaries.etcd, [
      `-data-dir=${join(dir, 'etcd')}`,
      `-listen-client-url=http://127.0.0.1:${etcdPort}`,
      `-listen-peer-url=http://127.0.0.1:${peerPort}`,
    ], etcdLog);
    const etcdProc = etcd;
    await waitReady('etcd', async () => {
      const r = await httpGet(`http://127.0.0.1:${etcdPort}/health`, undefined, 2000);
      return r.status === 200 && /"health":\s*"true"/.test(r.body);
    }, etcdProc, readyTimeoutMs, logTail);

    // kube-apiserver
    const port = await pickPort();
    ports.push(port);
    const server = `https://127.0.0.1:${port}`;
    const apiArgs = [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${port}`,
      // The kubernetes Service's endpoints are not reconciled: a loopback advertise address is refused there.
      '--endpoint-reconciler-type=none',
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      `--tls-cert-file=${join(dir, 'apiserver.crt')}`,
      `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
      `--client-ca-file=${caFile}`,
      `--service-account-issuer=${KUBE_ISSUER}`,
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      `--api-audiences=${KUBE_ISSUER}`,
      '--authorization-mode=Node,RBAC',
      // Both are on by default; named so the intent is visible (this flag adds to the default set).
      '--enable-admission-plugins=PodSecurity,NodeRestriction',
      '--service-cluster-ip-range=10.96.0.0/16',
      '--allow-privileged=true',
      '--profiling=false',
      '--v=1',
      ...(options.apiServerArgs ?? []),
    ];
    const readyz = async () => (await httpGet(`${server}/readyz`, adminAgent, 3000)).status === 200;

    const startApi = async () => {
      if (apiServer && !(apiServer.child.exitCode !== null || apiServer.child.signalCode !== null)) return;
      // The port was free when picked and we are its only user; after a stop it is free again.
      const m = startProcess(binaries.kubeApiServer, apiArgs, apiLog);
      apiServer = m;
      await waitReady('kube-apiserver', readyz, m, readyTimeoutMs, logTail);
    };
    await startApi();

    const kubeconfig = join(dir, 'admin.kubeconfig');
    await writeFile(kubeconfig, kubeconfigJson(server, caFile, {
      'client-certificate': join(dir, 'admin.crt'),
      'client-key': join(dir, 'admin.key'),
    }), { mode: 0o600 });

    const request = <T = any>(method: string, path: string, body?: unknown, ropts: KubeRequestOptions = {}): Promise<KubeResponse<T>> =>
      new Promise((resolve, reject) => {
        const as = ropts.as;
        const headers: Record<string, string> = { accept: 'application/json' };
        let agent: https.Agent;
        if (!as) agent = adminAgent;
        else if ('cert' in as) agent = new https.Agent({ ca: caPem, cert: as.cert, key: as.key, keepAlive: false });
        else {
          agent = new https.Agent({ ca: caPem, keepAlive: false });
          if ('token' in as) headers['authorization'] = `Bearer ${as.token}`;
        }
        let payload: string | undefined;
        if (body !== undefined) {
          payload = typeof body === 'string' ? body : JSON.stringify(body);
          headers['content-type'] = ropts.contentType ?? 'application/json';
          headers['content-length'] = String(Buffer.byteLength(payload));
        }
        const req = https.request(`${server}${path}`, { method, agent, headers, timeout: ropts.timeoutMs ?? 30_000 }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => {
            let parsed: unknown = text;
            if (/json/.test(String(res.headers['content-type'] ?? ''))) {
              try {
                parsed = JSON.parse(text);
              } catch {
                // leave as text
              }
            }
            const w = res.headers['warning'];
            const warnings = (Array.isArray(w) ? w : w ? [w] : []).map((s) => s.replace(/^299 - "(.*)"$/s, '$1'));
            resolve({ status: res.statusCode ?? 0, body: parsed as T, warnings, headers: res.headers });
          });
        });
        req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
        req.on('error', reject);
        req.end(payload);
      });

    const kubectl = async (args: string[], kopts: { input?: string; as?: { token: string }; timeoutMs?: number } = {}) => {
      const auth = kopts.as
        ? [`--server=${server}`, `--certificate-authority=${caFile}`, `--token=${kopts.as.token}`, '--kubeconfig=/dev/null']
        : [`--kubeconfig=${kubeconfig}`];
      const env = { ...process.env, KUBECONFIG: '', HOME: dir, KUBECACHEDIR: join(dir, 'kubectl-cache') };
      return run(binaries.kubectl, [...auth, ...args], { input: kopts.input, env, timeoutMs: kopts.timeoutMs ?? 120_000 });
    };

    const saPublicKeyPem = readFileSync(join(dir, 'sa.pub'), 'utf8');
    let stopping: Promise<void> | undefined;
    const kube: Kube = {
      server,
      port,
      kubeconfig,
      caPem,
      caFile,
      adminCert,
      adminKey,
      issuer: KUBE_ISSUER,
      serviceAccountPublicKeyPem: saPublicKeyPem,
      dir,
      binaries,
      pids: () => ({
        etcd: etcdProc.tracked.pid,
        apiServer: apiServer && apiServer.child.exitCode === null && apiServer.child.signalCode === null ? apiServer.tracked.pid : undefined,
      }),
      request,
      kubectl,

      async createNamespace(name, labels) {
        return check(`create namespace ${name}`, await request('POST', '/api/v1/namespaces', {
          apiVersion: 'v1', kind: 'Namespace', metadata: { name, ...(labels ? { labels } : {}) },
        }));
      },
      async createNode(name) {
        return check(`create node ${name}`, await request('POST', '/api/v1/nodes', {
          apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name } },
        }));
      },
      async createServiceAccount(namespace, name) {
        return check(`create serviceaccount ${namespace}/${name}`, await request('POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, {
          apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name },
        }));
      },
      async createPod(namespace, name, popts) {
        return check(`create pod ${namespace}/${name}`, await request('POST', `/api/v1/namespaces/${namespace}/pods`, {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name },
          spec: {
            nodeName: popts.nodeName,
            serviceAccountName: popts.serviceAccountName,
            containers: [{ name: 'main', image: 'registry.invalid/tpmds-test:0' }],
            ...(popts.spec ?? {}),
          },
        }));
      },
      async deletePod(namespace, name, dopts = {}) {
        const body = dopts.gracePeriodSeconds === undefined ? undefined : { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: dopts.gracePeriodSeconds };
        return check(`delete pod ${namespace}/${name}`, await request('DELETE', `/api/v1/namespaces/${namespace}/pods/${name}`, body), 200, 202);
      },
      async requestToken(namespace, serviceAccount, topts = {}) {
        const spec: Record<string, unknown> = {
          audiences: topts.audiences ?? ['tpmds'],
          expirationSeconds: topts.expirationSeconds ?? 3600,
        };
        if (topts.boundPod) spec['boundObjectRef'] = { apiVersion: 'v1', kind: 'Pod', name: topts.boundPod.name, uid: topts.boundPod.uid };
        const r = check(`token for ${namespace}/${serviceAccount}`, await request('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`, {
          apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec,
        }));
        return { token: r.status.token as string, expirationTimestamp: r.status.expirationTimestamp as string };
      },
      async tokenReview(token, audiences, as) {
        const r = await request('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
          apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, ...(audiences ? { audiences } : {}) },
        }, as ? { as } : {});
        return (check('tokenreview', r, 201) as { status: TokenReviewStatus }).status;
      },
      async grantTokenReview(namespace, serviceAccount, name = 'tpmds-tokenreview') {
        const role = await request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
          apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name },
          rules: [{ apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] }],
        });
        check(`clusterrole ${name}`, role, 201, 409);
        const binding = await request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
          apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: `${name}-${namespace}-${serviceAccount}` },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
          subjects: [{ kind: 'ServiceAccount', namespace, name: serviceAccount }],
        });
        check(`clusterrolebinding ${name}`, binding, 201, 409);
      },
      async writeKubeconfig(token, name = 'token') {
        const file = join(dir, `${name}.kubeconfig`);
        await writeFile(file, kubeconfigJson(server, caFile, { token }), { mode: 0o600 });
        return file;
      },
      async writeInClusterFiles(token, namespace, name = 'serviceaccount') {
        const sa = join(dir, 'in-cluster', name);
        await mkdir(sa, { recursive: true });
        await writeFile(join(sa, 'token'), token, { mode: 0o600 });
        await writeFile(join(sa, 'ca.crt'), caPem);
        await writeFile(join(sa, 'namespace'), namespace);
        return { dir: sa, env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(port), KUBERNETES_SERVICE_PORT_HTTPS: String(port) } };
      },

      async stopApiServer() {
        await stopProcess(apiServer);
      },
      startApiServer: startApi,
      async restartApiServer() {
        await stopProcess(apiServer);
        await startApi();
      },
      logTail,
      stop() {
        stopping ??= (async () => {
          adminAgent.destroy();
          await cleanup();
          liveKubes.delete(kube);
        })();
        return stopping;
      },
    };
    liveKubes.add(kube);
    return kube;
  } catch (e) {
    await cleanup();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Mocha

/**
 * Mocha helper: starts a Kube in a `before` hook and stops it in `after`. When Go is missing the
 * suite is skipped (mocha `this.skip()`) after build.sh's one line saying so. Returns an accessor:
 *
 *   const kube = withKube();
 *   it('works', async () => { await kube().createNamespace('x'); });
 */
export function withKube(options: KubeStartOptions = {}): () => Kube {
  let instance: Kube | undefined;
  before(async function () {
    // A cold build (no binaries cached) takes minutes; a warm start takes seconds.
    this.timeout(60 * 60_000);
    const found = await kubeBinaries();
    // build.sh has printed the one line saying why (once per process: kubeBinaries() is memoised).
    if ('skip' in found) this.skip();
    instance = await startKube(options);
  });
  after(async function () {
    this.timeout(60_000);
    const k = instance;
    instance = undefined;
    await k?.stop();
  });
  return () => {
    if (!instance) throw new Error('withKube: the API server is not running here (use the accessor inside it()/hooks)');
    return instance;
  };
}
