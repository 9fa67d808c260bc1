/**
 * Limits of the controller's gRPC listener (15012) that are not per xDS stream: connections, calls per connection,
 * and what one credential may ask of the CA. Defaults are sized for nodes of up to ~110 pods (Kubernetes' default
 * maxPods), each pod possibly with its own service account; each limit names the flag that raises it.
 */
export interface DoorLimits {
  /** A connection that carries no call for this long is closed (grpc.max_connection_idle_ms). */
  connectionIdleMs: number;
  /** Calls (HTTP/2 streams) open at once on one connection, xDS and CA together (SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxCallsPerConnection: number;
  /** CreateCertificate calls open at once per credential. */
  caMaxCallsPerCredential: number;
  /** Certificates one credential may obtain in a burst (the token bucket's size). */
  caCertBurst: number;
  /** Certificates one credential may obtain per minute once its burst is spent (the bucket's refill rate). */
  caCertsPerMinute: number;
}

export const DEFAULT_DOOR_LIMITS: Readonly<DoorLimits> = {
  connectionIdleMs: 10_000,
  maxCallsPerConnection: 100,
  caMaxCallsPerCredential: 32,
  // A node starting with 110 pods of 110 service accounts may restart at once and start again (2 × 110 < 256);
  // after that the refill lets it start again every ~22 s. One token's worst case: 5 certificates/s (~3 ms CPU/s).
  caCertBurst: 256,
  caCertsPerMinute: 300,
};

export const DOOR_LIMIT_FLAGS: Readonly<Record<keyof DoorLimits, string>> = {
  connectionIdleMs: '--xds-max-connection-idle',
  maxCallsPerConnection: '--xds-max-calls-per-connection',
  caMaxCallsPerCredential: '--ca-max-calls-per-credential',
  caCertBurst: '--ca-cert-burst',
  caCertsPerMinute: '--ca-certs-per-minute',
};

export const ENV_DOOR_LIMITS: Readonly<Record<keyof DoorLimits, string>> = {
  connectionIdleMs: 'STRAIT_XDS_MAX_CONNECTION_IDLE',
  maxCallsPerConnection: 'STRAIT_XDS_MAX_CALLS_PER_CONNECTION',
  caMaxCallsPerCredential: 'STRAIT_CA_MAX_CALLS_PER_CREDENTIAL',
  caCertBurst: 'STRAIT_CA_CERT_BURST',
  caCertsPerMinute: 'STRAIT_CA_CERTS_PER_MINUTE',
};

export const DOOR_LIMIT_UNITS: Readonly<Record<keyof DoorLimits, 'count' | 'duration'>> = {
  connectionIdleMs: 'duration',
  maxCallsPerConnection: 'count',
  caMaxCallsPerCredential: 'count',
  caCertBurst: 'count',
  caCertsPerMinute: 'count',
};

/** `<arg>` and help text of each flag (README has the full table). */
export const DOOR_LIMIT_HELP: Readonly<Record<keyof DoorLimits, [string, string]>> = {
  connectionIdleMs: ['<duration>', 'close a connection that has carried no call for this long'],
  maxCallsPerConnection: ['<n>', 'calls (HTTP/2 streams) open at once per connection, xDS and CA together'],
  caMaxCallsPerCredential: ['<n>', 'CreateCertificate calls open at once per node/waypoint token'],
  caCertBurst: ['<n>', 'certificates one token may obtain at once before --ca-certs-per-minute applies'],
  caCertsPerMinute: ['<n>', 'certificates one token may obtain per minute once its burst is spent'],
};
