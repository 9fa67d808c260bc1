// Planning a lab (`strait lab up`) from manifests: the lab's reading of addresses (127.a.b.c → 198.18.b.c), the
// ranges it keeps for itself, nodes on the fabric, pods, waypoints, Service endpoints and their DNAT rules, and the
// errors and warnings that name the object and the fix.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PID_HEADER } from '../../src/common/admin.js';
import { parseManifests } from '../../src/common/model/parse.js';
import { labAddress, labAddressText } from '../../src/local/address-base.js';
import { waypointPodsManifest } from '../../src/local/components.js';
import { ANNOTATION_LAB_COMMAND, MAX_LAB_NODES, planLab, type LabPlanOptions } from '../../src/local/lab/plan.js';
import { serviceTablesSetup, serviceTablesUpdate } from '../../src/local/lab/services.js';
import { execTarget, type LabState } from '../../src/local/lab/state.js';
import { parseCurlAnswer } from '../../src/local/readiness.js';
import { docs, namespace, objectsOf, pod, service, waypoint } from '../helpers/manifests.js';
import { appPod, node } from '../helpers/mesh.js';

/** As `strait lab up` reads a directory: the text translated, then parsed. */
const lab = (objs: unknown[], opts?: LabPlanOptions) => planLab(objectsOf(labAddressText(docs(...objs))), opts);

function withCommand(p: unknown, command: string): unknown {
  const o = structuredClone(p) as { metadata: { annotations?: Record<string, string> } };
  o.metadata.annotations = { ...o.metadata.annotations, [ANNOTATION_LAB_COMMAND]: command };
  return o;
}

describe('the lab\'s reading of manifest addresses', () => {
  it('reads 127.a.b.c as 198.18.b.c, whatever a is, keeping comments and layout', () => {
    const text = ['# pods on 127.0.10.0/24', 'status:', '  podIP: 127.0.10.1   # client', "  hostIP: '127.5.100.2'", 'spec: {clusterIP: 127.0.20.11}'].join('\n');
    assert.equal(labAddressText(text), ['# pods on 198.18.10.0/24', 'status:', '  podIP: 198.18.10.1   # client', "  hostIP: '198.18.100.2'", 'spec: {clusterIP: 198.18.20.11}'].join('\n'));
    assert.equal(labAddress('127.9.10.3'), '198.18.10.3');
  });

  it('leaves 127.0.0.1 (the namespace\'s own loopback), CIDRs wider than /16, lab addresses and anything else as written', () => {
    assert.equal(labAddressText('curl http://127.0.0.1:15000/ --bind 127.0.0.1/32'), 'curl http://127.0.0.1:15000/ --bind 127.0.0.1/32');
    assert.equal(labAddressText('ipBlocks: ["127.0.10.0/24", "127.0.0.0/8", "198.18.3.4", "10.0.0.1"]'), 'ipBlocks: ["198.18.10.0/24", "127.0.0.0/8", "198.18.3.4", "10.0.0.1"]');
    assert.equal(labAddress('127.0.0.1'), '127.0.0.1');
    assert.equal(labAddress('10.1.2.3'), '10.1.2.3');
  });
});

describe('planLab: nodes', () => {
  it('puts nodes on the fabric in name order, each with its pod gateway, whatever InternalIP the manifests give (and says so)', () => {
    const p = lab([node('node-b', '127.0.100.2'), appPod('apps', 'x', 'node-a', '127.0.10.1', 'x'), node('node-c', '198.18.100.3')]);
    assert.deepEqual(p.nodes, [
      { name: 'node-a', index: 0, address: '198.19.254.1', gateway: '198.19.253.1' },
      { name: 'node-b', index: 1, address: '198.19.254.2', gateway: '198.19.253.2' },
      { name: 'node-c', index: 2, address: '198.19.254.3', gateway: '198.19.253.3' },
    ]);
    assert.equal(p.problems.length, 1);
    assert.match(p.problems[0]!, /InternalIP of Node node-b \(198\.18\.100\.2\), Node node-c \(198\.18\.100\.3\) is not used: node-b is 198\.19\.254\.2, node-c is 198\.19\.254\.3/);
  });

  it('keeps running nodes where they are when a node that sorts first is added (live edits)', () => {
    const p = lab([node('b', '127.0.100.2'), node('c', '127.0.100.3'), node('a', '127.0.100.1')], { previousNodes: new Map([['b', 0], ['c', 1]]) });
    assert.deepEqual(p.nodes.map((n) => [n.name, n.address]), [['a', '198.19.254.3'], ['b', '198.19.254.1'], ['c', '198.19.254.2']]);
  });

  it(`refuses more than ${MAX_LAB_NODES} nodes (.250 of the fabric is the controller's), naming the fix`, () => {
    const many = Array.from({ length: MAX_LAB_NODES + 1 }, (_, i) => node(`n${String(i).padStart(3, '0')}`, '127.0.100.1'));
    const p = lab(many);
    assert.equal(p.nodes.length, MAX_LAB_NODES);
    assert.equal(p.nodes.at(-1)!.address, '198.19.254.249');
    assert.equal(p.errors.length, 1);
    assert.match(p.errors[0]!, /^Node n249: the lab has room for 249 nodes .*the manifests name 250: remove nodes/);
  });
});

