/**
 * What the Kubernetes source lists and watches: the core kinds the config model reads (and EndpointSlices, the
 * endpoints of Services without a selector), the mesh-config ConfigMap
 * `istio` in the root namespace (only that one: other ConfigMaps are none of Strait's business), and the Istio and
 * Gateway API kinds of the model. Custom kinds are optional (their CRD may be missing) and are tried in the
 * versions the model accepts, newest first, so a cluster with only older CRD versions works too.
 */
import { KUBE_TYPES, type KubeResourceType } from '../../../common/kube/index.js';
import { MESH_CONFIGMAP_NAME } from '../../../common/model/validate-mesh-config.js';

export interface WatchedKind {
  /** Stable id for logs, metrics and problem scopes ("pods", "authorizationpolicies.security.istio.io"). */
  id: string;
  /** The same resource in the versions to try, in order. */
  types: KubeResourceType[];
  /** A missing CRD is a warning, not a failure. */
  optional: boolean;
  namespace?: string;
  fieldSelector?: string;
}

function versions(t: KubeResourceType, vs: string[]): KubeResourceType[] {
  return vs.map((version) => ({ ...t, version }));
}

const ISTIO_SECURITY = ['v1', 'v1beta1'];
const ISTIO_NETWORKING = ['v1', 'v1beta1', 'v1alpha3'];
const ISTIO_TELEMETRY = ['v1', 'v1alpha1'];
const GATEWAY_API = ['v1', 'v1beta1'];

export function watchedKinds(rootNamespace: string): WatchedKind[] {
  const core = (t: KubeResourceType, extra: Partial<WatchedKind> = {}): WatchedKind => ({ id: t.resource, types: [t], optional: false, ...extra });
  const custom = (t: KubeResourceType, vs: string[]): WatchedKind => ({ id: `${t.resource}.${t.group}`, types: versions(t, vs), optional: true });
  return [
    core(KUBE_TYPES.Namespace),
    core(KUBE_TYPES.Node),
    core(KUBE_TYPES.Pod),
    core(KUBE_TYPES.Service),
    core(KUBE_TYPES.EndpointSlice),
    core(KUBE_TYPES.ConfigMap, { id: `configmaps/${rootNamespace}/${MESH_CONFIGMAP_NAME}`, namespace: rootNamespace, fieldSelector: `metadata.name=${MESH_CONFIGMAP_NAME}` }),
    custom(KUBE_TYPES.AuthorizationPolicy, ISTIO_SECURITY),
    custom(KUBE_TYPES.PeerAuthentication, ISTIO_SECURITY),
    custom(KUBE_TYPES.VirtualService, ISTIO_NETWORKING),
    custom(KUBE_TYPES.DestinationRule, ISTIO_NETWORKING),
    custom(KUBE_TYPES.Telemetry, ISTIO_TELEMETRY),
    custom(KUBE_TYPES.Gateway, GATEWAY_API),
    custom(KUBE_TYPES.HTTPRoute, GATEWAY_API),
  ];
}
