/**
 * What the waypoint knows about one HBONE tunnel a client opened to it (DESIGN §6): who the caller is (the
 * identity its mTLS proved, never a header), where it came from, and which service or workload it asked for.
 */
import type { ServiceResource, WorkloadResource } from '../../common/xds/resources.js';

export interface DownstreamContext {
  /** The caller's SPIFFE id from its client certificate (the source workload's, sent by its ztunnel). */
  peerIdentity: string;
  /** The original client address (the HBONE `forwarded` header, else the TCP peer). */
  sourceIp: string;
  /** The TCP peer of the tunnel (the source ztunnel). */
  peerAddress: string;
  /** The source workload, when the controller knows it by its address. */
  source?: WorkloadResource;
  /** The service the client addressed (by VIP), or absent for a workload address. */
  service?: ServiceResource;
  /** The workload the client addressed (a waypoint for workloads), or absent for a service. */
  workload?: WorkloadResource;
  /** The original destination: VIP (or pod address) and port, as the :authority of the tunnel. */
  destinationIp: string;
  destinationPort: number;
  /** Trace context and baggage the source ztunnel put on the tunnel. */
  traceparent?: string;
  baggage?: string;
  /** Id of the tunnel, for logs. */
  tunnelId: number;
}
