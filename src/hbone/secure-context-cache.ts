/**
 * A small LRU of tls.SecureContext per workload certificate, so a TLS connection does not re-parse the key,
 * chain and roots. Keyed by the certificate PEM: after a rotation the new PEM makes a new context and the
 * old one ages out.
 */
import tls from 'node:tls';
import { tlsContextOptions } from '../identity/index.js';

export interface WorkloadCert {
  keyPem: string;
  /** Leaf first, then intermediates (a trailing root is dropped). */
  certChainPem: string[];
}

export const DEFAULT_SECURE_CONTEXT_CACHE_SIZE = 1024;

export class SecureContextCache {
  readonly #rootPem: string | string[];
  readonly #max: number;
  readonly #contexts = new Map<string, tls.SecureContext>();

  constructor(rootPem: string | string[], max: number = DEFAULT_SECURE_CONTEXT_CACHE_SIZE) {
    this.#rootPem = rootPem;
    this.#max = max;
  }

  /** The context presenting `cert` and trusting only the mesh root, TLS 1.3 only. Throws STRAIT_ERR_CERT_INVALID. */
  get(cert: WorkloadCert): tls.SecureContext {
    const key = cert.certChainPem.join('\n');
    const hit = this.#contexts.get(key);
    if (hit !== undefined) {
      this.#contexts.delete(key);
      this.#contexts.set(key, hit);
      return hit;
    }
    const o = tlsContextOptions(cert, this.#rootPem);
    const ctx = tls.createSecureContext({ key: o.key, cert: o.cert, ca: o.ca, minVersion: o.minVersion, maxVersion: o.maxVersion });
    if (this.#contexts.size >= this.#max) this.#contexts.delete(this.#contexts.keys().next().value!);
    this.#contexts.set(key, ctx);
    return ctx;
  }

  get size(): number {
    return this.#contexts.size;
  }
}
