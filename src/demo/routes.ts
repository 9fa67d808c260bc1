/**
 * Which calls the demo makes, and where they leave from: pure, from the plan of the local mesh (which pod
 * has which address on which node) and the running mesh's state (each node's SOCKS5 address).
 */
import { StraitError } from '../common/errors.js';
import type { MeshState } from '../local/mesh.js';
import type { PlannedApp } from '../local/plan.js';

export type Expectation = 'ok' | 'denied';

/** A call the demo makes over and over. */
export interface DemoRouteSpec {
  /** The calling pod, by namespace and `app` label. */
  from: { namespace: string; app: string };
  /** DNS name of the service, as a pod would write it. */
  host: string;
  port: number;
  /** Short name of the destination for the summary ("catalog.backend"). */
  label: string;
  /** What the policies in examples/demo/ say should happen. */
  expect: Expectation;
}

export interface DemoRoute {
  /** "client → catalog.backend" */
  name: string;
  from: { pod: string; namespace: string; app: string; address: string; node: string };
  /** The SOCKS5 listener of the caller's node's ztunnel. */
  socks5: { host: string; port: number };
  host: string;
  port: number;
  path: string;
  expect: Expectation;
}

/** The demo's traffic: shop's client calls web, catalog (v1 and v2) and orders (denied); web calls orders. */
export const DEMO_ROUTE_SPECS: readonly DemoRouteSpec[] = [
  { from: { namespace: 'shop', app: 'client' }, host: 'web.shop', port: 80, label: 'web.shop', expect: 'ok' },
  { from: { namespace: 'shop', app: 'client' }, host: 'catalog.backend.svc.cluster.local', port: 80, label: 'catalog.backend', expect: 'ok' },
  { from: { namespace: 'shop', app: 'client' }, host: 'orders.backend', port: 80, label: 'orders.backend', expect: 'denied' },
  { from: { namespace: 'shop', app: 'web' }, host: 'orders.backend.svc', port: 80, label: 'orders.backend', expect: 'ok' },
];

export function resolveRoutes(specs: readonly DemoRouteSpec[], apps: readonly PlannedApp[], nodes: MeshState['nodes']): DemoRoute[] {
  return specs.map((s) => {
    const pod = apps.find((a) => a.namespace === s.from.namespace && a.app === s.from.app);
    if (!pod) {
      throw new StraitError('STRAIT_ERR_CONFIG', `the demo sends traffic from a pod with label app=${s.from.app} in namespace ${s.from.namespace}, but the manifests run no such demo app (image strait/demo-app)`);
    }
    const node = nodes[pod.node];
    if (!node) throw new StraitError('STRAIT_ERR_CONFIG', `pod ${pod.namespace}/${pod.pod} is on node ${pod.node || '(none)'}, where no ztunnel runs; give it a spec.nodeName of a running node`);
    return {
      name: `${s.from.app} → ${s.label}`,
      from: { pod: pod.pod, namespace: pod.namespace, app: pod.app, address: pod.address, node: pod.node },
      socks5: splitHostPort(node.socks5),
      host: s.host,
      port: s.port,
      path: '/',
      expect: s.expect,
    };
  });
}

export function splitHostPort(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(':');
  const port = Number(hostPort.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port)) throw new StraitError('STRAIT_ERR_CONFIG', `"${hostPort}" is not host:port`);
  return { host: hostPort.slice(0, i).replace(/^\[|\]$/g, ''), port };
}
