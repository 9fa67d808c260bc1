import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { WorkloadResource } from '../../src/common/xds/resources.js';
import { ProxyState } from '../../src/dataplane/state/proxy-state.js';
import { nextRetryAt, planPodRules, wantedPods, type AppliedPod } from '../../src/ztunnel/capture/pod-rules.js';
import { retryDelayMs, RETRY_BASE_MS, RETRY_MAX_MS } from '../../src/ztunnel/capture/pod-capture.js';

function workload(name: string, node: string, addresses: string[], protocol: 'HBONE' | 'TCP' = 'HBONE'): WorkloadResource {
  return {
    uid: `apps/${name}`, name, namespace: 'apps', node, serviceAccount: 'default', identity: `spiffe://cluster.local/ns/apps/sa/default`,
    addresses, labels: {}, protocol, healthy: true, canonicalName: name, canonicalRevision: 'latest', namedPorts: {}, services: [],
  };
}

function stateOf(...ws: WorkloadResource[]): ProxyState {
  const s = new ProxyState();
  s.applyWorkloads(ws, []);
  return s;
}

const present = (address: string, pod: string): AppliedPod => ({ address, pod, state: 'present', since: 0, attempts: 0 });

describe('capture planning (which pod addresses get rules)', () => {
  it('wants every address of this node\'s enrolled pods, and none of other nodes\' or of pods outside the mesh', () => {
    const s = stateOf(
      workload('a', 'node-a', ['198.18.10.1']), workload('b', 'node-a', ['198.18.10.2', 'fd00::2']),
      workload('c', 'node-b', ['198.18.10.3']), workload('d', 'node-a', ['198.18.10.4'], 'TCP'),
    );
    assert.deepEqual([...wantedPods(s, 'node-a').values()], [
      { address: '198.18.10.1', pod: 'apps/a' }, { address: '198.18.10.2', pod: 'apps/b' }, { address: 'fd00::2', pod: 'apps/b' },
    ]);
  });

  it('adds what is missing, removes what is no longer enrolled (removals first), leaves present and in-flight rules alone', () => {
    const s = stateOf(workload('a', 'node-a', ['198.18.10.1']), workload('b', 'node-a', ['198.18.10.2']), workload('e', 'node-a', ['198.18.10.5']));
    const applied = new Map<string, AppliedPod>([
      ['198.18.10.1', present('198.18.10.1', 'apps/a')],
      ['198.18.10.9', present('198.18.10.9', '(unknown)')],
      ['198.18.10.5', { address: '198.18.10.5', pod: 'apps/e', state: 'adding', since: 0, attempts: 0 }],
    ]);
    assert.deepEqual(planPodRules(wantedPods(s, 'node-a'), applied, 1000), [
      { operation: 'remove', address: '198.18.10.9', pod: '(unknown)' },
      { operation: 'add', address: '198.18.10.2', pod: 'apps/b' },
    ]);
  });

  it('waits for a failed step\'s retry time, but removes at once a pod whose add failed and which then left', () => {
    const wanted = wantedPods(stateOf(workload('a', 'node-a', ['198.18.10.1'])), 'node-a');
    const failedAdd: AppliedPod = { address: '198.18.10.1', pod: 'apps/a', state: 'failed', since: 0, attempts: 2, lastError: 'x', retry: { operation: 'add', at: 5000 } };
    assert.deepEqual(planPodRules(wanted, new Map([['198.18.10.1', failedAdd]]), 4999), []);
    assert.deepEqual(planPodRules(wanted, new Map([['198.18.10.1', failedAdd]]), 5000), [{ operation: 'add', address: '198.18.10.1', pod: 'apps/a' }]);
    assert.deepEqual(planPodRules(new Map(), new Map([['198.18.10.1', failedAdd]]), 0), [{ operation: 'remove', address: '198.18.10.1', pod: 'apps/a' }]);
    const failedRemove: AppliedPod = { ...failedAdd, retry: { operation: 'remove', at: 5000 } };
    assert.deepEqual(planPodRules(new Map(), new Map([['198.18.10.1', failedRemove]]), 10), []);
    assert.deepEqual(planPodRules(wanted, new Map([['198.18.10.1', failedRemove]]), 10), [{ operation: 'add', address: '198.18.10.1', pod: 'apps/a' }]);
    assert.equal(nextRetryAt(new Map([['x', failedAdd], ['y', { ...failedRemove, retry: { operation: 'remove', at: 3000 } }]])), 3000);
    assert.equal(nextRetryAt(new Map([['x', present('x', 'p')]])), undefined);
  });

  it('never plans scripts for IPv6 addresses (the scripts make IPv4 chains): they are reported as unsupported instead', () => {
    const wanted = wantedPods(stateOf(workload('b', 'node-a', ['fd00::2'])), 'node-a');
    assert.deepEqual(planPodRules(wanted, new Map(), 0), []);
  });

  it('retries after 0.5 s, doubling to at most 30 s', () => {
    assert.equal(retryDelayMs(1), RETRY_BASE_MS);
    assert.equal(retryDelayMs(2), 2 * RETRY_BASE_MS);
    assert.equal(retryDelayMs(50), RETRY_MAX_MS);
  });
});
