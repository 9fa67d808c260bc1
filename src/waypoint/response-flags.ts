/**
 * The Envoy response flags the waypoint sets (access log `response_flags`, metric label `response_flags`), so that
 * what Istio users grep for and chart means the same here. The table is mirrored in README.md ("Response flags"); a
 * unit test keeps the two in step.
 *
 * An L7 authorization denial has no flag, as in Envoy: it is a 403 "RBAC: access denied" whose response code details
 * say `rbac_access_denied_matched_policy[...]` (authz-l7.ts `AuthzVerdict.details`).
 */

export interface ResponseFlagInfo {
  /** Envoy's long name (access log `%RESPONSE_FLAGS_LONG%`). */
  name: string;
  /** The status the waypoint answers with when it sets the flag; undefined when it depends (or no response). */
  status?: number;
  meaning: string;
}

/** In Envoy's order (its flags are printed in this order, comma-separated). */
export const RESPONSE_FLAGS = {
  UH: { name: 'NoHealthyUpstream', status: 503, meaning: 'No endpoint of the backend could take the request: none ready, or all ejected by outlier detection.' },
  UT: { name: 'UpstreamRequestTimeout', status: 504, meaning: 'The route timeout or the last per-try timeout expired before the backend answered.' },
  LR: { name: 'LocalReset', status: 503, meaning: 'The waypoint reset the upstream stream itself (for example while draining).' },
  UR: { name: 'UpstreamRemoteReset', status: 503, meaning: 'The backend (or its ztunnel) reset the stream before answering.' },
  UF: { name: 'UpstreamConnectionFailure', status: 503, meaning: 'The connection to the endpoint (HBONE to its ztunnel) could not be made.' },
  UC: { name: 'UpstreamConnectionTermination', status: 503, meaning: 'The upstream connection closed before the response was complete.' },
  UO: { name: 'UpstreamOverflow', status: 503, meaning: 'A connection-pool limit was reached (maxRequests, maxPendingRequests, a pending request timed out); with a backend response, maxRetries stopped a retry.' },
  NR: { name: 'NoRouteFound', status: 404, meaning: 'No rule of the service\'s route table matched the request.' },
  DI: { name: 'DelayInjected', meaning: 'A fault-injection delay was applied; the request then went on.' },
  FI: { name: 'FaultInjected', meaning: 'A fault-injection abort answered the request with the configured status.' },
  DC: { name: 'DownstreamConnectionTermination', meaning: 'The client went away before the response was complete.' },
  URX: { name: 'UpstreamRetryLimitExceeded', meaning: 'The request was retried as many times as the route allows and the last attempt failed too; its response (or 503) is returned.' },
  SI: { name: 'StreamIdleTimeout', meaning: 'The stream was idle longer than the idle timeout (408 before the response started, 504 after).' },
  DPE: { name: 'DownstreamProtocolError', status: 400, meaning: 'The request broke HTTP (bad header bytes, conflicting Content-Length / Transfer-Encoding, oversized headers, a path that cannot be normalised); it never reached a backend.' },
  UPE: { name: 'UpstreamProtocolError', status: 502, meaning: 'The backend\'s response broke HTTP.' },
  NC: { name: 'NoClusterFound', status: 503, meaning: 'The route names a backend the waypoint has no configuration for (a missing service).' },
} as const satisfies Record<string, ResponseFlagInfo>;

export type ResponseFlag = keyof typeof RESPONSE_FLAGS;

/** Printing flags (Envoy's order, comma-joined, "-" when none) is telemetry/response-flags.ts's formatResponseFlags. */
export { formatResponseFlags } from './telemetry/response-flags.js';
