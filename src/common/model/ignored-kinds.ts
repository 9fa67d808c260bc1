/**
 * Kinds of the Istio and Gateway API groups that Strait does not implement. Istio users keep them next to the
 * kinds Strait reads, so a document of one of these kinds is a warning ("not supported by Strait (ignored)") with
 * what it would have done, never an error that fails the directory. A kind of these groups that is in neither
 * this table nor the supported ones is an error: most likely a misspelt kind, which must not pass quietly.
 */

/** API group → kind → what the object is for and what happens instead in Strait. */
const IGNORED: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  'networking.istio.io': {
    ServiceEntry: 'Strait\'s registry holds only Services, Pods and EndpointSlices (give a Service without a selector a slice to name outside addresses); connections to destinations outside the mesh pass through as plain TCP',
    Gateway: 'Istio ingress and egress gateways do not exist in Strait (a waypoint is a gateway.networking.k8s.io Gateway with gatewayClassName istio-waypoint)',
    Sidecar: 'it configures sidecar proxies, and ambient mode has none',
    EnvoyFilter: 'it patches Envoy configuration, and Strait\'s proxies are not Envoy',
    WorkloadEntry: 'workloads outside Kubernetes (VMs) are not part of a Strait mesh; only Pods are',
    WorkloadGroup: 'workloads outside Kubernetes (VMs) are not part of a Strait mesh; only Pods are',
    ProxyConfig: 'Strait\'s proxies take their settings from their command-line flags',
  },
  'security.istio.io': {
    RequestAuthentication: 'Strait does not validate JWTs: requests carry no request principal, so rules naming requestPrincipals never match',
  },
  'extensions.istio.io': {
    WasmPlugin: 'Strait\'s proxies run no Wasm modules',
  },
  'install.istio.io': {
    IstioOperator: 'it installs Istio; Strait is installed with its own manifests',
  },
  'gateway.networking.k8s.io': {
    GatewayClass: 'Strait knows the class istio-waypoint by name and reads no GatewayClass objects',
    GRPCRoute: 'Strait routes with HTTPRoute only; gRPC services get no routing from it',
    TCPRoute: 'Strait has no TCP routing beyond a Service\'s own endpoints',
    TLSRoute: 'Strait has no TLS routing beyond a Service\'s own endpoints',
    UDPRoute: 'Strait carries no UDP',
    ReferenceGrant: 'Strait reads no ReferenceGrants: an HTTPRoute backendRef or mirror to another namespace is refused (status ResolvedRefs False, RefNotPermitted)',
    BackendTLSPolicy: 'Strait does not originate TLS to backends (the mesh\'s own mTLS needs no policy)',
    BackendLBPolicy: 'Strait does not read load-balancing policies from Gateway API (use a DestinationRule)',
    ListenerSet: 'Strait runs no ingress gateways',
  },
  'gateway.networking.x-k8s.io': {
    XListenerSet: 'Strait runs no ingress gateways',
    XBackendTrafficPolicy: 'Strait does not implement experimental Gateway API policies',
    XMesh: 'Strait does not implement experimental Gateway API kinds',
  },
};

export function apiGroupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}

/** Why a kind is ignored, when it is a known Istio or Gateway API kind Strait does not implement. */
export function ignoredKindReason(apiVersion: string, kind: string): string | undefined {
  return Object.prototype.hasOwnProperty.call(IGNORED[apiGroupOf(apiVersion)] ?? {}, kind) ? IGNORED[apiGroupOf(apiVersion)]![kind] : undefined;
}

/** Whether the group is one of Istio's or Gateway API's, whose kinds users keep in one directory. */
export function isMeshApiGroup(group: string): boolean {
  return Object.prototype.hasOwnProperty.call(IGNORED, group) || group === 'telemetry.istio.io';
}

/** The kinds of `group` Strait knows it ignores, for messages. */
export function ignoredKindsOf(group: string): string[] {
  return Object.keys(IGNORED[group] ?? {});
}
