import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../common/log.js';
import { XdsClient, type XdsClientLimits } from '../../common/xds/index.js';
import type { XdsUpdate } from '../../common/xds/types.js';
import { TYPE_AUTHORIZATION, TYPE_SERVICE, TYPE_WORKLOAD } from '../../common/xds/resources.js';
import type { ProxyState } from './proxy-state.js';
import { checkAuthorization, checkService, checkWorkload } from './resource-checks.js';

/**
 * The proxy state's one writer: subscribes to workloads, services and authorizations and applies each response
 * to the state, NACKing malformed ones (the state then keeps what it had). Nothing else calls ProxyState.apply*.
 */
export function startStateSync(opts: {
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
      { typeUrl: TYPE_WORKLOAD, apply: apply(checkWorkload, (a, r) => state.applyWorkloads(a, r)) },
      { typeUrl: TYPE_SERVICE, apply: apply(checkService, (a, r) => state.applyServices(a, r)) },
      {
        typeUrl: TYPE_AUTHORIZATION,
        apply: (u) => state.applyPolicies(u.added.map((r) => ({ name: r.name, body: checkAuthorization(r.name, r.body) })), u.removed),
      },
    ],
  });
  return client;
}
