import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, formatLimit, DEFAULT_CERT_TTL_MS } from '../../src/controller/config.js';
import { DEFAULT_DOOR_LIMITS } from '../../src/controller/door-limits.js';

describe('controller config', () => {
  it('takes flags over environment and fills defaults', () => {
    const c = parseConfig({ STRAIT_CONFIG_DIR: '/env/cfg', STRAIT_DATA_DIR: '/env/data', STRAIT_CERT_TTL: '1h' }, { configDir: '/flag/cfg' });
    assert.equal(c.configDir, '/flag/cfg');
    assert.equal(c.dataDir, '/env/data');
    assert.equal(c.certTtlMs, 3_600_000);
    assert.deepEqual(c.xdsAddress, { host: '127.0.0.1', port: 15012 });
    assert.equal(c.pushDebounceMs, 100);
    assert.equal(c.trustDomain, 'cluster.local');
    assert.equal(parseConfig({}, { configDir: 'a', dataDir: 'b' }).certTtlMs, DEFAULT_CERT_TTL_MS);
  });

  it('rejects bad settings with the fix in the message', () => {
    assert.throws(() => parseConfig({}, {}), { code: 'STRAIT_ERR_CONFIG', message: /pass --config-dir DIR or set STRAIT_CONFIG_DIR/ });
    assert.throws(() => parseConfig({}, { configDir: 'a', dataDir: 'b', certTtl: 'soon' }), { message: '--cert-ttl: "soon" is not a duration (use forms like 100ms, 30s, 12h)' });
    assert.throws(() => parseConfig({}, { configDir: 'a', dataDir: 'b', certTtl: '1s' }), { message: /shorter than the minimum/ });
    assert.throws(() => parseConfig({}, { configDir: 'a', dataDir: 'b', xdsAddress: 'localhost' }), { message: '--xds-address: "localhost" is not host:port (for IPv6 use [addr]:port)' });
    assert.throws(() => parseConfig({}, { configDir: 'a', dataDir: 'b', caCert: 'x.pem' }), { message: /--ca-cert and --ca-key go together/ });
    assert.throws(() => parseConfig({}, { configDir: 'a', dataDir: 'b', trustDomain: 'Bad Domain' }), { message: /lowercase letters/ });
  });

  it('reads listener and CA limits from flags over their environment variables, defaults otherwise', () => {
    const c = parseConfig(
      { STRAIT_CA_CERT_BURST: '9', STRAIT_CA_CERTS_PER_MINUTE: '60', STRAIT_XDS_MAX_CONNECTION_IDLE: '5s', STRAIT_XDS_MAX_INITIAL_SYNCS_PER_CREDENTIAL: '4' },
      { configDir: 'a', dataDir: 'b', doorLimits: { caCertBurst: '12', caMaxCallsPerCredential: '3' } },
    );
    assert.deepEqual(c.doorLimits, { ...DEFAULT_DOOR_LIMITS, caCertBurst: 12, caCertsPerMinute: 60, caMaxCallsPerCredential: 3, connectionIdleMs: 5000 });
    assert.equal(c.xdsLimits.maxInitialSyncsPerCredential, 4);
    assert.deepEqual(parseConfig({}, { configDir: 'a', dataDir: 'b' }).doorLimits, DEFAULT_DOOR_LIMITS);
    assert.throws(() => parseConfig({}, { configDir: 'a', dataDir: 'b', doorLimits: { caCertBurst: '0' } }), { message: '--ca-cert-burst / STRAIT_CA_CERT_BURST: "0" is not a whole number of at least 1' });
    assert.throws(() => parseConfig({ STRAIT_XDS_MAX_CONNECTION_IDLE: 'soon' }, { configDir: 'a', dataDir: 'b' }), { message: /--xds-max-connection-idle \/ STRAIT_XDS_MAX_CONNECTION_IDLE: "soon" is not a duration like 500ms or 30s/ });
  });

  it('prints limit defaults in the units their flags take', () => {
    assert.equal(formatLimit('bytes', 4 * 1024 * 1024), '4MiB');
    assert.equal(formatLimit('bytes', 512 * 1024), '512KiB');
    assert.equal(formatLimit('bytes', 1024), '1024');
    assert.equal(formatLimit('duration', 30_000), '30s');
    assert.equal(formatLimit('duration', 1500), '1500ms');
    assert.equal(formatLimit('count', 64), '64');
  });
  it('chooses the source: file by default, kubernetes with its kubeconfig flags and the variables kubectl reads', () => {
    assert.equal(parseConfig({}, { configDir: 'a', dataDir: 'b' }).source, 'file');
    const env = { STRAIT_SOURCE: 'kubernetes', STRAIT_DATA_DIR: '/d', KUBECONFIG: '/k1:/k2', HOME: '/home/u', STRAIT_KUBE_CONTEXT: 'prod', STRAIT_CONFIG_DIR: '/ignored' };
    const k = parseConfig(env, { kubeconfig: '/etc/kc' });
    assert.equal(k.source, 'kubernetes');
    assert.equal(k.configDir, '');
    assert.deepEqual(k.kube, { kubeconfig: '/etc/kc', context: 'prod', env: { KUBECONFIG: '/k1:/k2', HOME: '/home/u', KUBERNETES_SERVICE_HOST: undefined, KUBERNETES_SERVICE_PORT: undefined } });
    assert.equal(parseConfig(env, { kubeContext: 'dev' }).kube?.context, 'dev');
    assert.throws(() => parseConfig({}, { source: 'etcd', dataDir: 'b' }), { code: 'STRAIT_ERR_CONFIG', message: /"etcd" is not one of file, kubernetes/ });
    assert.throws(() => parseConfig({}, { source: 'kubernetes', configDir: 'a', dataDir: 'b' }), { message: /--config-dir is for --source file/ });
    assert.throws(() => parseConfig({}, { configDir: 'a', dataDir: 'b', kubeconfig: '/k' }), { message: /--kubeconfig and --kube-context are for --source kubernetes/ });
  });
});
