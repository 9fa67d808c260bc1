/** The identity library: SPIFFE ids, the mesh CA, CSRs, the workload certificate store, peer verification. */
export { SpiffeId, DEFAULT_TRUST_DOMAIN, validateTrustDomain } from './spiffe.js';
export { createKeyAndCsr, parseCsr, CSR_PEM_LABEL } from './csr.js';
export type { KeyAndCsr, CreateCsrOptions, ParsedCsr } from './csr.js';
export {
  CertificateAuthority,
  ROOT_CERT_FILE,
  ROOT_KEY_FILE,
  ROOT_COMMON_NAME,
  ROOT_VALIDITY_MS,
  DEFAULT_WORKLOAD_TTL_MS,
  DEFAULT_BACKDATE_MS,
  DEFAULT_SERVING_TTL_MS,
} from './ca.js';
export type {
  CertificateAuthorityOptions,
  OperatorCaFiles,
  WorkloadCertificate,
  ServingCertificate,
  ServingCertificateOptions,
} from './ca.js';
export { CertStore, DEFAULT_MIN_BACKOFF_MS, DEFAULT_MAX_BACKOFF_MS } from './cert-store.js';
export type {
  Cert,
  CertMaterial,
  CertStoreOptions,
  CertStoreEvents,
  RotatedEvent,
  RotationFailedEvent,
  TimerHandle,
} from './cert-store.js';
export {
  spiffeIdOf,
  verifyPeer,
  tlsContextOptions,
  peerCertificateChain,
  certificatesFromPem,
  toX509,
} from './verify.js';
export type { CertificateInput, MeshTlsOptions } from './verify.js';
