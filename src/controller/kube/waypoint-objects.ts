/**
 * What the leader creates in the cluster for one waypoint Gateway (gatewayClassName istio-waypoint), as istiod does:
 * a Deployment running `strait waypoint` for it, a Service (HBONE 15008 and the Gateway's listeners), the
 * ServiceAccount its pods run as (only when it does not exist already), all owned by the Gateway (ownerReferences,
 * controller: true) so that deleting the Gateway deletes them. Pure: the reconciler does the I/O.
 */
import { waypointServiceAccount } from './caller-authz.js';
import type { Gateway } from '../../common/model/types.js';
import type { KubeOwnerReference } from '../../common/kube/types.js';

export const LABEL_GATEWAY_NAME = 'gateway.networking.k8s.io/gateway-name';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'strait-controller';
/** The Deployment's pods are the waypoint, not workloads of the mesh: no capture for them. */
export const LABEL_DATAPLANE_MODE = 'istio.io/dataplane-mode';
export const ROOT_CONFIGMAP = 'strait-ca-root';
export const ROOT_CONFIGMAP_KEY = 'root-cert.pem';
export const TOKEN_MOUNT_DIR = '/var/run/secrets/tokens';
export const TOKEN_FILE_NAME = 'strait-token';
export const ROOT_MOUNT_DIR = '/var/run/secrets/strait';
export const TOKEN_EXPIRATION_SECONDS = 3600;
/** The waypoint's V8 options (WAYPOINT_NODE_OPTIONS in src/waypoint/config.ts; a test keeps the two equal). */
export const WAYPOINT_NODE_OPTIONS_TEXT = '--max-semi-space-size=2';
export const WAYPOINT_PORTS = { hbone: 15008, metrics: 15020, ready: 15021 } as const;
/** A waypoint drains for 5 s by default; the pod gets a margin over it. */
export const WAYPOINT_TERMINATION_GRACE_SECONDS = 30;

/** The Gateway as read from the API server: what the model keeps plus what owning it needs. */
export interface KubeGateway {
  apiVersion: string;
  kind: 'Gateway';
  metadata: Omit<Gateway['metadata'], 'labels' | 'annotations'> & { labels?: Record<string, string>; annotations?: Record<string, string>; uid: string; generation?: number; resourceVersion?: string };
  spec: Gateway['spec'];
  status?: GatewayStatus;
}

export interface GatewayCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

export interface GatewayStatus {
  addresses?: { type?: string; value: string }[];
  conditions?: GatewayCondition[];
  listeners?: unknown[];
  [k: string]: unknown;
}

export interface WaypointRenderOptions {
  image: string;
  /** Where the controller runs: the waypoint reaches it at strait-controller.<ns>.svc:15012. */
  systemNamespace: string;
  trustDomain: string;
  tokenAudience: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
}

/** A Kubernetes object as this module writes it (JSON). */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: OwnerReference[];
    resourceVersion?: string;
    uid?: string;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

/** An ownerReference as the API defines it (the shared client's type). */
export type OwnerReference = KubeOwnerReference;

export interface WaypointObjects {
  serviceAccount: KubeObject;
  deployment: KubeObject;
  service: KubeObject;
}

export function controllerAddress(systemNamespace: string): string {
  return `strait-controller.${systemNamespace}.svc:15012`;
}

export function ownerReference(gw: KubeGateway, controller = true): OwnerReference {
  return { apiVersion: gw.apiVersion, kind: 'Gateway', name: gw.metadata.name, uid: gw.metadata.uid, ...(controller ? { controller: true, blockOwnerDeletion: true } : {}) };
}

