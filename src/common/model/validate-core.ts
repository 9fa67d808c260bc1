/** core/v1 kinds: Namespace, Node, Pod, Service. */
import type { ContainerPort, Namespace, Node, NodeAddress, ObjectMeta, Pod, Service, ServicePort } from './types.js';
import {
  at,
  compact,
  describe,
  formatted,
  int,
  keyed,
  labels,
  list,
  oneOf,
  PORT_RANGE,
  port,
  str,
  struct,
  uniqueIn,
  type Ctx,
  type FieldSet,
  type Raw,
} from './fields.js';
import {
  DNS1123_LABEL_TEXT,
  DNS1123_SUBDOMAIN_TEXT,
  IANA_SERVICE_NAME_TEXT,
  IP_TEXT,
  isDns1123Label,
  isDns1123Subdomain,
  isIanaServiceName,
  isIPAddress,
} from './formats.js';

export const DATAPLANE_MODE_LABEL = 'istio.io/dataplane-mode';
const DATAPLANE_MODES = ['ambient', 'none'];

/** A misspelt dataplane mode silently leaves workloads out of the mesh, so it gets a warning. */
function checkDataplaneMode(ctx: Ctx, meta: ObjectMeta, whatHappens: string): void {
  const mode = meta.labels[DATAPLANE_MODE_LABEL];
  if (mode !== undefined && !DATAPLANE_MODES.includes(mode)) {
    ctx.warn(keyed('metadata.labels', DATAPLANE_MODE_LABEL), `${describe(mode)} is not one of ${DATAPLANE_MODES.join(', ')}; ${whatHappens}`);
  }
}

// ---------- Namespace ----------

export function validateNamespace(ctx: Ctx, raw: Raw, meta: ObjectMeta): Namespace {
  struct(ctx, raw['spec'], 'spec', { known: [], silent: ['finalizers'] });
  checkDataplaneMode(ctx, meta, 'the namespace is not enrolled in the mesh');
  return { apiVersion: 'v1', kind: 'Namespace', metadata: meta };
}

// ---------- Node ----------

const NODE_SPEC: FieldSet = {
  known: [],
  silent: ['podCIDR', 'podCIDRs', 'providerID', 'taints', 'unschedulable', 'configSource', 'externalID'],
};
const NODE_STATUS: FieldSet = {
  known: ['addresses'],
  silent: [
    'allocatable',
    'capacity',
    'conditions',
    'config',
    'daemonEndpoints',
    'features',
    'images',
    'nodeInfo',
    'phase',
    'runtimeHandlers',
    'volumesAttached',
    'volumesInUse',
  ],
};
const NODE_ADDRESS_TYPES = ['Hostname', 'InternalIP', 'ExternalIP', 'InternalDNS', 'ExternalDNS'] as const;

export function validateNode(ctx: Ctx, raw: Raw, meta: ObjectMeta): Node {
  struct(ctx, raw['spec'], 'spec', NODE_SPEC);
  const status = struct(ctx, raw['status'], 'status', NODE_STATUS);
  const addresses = list(ctx, status?.['addresses'], 'status.addresses', (v, p) => nodeAddress(ctx, v, p)) ?? [];
  return { apiVersion: 'v1', kind: 'Node', metadata: meta, status: { addresses } };
}

function nodeAddress(ctx: Ctx, v: unknown, path: string): NodeAddress | undefined {
  const a = struct(ctx, v, path, { known: ['type', 'address'] }, true);
  if (!a) return undefined;
  const type = oneOf(ctx, a['type'], at(path, 'type'), NODE_ADDRESS_TYPES, true);
  const isIpType = type === 'InternalIP' || type === 'ExternalIP';
  const address = isIpType
    ? formatted(ctx, a['address'], at(path, 'address'), isIPAddress, IP_TEXT, true)
    : str(ctx, a['address'], at(path, 'address'), true);
  return { type: type ?? '', address: address ?? '' };
}

// ---------- Pod ----------