describe('planLab: pods', () => {
  it('gives a pod with a node and an address its namespace; a lab-command runs instead of the demo app', () => {
    const p = lab([appPod('apps', 'web', 'node-a', '127.0.10.2', 'web'), withCommand(appPod('apps', 'cli', 'node-b', '127.0.10.1', 'cli'), 'sleep infinity')]);
    const web = p.pods.find((x) => x.key === 'apps/web')!;
    assert.equal(web.address, '198.18.10.2');
    assert.equal(web.node, 'node-a');
    assert.equal(web.command, undefined);
    assert.deepEqual(web.apps.map((a) => [a.key, a.address, a.port]), [['apps/web/app:8080', '198.18.10.2', 8080]]);
    const cli = p.pods.find((x) => x.key === 'apps/cli')!;
    assert.equal(cli.command, 'sleep infinity');
    assert.deepEqual(cli.apps, []);
    assert.deepEqual(p.errors, []);
  });

  it('runs nothing in a pod that is neither a demo app nor has a lab-command', () => {
    const p = lab([pod('apps', 'plain', { node: 'node-a', ip: '127.0.10.5' })]);
    assert.deepEqual(p.pods.map((x) => [x.key, x.command, x.apps.length]), [['apps/plain', undefined, 0]]);
  });

  it('warns about pods it gives no namespace (no spec.nodeName, no status.podIP), and about their lab-command', () => {
    const noNode = withCommand({ ...(pod('apps', 'floating', { ip: '127.0.10.7' }) as object), spec: { containers: [{ name: 'c' }] } }, 'echo hi');
    const noIp = { ...(pod('apps', 'pending', { node: 'node-a' }) as object), status: {} };
    const p = lab([noNode, noIp, pod('apps', 'ok', { node: 'node-a', ip: '127.0.10.8' })]);
    assert.deepEqual(p.pods.map((x) => x.key), ['apps/ok']);
    assert.deepEqual(p.errors, []);
    assert.match(p.problems.find((x) => x.startsWith('Pod apps/floating'))!, /no spec\.nodeName: the lab gives it no namespace, so nothing runs in it \(its strait\.dev\/lab-command included\); set spec\.nodeName to one of the nodes \(node-a\)/);
    assert.match(p.problems.find((x) => x.startsWith('Pod apps/pending'))!, /no status\.podIP: the lab gives it no namespace/);
  });

  it('refuses a pod address outside 127.0.0.0/8 and 198.18.0.0/15, naming the pod and where to put it', () => {
    const p = lab([pod('apps', 'far', { node: 'node-a', ip: '10.1.2.3' }), pod('apps', 'local', { node: 'node-a', ip: '127.0.0.1' })]);
    assert.equal(p.errors.length, 2);
    assert.match(p.errors[0]!, /^Pod apps\/far: status\.podIP 10\.1\.2\.3 is outside the lab's addresses: write it in 127\.0\.0\.0\/8 \(the lab reads 127\.a\.b\.c as 198\.18\.b\.c; 127\.0\.0\.1 stays the namespace's own loopback\) or in 198\.18\.0\.0\/15/);
    assert.match(p.errors[1]!, /^Pod apps\/local: status\.podIP 127\.0\.0\.1 is outside/);
    assert.deepEqual(p.pods, []);
  });

  it('refuses an address the lab keeps for itself (198.19.252.0/22)', () => {
    const p = lab([pod('apps', 'gw', { node: 'node-a', ip: '198.19.253.1' })]);
    assert.match(p.errors[0]!, /^Pod apps\/gw: status\.podIP 198\.19\.253\.1 is in 198\.19\.252\.0\/22, which the lab keeps for itself .*pick another address in 198\.18\.0\.0\/15/);
  });

  it('refuses two pods on one address (127.0.10.1 and 127.5.10.1 are both 198.18.10.1 in the lab)', () => {
    const p = lab([pod('apps', 'one', { node: 'node-a', ip: '127.0.10.1' }), pod('apps', 'two', { node: 'node-b', ip: '127.5.10.1' })]);
    assert.deepEqual(p.errors, ['Pod apps/two has address 198.18.10.1, which Pod apps/one already has: every pod, waypoint and Service VIP needs its own address in the lab']);
  });

  it('warns about an empty lab-command and about podIPs beyond the first', () => {
    const two = withCommand(pod('apps', 'dual', { node: 'node-a', ip: '127.0.10.1' }), '  ') as { status: Record<string, unknown> };
    two.status.podIPs = [{ ip: '127.0.10.1' }, { ip: '127.0.10.9' }];
    const p = lab([two]);
    assert.equal(p.pods[0]!.command, undefined);
    assert.ok(p.problems.some((x) => /^Pod apps\/dual: annotation strait\.dev\/lab-command is empty/.test(x)), p.problems.join('\n'));
    assert.ok(p.problems.some((x) => /^Pod apps\/dual: the lab gives each pod one address, its status\.podIP 198\.18\.10\.1; status\.podIPs 198\.18\.10\.9 are not assigned to it/.test(x)), p.problems.join('\n'));
  });
});

