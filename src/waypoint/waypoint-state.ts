/**
 * What a waypoint knows besides workloads and services: the route table of each service it serves, and its
 * backend, L7 authorization and tracing policies, all compiled by the controller (waypoint-resources.ts).
 * Invariants: only the xDS subscriptions made by `subscriptions()` write (one writer); a response whose bodies are
 * malformed throws before anything is written (NACK), so readers see either the old set or the new one in full.
 */
import { EventEmitter } from 'node:events';
import { TYPE_POLICY, TYPE_ROUTE } from '../common/xds/resources.js';
import type { XdsSubscription } from '../common/xds/index.js';
import type {
  BackendPolicyResource, L7PolicyResource, ServiceRoutesResource, TracingPolicyResource, WaypointPolicyResource,
} from '../common/xds/waypoint-resources.js';

export interface WaypointStateEvents {
  routes: [];
  policies: [];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function checkRoutes(name: string, body: unknown): ServiceRoutesResource {
  if (!isObject(body) || typeof body.service !== 'string' || !Array.isArray(body.rules) || !isObject(body.origin)) {
    throw new Error(`route table ${name}: not a compiled route table (service, origin, rules)`);
  }
  for (const [i, r] of (body.rules as unknown[]).entries()) {
    if (!isObject(r) || typeof r.name !== 'string' || !isObject(r.match) || !isObject(r.action) || typeof r.action.kind !== 'string') {
      throw new Error(`route table ${name}: rules[${i}] lacks name, match or action`);
    }
  }
  return body as unknown as ServiceRoutesResource;
}

function checkPolicy(name: string, body: unknown): WaypointPolicyResource {
  if (!isObject(body) || !['backend', 'authz', 'tracing'].includes(body.type as string)) {
    throw new Error(`policy ${name}: type must be backend, authz or tracing`);
  }
  if (body.type === 'authz' && (!Array.isArray(body.rules) || !isObject(body.scope) || typeof body.action !== 'string')) {
    throw new Error(`policy ${name}: an authz policy needs action, scope and rules`);
  }
  if (body.type === 'backend' && (typeof body.service !== 'string' || !isObject(body.policy) || !isObject(body.subsets))) {
    throw new Error(`policy ${name}: a backend policy needs service, policy and subsets`);
  }
  return body as unknown as WaypointPolicyResource;
}

export class WaypointState extends EventEmitter<WaypointStateEvents> {
  /** Service key ("ns/name") → its route table. */
  readonly routes = new Map<string, ServiceRoutesResource>();
  /** Resource name → policy. */
  readonly policies = new Map<string, WaypointPolicyResource>();
  private backendsByService = new Map<string, BackendPolicyResource>();
  private authz: L7PolicyResource[] = [];
  private tracingPolicies: TracingPolicyResource[] = [];
  /** Route resource name → service key (they are the same today; kept apart so a rename never leaks entries). */
  private readonly routeNames = new Map<string, string>();

  subscriptions(): XdsSubscription[] {
    return [
      {
        typeUrl: TYPE_ROUTE,
        apply: (u) => {
          const added = u.added.map((r) => ({ name: r.name, body: checkRoutes(r.name, r.body) }));
          for (const n of u.removed) {
            const key = this.routeNames.get(n);
            if (key !== undefined) this.routes.delete(key);
            this.routeNames.delete(n);
          }
          for (const { name, body } of added) {
            const old = this.routeNames.get(name);
            if (old !== undefined && old !== body.service) this.routes.delete(old);
            this.routeNames.set(name, body.service);
            this.routes.set(body.service, body);
          }
          this.emit('routes');
        },
      },
      {
        typeUrl: TYPE_POLICY,
        apply: (u) => {
          const added = u.added.map((r) => ({ name: r.name, body: checkPolicy(r.name, r.body) }));
          for (const n of u.removed) this.policies.delete(n);
          for (const { name, body } of added) this.policies.set(name, body);
          this.reindex();
          this.emit('policies');
        },
      },
    ];
  }

  private reindex(): void {
    const backends = new Map<string, BackendPolicyResource>();
    const authz: L7PolicyResource[] = [];
    const tracing: TracingPolicyResource[] = [];
    for (const p of [...this.policies.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, p]) => p)) {
      if (p.type === 'backend') backends.set(p.service, p);
      else if (p.type === 'authz') authz.push(p);
      else tracing.push(p);
    }
    this.backendsByService = backends;
    this.authz = authz;
    this.tracingPolicies = tracing;
  }

  routesFor(service: string): ServiceRoutesResource | undefined {
    return this.routes.get(service);
  }

  backendPolicy(service: string): BackendPolicyResource | undefined {
    return this.backendsByService.get(service);
  }

  authorizationPolicies(): readonly L7PolicyResource[] {
    return this.authz;
  }

  tracing(): readonly TracingPolicyResource[] {
    return this.tracingPolicies;
  }
}
