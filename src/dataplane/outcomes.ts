/**
 * Why a connection was refused or failed: one vocabulary for the whole data path. Each outcome has one code, used
 * as is for the access log's `reason`, the `reason` label of `strait_<proxy>_connections_denied_total` and in
 * messages; what the destination answers on the HBONE CONNECT; what a SOCKS5 client on 15080 is told; whose fault
 * it is (whether another endpoint is worth trying); and a hint for the user. The table is mirrored in
 * docs/errors.md ("Connection outcomes"); a unit test keeps the two in step.
 */

/** Whose fault: `endpoint` — that endpoint (or its node) cannot be reached, try another and eject it; `local` — this
 * process (no other endpoint would do better); `other` — policy, identity or configuration (a retry would hide it). */
export type OutcomeBlame = 'endpoint' | 'local' | 'other';

export interface ConnectionOutcome {
  /** The HTTP status the destination answers on the CONNECT; absent when the outcome never crosses HBONE. */
  hboneStatus?: number;
  /** The SOCKS5 reply (RFC 1928) for a client of the explicit outbound port. */
  socks5: number;
  blame: OutcomeBlame;
  hint: string;
}

/** SOCKS5 reply codes (RFC 1928 §6) the table uses. */
const SOCKS = { GENERAL_FAILURE: 0x01, NOT_ALLOWED: 0x02, HOST_UNREACHABLE: 0x04, CONNECTION_REFUSED: 0x05 } as const;

export const CONNECTION_OUTCOMES = {
  unknown_source: {
    socks5: SOCKS.NOT_ALLOWED, blame: 'other',
    hint: 'The source address is not an enrolled pod: label its namespace (or the pod) istio.io/dataplane-mode=ambient, and check that the pod has that IP.',
  },
  source_not_local: {
    socks5: SOCKS.NOT_ALLOWED, blame: 'other',
    hint: 'The source pod runs on another node: a pod sends through the ztunnel of its own node.',
  },
  loopback_destination: {
    socks5: SOCKS.NOT_ALLOWED, blame: 'other',
    hint: 'A captured connection asked for a loopback or unspecified address (127.0.0.0/8, 0.0.0.0/8, ::1, ::): only a pod crafting packets sends that through its node, and passing it on would reach the node\'s own localhost services (the ztunnel\'s admin among them).',
  },
  no_port: {
    socks5: SOCKS.HOST_UNREACHABLE, blame: 'other',
    hint: 'The service has no such port: check the port the client uses against the Service\'s spec.ports.',
  },
  no_endpoint: {
    socks5: SOCKS.HOST_UNREACHABLE, blame: 'other',
    hint: 'The service has no ready endpoint for that port (or none could be reached): check its selector, the pods\' labels and readiness.',
  },
  waypoint_unready: {
    socks5: SOCKS.HOST_UNREACHABLE, blame: 'other',
    hint: 'The destination is bound to a waypoint (istio.io/use-waypoint) that has no address: deploy the waypoint, or remove the label.',
  },
  unknown_target: {
    hboneStatus: 400, socks5: SOCKS.HOST_UNREACHABLE, blame: 'other',
    hint: 'The destination ztunnel has no enrolled pod of its node at that address: the pod moved or left the mesh, or the sender\'s view is stale.',
  },
  waypoint_required: {
    hboneStatus: 401, socks5: SOCKS.NOT_ALLOWED, blame: 'other',
    hint: 'The target is bound to a waypoint: only that waypoint may connect to it directly.',
  },
  policy_denied: {
    hboneStatus: 403, socks5: SOCKS.NOT_ALLOWED, blame: 'other',
    hint: 'An AuthorizationPolicy denied the connection: the access-log line names the policy and rule (or the ALLOW policies that did not match).',
  },
  mtls_required: {
    socks5: SOCKS.NOT_ALLOWED, blame: 'other',
    hint: 'PeerAuthentication STRICT refuses plaintext: send from a pod in the mesh, or set PERMISSIVE for that workload or port.',
  },
  connect_failed: {
    hboneStatus: 503, socks5: SOCKS.CONNECTION_REFUSED, blame: 'endpoint',
    hint: 'The target did not accept the TCP connection: is the application listening on its pod address and that port?',
  },
  connect_timeout: {
    hboneStatus: 504, socks5: SOCKS.HOST_UNREACHABLE, blame: 'endpoint',
    hint: 'The target did not answer within --connect-timeout: check that it is up and that nothing drops the traffic.',
  },
  unreachable: {
    socks5: SOCKS.HOST_UNREACHABLE, blame: 'endpoint',
    hint: 'The destination outside the mesh is unreachable (no route, reset): check the address and the network.',
  },
  hbone_connect_failed: {
    socks5: SOCKS.HOST_UNREACHABLE, blame: 'endpoint',
    hint: 'The HBONE (mTLS) connection to the destination\'s port 15008 failed: is its ztunnel running, and does a NetworkPolicy allow 15008?',
  },
  hbone_connect_timeout: {
    socks5: SOCKS.HOST_UNREACHABLE, blame: 'endpoint',
    hint: 'The destination\'s port 15008 did not answer in time: is its ztunnel running, and does a NetworkPolicy allow 15008?',
  },
  hbone_refused: {
    socks5: SOCKS.GENERAL_FAILURE, blame: 'other',
    hint: 'The destination answered the CONNECT with a status this table does not list: its x-strait-reason (in the message) says why.',
  },
  peer_verify_failed: {
    socks5: SOCKS.NOT_ALLOWED, blame: 'other',
    hint: 'The peer\'s certificate does not chain to the mesh root or is not the expected SPIFFE id: a different mesh, or something in between.',
  },
  no_certificate: {
    socks5: SOCKS.GENERAL_FAILURE, blame: 'local',
    hint: 'No certificate for the source workload\'s identity yet: is the controller (CA) reachable? The ztunnel\'s log says why fetching it failed.',
  },
  fd_exhausted: {
    socks5: SOCKS.GENERAL_FAILURE, blame: 'local',
    hint: 'This proxy is out of file descriptors: raise its limit (ulimit -n) or reduce the load; /config_dump shows fileDescriptors.',
  },
  unexpected_error: {
    socks5: SOCKS.GENERAL_FAILURE, blame: 'other',
    hint: 'An error Strait does not classify: the message says what happened; please report it if it persists.',
  },
} as const satisfies Record<string, ConnectionOutcome>;