const POD_SPEC: FieldSet = {
  known: ['nodeName', 'serviceAccountName', 'serviceAccount', 'containers'],
  silent: [
    'activeDeadlineSeconds',
    'affinity',
    'automountServiceAccountToken',
    'dnsConfig',
    'dnsPolicy',
    'enableServiceLinks',
    'ephemeralContainers',
    'hostAliases',
    'hostIPC',
    'hostNetwork',
    'hostPID',
    'hostUsers',
    'hostname',
    'imagePullSecrets',
    'initContainers',
    'nodeSelector',
    'os',
    'overhead',
    'preemptionPolicy',
    'priority',
    'priorityClassName',
    'readinessGates',
    'resourceClaims',
    'resources',
    'restartPolicy',
    'runtimeClassName',
    'schedulerName',
    'schedulingGates',
    'securityContext',
    'setHostnameAsFQDN',
    'shareProcessNamespace',
    'subdomain',
    'terminationGracePeriodSeconds',
    'tolerations',
    'topologySpreadConstraints',
    'volumes',
  ],
};
const CONTAINER: FieldSet = {
  known: ['name', 'image', 'ports'],
  silent: [
    'args',
    'command',
    'env',
    'envFrom',
    'imagePullPolicy',
    'lifecycle',
    'livenessProbe',
    'readinessProbe',
    'resizePolicy',
    'resources',
    'restartPolicy',
    'securityContext',
    'startupProbe',
    'stdin',
    'stdinOnce',
    'terminationMessagePath',
    'terminationMessagePolicy',
    'tty',
    'volumeDevices',
    'volumeMounts',
    'workingDir',
  ],
};
const POD_STATUS: FieldSet = {
  known: ['podIP', 'podIPs', 'phase', 'conditions'],
  silent: [
    'containerStatuses',
    'ephemeralContainerStatuses',
    'hostIP',
    'hostIPs',
    'initContainerStatuses',
    'message',
    'nominatedNodeName',
    'qosClass',
    'reason',
    'resize',
    'resourceClaimStatuses',
    'startTime',
    'observedGeneration',
  ],
};
const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;
const POD_PHASES = ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'] as const;
const CONDITION_STATUSES = ['True', 'False', 'Unknown'] as const;

export function validatePod(ctx: Ctx, raw: Raw, meta: ObjectMeta): Pod {
  checkDataplaneMode(ctx, meta, 'the pod follows its namespace');
  const spec = struct(ctx, raw['spec'], 'spec', POD_SPEC);
  const nodeName = formatted(ctx, spec?.['nodeName'], 'spec.nodeName', isDns1123Subdomain, DNS1123_SUBDOMAIN_TEXT);
  // `serviceAccount` is the deprecated spelling; Kubernetes still honours it when the new one is absent.
  const saField = spec?.['serviceAccountName'] !== undefined ? 'serviceAccountName' : 'serviceAccount';
  const sa = formatted(ctx, spec?.[saField], at('spec', saField), isDns1123Subdomain, DNS1123_SUBDOMAIN_TEXT);
  const containers = list(ctx, spec?.['containers'], 'spec.containers', (v, p) => container(ctx, v, p)) ?? [];
  uniqueIn(ctx, spec?.['containers'], 'spec.containers', 'name');

  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: meta,
    spec: compact({ nodeName, serviceAccountName: sa || 'default', containers }),
    status: podStatus(ctx, raw['status']),
  };
}

function container(ctx: Ctx, v: unknown, path: string): Pod['spec']['containers'][number] | undefined {
  const c = struct(ctx, v, path, CONTAINER, true);
  if (!c) return undefined;
  const name = formatted(ctx, c['name'], at(path, 'name'), isDns1123Label, DNS1123_LABEL_TEXT, true);
  const image = str(ctx, c['image'], at(path, 'image'));
  const ports = list(ctx, c['ports'], at(path, 'ports'), (x, p) => containerPort(ctx, x, p)) ?? [];
  uniqueIn(ctx, c['ports'], at(path, 'ports'), 'name');
  return compact({ name: name ?? '', image, ports });
}

