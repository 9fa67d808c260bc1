/**
 * The Kubernetes resource types Strait talks to: group, version, plural resource, kind, scope, and for custom
 * resources the CustomResourceDefinition that serves them. A request names one of these rather than building paths.
 */

import { CRD_SOURCES, type CrdSourceName } from '../model/crds.js';

export interface KubeResourceType {
  /** API group; '' for the core group. */
  group: string;
  version: string;
  /** Plural resource name as in the URL (pods, authorizationpolicies). */
  resource: string;
  kind: string;
  namespaced: boolean;
  /** For custom resources: the CRD that must be installed ("<resource>.<group>"), and where it comes from. */
  crd?: { name: string; from: string };
}

/** Where the CRDs of a project come from, for messages: built from the releases src/common/model/crds.ts names. */
function crdsOf(name: CrdSourceName): string {
  const src = CRD_SOURCES[name];
  return `${src.project} CRDs (release ${src.release}: ${src.install}; README "Install on Kubernetes")`;
}
const ISTIO_CRDS = crdsOf('istio');
const GATEWAY_CRDS = crdsOf('gateway-api');

function core(resource: string, kind: string, namespaced: boolean): KubeResourceType {
  return { group: '', version: 'v1', resource, kind, namespaced };
}
function builtin(group: string, version: string, resource: string, kind: string, namespaced: boolean): KubeResourceType {
  return { group, version, resource, kind, namespaced };
}
function custom(group: string, version: string, resource: string, kind: string, from: string): KubeResourceType {
  return { group, version, resource, kind, namespaced: true, crd: { name: `${resource}.${group}`, from } };
}

/** Built-in and custom resource types by a short name. */
export const KUBE_TYPES = {
  Namespace: core('namespaces', 'Namespace', false),
  Node: core('nodes', 'Node', false),
  Pod: core('pods', 'Pod', true),
  Service: core('services', 'Service', true),
  ConfigMap: core('configmaps', 'ConfigMap', true),
  Secret: core('secrets', 'Secret', true),
  ServiceAccount: core('serviceaccounts', 'ServiceAccount', true),
  Endpoints: core('endpoints', 'Endpoints', true),
  Event: core('events', 'Event', true),
  EndpointSlice: builtin('discovery.k8s.io', 'v1', 'endpointslices', 'EndpointSlice', true),
  Lease: builtin('coordination.k8s.io', 'v1', 'leases', 'Lease', true),
  Deployment: builtin('apps', 'v1', 'deployments', 'Deployment', true),
  DaemonSet: builtin('apps', 'v1', 'daemonsets', 'DaemonSet', true),
  CustomResourceDefinition: builtin('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition', false),
  TokenReview: builtin('authentication.k8s.io', 'v1', 'tokenreviews', 'TokenReview', false),
  SelfSubjectAccessReview: builtin('authorization.k8s.io', 'v1', 'selfsubjectaccessreviews', 'SelfSubjectAccessReview', false),
  SubjectAccessReview: builtin('authorization.k8s.io', 'v1', 'subjectaccessreviews', 'SubjectAccessReview', false),
  AuthorizationPolicy: custom('security.istio.io', 'v1', 'authorizationpolicies', 'AuthorizationPolicy', ISTIO_CRDS),
  PeerAuthentication: custom('security.istio.io', 'v1', 'peerauthentications', 'PeerAuthentication', ISTIO_CRDS),
  VirtualService: custom('networking.istio.io', 'v1', 'virtualservices', 'VirtualService', ISTIO_CRDS),
  DestinationRule: custom('networking.istio.io', 'v1', 'destinationrules', 'DestinationRule', ISTIO_CRDS),
  Telemetry: custom('telemetry.istio.io', 'v1', 'telemetries', 'Telemetry', ISTIO_CRDS),
  Gateway: custom('gateway.networking.k8s.io', 'v1', 'gateways', 'Gateway', GATEWAY_CRDS),
  HTTPRoute: custom('gateway.networking.k8s.io', 'v1', 'httproutes', 'HTTPRoute', GATEWAY_CRDS),
} as const satisfies Record<string, KubeResourceType>;

export function apiVersionOf(type: KubeResourceType): string {
  return type.group === '' ? type.version : `${type.group}/${type.version}`;
}

/** "pods", "leases.coordination.k8s.io": how Kubernetes names a resource in messages and RBAC errors. */
export function qualifiedResource(type: Pick<KubeResourceType, 'group' | 'resource'>): string {
  return type.group === '' ? type.resource : `${type.resource}.${type.group}`;
}

/** The collection path: /api/v1/namespaces/ns/pods, /apis/g/v/gateways, ... */
export function collectionPath(type: KubeResourceType, namespace?: string): string {
  const base = type.group === '' ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
  const ns = type.namespaced && namespace !== undefined ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${base}${ns}/${type.resource}`;
}

export function objectPath(type: KubeResourceType, name: string, namespace?: string, subresource?: string): string {
  return `${collectionPath(type, namespace)}/${encodeURIComponent(name)}${subresource ? `/${subresource}` : ''}`;
}
