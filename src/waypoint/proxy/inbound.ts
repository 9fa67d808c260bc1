/**
 * The waypoint's side of HBONE (DESIGN §6): a CONNECT from a source ztunnel, carrying the caller's identity, for a
 * service VIP:port (or a workload address:port) bound to this waypoint. It is accepted, its first bytes say which
 * protocol it carries, and it goes to the HTTP servers or, for anything else, is relayed as TCP to an endpoint
 * under L4 policy.
 *
 * Invariants: a tunnel is accepted only for a target bound to this waypoint (else 403 naming why); the caller's
 * identity is the one its certificate proved; every tunnel is tracked until it closes.
 */
import type { Duplex } from 'node:stream';
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { formatHostPort } from '../../common/net.js';
import type { ServiceResource, WorkloadResource } from '../../common/xds/resources.js';
import type { ConnectionTracker } from '../../dataplane/connections.js';
import type { ProxyStateView } from '../../dataplane/state/proxy-state.js';
import type { HboneInboundRequest } from '../../hbone/index.js';
import { authorizeRequest } from '../authz-l7.js';
import { detectProtocol } from '../detect.js';
import type { Backends } from '../upstream/backends.js';
import type { UpstreamClient } from '../upstream/upstream-client.js';
import type { DownstreamContext } from './downstream.js';
import type { HttpServers } from './http-servers.js';
import type { WaypointState } from '../waypoint-state.js';

/** A client that sends nothing this long after its tunnel opened is taken to speak a server-first protocol (TCP). */
export const PROTOCOL_DETECTION_TIMEOUT_MS = 1_000;

const TCP_APP_PROTOCOLS = new Set(['tcp', 'mysql', 'mongo', 'redis', 'tls', 'https']);

export interface WaypointInboundOptions {
  namespace: string;
  name: string;
  state: ProxyStateView;
  waypoint: WaypointState;
  servers: HttpServers;
  backends: Backends;
  upstream: UpstreamClient;
  tracker: ConnectionTracker;
  log: Logger;
}

export class WaypointInbound {
  private nextTunnel = 1;
  /** Tunnels open now, all protocols. */
  private readonly live = new Set<Duplex>();

  constructor(private readonly o: WaypointInboundOptions) {}

  get open(): number {
    return this.live.size;
  }

  handle(req: HboneInboundRequest): void {
    const target = this.target(req.targetHost);
    if ('refuse' in target) {
      req.reject(403, target.refuse);
      return;
    }
    const stream = req.accept();
    this.live.add(stream);
    stream.once('close', () => this.live.delete(stream));
    stream.on('error', () => undefined);
    const sourceIp = req.forwardedFor ?? req.remoteAddress;
    const ctx: DownstreamContext = {
      peerIdentity: req.peerIdentity, sourceIp, peerAddress: req.remoteAddress,
      ...(this.o.state.workloadByAddress(sourceIp) ? { source: this.o.state.workloadByAddress(sourceIp)! } : {}),
      ...(target.service ? { service: target.service } : {}),
      ...(target.workload ? { workload: target.workload } : {}),
      destinationIp: req.targetHost, destinationPort: req.targetPort,
      ...(req.traceparent ? { traceparent: req.traceparent } : {}),
      ...(req.baggage ? { baggage: req.baggage } : {}),
      tunnelId: this.nextTunnel++,
    };
    const declared = target.service?.ports.find((p) => p.port === req.targetPort)?.appProtocol?.toLowerCase();
    if (declared && TCP_APP_PROTOCOLS.has(declared)) {
      void this.tcp(stream, ctx, undefined);
      return;
    }
    void detectProtocol(stream, PROTOCOL_DETECTION_TIMEOUT_MS).then((d) => {
      if (d.protocol === 'h2' && !d.endedWith) this.o.servers.serveH2(stream, ctx);
      else if (d.protocol === 'http1' && !d.endedWith) this.o.servers.serveHttp1(stream, ctx);
      else void this.tcp(stream, ctx, d.endedWith);
    });
  }

