/**
 * One error type for the whole project. Every StraitError carries a stable `code` from ERROR_CODES;
 * the message says what went wrong and what to check. Impossible states use code STRAIT_ERR_BUG and a
 * message starting with "BUG:". The table below is mirrored in docs/errors.md; a unit test keeps the two in step.
 */
export const ERROR_CODES = {
  STRAIT_ERR_BUG: 'An internal invariant was broken. Please report it with the log line.',
  STRAIT_ERR_CONFIG: 'A command-line flag or STRAIT_* environment variable is missing or invalid.',
  STRAIT_ERR_MANIFEST_PARSE: 'A YAML document could not be parsed at all.',
  STRAIT_ERR_MANIFEST_INVALID: 'A configuration object failed validation; it was rejected and the last good version kept.',
  STRAIT_ERR_MANIFEST_SOURCE: 'A configuration file or directory could not be read.',
  STRAIT_ERR_MANIFEST_IGNORED: 'A warning: an Istio or Gateway API kind Strait does not implement (ServiceEntry, Sidecar, EnvoyFilter, ...) was ignored; the message says what it would have done.',
  STRAIT_ERR_CONFIG_NOT_ENFORCED: 'A warning: a loaded object (or part of one) is enforced by nothing, e.g. L7 routing or policy with no waypoint to apply it; the message says what happens instead and what to do.',
  STRAIT_ERR_SPIFFE_ID: 'A SPIFFE id is malformed (expected spiffe://<trust-domain>/ns/<ns>/sa/<sa>).',
  STRAIT_ERR_CA_ROOT: 'The CA root or intermediate could not be loaded or generated.',
  STRAIT_ERR_CSR_INVALID: 'A certificate signing request could not be parsed or its signature does not verify.',
  STRAIT_ERR_CERT_INVALID: 'A certificate could not be parsed or is not usable.',
  STRAIT_ERR_PEER_VERIFY: 'A peer certificate does not chain to the mesh root or does not carry the expected SPIFFE id.',
  STRAIT_ERR_CERT_ROTATION: 'Obtaining or renewing a workload certificate failed (the CA was unreachable, or refused it, e.g. RESOURCE_EXHAUSTED over the node\'s certificate rate); it is retried with backoff, and the current one stays in use until it expires.',
  STRAIT_ERR_CERT_EXPIRED: 'No valid (unexpired) certificate is available for an identity.',
  STRAIT_ERR_AUTH_TOKEN: 'A proxy presented a missing or wrong token: locally its bootstrap token; on Kubernetes a projected ServiceAccount token that the TokenReview did not authenticate, not for the controller\'s audience, or expired.',
  STRAIT_ERR_IDENTITY_DENIED: 'A proxy may not act as what it claims or obtain what it asked for: an identity with no pod on its node, or (on Kubernetes) a token of another ServiceAccount, of a pod on another node, or not bound to a pod.',
  STRAIT_ERR_XDS_PROTOCOL: 'An xDS peer sent a message that breaks the protocol (unknown type, bad nonce, malformed body).',
  STRAIT_ERR_XDS_CONNECT: 'The controller could not be reached over xDS.',
  STRAIT_ERR_XDS_LIMIT: 'An xDS peer went over a limit (streams per credential or connection, names per request or stream, name length, initial versions, message size, resources per response) or stalled; only that stream was ended or that response NACKed. The message names the flag that raises the limit.',
  STRAIT_ERR_LISTEN: 'A listener could not bind its address (port in use or address not local).',
  STRAIT_ERR_LOCAL_MESH: 'What the manifests ask for cannot run as a local mesh (`strait up`, `strait demo`), or one of its processes did not start: a pod address off loopback, a child that exited or never got ready. The message names the object or component and the fix.',
  STRAIT_ERR_LAB: 'A lab (`strait lab`) cannot start or was used wrongly: not root, another lab running on the state file, what the manifests ask for cannot run in the lab (an address outside 127.0.0.0/8 and 198.18.0.0/15, a reserved lab address, too many nodes), a command that builds it (ip, iptables) failed, or no lab is running. The message names the object or command and the fix.',
  STRAIT_ERR_SOCKS5: 'A client on the explicit outbound port (15080) broke the SOCKS5 handshake: wrong version, no acceptable method, unsupported command or address type, malformed bytes, or a timeout.',
  STRAIT_ERR_CAPTURE: 'Traffic capture failed: the original destination of a redirected connection could not be read (not redirected, or the native addon is not built), or a socket could not be marked, or a capture script (scripts/iptables) failed.',
  STRAIT_ERR_HBONE_CONNECT: 'An HBONE (mTLS HTTP/2 CONNECT) connection to a peer failed: refused, unreachable, TLS handshake rejected, or closed before answering.',
  STRAIT_ERR_HBONE_CONNECT_TIMEOUT: 'An HBONE connection or its CONNECT request got no answer in time (check that HBONE port 15008 is reachable).',
  STRAIT_ERR_HBONE_REFUSED: 'An HBONE peer answered CONNECT with a non-200 status (400 unknown target, 401/403 policy, 503 unreachable, 504 timeout).',
  STRAIT_ERR_STATUS: '`strait status` found nothing to ask: no local mesh state file (or a stale one), no controller pod in the cluster, or a controller admin endpoint that does not answer /debug/proxy-status. The message says where it looked and what to pass.',
  STRAIT_ERR_WAYPOINT_WAIT: '`strait waypoint apply --wait` gave up: the waypoint Gateway was not Programmed (deployed with an address by the controller) within --timeout, or it was deleted meanwhile. The message shows its conditions; `strait status` shows whether the controller runs.',
  STRAIT_ERR_KUBE: 'A request to the Kubernetes API server failed: unreachable, credentials rejected (401), a permission missing (403: the message names the verb and resource, and daemonset.yaml\'s RBAC grants it), a kind not served (404: the message names the CRD to install), a conflict (409), a watch too old (410) or a server error. The error carries the HTTP status and the Kubernetes reason.',
  STRAIT_ERR_INSTALL: '`strait install` or `strait uninstall` could not render or apply the manifests (daemonset.yaml missing or malformed, a bad --image, an object the API server refused), or the node clean-up did not finish on every node within --timeout. The message names the object or the nodes and the fix.',
  STRAIT_ERR_TOKEN_REVIEW: 'A proxy\'s Kubernetes token could not be reviewed now (the API server did not answer, or the controller has too many reviews in flight); the proxy is told UNAVAILABLE and retries.',
  STRAIT_ERR_WORKER: 'A data-plane worker (--workers) failed to start, stopped answering its primary, or exited; the primary starts it again (strait_worker_restarts_total) and says why in its log.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class StraitError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StraitError';
    this.code = code;
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message };
  }
}

/** An impossible state: fail loudly, the message starts with "BUG:". */
export function bug(message: string): StraitError {
  return new StraitError('STRAIT_ERR_BUG', `BUG: ${message}`);
}

export function isStraitError(err: unknown, code?: ErrorCode): err is StraitError {
  return err instanceof StraitError && (code === undefined || err.code === code);
}

/** A short human string for any thrown value. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
