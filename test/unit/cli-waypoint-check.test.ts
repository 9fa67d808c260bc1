import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { describeConditions, isProgrammed, mergeWaypoint, waypointGateway, type GatewayObject } from '../../src/cli/kube/waypoint-ops.js';
import { checkReport, formatCheckTable } from '../../src/cli/kube/check-view.js';
import type { StoredKubeObject } from '../../src/common/kube/index.js';

const stored = (gw: GatewayObject, generation = 2): StoredKubeObject<GatewayObject> =>
  ({ ...gw, apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { ...gw.metadata, name: gw.metadata!.name!, resourceVersion: '7', generation } }) as StoredKubeObject<GatewayObject>;

describe('waypoint Gateways', () => {
  it('makes the Gateway istioctl makes: class istio-waypoint, the HBONE 15008 listener, the waypoint-for label', () => {
    assert.deepEqual(waypointGateway('shop', 'waypoint', 'service'), {
      apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway',
      metadata: { name: 'waypoint', namespace: 'shop', labels: { 'istio.io/waypoint-for': 'service' } },
      spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
    });
  });

  it('updates an existing waypoint in place: the label, other labels and spec fields kept, an HBONE listener added only when missing', () => {
    const base = stored({ metadata: { name: 'w', namespace: 'shop', labels: { team: 'a', 'istio.io/waypoint-for': 'service' } }, spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }], addresses: [{ value: '10.0.0.1' }] } });
    assert.deepEqual(mergeWaypoint(base, 'service'), base, 'nothing to change');
    const m = mergeWaypoint(base, 'all');
    assert.deepEqual(m.metadata.labels, { team: 'a', 'istio.io/waypoint-for': 'all' });
    assert.deepEqual(m.spec!.addresses, [{ value: '10.0.0.1' }]);
    const noHbone = stored({ metadata: { name: 'w', namespace: 'shop' }, spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 8080, protocol: 'HTTP' }] } });
    assert.deepEqual(mergeWaypoint(noHbone, 'service').spec!.listeners, [{ name: 'mesh-hbone', port: 15008, protocol: 'HBONE' }, { name: 'mesh', port: 8080, protocol: 'HTTP' }]);
  });

  it('is Programmed only by a True condition about the current generation', () => {
    const gw = (c: object[]) => stored({ metadata: { name: 'w' }, status: { conditions: c as never } }, 3);
    assert.equal(isProgrammed(gw([])), false);
    assert.equal(isProgrammed(gw([{ type: 'Programmed', status: 'False' }])), false);
    assert.equal(isProgrammed(gw([{ type: 'Programmed', status: 'True', observedGeneration: 2 }])), false, 'about the previous spec');
    assert.equal(isProgrammed(gw([{ type: 'Programmed', status: 'True', observedGeneration: 3 }])), true);
    assert.equal(isProgrammed(gw([{ type: 'Programmed', status: 'True' }])), true, 'no observedGeneration: taken as current');
  });

  it('describes its conditions, or that no controller has set any', () => {
    assert.match(describeConditions({}), /no status yet: no controller has picked it up/);
    assert.equal(describeConditions({ status: { conditions: [{ type: 'Accepted', status: 'True' }, { type: 'Programmed', status: 'False', reason: 'Pending', message: 'no address' }] } }), 'Accepted=True, Programmed=False (Pending: no address)');
  });
});

describe('strait check output', () => {
  it('prints a row per finding, the fix of each that did not pass, and FAILED when one failed', () => {
    const r = checkReport([
      { section: 'node', check: 'node-version', result: 'pass', detail: 'Node.js 20.1.0' },
      { section: 'node', check: 'iptables', result: 'skip', detail: 'needs root', fix: 'run as root' },
      { section: 'kubernetes', check: 'crds', result: 'fail', detail: 'missing: x', fix: 'install x' },
      { section: 'kubernetes', check: 'other', result: 'warn', detail: 'hm', fix: 'look' },
    ]);
    assert.equal(r.ok, false);
    assert.equal(formatCheckTable(r), [
      'SECTION      CHECK          RESULT   DETAIL',
      'node         node-version   PASS     Node.js 20.1.0',
      'node         iptables       SKIP     needs root',
      'kubernetes   crds           FAIL     missing: x',
      'kubernetes   other          WARN     hm',
      '',
      'To fix:',
      '  iptables (skip): run as root',
      '  crds (fail): install x',
      '  other (warn): look',
      '',
      'FAILED: 1 passed, 1 failed, 1 warning(s), 1 skipped',
      '',
    ].join('\n'));
    assert.equal(checkReport([{ section: 'node', check: 'a', result: 'warn', detail: '' }]).ok, true, 'a warning does not fail');
  });
});