  private target(host: string): { service?: ServiceResource; workload?: WorkloadResource } | { refuse: string } {
    const ours = (wp: { namespace: string; name: string } | undefined) => wp?.namespace === this.o.namespace && wp.name === this.o.name;
    const svc = this.o.state.serviceByVip(host);
    if (svc) {
      if (ours(svc.waypoint)) return { service: svc };
      return { refuse: `service ${svc.namespace}/${svc.name} is not bound to waypoint ${this.o.namespace}/${this.o.name}` };
    }
    const w = this.o.state.workloadByAddress(host);
    if (w) {
      if (ours(w.waypoint)) return { workload: w };
      return { refuse: `workload ${w.uid} is not bound to waypoint ${this.o.namespace}/${this.o.name}` };
    }
    return { refuse: `${host} is neither a service VIP nor a workload address this waypoint knows` };
  }

  /** Anything but HTTP: L4 policy, then a byte relay to one endpoint of the service. */
  private async tcp(client: Duplex, ctx: DownstreamContext, head: Buffer | undefined): Promise<void> {
    const dstAddress = formatHostPort({ host: ctx.destinationIp, port: ctx.destinationPort });
    const base = { direction: 'inbound' as const, srcAddress: ctx.sourceIp, dstAddress, ...(ctx.source ? { src: ctx.source } : {}), srcIdentity: ctx.peerIdentity, ...(ctx.service ? { dstService: ctx.service } : {}) };
    const verdict = authorizeRequest(this.o.waypoint.authorizationPolicies(), {
      ...(ctx.service ? { service: `${ctx.service.namespace}/${ctx.service.name}` } : {}),
      ...(ctx.workload ? { destinationWorkload: { namespace: ctx.workload.namespace, labels: ctx.workload.labels } } : {}),
      ...(ctx.peerIdentity.startsWith('spiffe://') ? { sourcePrincipal: ctx.peerIdentity.slice('spiffe://'.length) } : {}),
      sourceIp: ctx.sourceIp, remoteIp: ctx.sourceIp, method: '', path: '/', host: '', port: ctx.destinationPort, header: () => undefined, tcp: true,
    });
    if (!verdict.allowed) {
      this.o.tracker.refused(base, `denied by ${verdict.policy ?? 'policy'}: ${verdict.reason}`, 'policy_denied');
      client.destroy();
      return;
    }
    let endpoint: { address: string; port: number; identity: string; plaintext: boolean } | undefined;
    if (ctx.workload) {
      endpoint = { address: ctx.destinationIp, port: ctx.destinationPort, identity: ctx.workload.identity, plaintext: ctx.workload.protocol !== 'HBONE' };
    } else if (ctx.service) {
      const cl = this.o.backends.cluster(`${ctx.service.namespace}/${ctx.service.name}`, ctx.destinationPort, undefined);
      if (!('kind' in cl)) {
        const ep = this.o.backends.pick(cl, this.o.backends.endpoints(cl).usable);
        if (ep) endpoint = { address: ep.address, port: ep.port, identity: ep.identity, plaintext: ep.plaintext };
      }
    }
    if (!endpoint) {
      this.o.tracker.refused(base, `no ready endpoint for ${dstAddress}`, 'no_endpoint');
      client.destroy();
      return;
    }
    let upstream: Duplex;
    try {
      upstream = await this.o.upstream.openTunnel(endpoint, { forwarded: `for=${ctx.sourceIp.includes(':') ? `"[${ctx.sourceIp}]"` : ctx.sourceIp}` });
    } catch (err) {
      this.o.tracker.refused(base, errorMessage(err), 'connect_failed');
      client.destroy();
      return;
    }
    if (head && head.length > 0) upstream.write(head);
    if (head) upstream.end();
    await this.o.tracker.proxy(client, upstream, { ...base, dstIdentity: endpoint.identity, mtls: !endpoint.plaintext });
  }
}
