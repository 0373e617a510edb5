import assert from 'node:assert/strict';
import { ConfigError } from '../src/errors.js';
import { FLAGS, defaultConfig, envName, helpText, parseArgs } from '../src/config.js';
import type { AttestorConfig } from '../src/config.js';

const run = (argv: string[], env: Record<string, string> = {}): AttestorConfig => {
  const r = parseArgs(argv, env, '1.2.3');
  assert.equal(r.kind, 'run');
  return (r as { config: AttestorConfig }).config;
};

function configError(argv: string[], env: Record<string, string> = {}): ConfigError {
  try {
    parseArgs(argv, env, '1.2.3');
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    assert.ok(e.message.startsWith(`${e.flag}: `), e.message);
    return e;
  }
  assert.fail(`expected a ConfigError for ${argv.join(' ')}`);
}

describe('attestor config', () => {
  it('has the contract defaults', () => {
    const c = run(['--insecure']);
    assert.deepEqual(c, {
      listen: '0.0.0.0:50051',
      tpm: 'device:/dev/tpmrm0',
      tpmQueueLimit: 256,
      keyPool: 'rsa=0,ecc=0',
      maxKeysPerIdentity: 64,
      signRate: 'off',
      stateDir: '/var/lib/tpmds',
      eventLog: '/sys/kernel/security/tpm0/binary_bios_measurements',
      userspaceLog: '/run/log/systemd/tpm2-measure.log',
      insecure: true,
      healthListen: '0.0.0.0:8080',
      logLevel: 'info',
      auth: 'none',
      kubeCa: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
      kubeTokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token',
      tokenAudience: 'tpmds',
      tokenCacheSeconds: 10,
    });
    assert.deepEqual({ ...defaultConfig(), insecure: true }, c);
  });

  it('reads every flag as --flag VALUE and --flag=VALUE', () => {
    const c = run([
      '--listen', 'unix:/run/tpmds.sock',
      '--tpm=swtpm:port=2321',
      '--tpm-queue-limit', '8',
      '--key-pool', 'rsa=1,ecc=2',
      '--max-keys-per-identity', '5',
      '--sign-rate=2.5:10',
      '--state-dir', '/tmp/s',
      '--event-log=/tmp/log',
      '--userspace-log', '/tmp/ulog',
      '--tls-cert', '/c.pem',
      '--tls-key', '/k.pem',
      '--client-ca', '/ca.pem',
      '--health-listen', '[::1]:9000',
      '--log-level=debug',
    ]);
    assert.deepEqual(c, {
      listen: 'unix:/run/tpmds.sock',
      tpm: 'swtpm:port=2321',
      tpmQueueLimit: 8,
      keyPool: 'rsa=1,ecc=2',
      maxKeysPerIdentity: 5,
      signRate: '2.5:10',
      stateDir: '/tmp/s',
      eventLog: '/tmp/log',
      userspaceLog: '/tmp/ulog',
      tlsCert: '/c.pem',
      tlsKey: '/k.pem',
      clientCa: '/ca.pem',
      insecure: false,
      healthListen: '[::1]:9000',
      logLevel: 'debug',
      auth: 'none',
      kubeCa: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
      kubeTokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token',
      tokenAudience: 'tpmds',
      tokenCacheSeconds: 10,
    });
  });

  it('reads every flag from TPMDS_<NAME>, and a command-line flag wins', () => {
    assert.deepEqual(
      FLAGS.map((f) => envName(f.flag)),
      [
        'TPMDS_LISTEN', 'TPMDS_TPM', 'TPMDS_TPM_QUEUE_LIMIT', 'TPMDS_KEY_POOL', 'TPMDS_MAX_KEYS_PER_IDENTITY', 'TPMDS_SIGN_RATE', 'TPMDS_STATE_DIR', 'TPMDS_EVENT_LOG', 'TPMDS_USERSPACE_LOG', 'TPMDS_TLS_CERT', 'TPMDS_TLS_KEY', 'TPMDS_CLIENT_CA', 'TPMDS_INSECURE', 'TPMDS_HEALTH_LISTEN', 'TPMDS_LOG_LEVEL',
        'TPMDS_AUTH', 'TPMDS_ALLOW', 'TPMDS_ALLOW_NODE_KEY', 'TPMDS_KUBE_API', 'TPMDS_KUBE_CA', 'TPMDS_KUBE_TOKEN_FILE', 'TPMDS_TOKEN_AUDIENCE', 'TPMDS_NODE_NAME', 'TPMDS_TOKEN_CACHE_SECONDS',
      ],
    );
    const env = {
      TPMDS_LISTEN: '127.0.0.1:1234',
      TPMDS_TPM: 'swtpm:path=/s',
      TPMDS_STATE_DIR: '/env/state',
      TPMDS_EVENT_LOG: '/env/log',
      TPMDS_INSECURE: 'true',
      TPMDS_HEALTH_LISTEN: '127.0.0.1:8081',
      TPMDS_LOG_LEVEL: 'warn',
    };
    const c = run([], env);
    assert.equal(c.listen, '127.0.0.1:1234');
    assert.equal(c.tpm, 'swtpm:path=/s');
    assert.equal(c.stateDir, '/env/state');
    assert.equal(c.eventLog, '/env/log');
    assert.equal(c.insecure, true);
    assert.equal(c.healthListen, '127.0.0.1:8081');
    assert.equal(c.logLevel, 'warn');
    assert.equal(run(['--listen', '127.0.0.1:99'], env).listen, '127.0.0.1:99');
    const tls = run([], { TPMDS_TLS_CERT: '/c', TPMDS_TLS_KEY: '/k', TPMDS_CLIENT_CA: '/ca' });
    assert.deepEqual([tls.tlsCert, tls.tlsKey, tls.clientCa, tls.insecure], ['/c', '/k', '/ca', false]);
    assert.equal(run(['--insecure=false', '--tls-cert', '/c', '--tls-key', '/k'], { TPMDS_INSECURE: '1', TPMDS_CLIENT_CA: '/ca' }).insecure, false);
    assert.equal(run(['--insecure'], { TPMDS_LOG_LEVEL: '' }).logLevel, 'info', 'an empty variable counts as unset');
  });

  it('--help documents every flag with its env variable and default; --version prints the version', () => {
    const r = parseArgs(['--listen', 'bogus', '--help'], {}, '1.2.3');
    assert.equal(r.kind, 'help');
    const text = (r as { text: string }).text;
    assert.equal(text, helpText('1.2.3'));
    for (const f of FLAGS) {
      assert.ok(text.includes(f.flag), f.flag);
      assert.ok(text.includes(`env ${envName(f.flag)}; default: ${f.default ?? 'none'}`), f.flag);
    }
    for (const flag of ['--listen', '--tpm', '--state-dir', '--event-log', '--tls-cert', '--tls-key', '--client-ca', '--insecure', '--health-listen', '--log-level']) {
      assert.ok(text.includes(flag), flag);
    }
    assert.ok(text.includes('0.0.0.0:50051') && text.includes('device:/dev/tpmrm0') && text.includes('/var/lib/tpmds'));
    assert.deepEqual(parseArgs(['--version'], {}, '1.2.3'), { kind: 'version', text: 'tpmds-attestor 1.2.3' });
    assert.equal(parseArgs(['-h'], {}, '1').kind, 'help');
  });

  it('--auth: none needs --insecure or --client-ca; mtls needs --client-ca; k8s takes the in-cluster API server and TPMDS_NODE_NAME', () => {
    assert.equal(run(['--insecure']).auth, 'none');
    assert.equal(run(['--tls-cert', '/c', '--tls-key', '/k', '--client-ca', '/ca']).auth, 'none');
    assert.equal(run(['--tls-cert', '/c', '--tls-key', '/k', '--client-ca', '/ca', '--auth', 'mtls', '--allow', '/p']).allow, '/p');
    const inCluster = run(['--tls-cert', '/c', '--tls-key', '/k', '--auth=k8s'], {
      KUBERNETES_SERVICE_HOST: '10.96.0.1',
      KUBERNETES_SERVICE_PORT: '443',
      TPMDS_NODE_NAME: 'node-7',
    });
    assert.deepEqual([inCluster.kubeApi, inCluster.nodeName, inCluster.tokenAudience], ['https://10.96.0.1:443', 'node-7', 'tpmds']);
    const v6 = run(['--insecure', '--auth', 'k8s'], { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443', TPMDS_NODE_NAME: 'n' });
    assert.equal(v6.kubeApi, 'https://[fd00::1]:443');
    const explicit = run(['--insecure', '--auth', 'k8s', '--kube-api', 'https://127.0.0.1:6443', '--node-name', 'n', '--token-audience', 'aud', '--token-cache-seconds', '0'], {
      KUBERNETES_SERVICE_HOST: '10.96.0.1',
      KUBERNETES_SERVICE_PORT: '443',
    });
    assert.deepEqual([explicit.kubeApi, explicit.tokenAudience, explicit.tokenCacheSeconds], ['https://127.0.0.1:6443', 'aud', 0]);
  });

  it('bad values give a ConfigError naming the flag and the problem', () => {
    const cases: [string[], Record<string, string>, string, RegExp][] = [
      [['--insecure', '--listen', 'nonsense'], {}, '--listen', /HOST:PORT/],
      [['--insecure', '--listen', '1.2.3.4:70000'], {}, '--listen', /out of range/],
      [['--insecure', '--listen', 'unix:relative.sock'], {}, '--listen', /absolute path/],
      [['--insecure', '--health-listen', ':8080x'], {}, '--health-listen', /HOST:PORT/],
      [['--insecure', '--tpm', '/dev/tpm0'], {}, '--tpm', /device:PATH/],
      [['--insecure', '--log-level', 'verbose'], {}, '--log-level', /debug, info, warn or error/],
      [['--insecure', '--state-dir='], {}, '--state-dir', /empty/],
      [['--insecure', '--tpm-queue-limit', '0'], {}, '--tpm-queue-limit', /1 or more/],
      [['--insecure', '--tpm-queue-limit', 'many'], {}, '--tpm-queue-limit', /whole number/],
      [['--insecure', '--max-keys-per-identity', '-1'], {}, '--max-keys-per-identity', /needs a value|whole number/],
      [['--insecure', '--sign-rate', 'fast'], {}, '--sign-rate', /RATE or RATE:BURST/],
      [['--insecure', '--sign-rate', '10:0'], {}, '--sign-rate', /burst must be 1 or more/],
      [['--insecure', '--listen'], {}, '--listen', /needs a value/],
      [['--insecure', '--frobnicate'], {}, '--frobnicate', /unknown flag/],
      [['--insecure', 'extra'], {}, 'extra', /unexpected argument/],
      [['--insecure', '--tpm', 'a', '--tpm', 'b'], {}, '--tpm', /more than once/],
      [['--insecure=maybe'], {}, '--insecure', /true or false/],
      [[], { TPMDS_INSECURE: 'maybe' }, 'TPMDS_INSECURE', /true or false/],
      [[], {}, '--tls-cert', /no TLS configured.*--insecure/],
      [['--tls-cert', '/c'], {}, '--tls-key', /required with --tls-cert/],
      [['--tls-key', '/k'], {}, '--tls-cert', /required with --tls-key/],
      [['--insecure', '--client-ca', '/ca'], {}, '--client-ca', /needs --tls-cert/],
      [['--insecure', '--tls-cert', '/c', '--tls-key', '/k'], {}, '--insecure', /cannot be combined/],
      [['--insecure'], { TPMDS_LOG_LEVEL: 'loud' }, '--log-level', /loud/],
      // caller identity
      [['--tls-cert', '/c', '--tls-key', '/k'], {}, '--auth', /none lets every caller use every key.*--insecure.*--client-ca/],
      [['--insecure', '--auth', 'kerberos'], {}, '--auth', /none, mtls or k8s/],
      [['--insecure', '--auth', 'mtls'], {}, '--auth', /mtls needs --client-ca/],
      [['--insecure', '--allow', '/p.yaml'], {}, '--allow', /needs callers with identities/],
      [['--insecure', '--auth', 'k8s', '--node-name', 'n'], {}, '--kube-api', /not running in a pod/],
      [['--insecure', '--auth', 'k8s', '--node-name', 'n', '--kube-api', 'http://api:80'], {}, '--kube-api', /https/],
      [['--insecure', '--auth', 'k8s', '--kube-api', 'https://api:6443'], {}, '--node-name', /required with --auth k8s.*spec\.nodeName/],
      [['--insecure', '--auth', 'k8s', '--node-name', 'n', '--kube-api', 'https://a', '--token-cache-seconds', '61'], {}, '--token-cache-seconds', /0 to 60/],
      [['--insecure', '--token-cache-seconds', '1.5'], {}, '--token-cache-seconds', /whole number/],
    ];
    for (const [argv, env, flag, re] of cases) {
      const e = configError(argv, env);
      assert.equal(e.flag, flag, `${argv.join(' ')} ${JSON.stringify(env)}: ${e.message}`);
      assert.match(e.message, re);
    }
  });
});
