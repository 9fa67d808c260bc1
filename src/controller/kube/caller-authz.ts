/**
 * Whether a Kubernetes-authenticated token may act as the proxy its metadata claims to be, decided from the
 * TokenReview's user and the pod and Gateway store, as istiod's node authorizer does:
 * - a ztunnel's token must be the ztunnel ServiceAccount's (system namespace), bound to a pod (a projected token
 *   carries the pod's name and uid) that runs on the node the ztunnel claims;
 * - a waypoint's token must be the ServiceAccount of its Gateway (annotation gateway.istio.io/service-account, else
 *   the Gateway's name), in the Gateway's namespace.
 * Pure; the caller looks the objects up in the store at the time of each check (pods move, tokens do not).
 */
import type { Gateway, Pod } from '../../common/model/types.js';
import type { Caller } from '../tokens.js';

/** The user a TokenReview authenticated. */
export interface ReviewedUser {
  username: string;
  uid?: string;
  groups: string[];
  extra: Record<string, string[]>;
}

export const EXTRA_POD_NAME = 'authentication.kubernetes.io/pod-name';
export const EXTRA_POD_UID = 'authentication.kubernetes.io/pod-uid';
export const ANNOTATION_WAYPOINT_SERVICE_ACCOUNT = 'gateway.istio.io/service-account';
export const DEFAULT_ZTUNNEL_SERVICE_ACCOUNT = 'strait-ztunnel';

export interface CallerLookup {
  pod(namespace: string, name: string): Pod | undefined;
  gateway(namespace: string, name: string): Gateway | undefined;
}

export interface KubeAuthzOptions {
  systemNamespace: string;
  ztunnelServiceAccount: string;
  waypointGatewayClass: string;
}

/** Why a caller is refused: `reason` is the metric label. */
export interface CallerRefusal {
  reason: 'not_service_account' | 'wrong_account' | 'not_pod_bound' | 'unknown_pod' | 'pod_mismatch' | 'wrong_node' | 'unknown_waypoint' | 'wrong_kind';
  message: string;
}

/** "system:serviceaccount:<ns>:<name>" → its parts. */
export function serviceAccountOf(username: string): { namespace: string; name: string } | undefined {
  const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(username);
  return m ? { namespace: m[1]!, name: m[2]! } : undefined;
}

/** The ServiceAccount a waypoint Gateway's pods run as (Istio's rule). */
export function waypointServiceAccount(gw: { metadata: { name: string; annotations?: Record<string, string> } }): string {
  return gw.metadata.annotations?.[ANNOTATION_WAYPOINT_SERVICE_ACCOUNT] || gw.metadata.name;
}

function isTerminated(p: Pod): boolean {
  return p.status.phase === 'Succeeded' || p.status.phase === 'Failed';
}

/** Undefined when `user` may act as `caller`, else why not. */
export function refuseKubeCaller(caller: Caller, user: ReviewedUser, lookup: CallerLookup, o: KubeAuthzOptions): CallerRefusal | undefined {
  const sa = serviceAccountOf(user.username);
  if (!sa) return { reason: 'not_service_account', message: `the token is user "${user.username.slice(0, 200)}", not a ServiceAccount's: proxies authenticate with their pod's projected ServiceAccount token` };
  const who = `ServiceAccount ${sa.namespace}/${sa.name}`;
  if (caller.type === 'debug') return { reason: 'wrong_kind', message: `${who} may not use the debug credential (x-strait-debug takes the controller's bootstrap token: \`strait token --debug\` in the controller's pod)` };

  if (caller.type === 'node') {
    if (sa.namespace !== o.systemNamespace || sa.name !== o.ztunnelServiceAccount) {
      return { reason: 'wrong_account', message: `${who} may not connect as the ztunnel of node ${caller.node}: only ServiceAccount ${o.systemNamespace}/${o.ztunnelServiceAccount} may` };
    }
    const podName = user.extra[EXTRA_POD_NAME]?.[0];
    const podUid = user.extra[EXTRA_POD_UID]?.[0];
    if (!podName) return { reason: 'not_pod_bound', message: `the token of ${who} is not bound to a pod: mount a projected serviceAccountToken with the controller's audience (--token-audience) rather than a long-lived Secret token` };
    const pod = lookup.pod(sa.namespace, podName);
    if (!pod || isTerminated(pod)) {
      return { reason: 'unknown_pod', message: `the token is pod ${sa.namespace}/${podName}'s, which the controller does not know as running (yet): it retries; if this persists, check that the controller watches pods` };
    }
    if (podUid && pod.metadata.uid && pod.metadata.uid !== podUid) {
      return { reason: 'pod_mismatch', message: `the token is for pod ${sa.namespace}/${podName} with uid ${podUid}, but that pod now has uid ${pod.metadata.uid}: the pod was replaced and this token belongs to the old one` };
    }
    if (pod.spec.serviceAccountName !== sa.name) {
      return { reason: 'pod_mismatch', message: `pod ${sa.namespace}/${podName} runs as ServiceAccount "${pod.spec.serviceAccountName}", not "${sa.name}"` };
    }
    if (pod.spec.nodeName !== caller.node) {
      return { reason: 'wrong_node', message: `pod ${sa.namespace}/${podName} runs on node ${pod.spec.nodeName ?? '(none)'}, so its token may not connect as the ztunnel of node ${caller.node}` };
    }
    return undefined;
  }

  const gw = lookup.gateway(caller.namespace, caller.name);
  if (!gw || gw.spec.gatewayClassName !== o.waypointGatewayClass) {
    return { reason: 'unknown_waypoint', message: `no Gateway ${caller.namespace}/${caller.name} with gatewayClassName ${o.waypointGatewayClass} exists (yet): a waypoint connects only for an existing waypoint Gateway` };
  }
  const want = waypointServiceAccount(gw);
  if (sa.namespace !== caller.namespace || sa.name !== want) {
    return { reason: 'wrong_account', message: `${who} may not connect as waypoint ${caller.namespace}/${caller.name}: its ServiceAccount is ${caller.namespace}/${want}` };
  }
  return undefined;
}