function containerPort(ctx: Ctx, v: unknown, path: string): ContainerPort | undefined {
  const p = struct(ctx, v, path, { known: ['name', 'containerPort', 'protocol'], silent: ['hostIP', 'hostPort'] }, true);
  if (!p) return undefined;
  return compact({
    name: formatted(ctx, p['name'], at(path, 'name'), isIanaServiceName, IANA_SERVICE_NAME_TEXT),
    containerPort: port(ctx, p['containerPort'], at(path, 'containerPort'), true) ?? 0,
    protocol: oneOf(ctx, p['protocol'], at(path, 'protocol'), PROTOCOLS),
  });
}

function podStatus(ctx: Ctx, v: unknown): Pod['status'] {
  const s = struct(ctx, v, 'status', POD_STATUS);
  // The API server writes podIP: "" while a pod has no address yet.
  const podIP = formatted(ctx, s?.['podIP'], 'status.podIP', (x) => x === '' || isIPAddress(x), IP_TEXT) || undefined;
  const listed =
    list(ctx, s?.['podIPs'], 'status.podIPs', (x, p) => {
      const entry = struct(ctx, x, p, { known: ['ip'] }, true);
      return entry ? formatted(ctx, entry['ip'], at(p, 'ip'), isIPAddress, IP_TEXT, true) : undefined;
    }) ?? [];
  if (podIP !== undefined && listed.length > 0 && listed[0] !== podIP) {
    ctx.error('status.podIPs[0].ip', `${describe(listed[0])} must equal status.podIP ${describe(podIP)}`);
  }
  const podIPs = listed.length > 0 ? listed : podIP !== undefined ? [podIP] : [];
  const phase = oneOf(ctx, s?.['phase'], 'status.phase', POD_PHASES);
  const conditions = list(ctx, s?.['conditions'], 'status.conditions', (x, p) => condition(ctx, x, p)) ?? [];
  const ready = !conditions.some((c) => c.type === 'Ready' && c.status === 'False');
  return compact({ podIP: podIP ?? podIPs[0], podIPs, phase, ready });
}

function condition(ctx: Ctx, v: unknown, path: string): { type: string; status: string } | undefined {
  const c = struct(
    ctx,
    v,
    path,
    { known: ['type', 'status'], silent: ['lastProbeTime', 'lastTransitionTime', 'message', 'reason', 'observedGeneration'] },
    true,
  );
  if (!c) return undefined;
  const type = str(ctx, c['type'], at(path, 'type'), true);
  const status = oneOf(ctx, c['status'], at(path, 'status'), CONDITION_STATUSES, true);
  return { type: type ?? '', status: status ?? '' };
}

// ---------- Service ----------

const SERVICE_SPEC: FieldSet = {
  known: ['clusterIP', 'clusterIPs', 'ports', 'selector', 'type'],
  silent: [
    'allocateLoadBalancerNodePorts',
    'externalIPs',
    'externalName',
    'externalTrafficPolicy',
    'healthCheckNodePort',
    'internalTrafficPolicy',
    'ipFamilies',
    'ipFamilyPolicy',
    'loadBalancerClass',
    'loadBalancerIP',
    'loadBalancerSourceRanges',
    'publishNotReadyAddresses',
    'sessionAffinity',
    'sessionAffinityConfig',
    'trafficDistribution',
  ],
};
const SERVICE_TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'] as const;
const CLUSTER_IP_TEXT = `${IP_TEXT}, "None" (headless) or ""`;
const isClusterIP = (s: string): boolean => s === 'None' || s === '' || isIPAddress(s);