export function renderWaypoint(gw: KubeGateway, o: WaypointRenderOptions): WaypointObjects {
  const ns = gw.metadata.namespace!;
  const name = gw.metadata.name;
  const sa = waypointServiceAccount(gw);
  const labels = { [LABEL_GATEWAY_NAME]: name, [LABEL_MANAGED_BY]: MANAGED_BY };
  const meta = (objName: string) => ({ name: objName, namespace: ns, labels: { ...labels }, ownerReferences: [ownerReference(gw)] });

  const serviceAccount: KubeObject = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(sa) };

  const args = [
    'waypoint', '--waypoint', `${ns}/${name}`, '--service-account', sa, '--trust-domain', o.trustDomain,
    '--xds-address', controllerAddress(o.systemNamespace),
    '--token-file', `${TOKEN_MOUNT_DIR}/${TOKEN_FILE_NAME}`, '--root-cert', `${ROOT_MOUNT_DIR}/${ROOT_CONFIGMAP_KEY}`,
    '--listen-address', '$(POD_IP)',
  ];
  const probe = (failureThreshold: number, periodSeconds: number) => ({
    httpGet: { path: '/healthz/ready', port: WAYPOINT_PORTS.ready }, periodSeconds, failureThreshold, timeoutSeconds: 1,
  });
  const deployment: KubeObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(name),
    spec: {
      selector: { matchLabels: { [LABEL_GATEWAY_NAME]: name } },
      template: {
        metadata: {
          labels: { ...labels, [LABEL_DATAPLANE_MODE]: 'none', 'app.kubernetes.io/name': 'strait-waypoint' },
          annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(WAYPOINT_PORTS.metrics), 'prometheus.io/path': '/metrics' },
        },
        spec: {
          serviceAccountName: sa,
          terminationGracePeriodSeconds: WAYPOINT_TERMINATION_GRACE_SECONDS,
          // The image's user "node" (uid 1000): runAsNonRoot needs it numeric.
          securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000 },
          containers: [{
            name: 'waypoint',
            image: o.image,
            ...(o.imagePullPolicy ? { imagePullPolicy: o.imagePullPolicy } : {}),
            args,
            env: [
              { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
              { name: 'NODE_OPTIONS', value: WAYPOINT_NODE_OPTIONS_TEXT },
            ],
            ports: [
              { name: 'hbone', containerPort: WAYPOINT_PORTS.hbone, protocol: 'TCP' },
              { name: 'http-metrics', containerPort: WAYPOINT_PORTS.metrics, protocol: 'TCP' },
              { name: 'status-port', containerPort: WAYPOINT_PORTS.ready, protocol: 'TCP' },
            ],
            readinessProbe: probe(4, 5),
            startupProbe: probe(30, 1),
            // The waypoint runs its default two workers: primary ~77 MiB + ~70 MiB per idle worker (README "Workers").
            resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '1Gi' } },
            securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
            volumeMounts: [
              { name: 'strait-token', mountPath: TOKEN_MOUNT_DIR, readOnly: true },
              { name: 'strait-ca-root', mountPath: ROOT_MOUNT_DIR, readOnly: true },
            ],
          }],
          volumes: [
            { name: 'strait-token', projected: { sources: [{ serviceAccountToken: { audience: o.tokenAudience, expirationSeconds: TOKEN_EXPIRATION_SECONDS, path: TOKEN_FILE_NAME } }] } },
            { name: 'strait-ca-root', configMap: { name: ROOT_CONFIGMAP } },
          ],
        },
      },
    },
  };

  // HBONE first, then each listener's port once (a waypoint's own listener is usually HBONE 15008 already).
  const ports: { name: string; port: number; protocol: 'TCP'; appProtocol?: string }[] = [
    { name: 'mesh', port: WAYPOINT_PORTS.hbone, protocol: 'TCP', appProtocol: 'all' },
  ];
  const seen = new Set<number>([WAYPOINT_PORTS.hbone]);
  const names = new Set(['mesh']);
  for (const l of gw.spec.listeners ?? []) {
    if (seen.has(l.port)) continue;
    seen.add(l.port);
    const portName = names.has(l.name) ? `${l.name}-${l.port}` : l.name;
    names.add(portName);
    ports.push({ name: portName, port: l.port, protocol: 'TCP' });
  }
  const service: KubeObject = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(name),
    spec: { type: 'ClusterIP', selector: { [LABEL_GATEWAY_NAME]: name }, ports },
  };
  return { serviceAccount, deployment, service };
}

/** The mesh root for pods of `namespace` (the waypoint mounts it); owned by the namespace's waypoint Gateways, if any. */
export function renderRootConfigMap(namespace: string, rootCertPem: string, owners: KubeGateway[] = []): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: ROOT_CONFIGMAP, namespace, labels: { [LABEL_MANAGED_BY]: MANAGED_BY },
      ...(owners.length ? { ownerReferences: [...owners].sort((a, b) => a.metadata.uid.localeCompare(b.metadata.uid)).map((g) => ownerReference(g, false)) } : {}),
    },
    data: { [ROOT_CONFIGMAP_KEY]: rootCertPem },
  };
}

/**
 * Whether `actual` already says everything `desired` says: every field of `desired` is in `actual` with the same
 * value (objects compared key by key, arrays element by element and of the same length); fields the API server
 * added (defaults, status, metadata it keeps) do not count. So an unchanged object is never written again.
 */
export function covers(actual: unknown, desired: unknown): boolean {
  if (desired === null || typeof desired !== 'object') return actual === desired;
  if (Array.isArray(desired)) {
    return Array.isArray(actual) && actual.length === desired.length && desired.every((d, i) => covers(actual[i], d));
  }
  if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return false;
  const a = actual as Record<string, unknown>;
  return Object.entries(desired as Record<string, unknown>).every(([k, v]) => v === undefined || covers(a[k], v));
}

/**
 * `desired` laid over `actual` for a PUT: the server's fields (resourceVersion, uid, defaults, a Service's
 * clusterIP) are kept, ours win; labels and annotations are merged so that others' stay.
 */
export function overlay(actual: KubeObject, desired: KubeObject): KubeObject {
  const merged = mergeDeep(actual, desired) as KubeObject;
  merged.metadata = {
    ...actual.metadata,
    ...desired.metadata,
    labels: { ...actual.metadata.labels, ...desired.metadata.labels },
    annotations: { ...actual.metadata.annotations, ...desired.metadata.annotations },
    ...(actual.metadata.resourceVersion ? { resourceVersion: actual.metadata.resourceVersion } : {}),
  };
  return merged;
}

function mergeDeep(actual: unknown, desired: unknown): unknown {
  if (desired === undefined) return actual;
  // Arrays are ours whole: the server defaults their elements again (a kept default could belong to another element).
  if (desired === null || typeof desired !== 'object' || Array.isArray(desired)) return desired;
  const a = actual !== null && typeof actual === 'object' && !Array.isArray(actual) ? (actual as Record<string, unknown>) : {};
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(desired as Record<string, unknown>)) out[k] = mergeDeep(a[k], v);
  return out;
}
