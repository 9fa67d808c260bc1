/**
 * A worker's certificates come from its primary (one CSR per identity for the whole proxy). The worker's CertStore
 * renews at half life as the primary's does; if the primary has not renewed yet it answers with the certificate the
 * worker already holds, and the worker then waits for the primary's `cert-rotated` before asking again.
 */
import type { CertMaterial, SpiffeId } from '../../identity/index.js';
import type { CertOverIpc } from './protocol.js';
import type { PrimaryLink } from './worker.js';

/** How long a worker waits for the primary's renewal when the primary still holds the certificate it has. */
export const ROTATION_WAIT_MS = 30_000;

/** `held`: the leaf (PEM) this worker holds for an identity now, if any. */
export function primaryCertFetch(link: PrimaryLink, held: (identity: string) => string | undefined): (id: SpiffeId) => Promise<CertMaterial> {
  const ask = (identity: string) => link.requests.request<CertOverIpc>('cert', identity);
  return async (id) => {
    const identity = id.toString();
    const got = await ask(identity);
    if (got.certChainPem[0] !== held(identity)) return got;
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, ROTATION_WAIT_MS);
      function done() { clearTimeout(t); link.off('cert-rotated', onRotated); resolve(); }
      function onRotated(rotated: string) { if (rotated === identity) done(); }
      link.on('cert-rotated', onRotated);
    });
    return ask(identity);
  };
}
