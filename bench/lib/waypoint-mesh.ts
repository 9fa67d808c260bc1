/**
 * The mesh of the waypoint benchmark, as manifests for `strait up` (run through BenchMesh, datapath-mesh.ts):
 *
 * - Nodes node-a (127.0.190.1) and node-b (127.0.190.2); the controller on 127.0.190.254.
 * - Namespace `bench`: ambient, bound to the waypoint `waypoint` (Gateway, gatewayClassName istio-waypoint, on
 *   127.0.193.1).
 * - Pod `client` on node-a (127.0.191.1); pods `server-v1` (127.0.191.2) and `server-v2` (127.0.191.3) on node-b,
 *   labels app=server and version=v1/v2, one service account `server`, port 8080. The images are not the demo
 *   app's, so `strait up` starts nothing for them: the benchmark runs their server (waypoint-server.ts).
 * - Service `server` (127.0.192.1:8080, both pods): bound to the waypoint through the namespace.
 * - Service `server-l4` (127.0.192.2:8080, server-v1 only), labelled `istio.io/use-waypoint: none`: the same
 *   pods without the waypoint (client → ztunnel → ztunnel → server), path (a).
 * - VirtualService `server`: header `x-canary: exact "true"` → subset v2, everything else → v1; DestinationRule
 *   `server` with subsets v1 and v2 by the `version` label. Left out with `routes: false` (then the waypoint
 *   forwards to any endpoint of the service).
 */
export const NAMESPACE = 'bench';
export const NODE_A = { name: 'node-a', ip: '127.0.190.1' };
export const NODE_B = { name: 'node-b', ip: '127.0.190.2' };
export const CONTROLLER_IP = '127.0.190.254';
export const CLIENT_POD_IP = '127.0.191.1';
export const SERVER_PODS = { v1: '127.0.191.2', v2: '127.0.191.3' } as const;
export const APP_PORT = 8080;
export const SERVICE = { name: 'server', vip: '127.0.192.1' };
export const SERVICE_L4 = { name: 'server-l4', vip: '127.0.192.2' };
export const WAYPOINT = { name: 'waypoint', ip: '127.0.193.1' };
export const TRUST_DOMAIN = 'cluster.local';
export const SA = { client: 'client', server: 'server', waypoint: 'waypoint' };
export const serviceHost = (name: string) => `${name}.${NAMESPACE}.svc.cluster.local`;

export function waypointManifests(o: { routes: boolean }): string {
  const node = (n: { name: string; ip: string }) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name: n.name }, status: { addresses: [{ type: 'InternalIP', address: n.ip }] } });
  const pod = (name: string, nodeName: string, ip: string, sa: string, labels: Record<string, string>, ports: { name: string; containerPort: number }[]) => ({
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NAMESPACE, labels },
    spec: { nodeName, serviceAccountName: sa, containers: [{ name: 'app', image: 'strait-bench/waypoint', ports }] },
    status: { podIP: ip },
  });
  const http = [{ name: 'http', containerPort: APP_PORT }];
  const objects: unknown[] = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE, labels: { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': WAYPOINT.name } } },
    {
      apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: WAYPOINT.name, namespace: NAMESPACE },
      spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }], addresses: [{ type: 'IPAddress', value: WAYPOINT.ip }] },
    },
    node(NODE_A), node(NODE_B),
    pod('client', NODE_A.name, CLIENT_POD_IP, SA.client, { app: 'client' }, []),
    pod('server-v1', NODE_B.name, SERVER_PODS.v1, SA.server, { app: 'server', version: 'v1' }, http),
    pod('server-v2', NODE_B.name, SERVER_PODS.v2, SA.server, { app: 'server', version: 'v2' }, http),
    {
      apiVersion: 'v1', kind: 'Service', metadata: { name: SERVICE.name, namespace: NAMESPACE },
      spec: { clusterIP: SERVICE.vip, selector: { app: 'server' }, ports: [{ name: 'http', port: APP_PORT, targetPort: APP_PORT }] },
    },
    {
      apiVersion: 'v1', kind: 'Service', metadata: { name: SERVICE_L4.name, namespace: NAMESPACE, labels: { 'istio.io/use-waypoint': 'none' } },
      spec: { clusterIP: SERVICE_L4.vip, selector: { app: 'server', version: 'v1' }, ports: [{ name: 'http', port: APP_PORT, targetPort: APP_PORT }] },
    },
  ];
  if (o.routes) {
    objects.push(
      {
        apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: SERVICE.name, namespace: NAMESPACE },
        spec: {
          hosts: [SERVICE.name],
          http: [
            { match: [{ headers: { 'x-canary': { exact: 'true' } } }], route: [{ destination: { host: SERVICE.name, subset: 'v2' } }] },
            { route: [{ destination: { host: SERVICE.name, subset: 'v1' } }] },
          ],
        },
      },
      {
        apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: SERVICE.name, namespace: NAMESPACE },
        spec: { host: SERVICE.name, subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] },
      },
    );
  }
  return objects.map((x) => JSON.stringify(x)).join('\n---\n') + '\n';
}
