import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../common/log.js';
import { XdsClient, type XdsClientLimits, type XdsSubscription } from '../../common/xds/index.js';
import type { XdsUpdate } from '../../common/xds/types.js';
import { TYPE_AUTHORIZATION, TYPE_SERVICE, TYPE_WORKLOAD } from '../../common/xds/resources.js';
import type { ProxyState } from './proxy-state.js';
import { checkAuthorization, checkService, checkWorkload } from './resource-checks.js';

/** Who connects: a node's ztunnel, or a waypoint (its Gateway's namespace and name). */
export type SyncedProxy = { kind: 'ztunnel'; node: string } | { kind: 'waypoint'; namespace: string; name: string };

/**
 * The proxy state's one writer: subscribes to workloads, services and (for a ztunnel) authorizations and applies
 * each response to the state, NACKing malformed ones (the state then keeps what it had). Nothing else calls
 * ProxyState.apply*. A waypoint adds its own subscriptions (routes and policies), each with its one writer.
 */
export function startStateSync(opts: {
  address: string; credentials: grpc.ChannelCredentials; state: ProxyState; logger: Logger;
  /** The bearer token, asked again at every (re)connect (a projected token file is re-read: tokenSource). */
  token: string | (() => string);
  /** A ztunnel's node name (kept for the ztunnel's callers), or the proxy. */
  node: string | SyncedProxy;
  channelOptions?: grpc.ChannelOptions;
  limits?: Partial<XdsClientLimits>;
  extraSubscriptions?: XdsSubscription[];
}): XdsClient {
  const { state } = opts;
  const apply = <T>(parse: (name: string, body: unknown) => T, into: (added: T[], removed: string[]) => void) => (u: XdsUpdate) => {
    const added = u.added.map((r) => parse(r.name, r.body));
    into(added, u.removed);
  };
  const proxy: SyncedProxy = typeof opts.node === 'string' ? { kind: 'ztunnel', node: opts.node } : opts.node;
  const token = typeof opts.token === 'string' ? (() => opts.token as string) : opts.token;
  const client = new XdsClient({
    address: opts.address,
    credentials: opts.credentials,
    metadata: (): Record<string, string> => proxy.kind === 'ztunnel'
      ? { authorization: `Bearer ${token()}`, 'x-strait-node': proxy.node }
      : { authorization: `Bearer ${token()}`, 'x-strait-waypoint': `${proxy.namespace}/${proxy.name}` },
    node: proxy.kind === 'ztunnel'
      ? { id: `ztunnel~${proxy.node}~${randomUUID()}`, kind: 'ztunnel', nodeName: proxy.node }
      : { id: `waypoint~${proxy.namespace}/${proxy.name}~${randomUUID()}`, kind: 'waypoint', nodeName: '', namespace: proxy.namespace, name: proxy.name },
    logger: opts.logger,
    ...(opts.channelOptions ? { channelOptions: opts.channelOptions } : {}),
    ...(opts.limits ? { limits: opts.limits } : {}),
    subscriptions: [
      { typeUrl: TYPE_WORKLOAD, apply: apply(checkWorkload, (a, r) => state.applyWorkloads(a, r)) },
      { typeUrl: TYPE_SERVICE, apply: apply(checkService, (a, r) => state.applyServices(a, r)) },
      ...(proxy.kind === 'ztunnel' ? [{
        typeUrl: TYPE_AUTHORIZATION,
        apply: (u: XdsUpdate) => state.applyPolicies(u.added.map((r) => ({ name: r.name, body: checkAuthorization(r.name, r.body) })), u.removed),
      }] : []),
      ...(opts.extraSubscriptions ?? []),
    ],
  });
  return client;
}
