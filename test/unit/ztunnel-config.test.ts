import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority } from '../../src/identity/index.js';
import { parseConfig, PORT_HBONE } from '../../src/ztunnel/config.js';

describe('ztunnel configuration', () => {
  let dir: string;
  let root: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strait-zt-config-'));
    const ca = await CertificateAuthority.loadOrCreate({ dataDir: dir });
    root = join(dir, 'root-cert.pem');
    await writeFile(root, ca.rootCertPem);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('defaults to atomic old-generation collection; flags win over STRAIT_GC', () => {
    const base = { node: 'node-a', token: 't', rootCert: root };
    const c = parseConfig({}, base);
    assert.equal(c.gc, 'atomic');
    assert.equal(c.ports.hbone, PORT_HBONE);
    assert.equal(parseConfig({ STRAIT_GC: 'incremental' }, base).gc, 'incremental');
    assert.equal(parseConfig({ STRAIT_GC: 'incremental' }, { ...base, gc: 'atomic' }).gc, 'atomic');
  });

  it('HBONE idle timeouts: 5m for the outbound pool (Istio\'s), 10m inbound, 0 = never inbound; out-of-range values named', () => {
    const base = { node: 'node-a', token: 't', rootCert: root };
    const c = parseConfig({}, base);
    assert.equal(c.poolIdleMs, 300_000);
    assert.equal(c.hboneIdleMs, 600_000);
    assert.equal(c.hboneMaxStreams, 100);
    assert.equal(parseConfig({ STRAIT_HBONE_IDLE: '0s' }, base).hboneIdleMs, 0);
    assert.equal(parseConfig({ STRAIT_HBONE_IDLE: '1m' }, { ...base, hboneIdle: '30s', hboneMaxStreams: '250' }).hboneIdleMs, 30_000);
    assert.equal(parseConfig({}, { ...base, hboneMaxStreams: '250' }).hboneMaxStreams, 250);
    assert.throws(() => parseConfig({}, { ...base, hboneIdle: '600h' }), { code: 'STRAIT_ERR_CONFIG', message: /--hbone-idle: at most 24d/ });
    assert.throws(() => parseConfig({}, { ...base, poolIdle: '0s' }), { message: /--pool-idle: from 1ms to 24d/ });
    assert.throws(() => parseConfig({}, { ...base, hboneMaxStreams: '0' }), { message: /--hbone-max-streams: "0" must be a whole number from 1 to 10000/ });
  });

  it('rejects an unknown --gc mode, naming the ones there are', () => {
    assert.throws(() => parseConfig({}, { node: 'node-a', token: 't', rootCert: root, gc: 'generational' }), {
      code: 'STRAIT_ERR_CONFIG',
      message: '--gc: "generational" is not one of atomic, incremental',
    });
    assert.throws(() => parseConfig({ STRAIT_GC: 'off' }, { node: 'node-a', token: 't', rootCert: root }), { message: /--gc: "off" is not one of/ });
  });

  it('defaults: backlog as the kernel allows, 3 endpoint attempts, ejection 5s doubling up to 2m; flags win over the environment', () => {
    const base = { node: 'node-a', token: 't', rootCert: root };
    const c = parseConfig({}, base);
    assert.equal(c.listenBacklog, undefined, 'undefined = net.core.somaxconn');
    assert.equal(c.endpointAttempts, 3);
    assert.equal(c.ejectionBaseMs, 5_000);
    assert.equal(c.ejectionMaxMs, 120_000);
    const e = parseConfig({ STRAIT_LISTEN_BACKLOG: '2048', STRAIT_ENDPOINT_ATTEMPTS: '1', STRAIT_EJECTION_BASE: '1s', STRAIT_EJECTION_MAX: '10s' }, base);
    assert.deepEqual([e.listenBacklog, e.endpointAttempts, e.ejectionBaseMs, e.ejectionMaxMs], [2048, 1, 1_000, 10_000]);
    assert.equal(parseConfig({ STRAIT_LISTEN_BACKLOG: '2048' }, { ...base, listenBacklog: '64' }).listenBacklog, 64);
  });

  it('rejects a backlog, attempt count or ejection period out of range, saying which', () => {
    const base = { node: 'node-a', token: 't', rootCert: root };
    assert.throws(() => parseConfig({}, { ...base, listenBacklog: '0' }), { code: 'STRAIT_ERR_CONFIG', message: '--listen-backlog: "0" must be a whole number from 1 to 65535' });
    assert.throws(() => parseConfig({}, { ...base, endpointAttempts: '11' }), { message: '--endpoint-attempts: "11" must be a whole number from 1 to 10' });
    assert.throws(() => parseConfig({}, { ...base, ejectionBase: '0' }), { message: /--ejection-base: must be longer than 0/ });
    assert.throws(() => parseConfig({}, { ...base, ejectionBase: '1m', ejectionMax: '10s' }), { message: '--ejection-max (10000 ms) must be at least --ejection-base (60000 ms)' });
  });

  it('--capture: mark 0x539, listeners on 0.0.0.0 and admin on 127.0.0.1 unless given; capture-only flags refused without it', () => {
    const base = { node: 'node-a', token: 't', rootCert: root };
    const plain = parseConfig({}, base);
    assert.equal(plain.capture, undefined);
    assert.equal(plain.captureMark, undefined);
    assert.equal(plain.listenAddress, '127.0.0.1');
    assert.equal(plain.adminAddress, '127.0.0.1');
    const c = parseConfig({}, { ...base, capture: true });
    assert.deepEqual(c.capture, { resyncMs: 30_000, teardown: false });
    assert.equal(c.captureMark, 0x539);
    assert.equal(c.listenAddress, '0.0.0.0');
    assert.equal(c.adminAddress, '127.0.0.1');
    assert.deepEqual(parseConfig({ STRAIT_CAPTURE: 'true', STRAIT_IPTABLES: 'iptables-legacy' }, { ...base, captureMark: '0x10', captureResync: '0' }).capture, { iptables: 'iptables-legacy', resyncMs: 0, teardown: false });
    assert.equal(parseConfig({}, { ...base, capture: true, captureMark: '0x10' }).captureMark, 0x10);
    assert.throws(() => parseConfig({}, { ...base, capture: true, listenAddress: '198.19.254.1' }), /--capture needs the ztunnel to listen on every address \(0\.0\.0\.0.*not 198\.19\.254\.1/);
    assert.equal(parseConfig({}, { ...base, capture: true, listenAddress: '::' }).listenAddress, '::');
    assert.equal(c.capture?.teardown, false, 'rules stay at stop unless asked');
    assert.equal(parseConfig({}, { ...base, capture: true, captureTeardown: true }).capture?.teardown, true);
    assert.equal(parseConfig({ STRAIT_CAPTURE: 'true', STRAIT_CAPTURE_TEARDOWN: 'true' }, base).capture?.teardown, true);
    assert.throws(() => parseConfig({}, { ...base, captureTeardown: true }), /--capture-teardown only applies with --capture/);
    assert.throws(() => parseConfig({ STRAIT_CAPTURE: 'true', STRAIT_CAPTURE_TEARDOWN: '1' }, base), /STRAIT_CAPTURE_TEARDOWN: "1" must be true or false/);
    assert.equal(parseConfig({}, { ...base, capture: true, adminAddress: '198.19.254.1' }).adminAddress, '198.19.254.1');
    assert.throws(() => parseConfig({}, { ...base, capture: true, localPodListeners: true }), /--capture and --local-pod-listeners exclude each other/);
    assert.throws(() => parseConfig({}, { ...base, iptables: 'iptables-nft' }), /--iptables only applies with --capture/);
    assert.throws(() => parseConfig({}, { ...base, captureScripts: '/tmp' }), /--capture-scripts only applies with --capture/);
    assert.throws(() => parseConfig({}, { ...base, captureResync: '5s' }), /--capture-resync only applies with --capture/);
    assert.throws(() => parseConfig({ STRAIT_CAPTURE: 'yes' }, base), /STRAIT_CAPTURE: "yes" must be true or false/);
    assert.throws(() => parseConfig({}, { ...base, capture: true, iptables: 'iptables; rm -rf /' }), /is not a program name or path/);
    assert.throws(() => parseConfig({}, { ...base, adminAddress: 'localhost' }), /--admin-address: "localhost" is not an IP address/);
  });

  it('--workers: 2 by default, STRAIT_WORKERS or the flag (which wins), auto, and a bad value named', () => {
    const base = { node: 'node-a', token: 't', rootCert: root };
    assert.equal(parseConfig({}, base).workers, 2);
    assert.equal(parseConfig({ STRAIT_WORKERS: '1' }, base).workers, 1);
    assert.equal(parseConfig({ STRAIT_WORKERS: '1' }, { ...base, workers: '3' }).workers, 3);
    assert.ok(parseConfig({ STRAIT_WORKERS: 'auto' }, base).workers >= 1);
    assert.throws(() => parseConfig({ STRAIT_WORKERS: 'many' }, base), /--workers: "many" must be auto or a whole number/);
  });
});
