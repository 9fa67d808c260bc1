/**
 * Checks the peer of a finished mesh TLS handshake: verifyPeer (chain to the mesh root, SPIFFE id expected or in
 * the trust domain), remembering the outcome per leaf certificate.
 *
 * Why a cache: reading the chain from OpenSSL and verifying it in JS costs about a millisecond per handshake
 * side, and the same workload certificate comes back on every connection until it rotates. A hit needs the
 * byte-identical leaf (SHA-256 of its DER), already verified against the same roots by this instance, still
 * inside its validity period; and OpenSSL has checked the whole chain in this very handshake too. A miss, or any
 * failure, takes the full verifyPeer path, so error messages are always verifyPeer's.
 */
import { createHash } from 'node:crypto';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { peerCertificateChain, verifyPeer } from '../identity/index.js';

export const DEFAULT_PEER_CACHE_SIZE = 4096;

interface Verified {
  id: string;
  notBeforeMs: number;
  notAfterMs: number;
}

export interface VerifiedPeer {
  /** spiffe://... */
  id: string;
  /** The leaf certificate, DER. */
  leafDer: Buffer;
}

export class PeerVerifier {
  readonly #rootPem: string | string[];
  readonly #trustDomain: string;
  readonly #max: number;
  readonly #verified = new Map<string, Verified>();

  constructor(rootPem: string | string[], trustDomain: string, max: number = DEFAULT_PEER_CACHE_SIZE) {
    this.#rootPem = rootPem;
    this.#trustDomain = trustDomain;
    this.#max = max;
  }

  /**
   * The peer's SPIFFE id; it must be one of `expected` (empty: any id in the trust domain). Throws
   * STRAIT_ERR_PEER_VERIFY as verifyPeer does.
   */
  verify(socket: TLSSocket, expected: readonly string[]): VerifiedPeer {
    const leaf = socket.getPeerCertificate(false) as PeerCertificate | undefined;
    const raw = leaf?.raw;
    const key = raw === undefined ? undefined : createHash('sha256').update(raw).digest('base64');
    if (raw !== undefined && key !== undefined) {
      const hit = this.#verified.get(key);
      const now = Date.now();
      if (hit !== undefined && now >= hit.notBeforeMs && now <= hit.notAfterMs && this.#accepts(hit.id, expected)) {
        return { id: hit.id, leafDer: raw };
      }
    }
    const chain = peerCertificateChain(socket);
    const id = verifyPeer(chain, this.#rootPem, expected, new Date(), this.#trustDomain).toString();
    if (leaf !== undefined && raw !== undefined && key !== undefined) {
      const notBeforeMs = Date.parse(leaf.valid_from);
      const notAfterMs = Date.parse(leaf.valid_to);
      if (Number.isFinite(notBeforeMs) && Number.isFinite(notAfterMs)) {
        if (this.#verified.size >= this.#max) this.#verified.delete(this.#verified.keys().next().value!);
        this.#verified.set(key, { id, notBeforeMs, notAfterMs });
      }
    }
    return { id, leafDer: chain[0] ?? raw! };
  }

  #accepts(id: string, expected: readonly string[]): boolean {
    return expected.length === 0 ? id.startsWith(`spiffe://${this.#trustDomain}/`) : expected.includes(id);
  }
}
