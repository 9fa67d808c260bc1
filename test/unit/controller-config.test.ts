import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, DEFAULT_CERT_TTL_MS } from '../../src/controller/config.js';

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
});