describe('planLab: waypoints', () => {
  it('runs each waypoint on the first node, on its Gateway\'s lab address or one of 198.19.252.0/24', () => {
    const p = lab([node('node-b', '127.0.100.2'), node('node-a', '127.0.100.1'), waypoint('shop', 'waypoint'), waypoint('store', 'waypoint', { address: '127.0.30.1' })]);
    assert.deepEqual(p.waypoints.map((w) => [w.key, w.address, w.node]), [['shop/waypoint', '198.19.252.1', 'node-a'], ['store/waypoint', '198.18.30.1', 'node-a']]);
    const pods = parseManifests(waypointPodsManifest(p.waypoints), 'waypoint-pods.yaml');
    assert.deepEqual(pods.problems.filter((x) => x.severity === 'error'), []);
    assert.deepEqual(pods.objects.map((o) => o.object.kind === 'Pod' && [o.object.metadata.name, o.object.spec.nodeName, o.object.status.podIP]), [
      ['waypoint-waypoint', 'node-a', '198.19.252.1'], ['waypoint-waypoint', 'node-a', '198.18.30.1']]);
  });

  it('keeps a running waypoint on its node and address', () => {
    const p = lab([node('node-b', '127.0.100.2'), node('node-a', '127.0.100.1'), waypoint('shop', 'waypoint')],
      { previousWaypoints: new Map([['shop/waypoint', '198.19.252.7']]), previousWaypointNodes: new Map([['shop/waypoint', 'node-b']]) });
    assert.deepEqual(p.waypoints.map((w) => [w.address, w.node]), [['198.19.252.7', 'node-b']]);
  });

  it('refuses a Gateway address outside the lab, and says when there is no node for a waypoint', () => {
    const p = lab([waypoint('shop', 'waypoint', { address: '10.0.0.5' })]);
    assert.match(p.errors[0]!, /^Gateway shop\/waypoint: spec\.addresses 10\.0\.0\.5 is outside the lab's addresses/);
    assert.deepEqual(p.waypoints, []);
    assert.match(p.problems[0]!, /^Gateway shop\/waypoint: the lab has no node to run its waypoint on/);
  });
});

describe('planLab: services', () => {
  const labelled = (name: string, o: Parameters<typeof pod>[2]) => pod('apps', name, { labels: { app: 'web' }, ...o });

  it('DNATs a VIP to the ready pods its selector picks that have a namespace, resolving a named targetPort per pod', () => {
    const p = lab([
      labelled('web-2', { node: 'node-b', ip: '127.0.10.12', ports: { http: 9090 } }),
      labelled('web-1', { node: 'node-a', ip: '127.0.10.11', ports: { http: 8080 } }),
      labelled('unready', { node: 'node-a', ip: '127.0.10.13', ports: { http: 8080 }, ready: false }),
      { ...(labelled('nowhere', { ip: '127.0.10.14', ports: { http: 8080 } }) as object), spec: { containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 8080 }] }] } },
      pod('other', 'web-x', { node: 'node-a', ip: '127.0.10.15', labels: { app: 'web' }, ports: { http: 8080 } }),
      service('apps', 'web', { ip: '127.0.20.1', ports: [{ port: 80, targetPort: 'http', name: 'http' }, { port: 81, targetPort: 7000, name: 'raw' }] }),
    ]);
    assert.deepEqual(p.errors, []);
    assert.deepEqual(p.services, [{
      key: 'apps/web', clusterIP: '198.18.20.1',
      ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }, { name: 'raw', port: 81, targetPort: 7000, protocol: 'TCP' }],
      endpoints: [{ pod: 'apps/web-1', address: '198.18.10.11', ports: [8080, 7000] }, { pod: 'apps/web-2', address: '198.18.10.12', ports: [9090, 7000] }],
    }]);
  });

  it('leaves out, and says so, a pod without the named port; a Service without selector or clusterIP', () => {
    const p = lab([
      pod('apps', 'web-1', { node: 'node-a', ip: '127.0.10.11', labels: { app: 'web' }, ports: { other: 8080 } }),
      service('apps', 'web', { ip: '127.0.20.1', ports: [{ port: 80, targetPort: 'http' }] }),
      { ...(service('apps', 'manual', { ip: '127.0.20.2' }) as { spec: object }), spec: { clusterIP: '127.0.20.2', ports: [{ port: 80 }] } },
      { ...(service('apps', 'novip') as { spec: object }), spec: { selector: { app: 'x' }, ports: [{ port: 80 }] } },
    ]);
    assert.deepEqual(p.services.find((s) => s.key === 'apps/web')!.endpoints, [{ pod: 'apps/web-1', address: '198.18.10.11', ports: [null] }]);
    assert.ok(p.problems.some((x) => /^Service apps\/web port 80: targetPort "http" is not a container port name of Pod apps\/web-1/.test(x)), p.problems.join('\n'));
    assert.ok(p.problems.some((x) => /^Service apps\/manual has no selector: .*connections to 198\.18\.20\.2 go nowhere/.test(x)), p.problems.join('\n'));
    assert.ok(p.problems.some((x) => /^Service apps\/novip has no spec\.clusterIP, so it has no VIP in the lab/.test(x)), p.problems.join('\n'));
  });

  it('refuses a VIP outside the lab, and one a pod already has', () => {
    const p = lab([pod('apps', 'web', { node: 'node-a', ip: '127.0.10.1' }), service('apps', 'far', { ip: '10.96.0.10' }), service('apps', 'same', { ip: '127.0.10.1' })]);
    assert.match(p.errors[0]!, /^Service apps\/far: spec\.clusterIP 10\.96\.0\.10 is outside the lab's addresses/);
    assert.match(p.errors[1]!, /^Service apps\/same has address 198\.18\.10\.1, which Pod apps\/web already has/);
  });

  it('warns about a policy ipBlock that covers no lab address', () => {
    const policy = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'p', namespace: 'apps' },
      spec: { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['127.0.10.0/24', '10.0.0.0/8', '0.0.0.0/0'], notRemoteIpBlocks: ['127.0.0.0/8'] } }] }] } };
    const p = lab([namespace('apps'), policy]);
    assert.deepEqual(p.problems.map((x) => /^AuthorizationPolicy apps\/p: (\w+) "([^"]+)" covers no lab address/.exec(x)?.slice(1)), [['ipBlocks', '10.0.0.0/8'], ['notRemoteIpBlocks', '127.0.0.0/8']]);
  });
});

