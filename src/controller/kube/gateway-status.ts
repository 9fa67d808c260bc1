/**
 * A waypoint Gateway's status as istiod writes it: conditions Accepted and Programmed (Gateway API reasons, the
 * Gateway's generation as observedGeneration) and `addresses` = its Service's cluster IP once the API server has
 * assigned one. Pure. A condition's lastTransitionTime changes only when its status does, and conditions of other
 * types are kept, so computing the status again from the same facts gives the same object (no write, no flapping).
 */
import type { GatewayCondition, GatewayStatus, KubeGateway } from './waypoint-objects.js';
import { WAYPOINT_PORTS } from './waypoint-objects.js';

export interface WaypointFacts {
  /** The waypoint Service's cluster IP, once assigned. */
  clusterIP?: string;
  /** Set when the Deployment or Service could not be written: Programmed is False with reason Invalid. */
  failure?: string;
  /** The cluster's DNS suffix for Service host names. */
  clusterDomain?: string;
}

const OURS = new Set(['Accepted', 'Programmed']);

function condition(prev: GatewayCondition[] | undefined, c: Omit<GatewayCondition, 'lastTransitionTime'>, nowIso: string): GatewayCondition {
  const old = prev?.find((p) => p.type === c.type);
  return { ...c, lastTransitionTime: old && old.status === c.status && old.lastTransitionTime ? old.lastTransitionTime : nowIso };
}

export function waypointStatus(gw: KubeGateway, facts: WaypointFacts, nowIso: string): GatewayStatus {
  const prev = gw.status?.conditions;
  const generation = gw.metadata.generation;
  const og = generation !== undefined ? { observedGeneration: generation } : {};
  const host = `${gw.metadata.name}.${gw.metadata.namespace}.svc.${facts.clusterDomain ?? 'cluster.local'}:${WAYPOINT_PORTS.hbone}`;
  const accepted = condition(prev, { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'Resource accepted', ...og }, nowIso);
  const programmed = facts.failure !== undefined
    ? condition(prev, { type: 'Programmed', status: 'False', reason: 'Invalid', message: `Failed to deploy the waypoint: ${facts.failure}`, ...og }, nowIso)
    : facts.clusterIP
      ? condition(prev, { type: 'Programmed', status: 'True', reason: 'Programmed', message: `Resource programmed, assigned to service(s) ${host}`, ...og }, nowIso)
      : condition(prev, { type: 'Programmed', status: 'False', reason: 'AddressNotAssigned', message: `Assigned to service(s) ${host}, but the Service has no cluster IP yet`, ...og }, nowIso);
  const others = (prev ?? []).filter((c) => !OURS.has(c.type));
  const status: GatewayStatus = { ...(gw.status ?? {}), conditions: [accepted, programmed, ...others] };
  if (facts.clusterIP) status.addresses = [{ type: 'IPAddress', value: facts.clusterIP }];
  else if (facts.failure === undefined) delete status.addresses;
  return status;
}
