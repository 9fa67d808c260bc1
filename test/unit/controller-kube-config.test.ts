import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/controller/config.js';
import { parseKubeControllerConfig } from '../../src/controller/kube/kube-config.js';
import { servingNamesFor } from '../../src/controller/grpc-server.js';

const defaults = { hostname: 'host-1', version: '1.2.3' };

describe('controller settings for Kubernetes', () => {
  it('defaults to the contract\'s names and timings', () => {
    assert.deepEqual(parseKubeControllerConfig({}, {}, defaults), {
      systemNamespace: 'strait-system', podName: 'host-1', leaderElect: true, leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000,
      caSecret: 'strait-ca', tokenAudience: 'strait-controller', waypointImage: 'ghcr.io/strait-mesh/strait:1.2.3',
    });
  });

  it('takes the downward API\'s POD_NAME and POD_NAMESPACE, the STRAIT_* variables, and flags over both', () => {
    const env = { POD_NAME: 'ctl-abc', POD_NAMESPACE: 'mesh', STRAIT_LEADER_ELECT: 'false', STRAIT_LEASE_DURATION: '30s', STRAIT_CA_SECRET: 'root', STRAIT_TOKEN_AUDIENCE: 'aud', STRAIT_IMAGE: 'reg/strait:dev' };
    const c = parseKubeControllerConfig(env, {}, defaults);
    assert.deepEqual([c.podName, c.systemNamespace, c.leaderElect, c.leaseDurationMs, c.caSecret, c.tokenAudience, c.waypointImage], ['ctl-abc', 'mesh', false, 30_000, 'root', 'aud', 'reg/strait:dev']);
    const f = parseKubeControllerConfig({ ...env, STRAIT_SYSTEM_NAMESPACE: 'sys' }, { podName: 'flag', leaderElect: 'true', systemNamespace: 'flagged' }, defaults);
    assert.deepEqual([f.podName, f.leaderElect, f.systemNamespace], ['flag', true, 'flagged']);
    assert.equal(parseKubeControllerConfig({ POD_NAMESPACE: 'a', STRAIT_SYSTEM_NAMESPACE: 'b' }, {}, defaults).systemNamespace, 'b');
  });

  it('refuses timings that would let two replicas write at once, naming the rule', () => {
    assert.throws(() => parseKubeControllerConfig({}, { leaseDuration: '10s', renewDeadline: '10s' }, defaults), /--lease-duration \(10000ms\) must be longer than --renew-deadline/);
    assert.throws(() => parseKubeControllerConfig({}, { renewDeadline: '2s', retryPeriod: '2s' }, defaults), /--renew-deadline \(2000ms\) must be longer than --retry-period/);
    assert.throws(() => parseKubeControllerConfig({}, { leaseDuration: 'soon' }, defaults), /--lease-duration \/ STRAIT_LEASE_DURATION: "soon" is not a duration/);
    assert.throws(() => parseKubeControllerConfig({}, { leaderElect: 'yes' }, defaults), /must be true or false/);
    assert.throws(() => parseKubeControllerConfig({}, { systemNamespace: 'Bad_NS' }, defaults), /not a namespace name/);
  });

  it('is part of the controller config', () => {
    const c = parseConfig({ STRAIT_CONFIG_DIR: '/c', STRAIT_DATA_DIR: '/d' }, { kubeControl: { podName: 'p' } }, defaults);
    assert.equal(c.kubeControl.podName, 'p');
  });

  it('serves the controller\'s certificate under its Service names in the system namespace', () => {
    const names = servingNamesFor('strait-system');
    assert.ok(names.includes('strait-controller.strait-system.svc'));
    assert.ok(names.includes('strait-controller.strait-system.svc.cluster.local'));
    assert.ok(names.includes('localhost'));
  });
});
