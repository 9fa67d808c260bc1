/**
 * The CustomResourceDefinitions a cluster needs before Strait can read its configuration (README "Install on
 * Kubernetes"). Strait ships no CRDs of its own: it reads Istio's and Gateway API's kinds, whose CRDs users install
 * from those projects' own releases (the versions and commands below). `strait check` and the controller's
 * Kubernetes source import this list; a test keeps it in step with the config model's kinds (validate.ts) and with
 * the RBAC of daemonset.yaml.
 */

/** Where a set of CRDs comes from: the release Strait is tested against and the command that installs it. */
export interface CrdSource {
  project: string;
  /** The release whose CRDs serve every version below (newer releases serve them too). */
  release: string;
  install: string;
}

export const CRD_SOURCES = {
  istio: {
    project: 'Istio',
    release: '1.28.0',
    install: 'kubectl apply --server-side -f https://raw.githubusercontent.com/istio/istio/1.28.0/manifests/charts/base/files/crd-all.gen.yaml',
  },
  'gateway-api': {
    project: 'Gateway API (standard channel)',
    release: 'v1.4.0',
    install: 'kubectl apply --server-side -f https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.4.0/standard-install.yaml',
  },
} as const satisfies Record<string, CrdSource>;

export type CrdSourceName = keyof typeof CRD_SOURCES;

export interface RequiredCrd {
  /** The CRD's metadata.name: `<plural>.<group>`, as `kubectl get crd NAME` takes it. */
  name: string;
  group: string;
  kind: string;
  plural: string;
  /** The version Strait lists and watches (it must be served). */
  version: string;
  source: CrdSourceName;
}

function crd(group: string, version: string, kind: string, plural: string, source: CrdSourceName): RequiredCrd {
  return { name: `${plural}.${group}`, group, kind, plural, version, source };
}

/** Every CRD whose objects the Kubernetes source lists and watches, in that order. */
export const REQUIRED_CRDS: readonly RequiredCrd[] = [
  crd('security.istio.io', 'v1', 'AuthorizationPolicy', 'authorizationpolicies', 'istio'),
  crd('security.istio.io', 'v1', 'PeerAuthentication', 'peerauthentications', 'istio'),
  crd('networking.istio.io', 'v1', 'VirtualService', 'virtualservices', 'istio'),
  crd('networking.istio.io', 'v1', 'DestinationRule', 'destinationrules', 'istio'),
  crd('telemetry.istio.io', 'v1', 'Telemetry', 'telemetries', 'istio'),
  crd('gateway.networking.k8s.io', 'v1', 'Gateway', 'gateways', 'gateway-api'),
  crd('gateway.networking.k8s.io', 'v1', 'HTTPRoute', 'httproutes', 'gateway-api'),
];

/** The fix for a missing CRD: the install command of the project it belongs to. */
export function crdInstallHint(c: RequiredCrd): string {
  const s = CRD_SOURCES[c.source];
  return `CRD ${c.name} (${c.kind}, ${s.project}) is not installed: ${s.install}`;
}