describe('service DNAT rules', () => {
  const svc = {
    key: 'apps/web', clusterIP: '198.18.20.1',
    ports: [{ port: 80, targetPort: 'http', protocol: 'TCP' as const }, { port: 53, targetPort: 53, protocol: 'UDP' as const }],
    endpoints: [
      { pod: 'apps/a', address: '198.18.10.1', ports: [8080, 53] },
      { pod: 'apps/b', address: '198.18.10.2', ports: [null, 53] },
      { pod: 'apps/c', address: '198.18.10.3', ports: [9090, 53] },
    ],
  };

  it('picks each endpoint with an equal chance (1/n, then 1/(n-1), ..., the last always), per port', () => {
    const lines = serviceTablesUpdate([svc], []).split('\n');
    assert.deepEqual(lines.filter((l) => l.includes('--dport 80 ')), [
      '-A STRAIT_LAB_SERVICES -d 198.18.20.1/32 -p tcp -m tcp --dport 80 -m comment --comment "apps/web:80" -m statistic --mode random --probability 0.50000000000 -j DNAT --to-destination 198.18.10.1:8080',
      '-A STRAIT_LAB_SERVICES -d 198.18.20.1/32 -p tcp -m tcp --dport 80 -m comment --comment "apps/web:80" -j DNAT --to-destination 198.18.10.3:9090',
    ]);
    const udp = lines.filter((l) => l.includes('--dport 53 '));
    assert.deepEqual(udp.map((l) => / -p (\w+) .*?(?:--probability (\S+) )?-j DNAT --to-destination (\S+)$/.exec(l)!.slice(1)), [
      ['udp', '0.33333333333', '198.18.10.1:53'], ['udp', '0.50000000000', '198.18.10.2:53'], ['udp', undefined, '198.18.10.3:53']]);
  });

  it('replaces both chains whole, jumps only once at setup, and masquerades a local pod calling itself through a VIP', () => {
    const update = serviceTablesUpdate([], ['198.18.10.1']);
    assert.equal(update, ['*nat', ':STRAIT_LAB_SERVICES - [0:0]', ':STRAIT_LAB_POSTROUTING - [0:0]',
      '-A STRAIT_LAB_POSTROUTING -s 198.18.10.1/32 -d 198.18.10.1/32 -m conntrack --ctstate DNAT -j MASQUERADE', 'COMMIT', ''].join('\n'));
    const setup = serviceTablesSetup([], []);
    assert.deepEqual(setup.split('\n').filter((l) => l.startsWith('-A ') && !l.startsWith('-A STRAIT')),
      ['-A PREROUTING -j STRAIT_LAB_SERVICES', '-A OUTPUT -j STRAIT_LAB_SERVICES', '-A POSTROUTING -j STRAIT_LAB_POSTROUTING']);
    assert.doesNotMatch(update, /-A (PREROUTING|OUTPUT|POSTROUTING) /);
  });
});

