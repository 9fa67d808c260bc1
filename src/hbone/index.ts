/** HBONE: the mesh transport (HTTP/2 CONNECT over mutual TLS 1.3), both sides, and the byte relay. */
export {
  HboneServer,
  DEFAULT_HBONE_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_HBONE_MAX_CONCURRENT_STREAMS,
} from './server.js';
export type { HboneServerOptions, HboneInboundRequest } from './server.js';
export {
  HbonePool,
  HboneRefusedError,
  DEFAULT_HBONE_MAX_STREAMS_PER_CONNECTION,
  DEFAULT_HBONE_POOL_IDLE_MS,
  DEFAULT_HBONE_CONNECT_TIMEOUT_MS,
} from './client.js';
export type { HbonePoolOptions, HboneConnectRequest, HboneConnection, HbonePoolStats } from './client.js';
export { relay, resetStream } from './relay.js';
export type { RelayResult, RelayHooks } from './relay.js';
export { SecureContextCache } from './secure-context-cache.js';
export { PeerVerifier } from './peer-verifier.js';
export type { VerifiedPeer } from './peer-verifier.js';
export type { WorkloadCert } from './secure-context-cache.js';
export {
  HBONE_ALPN,
  HEADER_FORWARDED,
  HEADER_BAGGAGE,
  HEADER_TRACEPARENT,
  HEADER_REASON,
  parseAuthority,
  formatAuthority,
  formatForwarded,
  parseForwardedFor,
  sanitizeReason,
} from './wire.js';
export type { HboneTarget } from './wire.js';
