/**
 * Bodies of the xDS resources the controller sends (JSON inside DeltaDiscoveryResponse.resources[].body).
 * This file is the schema both sides agree on; bump nothing silently — add optional fields.
 */
import type { AuthzAction, Labels, MtlsMode } from '../model/types.js';
import type { ServiceRoutesResource, WaypointPolicyResource } from './waypoint-resources.js';

export const TYPE_WORKLOAD = 'type.strait.dev/Workload';
export const TYPE_SERVICE = 'type.strait.dev/Service';
export const TYPE_AUTHORIZATION = 'type.strait.dev/Authorization';
export const TYPE_ROUTE = 'type.strait.dev/Route';
export const TYPE_POLICY = 'type.strait.dev/Policy';

export const ZTUNNEL_TYPES = [TYPE_WORKLOAD, TYPE_SERVICE, TYPE_AUTHORIZATION] as const;
export const WAYPOINT_TYPES = [TYPE_WORKLOAD, TYPE_SERVICE, TYPE_ROUTE, TYPE_POLICY] as const;

/** A waypoint a workload or service is bound to. */
export interface WaypointRef {
  namespace: string;
  name: string;
  /** SPIFFE id the waypoint presents. */
  identity: string;
  /** Address the waypoint's HBONE listener answers on (port 15008); absent until the waypoint has one. */
  address?: string;
}

/** Resource name: "<namespace>/<pod name>". */
export interface WorkloadResource {
  uid: string;
  name: string;
  namespace: string;
  node: string;
  serviceAccount: string;
  /** SPIFFE id of the workload. */
  identity: string;
  addresses: string[];
  labels: Labels;
  /** HBONE: enrolled in the mesh (ambient). TCP: known but not captured; reached in plain TCP. */
  protocol: 'HBONE' | 'TCP';
  healthy: boolean;
  /** Canonical service name/revision (app.kubernetes.io/name | app | pod name; version label). */
  canonicalName: string;
  canonicalRevision: string;
  /**
   * The workload's name as Istio's metrics report it (`*_workload`): its Deployment's for a pod named by one (the
   * ReplicaSet suffixes "-<hash>-<id>" removed), else the pod's.
   */
  workloadName?: string;
  /** Named container ports, for services' named targetPorts. */
  namedPorts: Record<string, number>;
  /** Service keys ("ns/name") that select this workload. */
  services: string[];
  waypoint?: WaypointRef;
  /** Set on the pods of a waypoint Gateway: the waypoint they serve ("ns/name"). */
  waypointFor?: string;
}

export interface ServicePortResource {
  name?: string;
  port: number;
  /** Resolved per endpoint; the declared target (number or name) is kept here. */
  targetPort: number | string;
  appProtocol?: string;
}

export interface EndpointResource {
  /** Workload uid ("ns/pod"); "" for an address that is no workload (from a selector-less Service's EndpointSlice). */
  workload: string;
  address: string;
  /** service port -> workload port */
  ports: Record<string, number>;
  healthy: boolean;
}

/** Resource name: "<namespace>/<service name>". */
export interface ServiceResource {
  name: string;
  namespace: string;
  hostname: string;
  vips: string[];
  ports: ServicePortResource[];
  endpoints: EndpointResource[];
  waypoint?: WaypointRef;
}

/** L4 match of one rule, as the ztunnel enforces it (after ambient's handling of L7-only fields). */
export interface L4Match {
  principals?: string[];
  notPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  serviceAccounts?: string[];
  notServiceAccounts?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
  ports?: string[];
  notPorts?: string[];
  when?: { key: string; values?: string[]; notValues?: string[] }[];
}

/** Resource name: "authz/<namespace>/<policy name>" or "peerauthn/<namespace>/<name>". */
export type AuthorizationResource =
  | {
      type: 'authz';
      name: string;
      namespace: string;
      /** global: root namespace (with a selector: matching workloads of every namespace); namespace: no selector; workload: selector. */
      scope: 'global' | 'namespace' | 'workload';
      selector?: Labels;
      action: Exclude<AuthzAction, 'CUSTOM'>;
      /** Each rule is the AND of its `from`/`to`/`when` clauses; a rule of [] matches everything. */
      rules: L4Rule[];
      /** Rules dropped or relaxed because they use L7-only fields, with why (for config_dump). */
      notes: string[];
      /**
       * SPIFFE ids of the waypoints that enforce this whole policy (L7 rules included) with the caller's identity
       * (Strait's sidecar compatibility). A connection whose verified peer is one of them skips this policy; every
       * other peer is checked against it at L4 as usual. Absent: no waypoint enforces it.
       */
      waypointEnforced?: string[];
    }
  | {
      type: 'peerauthn';
      name: string;
      namespace: string;
      scope: 'global' | 'namespace' | 'workload';
      selector?: Labels;
      mode: MtlsMode;
      portLevel: Record<string, MtlsMode>;
    };

export interface L4Rule {
  /** OR across entries; absent = any source. */
  from?: L4Match[];
  /** OR across entries; absent = any destination port. */
  to?: L4Match[];
  when?: L4Match['when'];
}

/** Per-waypoint route table of one bound service (compiled; see waypoint-resources.ts). Resource name: "<ns>/<service>". */
export type RouteResource = ServiceRoutesResource;

/** Per-waypoint policy (compiled). Resource names: "backend/<ns>/<svc>", "authz/<ns>/<name>", "tracing/<ns>/<name>". */
export type PolicyResource = WaypointPolicyResource;

export type * from './waypoint-resources.js';
