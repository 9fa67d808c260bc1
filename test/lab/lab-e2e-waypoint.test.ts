/**
 * `strait lab` end to end (issue 11): a waypoint-bound namespace (Gateway of class istio-waypoint, namespace label
 * istio.io/use-waypoint) serves an unmodified curl in a pod: an HTTPRoute attached to the Service routes by header and
 * by path to a second backend, and an L7 AuthorizationPolicy DENY (a method, a path) answers 403 while every other
 * request gets 200. The caller is shop/client on node-a; the backends are on node-b; the lab runs the waypoint.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { namespace, service } from '../helpers/manifests.js';
import { demoPod } from '../helpers/mesh.js';
import { requireLab } from '../helpers/netns.js';
import { LabCli, until } from '../helpers/lab-cli.js';

const VIP = '198.18.20.21';
const URL = `http://${VIP}`;
const CLIENT = 'shop/client';
const svc = (name: string, ip: string, selector: Record<string, string>) =>
  service('store', name, { ip, selector, ports: [{ name: 'http', port: 80, targetPort: 'http' }] });
const to = (name: string) => ({ backendRefs: [{ name, port: 80 }] });

const files = {
  '00-namespaces.yaml': [
    namespace('shop', { 'istio.io/dataplane-mode': 'ambient' }),
    namespace('store', { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' }),
  ],
  '05-waypoint.yaml': [{
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'store', labels: { 'istio.io/waypoint-for': 'service' } },
    spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
  }],
  '10-pods.yaml': [
    demoPod('shop', 'client', 'node-a', '198.18.10.1', 'client'),
    demoPod('store', 'api-v1', 'node-b', '198.18.10.21', 'api', { labels: { app: 'api', version: 'v1' } }),
    demoPod('store', 'api-v2', 'node-b', '198.18.10.22', 'api', { labels: { app: 'api', version: 'v2' } }),
    svc('api', VIP, { app: 'api' }),
    svc('api-v1', '198.18.20.22', { app: 'api', version: 'v1' }),
    svc('api-v2', '198.18.20.23', { app: 'api', version: 'v2' }),
  ],
  '20-route.yaml': [{
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'api', namespace: 'store' },
    spec: {
      parentRefs: [{ group: '', kind: 'Service', name: 'api', port: 80 }],
      rules: [
        { matches: [{ headers: [{ name: 'x-version', value: 'v2' }] }], ...to('api-v2') },
        { matches: [{ path: { type: 'PathPrefix', value: '/beta' } }], ...to('api-v2') },
        to('api-v1'),
      ],
    },
  }],
  '30-policy.yaml': [{
    apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'no-delete', namespace: 'store' },
    spec: {
      targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint' }],
      action: 'DENY',
      rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }, { to: [{ operation: { paths: ['/private/*'] } }] }],
    },
  }],
};

test('strait lab: through the namespace\'s waypoint an HTTPRoute routes and an L7 DENY answers 403 for plain curl in a pod', async (t) => {
  if (!requireLab(t)) return;
  const lab = await LabCli.start({ files });
  try {
    const wp = lab.state.waypoints['store/waypoint'];
    assert.ok(wp, `the lab runs the store's waypoint: ${JSON.stringify(lab.state.waypoints)}`);
    // The waypoint serves the Service once a request arrives with the x-request-id it adds to every request.
    await until(async () => (await lab.curl(CLIENT, `${URL}/`)).body?.headers?.['x-request-id'], 'requests to the Service going through the waypoint', 20_000, 300);
    const viaWaypoint = (r: { body?: any; text: string }) => assert.ok(r.body?.headers?.['x-request-id'], `the request went through the waypoint (it adds x-request-id): ${r.text}`);

    await t.test('the HTTPRoute sends x-version: v2 and /beta to api-v2, everything else to api-v1', async () => {
      for (let i = 0; i < 4; i++) {
        const plain = await lab.curl(CLIENT, `${URL}/plain/${i}`);
        assert.equal(plain.status, 200, `${plain.exit} ${plain.stderr} ${plain.text}`);
        viaWaypoint(plain);
        assert.equal(plain.body?.pod, 'api-v1', `no match: the last rule (api-v1): ${plain.text}`);
        const byHeader = await lab.curl(CLIENT, `${URL}/h/${i}`, ['-H', 'x-version: v2']);
        assert.equal(byHeader.status, 200, byHeader.text);
        viaWaypoint(byHeader);
        assert.equal(byHeader.body?.pod, 'api-v2', `header match: ${byHeader.text}`);
        const byPath = await lab.curl(CLIENT, `${URL}/beta/${i}`);
        assert.equal(byPath.status, 200, byPath.text);
        viaWaypoint(byPath);
        assert.equal(byPath.body?.pod, 'api-v2', `path match: ${byPath.text}`);
      }
    });

    await t.test('the L7 DENY answers 403 to DELETE and to /private/*, and lets GET and POST through with 200', async () => {
      const del = await lab.curl(CLIENT, `${URL}/items/1`, ['-X', 'DELETE']);
      assert.equal(del.exit, 0, del.stderr);
      assert.equal(del.status, 403, `DELETE: ${del.text}`);
      assert.match(del.text, /RBAC: access denied/);
      const priv = await lab.curl(CLIENT, `${URL}/private/x`);
      assert.equal(priv.status, 403, `GET /private/x: ${priv.text}`);
      const get = await lab.curl(CLIENT, `${URL}/items/1`);
      assert.equal(get.status, 200, `GET: ${get.text}`);
      assert.equal(get.body?.method, 'GET');
      viaWaypoint(get);
      const post = await lab.curl(CLIENT, `${URL}/items`, ['-d', 'x=1']);
      assert.equal(post.status, 200, `POST: ${post.text}`);
      assert.equal(post.body?.method, 'POST');
      assert.equal(post.body?.pod, 'api-v1');
    });

    await t.test('the calls went through the waypoint: the client\'s ztunnel sent them to it over HBONE', async () => {
      const line = await lab.waitForLog((l) => l.component === 'ztunnel' && l.node === 'node-a' && l.msg === 'connection complete' && l.direction === 'outbound'
        && l['src.identity'] === 'spiffe://cluster.local/ns/shop/sa/client', 'node-a\'s outbound line');
      assert.equal(line['dst.identity'], 'spiffe://cluster.local/ns/store/sa/waypoint', JSON.stringify(line));
    });
  } finally {
    await lab.down();
  }
});
