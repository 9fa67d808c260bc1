import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { StraitError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { XdsClient, type XdsClientLimits } from '../common/xds/index.js';
import type { XdsUpdate } from '../common/xds/types.js';
import {
  TYPE_AUTHORIZATION, TYPE_SERVICE, TYPE_WORKLOAD, type AuthorizationResource, type ServiceResource, type WorkloadResource,
} from '../common/xds/resources.js';
import type { ProxyState } from '../dataplane/state/proxy-state.js';

/** Rejects a malformed resource body: the whole response is NACKed with this message. */
function check(cond: unknown, type: string, name: string, what: string): asserts cond {
  if (!cond) throw new StraitError('STRAIT_ERR_XDS_PROTOCOL', `${type} ${name}: ${what}`);
}

const isStr = (v: unknown): v is string => typeof v === 'string';
const isStrArr = (v: unknown): v is string[] => Array.isArray(v) && v.every(isStr);

function asWorkload(name: string, b: unknown): WorkloadResource {
  const w = b as WorkloadResource;
  check(w && typeof w === 'object', 'Workload', name, 'body is not an object');
  check(isStr(w.uid) && w.uid === name, 'Workload', name, 'uid must equal the resource name');
  check(isStr(w.namespace) && isStr(w.identity) && w.identity.startsWith('spiffe://'), 'Workload', name, 'namespace and a spiffe:// identity are required');
  check(isStrArr(w.addresses), 'Workload', name, 'addresses must be a list of strings');
  check(w.protocol === 'HBONE' || w.protocol === 'TCP', 'Workload', name, `protocol "${String(w.protocol)}" is not HBONE or TCP`);
  return w;
}

function asService(name: string, b: unknown): ServiceResource {
  const s = b as ServiceResource;
  check(s && typeof s === 'object', 'Service', name, 'body is not an object');
  check(`${s.namespace}/${s.name}` === name, 'Service', name, 'namespace/name must equal the resource name');
  check(isStrArr(s.vips) && Array.isArray(s.ports) && Array.isArray(s.endpoints), 'Service', name, 'vips, ports and endpoints are required lists');
  return s;
}

function asAuthorization(name: string, b: unknown): AuthorizationResource {
  const a = b as AuthorizationResource;
  check(a && typeof a === 'object', 'Authorization', name, 'body is not an object');
  check(a.type === 'authz' || a.type === 'peerauthn', 'Authorization', name, `type "${String((a as { type?: unknown }).type)}" is not authz or peerauthn`);
  if (a.type === 'authz') check(Array.isArray(a.rules) && ['ALLOW', 'DENY', 'AUDIT'].includes(a.action), 'Authorization', name, 'rules and an ALLOW/DENY/AUDIT action are required');
  return a;
}

/**
 * The ztunnel's one writer of state: subscribes to workloads, services and authorizations and applies each
 * response to the state, NACKing malformed ones (the state then keeps what it had).
 */
export function startZtunnelXds(opts: {
  address: string; credentials: grpc.ChannelCredentials; node: string; token: string; state: ProxyState; logger: Logger;
  channelOptions?: grpc.ChannelOptions;
  limits?: Partial<XdsClientLimits>;
}): XdsClient {
  const { state } = opts;
  const apply = <T>(parse: (name: string, body: unknown) => T, into: (added: T[], removed: string[]) => void) => (u: XdsUpdate) => {
    const added = u.added.map((r) => parse(r.name, r.body));
    into(added, u.removed);
  };
  const client = new XdsClient({
    address: opts.address,
    credentials: opts.credentials,
    metadata: () => ({ authorization: `Bearer ${opts.token}`, 'x-strait-node': opts.node }),
    node: { id: `ztunnel~${opts.node}~${randomUUID()}`, kind: 'ztunnel', nodeName: opts.node },
    logger: opts.logger,
    ...(opts.channelOptions ? { channelOptions: opts.channelOptions } : {}),
    ...(opts.limits ? { limits: opts.limits } : {}),
    subscriptions: [
      { typeUrl: TYPE_WORKLOAD, apply: apply(asWorkload, (a, r) => state.applyWorkloads(a, r)) },
      { typeUrl: TYPE_SERVICE, apply: apply(asService, (a, r) => state.applyServices(a, r)) },
      {
        typeUrl: TYPE_AUTHORIZATION,
        apply: (u) => state.applyPolicies(u.added.map((r) => ({ name: r.name, body: asAuthorization(r.name, r.body) })), u.removed),
      },
    ],
  });
  return client;
}