export type OutcomeCode = keyof typeof CONNECTION_OUTCOMES;

export function outcome(code: OutcomeCode): ConnectionOutcome {
  return CONNECTION_OUTCOMES[code];
}

const BY_STATUS = new Map<number, OutcomeCode>(
  (Object.entries(CONNECTION_OUTCOMES) as [OutcomeCode, ConnectionOutcome][]).flatMap(([code, o]) => (o.hboneStatus !== undefined ? [[o.hboneStatus, code]] : [])),
);

/** The outcome a destination's CONNECT answer stands for (hbone_refused for a status not in the table). */
export function outcomeOfStatus(status: number): OutcomeCode {
  return BY_STATUS.get(status) ?? 'hbone_refused';
}

/** Errno codes of a process out of file descriptors: the fault is here, not at the endpoint. */
export const FD_EXHAUSTION_CODES: readonly string[] = ['EMFILE', 'ENFILE'];
/** Errno codes of a peer that is not there (or went away during the handshake), refusals and timeouts aside. */
const UNREACHABLE_CODES: readonly string[] = ['ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'EPIPE'];

/** The errno `code`s along an error's `cause` chain (outermost first). */
export function errnoCodes(err: unknown): string[] {
  const out: string[] = [];
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) out.push(code);
  }
  return out;
}

/** What a failed connect (plain TCP, or HBONE through the pool) means, in the table's terms. */
export function outcomeOfConnectError(err: unknown): OutcomeCode {
  const errnos = errnoCodes(err);
  if (errnos.some((c) => FD_EXHAUSTION_CODES.includes(c))) return 'fd_exhausted';
  const code = (err as { code?: unknown } | undefined)?.code;
  switch (code) {
    case 'STRAIT_ERR_HBONE_REFUSED': {
      const status = (err as { status?: unknown }).status;
      return typeof status === 'number' ? outcomeOfStatus(status) : 'hbone_refused';
    }
    case 'STRAIT_ERR_HBONE_CONNECT': return 'hbone_connect_failed';
    case 'STRAIT_ERR_HBONE_CONNECT_TIMEOUT': return 'hbone_connect_timeout';
    case 'STRAIT_ERR_PEER_VERIFY': return 'peer_verify_failed';
  }
  if (errnos.includes('ECONNREFUSED')) return 'connect_failed';
  if (errnos.includes('ETIMEDOUT')) return 'connect_timeout';
  if (errnos.some((c) => UNREACHABLE_CODES.includes(c))) return 'unreachable';
  return 'unexpected_error';
}