describe('lab exec targets and readiness inside a namespace', () => {
  const state = { pods: { 'shop/web-1': { netns: 'strait-lab0001-p-1' } }, waypoints: { 'store/waypoint': { netns: 'strait-lab0001-p-2' } }, nodes: { 'node-a': { netns: 'strait-lab0001-n-node-a' } } } as unknown as LabState;

  it('finds a pod, a waypoint or a node, and lists the pods when it cannot', () => {
    assert.deepEqual(execTarget(state, { pod: 'shop/web-1' }), { netns: 'strait-lab0001-p-1' });
    assert.deepEqual(execTarget(state, { pod: 'store/waypoint' }), { netns: 'strait-lab0001-p-2' });
    assert.deepEqual(execTarget(state, { node: 'node-a' }), { netns: 'strait-lab0001-n-node-a' });
    assert.deepEqual(execTarget(state, { pod: 'shop/web-9' }), { error: 'no pod shop/web-9 in the lab (write <namespace>/<pod>, or --node NAME); its pods: shop/web-1; waypoints: store/waypoint' });
    assert.match((execTarget(state, { node: 'node-z' }) as { error: string }).error, /^no node node-z in the lab; its nodes: node-a$/);
  });

  it('reads the status, the pid header (any case) and the body of curl -D - output, after a 100 Continue', () => {
    assert.deepEqual(parseCurlAnswer(`HTTP/1.1 200 OK\r\n${PID_HEADER.toUpperCase()}: 4242\r\ncontent-length: 6\r\n\r\nready\n`), { status: 200, pid: '4242', body: 'ready\n' });
    assert.deepEqual(parseCurlAnswer('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\n\r\nnot yet'), { status: 503, pid: null, body: 'not yet' });
    assert.equal(parseCurlAnswer('curl: (7) Failed to connect'), undefined);
  });
});
