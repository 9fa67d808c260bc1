/**
 * The resource types the API server double serves: (group, versions, resource, kind, scope), whether they have a
 * status subresource, and whether they are custom resources (served only while their CRD exists, when asked).
 * Kept apart from src/common/kube's table on purpose: a wrong plural on either side shows up as a 404 in the tests.
 */

export interface KindDef {
  group: string;
  /** Served versions; the first is the preferred one. Objects are stored once per (group, resource). */
  versions: string[];
  resource: string;
  kind: string;
  singular: string;
  namespaced: boolean;
  /** Has a status subresource: the main resource ignores status changes, /status changes only status. */
  status: boolean;
  /** A custom resource (its CRD is `<resource>.<group>`). */
  crd: boolean;
  /** Virtual: create only, nothing stored (TokenReview, SubjectAccessReview). */
  virtual?: boolean;
  shortNames?: string[];
}

function def(group: string, versions: string[], resource: string, kind: string, namespaced: boolean, extra: Partial<KindDef> = {}): KindDef {
  return { group, versions, resource, kind, singular: kind.toLowerCase(), namespaced, status: false, crd: false, ...extra };
}

const ISTIO_SECURITY = ['v1', 'v1beta1'];
const ISTIO_NETWORKING = ['v1', 'v1beta1', 'v1alpha3'];
const ISTIO_TELEMETRY = ['v1', 'v1alpha1'];
const GATEWAY_API = ['v1', 'v1beta1'];
const CR = { crd: true, status: true } as const;

export const DEFAULT_KINDS: readonly KindDef[] = [
  def('', ['v1'], 'namespaces', 'Namespace', false, { status: true, shortNames: ['ns'] }),
  def('', ['v1'], 'nodes', 'Node', false, { status: true, shortNames: ['no'] }),
  def('', ['v1'], 'pods', 'Pod', true, { status: true, shortNames: ['po'] }),
  def('', ['v1'], 'services', 'Service', true, { status: true, shortNames: ['svc'] }),
  def('', ['v1'], 'configmaps', 'ConfigMap', true, { shortNames: ['cm'] }),
  def('', ['v1'], 'secrets', 'Secret', true),
  def('', ['v1'], 'serviceaccounts', 'ServiceAccount', true, { shortNames: ['sa'] }),
  def('', ['v1'], 'endpoints', 'Endpoints', true, { singular: 'endpoints', shortNames: ['ep'] }),
  def('', ['v1'], 'events', 'Event', true, { shortNames: ['ev'] }),
  def('discovery.k8s.io', ['v1'], 'endpointslices', 'EndpointSlice', true),
  def('coordination.k8s.io', ['v1'], 'leases', 'Lease', true),
  def('apps', ['v1'], 'deployments', 'Deployment', true, { status: true, shortNames: ['deploy'] }),
  def('apps', ['v1'], 'daemonsets', 'DaemonSet', true, { status: true, shortNames: ['ds'] }),
  def('apiextensions.k8s.io', ['v1'], 'customresourcedefinitions', 'CustomResourceDefinition', false, { status: true, shortNames: ['crd', 'crds'] }),
  def('rbac.authorization.k8s.io', ['v1'], 'roles', 'Role', true),
  def('rbac.authorization.k8s.io', ['v1'], 'rolebindings', 'RoleBinding', true),
  def('rbac.authorization.k8s.io', ['v1'], 'clusterroles', 'ClusterRole', false),
  def('rbac.authorization.k8s.io', ['v1'], 'clusterrolebindings', 'ClusterRoleBinding', false),
  def('authentication.k8s.io', ['v1'], 'tokenreviews', 'TokenReview', false, { virtual: true }),
  def('authorization.k8s.io', ['v1'], 'selfsubjectaccessreviews', 'SelfSubjectAccessReview', false, { virtual: true }),
  def('authorization.k8s.io', ['v1'], 'subjectaccessreviews', 'SubjectAccessReview', false, { virtual: true }),
  def('security.istio.io', ISTIO_SECURITY, 'authorizationpolicies', 'AuthorizationPolicy', true, CR),
  def('security.istio.io', ISTIO_SECURITY, 'peerauthentications', 'PeerAuthentication', true, { ...CR, shortNames: ['pa'] }),
  def('security.istio.io', ISTIO_SECURITY, 'requestauthentications', 'RequestAuthentication', true, { ...CR, shortNames: ['ra'] }),
  def('networking.istio.io', ISTIO_NETWORKING, 'virtualservices', 'VirtualService', true, { ...CR, shortNames: ['vs'] }),
  def('networking.istio.io', ISTIO_NETWORKING, 'destinationrules', 'DestinationRule', true, { ...CR, shortNames: ['dr'] }),
  def('networking.istio.io', ISTIO_NETWORKING, 'serviceentries', 'ServiceEntry', true, { ...CR, shortNames: ['se'] }),
  def('networking.istio.io', ISTIO_NETWORKING, 'gateways', 'Gateway', true, { ...CR, shortNames: ['gw'] }),
  def('networking.istio.io', ISTIO_NETWORKING, 'sidecars', 'Sidecar', true, CR),
  def('telemetry.istio.io', ISTIO_TELEMETRY, 'telemetries', 'Telemetry', true, { ...CR, singular: 'telemetry' }),
  def('gateway.networking.k8s.io', GATEWAY_API, 'gateways', 'Gateway', true, { ...CR, shortNames: ['gtw'] }),
  def('gateway.networking.k8s.io', GATEWAY_API, 'httproutes', 'HTTPRoute', true, CR),
  def('gateway.networking.k8s.io', GATEWAY_API, 'gatewayclasses', 'GatewayClass', false, { ...CR, shortNames: ['gc'] }),
  def('gateway.networking.k8s.io', ['v1', 'v1alpha2'], 'grpcroutes', 'GRPCRoute', true, CR),
  def('gateway.networking.k8s.io', ['v1beta1'], 'referencegrants', 'ReferenceGrant', true, { crd: true, shortNames: ['refgrant'] }),
];

/** Lookups over a set of kinds. */
export class KindRegistry {
  readonly #kinds: KindDef[] = [];

  constructor(kinds: readonly KindDef[]) {
    for (const k of kinds) this.add(k);
  }

  add(k: KindDef): void {
    const i = this.#kinds.findIndex((x) => x.group === k.group && x.resource === k.resource);
    if (i >= 0) this.#kinds[i] = k;
    else this.#kinds.push(k);
  }

  all(): readonly KindDef[] {
    return this.#kinds;
  }

  byResource(group: string, version: string, resource: string): KindDef | undefined {
    return this.#kinds.find((k) => k.group === group && k.resource === resource && k.versions.includes(version));
  }

  byKind(apiVersion: string, kind: string): KindDef | undefined {
    const { group, version } = splitApiVersion(apiVersion);
    return this.#kinds.find((k) => k.group === group && k.kind === kind && k.versions.includes(version));
  }

  groups(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const k of this.#kinds) {
      const vs = out.get(k.group) ?? [];
      for (const v of k.versions) if (!vs.includes(v)) vs.push(v);
      out.set(k.group, vs);
    }
    return out;
  }
}

export function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const i = apiVersion.indexOf('/');
  return i < 0 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

export function apiVersionFor(group: string, version: string): string {
  return group === '' ? version : `${group}/${version}`;
}

/** "pods", "leases.coordination.k8s.io" */
export function groupResource(k: Pick<KindDef, 'group' | 'resource'>): string {
  return k.group === '' ? k.resource : `${k.resource}.${k.group}`;
}
