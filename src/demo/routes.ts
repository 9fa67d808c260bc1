/**
 * Which calls the demo makes, and where they leave from: pure, from the plan of the local mesh (which pod
 * has which address on which node) and the running mesh's state (each node's SOCKS5 address).
 */
import { StraitError } from '../common/errors.js';
import type { MeshState } from '../local/mesh.js';
import type { PlannedApp } from '../local/plan.js';

/**
 * What the manifests say a route's answers should be: `ok` every request answered 200; `denied` every request refused
 * (by a ztunnel at L4, or 403 by a waypoint); `outlier` answered 200 except for 5xx that a failing pod gives itself
 * (never one made by the mesh), while outlier detection takes that pod out.
 */
export type Expectation = 'ok' | 'denied' | 'outlier';
/** `l4`: the ztunnels alone; `l7`: the destination's waypoint too (its namespace or service names one). */
export type Layer = 'l4' | 'l7';

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
  layer: Layer;
  /** Default GET. */
  method?: string;
  /** Default "/". */
  path?: string;
  /** Request headers besides host, user-agent, accept and connection. */
  headers?: Record<string, string>;
  /** Told after the label in the route's name ("x-canary: true", "DELETE /items/1"). */
  detail?: string;
}

export interface DemoRoute {
  /** "client → catalog.backend", "client → api.store x-canary: true" */
  name: string;
  /** The destination's short name ("api.store"): what the waypoint's clusters of that service are shown under. */
  label: string;
  layer: Layer;
  from: { pod: string; namespace: string; app: string; address: string; node: string };
  /** The SOCKS5 listener of the caller's node's ztunnel. */
  socks5: { host: string; port: number };
  host: string;
  port: number;
  path: string;
  method: string;
  headers: Record<string, string>;
  expect: Expectation;
}

const CLIENT = { namespace: 'shop', app: 'client' } as const;

/**
 * The demo's traffic. L4: shop's client calls web, catalog (v1 and v2) and orders (denied by the ztunnel); web calls
 * orders. L7, through the store's waypoint: the client calls api (the canary split 90 / 10, and x-canary: true → v2),
 * tries to DELETE on api (403 from the waypoint), calls the flaky payments (retries turn 503s into 200s) and inventory
 * (one endpoint fails now and then and outlier detection ejects it).
 */
export const DEMO_ROUTE_SPECS: readonly DemoRouteSpec[] = [
  { from: CLIENT, host: 'web.shop', port: 80, label: 'web.shop', expect: 'ok', layer: 'l4' },
  { from: CLIENT, host: 'catalog.backend.svc.cluster.local', port: 80, label: 'catalog.backend', expect: 'ok', layer: 'l4' },
  { from: CLIENT, host: 'orders.backend', port: 80, label: 'orders.backend', expect: 'denied', layer: 'l4' },
  { from: { namespace: 'shop', app: 'web' }, host: 'orders.backend.svc', port: 80, label: 'orders.backend', expect: 'ok', layer: 'l4' },
  { from: CLIENT, host: 'api.store', port: 80, label: 'api.store', expect: 'ok', layer: 'l7' },
  { from: CLIENT, host: 'api.store', port: 80, label: 'api.store', expect: 'ok', layer: 'l7', headers: { 'x-canary': 'true' }, detail: 'x-canary: true' },
  { from: CLIENT, host: 'api.store', port: 80, label: 'api.store', expect: 'denied', layer: 'l7', method: 'DELETE', path: '/items/1', detail: 'DELETE /items/1' },
  { from: CLIENT, host: 'payments.store', port: 80, label: 'payments.store', expect: 'ok', layer: 'l7' },
  { from: CLIENT, host: 'inventory.store', port: 80, label: 'inventory.store', expect: 'outlier', layer: 'l7' },
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
      name: `${s.from.app} → ${s.label}${s.detail ? ` ${s.detail}` : ''}`,
      label: s.label,
      layer: s.layer,
      from: { pod: pod.pod, namespace: pod.namespace, app: pod.app, address: pod.address, node: pod.node },
      socks5: splitHostPort(node.socks5),
      host: s.host,
      port: s.port,
      path: s.path ?? '/',
      method: s.method ?? 'GET',
      headers: { ...s.headers },
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
