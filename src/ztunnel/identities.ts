import type { Logger } from '../common/log.js';
import { errorMessage } from '../common/errors.js';
import { CertStore, SpiffeId, createKeyAndCsr, type Cert, type CertMaterial } from '../identity/index.js';
import type { CaClient } from '../identity/ca-client.js';
import type { ProxyStateView } from '../dataplane/state/proxy-state.js';
import type { ZtunnelMetrics } from './metrics.js';

/** Where a certificate comes from: the CA (a new key and CSR), or, in a data-plane worker, the primary. */
export type CertFetch = (id: SpiffeId) => Promise<CertMaterial>;

/** A new key and CSR, signed by the controller's CA: the one place a ztunnel sends a CSR. */
export function caFetch(ca: CaClient, ttlSeconds: number): CertFetch {
  return async (id) => {
    const { keyPem, csrPem } = await createKeyAndCsr();
    const certChainPem = await ca.createCertificate(csrPem, id.toString(), ttlSeconds);
    return { keyPem, certChainPem };
  };
}

/**
 * Certificates for the identities of this node's enrolled pods: prefetched when a pod appears, fetched on
 * demand otherwise, rotated by the CertStore, forgotten when the last pod with that identity leaves.
 * Invariant: the identities held are exactly those of local enrolled workloads (plus ones in flight on demand).
 */
export class ZtunnelIdentities {
  readonly store: CertStore;
  private wanted = new Set<string>();

  constructor(
    private readonly state: ProxyStateView,
    private readonly node: string,
    fetch: CertFetch,
    private readonly log: Logger,
    private readonly metrics?: ZtunnelMetrics,
  ) {
    this.store = new CertStore({ fetch, logger: log });
    this.store.on('rotated', (e) => log.info({ identity: e.identity.toString(), notAfter: e.cert.notAfter.toISOString(), renewed: e.previous !== undefined }, 'workload certificate ready'));
    this.store.on('rotation-failed', (e) => log.warn({ identity: e.identity.toString(), attempt: e.attempt, retryInMs: e.retryInMs, err: errorMessage(e.error), validUntil: e.currentNotAfter?.toISOString() }, 'workload certificate renewal failed; retrying'));
    state.on('workloads', () => this.sync());
  }

  /** Brings the held identities in line with the local workloads. */
  sync(): void {
    const now = new Set(this.state.localWorkloads(this.node).map((w) => w.identity));
    for (const id of now) {
      if (!this.wanted.has(id)) {
        this.store.prefetch(SpiffeId.parse(id)).catch((err) => this.log.warn({ identity: id, err: errorMessage(err) }, 'certificate prefetch failed; will retry'));
      }
    }
    for (const id of this.wanted) if (!now.has(id)) this.store.forget(SpiffeId.parse(id));
    this.wanted = now;
    this.metrics?.certificates.set(now.size);
  }

  get(identity: string): Promise<Cert> {
    return this.store.get(SpiffeId.parse(identity));
  }

  peek(identity: string): Cert | undefined {
    return this.store.peek(SpiffeId.parse(identity));
  }

  /** True once every local identity has a certificate (readiness). */
  allReady(): boolean {
    for (const id of this.wanted) if (!this.peek(id)) return false;
    return true;
  }

  list(): Cert[] {
    return this.store.identities().map((id) => this.store.peek(id)).filter((c): c is Cert => c !== undefined);
  }

  close(): void {
    this.store.close();
  }
}
