/**
 * The controller's certificate rate per credential (--ca-cert-burst, --ca-certs-per-minute) against real ztunnels:
 * with the defaults, a node starting with 110 pods of 110 service accounts (Kubernetes' default maxPods), and
 * restarting at once, is never refused; with limits lowered below what a node needs, the ztunnel's CA client backs
 * off on RESOURCE_EXHAUSTED and retries until every identity has its certificate.
 * Addresses: 127.0.150.* (the 110-pod node), 127.0.151.* (the rate-limited node).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { eventually } from '../helpers/eventually.js';
import { metricValue } from '../helpers/metrics.js';
import { namespace, pod } from '../helpers/manifests.js';
import { ZtunnelNode } from '../helpers/ztunnel.js';

function nodeWith(node: string, net: string, pods: number): ZtunnelNode {
  return new ZtunnelNode(node, `${net}.200`, [
    namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
    ...Array.from({ length: pods }, (_, i) => pod('apps', `app-${i}`, { node, ip: `${net}.${i + 1}`, sa: `sa-${i}` })),
  ]);
}

describe('certificate rate per node token against real ztunnels', () => {
  const big = nodeWith('node-big', '127.0.140', 110);
  const small = nodeWith('node-small', '127.0.141', 12);
  after(async () => {
    await big.stop();
    await small.stop();
  });

  it('a ztunnel starting with 110 identities, and restarting at once, gets every certificate without one refusal', async (t) => {
    const t0 = Date.now();
    await big.start(); // returns once /healthz/ready answers 200, which needs every local identity's certificate
    const firstStartMs = Date.now() - t0;
    await big.proc.stop(15_000);
    const t1 = Date.now();
    await big.startZtunnel();
    const restartMs = Date.now() - t1;
    const metrics = (await big.controller.get('/metrics')).text;
    const issued = metricValue(metrics, 'citadel_server_success_cert_issuance_count');
    const refused = ['rate_limited', 'calls_per_credential'].map((reason) => metricValue(metrics, 'strait_ca_refused_total', { reason }));
    t.diagnostic(`110 identities: ready in ${firstStartMs} ms, again in ${restartMs} ms after a restart; ${issued} certificates issued, refused ${refused.join('/')}`);
    assert.equal(issued, 220, 'one certificate per identity per start');
    assert.deepEqual(refused, [0, 0], 'no request refused for rate or open calls');
    assert.equal(big.proc.lines.filter((l) => /certificate (fetch|renewal) failed/.test(String(l.msg))).length, 0);
  });

  it('a ztunnel whose node token is over its certificate rate backs off on RESOURCE_EXHAUSTED and gets every certificate', async (t) => {
    small.controllerArgs = ['--ca-cert-burst', '4', '--ca-certs-per-minute', '120'];
    const t0 = Date.now();
    await small.start();
    const readyMs = Date.now() - t0;
    const metrics = (await small.controller.get('/metrics')).text;
    const issued = metricValue(metrics, 'citadel_server_success_cert_issuance_count');
    const refused = metricValue(metrics, 'strait_ca_refused_total', { reason: 'rate_limited' });
    const failures = small.proc.lines.filter((l) => l.msg === 'workload certificate fetch failed; will retry');
    t.diagnostic(`12 identities under a burst of 4 and 2/s: ready in ${readyMs} ms; ${issued} issued, ${refused} refused; retry delays ${failures.map((l) => l.retryInMs).join(', ')} ms`);
    assert.equal(issued, 12, 'every identity got its certificate');
    assert.ok(refused > 0, 'the controller refused some requests');
    assert.equal(failures.length, refused, 'each refusal is one failed fetch the ztunnel retries');
    assert.ok(failures.every((l) => /RESOURCE_EXHAUSTED: node\/node-small has obtained its 4 certificates at once and 120 per minute after that; retry in \d+ ms/.test(String(l.err))), String(failures[0]?.err));
    // Backoff, not a tight loop: 8 identities over the burst cost at most a few attempts each.
    assert.ok(refused <= 3 * 8, `${refused} refused attempts for 8 identities over the burst`);
    const attempts = new Map<string, number[]>();
    for (const l of failures) attempts.set(String(l.identity), [...(attempts.get(String(l.identity)) ?? []), Number(l.retryInMs)]);
    for (const [id, delays] of attempts) {
      for (let i = 1; i < delays.length; i++) assert.ok(delays[i]! > delays[i - 1]!, `${id} retried after ${delays.join(', ')} ms: each delay longer than the one before`);
    }
    await eventually(async () => (await fetch(`http://${small.address}:15021/healthz/ready`)).ok, 5000, 'ready');
  });
});