export function validateService(ctx: Ctx, raw: Raw, meta: ObjectMeta): Service {
  const spec = struct(ctx, raw['spec'], 'spec', SERVICE_SPEC, true);
  const type = oneOf(ctx, spec?.['type'], 'spec.type', SERVICE_TYPES);
  const clusterIP = formatted(ctx, spec?.['clusterIP'], 'spec.clusterIP', isClusterIP, CLUSTER_IP_TEXT) || undefined;
  const listedIPs =
    list(ctx, spec?.['clusterIPs'], 'spec.clusterIPs', (x, p) => formatted(ctx, x, p, isClusterIP, CLUSTER_IP_TEXT, true)) ?? [];
  if (clusterIP !== undefined && listedIPs.length > 0 && listedIPs[0] !== clusterIP) {
    ctx.error('spec.clusterIPs[0]', `${describe(listedIPs[0])} must equal spec.clusterIP ${describe(clusterIP)}`);
  }
  const clusterIPs = listedIPs.length > 0 ? listedIPs : clusterIP !== undefined ? [clusterIP] : [];
  const rawPorts = spec?.['ports'];
  const ports = list(ctx, rawPorts, 'spec.ports', (x, p) => servicePort(ctx, x, p)) ?? [];
  checkServicePorts(ctx, rawPorts, ports, clusterIP === 'None' || type === 'ExternalName');
  const selector = labels(ctx, spec?.['selector'], 'spec.selector');
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta,
    spec: compact({ clusterIP: clusterIP ?? clusterIPs[0], clusterIPs, ports, selector, type }),
  };
}

function servicePort(ctx: Ctx, v: unknown, path: string): ServicePort | undefined {
  const p = struct(ctx, v, path, { known: ['name', 'port', 'targetPort', 'protocol', 'appProtocol'], silent: ['nodePort'] }, true);
  if (!p) return undefined;
  const number = port(ctx, p['port'], at(path, 'port'), true);
  return compact({
    name: formatted(ctx, p['name'], at(path, 'name'), isDns1123Label, DNS1123_LABEL_TEXT) || undefined,
    port: number ?? 0,
    targetPort: targetPort(ctx, p['targetPort'], at(path, 'targetPort')) ?? number ?? 0,
    protocol: oneOf(ctx, p['protocol'], at(path, 'protocol'), PROTOCOLS) ?? 'TCP',
    appProtocol: str(ctx, p['appProtocol'], at(path, 'appProtocol')),
  });
}

/** A port number, or the name of a container port. */
function targetPort(ctx: Ctx, v: unknown, path: string): number | string | undefined {
  if (typeof v === 'number') return int(ctx, v, path, PORT_RANGE);
  if (typeof v === 'string' && /^\d+$/.test(v)) {
    ctx.error(path, `${describe(v)} is a quoted number; write ${v} without quotes, or use a named container port`);
    return undefined;
  }
  if (typeof v === 'string' && v !== '' && !isIanaServiceName(v)) {
    ctx.error(path, `${describe(v)} is not ${IANA_SERVICE_NAME_TEXT}`);
    return undefined;
  }
  if (v !== undefined && v !== null && v !== '' && typeof v !== 'string') {
    ctx.error(path, `expected a port number or a named container port, got ${describe(v)}`);
    return undefined;
  }
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** Kubernetes' rules across a Service's ports: names required and unique when several, port/protocol unique. */
function checkServicePorts(ctx: Ctx, rawPorts: unknown, ports: ServicePort[], portless: boolean): void {
  if (!Array.isArray(rawPorts) || rawPorts.length === 0) {
    if (!portless) ctx.error('spec.ports', 'required field is missing; a Service needs at least one port unless it is headless (clusterIP: None)');
    return;
  }
  if (rawPorts.length > 1) {
    rawPorts.forEach((p: unknown, i) => {
      const name = (p as Raw | null)?.['name'];
      if (name === undefined || name === null || name === '') {
        ctx.error(`spec.ports[${i}].name`, 'required field is missing; every port needs a unique name when a Service has more than one');
      }
    });
    uniqueIn(ctx, rawPorts, 'spec.ports', 'name');
  }
  if (ports.length === rawPorts.length) {
    uniqueIn(ctx, rawPorts, 'spec.ports', 'port', (item) => {
      const protocol = typeof item['protocol'] === 'string' ? item['protocol'] : 'TCP';
      return typeof item['port'] === 'number' ? `${item['port']}/${protocol}` : undefined;
    });
  }
}
