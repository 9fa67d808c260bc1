/**
 * Peer verification for mesh mTLS: the peer's chain must lead to the mesh root AND its SPIFFE id must be
 * one expected for the destination. Also the Node TLS options every mesh listener and dialer uses.
 */
import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { StraitError, errorMessage } from '../common/errors.js';
import { DEFAULT_TRUST_DOMAIN, SpiffeId } from './spiffe.js';
import { KEY_USAGE, hasKeyUsage, parseCertificate, pemDecodeAll, type CertificateInfo } from './x509.js';

export type CertificateInput = Buffer | string | X509Certificate;

/** Longest chain we walk from the leaf to the root (leaf + intermediates). */
const MAX_CHAIN_LENGTH = 8;

function certInvalid(message: string, cause?: unknown): StraitError {
  return new StraitError('STRAIT_ERR_CERT_INVALID', message, cause === undefined ? undefined : { cause });
}

function peerError(message: string, cause?: unknown): StraitError {
  return new StraitError('STRAIT_ERR_PEER_VERIFY', message, cause === undefined ? undefined : { cause });
}

/** A certificate as X509Certificate; a PEM string or DER buffer is parsed (STRAIT_ERR_CERT_INVALID if it can't be). */
export function toX509(input: CertificateInput): X509Certificate {
  if (input instanceof X509Certificate) return input;
  try {
    return new X509Certificate(input);
  } catch (err) {
    throw certInvalid(`cannot parse certificate: ${errorMessage(err)}; expected PEM or DER X.509`, err);
  }
}

const infoCache = new WeakMap<X509Certificate, CertificateInfo>();

function infoOf(cert: X509Certificate): CertificateInfo {
  let info = infoCache.get(cert);
  if (info === undefined) {
    try {
      info = parseCertificate(cert.raw);
    } catch (err) {
      throw certInvalid(`cannot parse certificate "${nameOf(cert.subject)}": ${errorMessage(err)}`, err);
    }
    infoCache.set(cert, info);
  }
  return info;
}

function nameOf(distinguishedName: string): string {
  return distinguishedName === '' ? '(empty subject)' : distinguishedName.replace(/\n/g, ', ');
}

/** The SPIFFE id of a workload certificate: its one and only URI SAN. Throws STRAIT_ERR_CERT_INVALID otherwise. */
export function spiffeIdOf(cert: CertificateInput): SpiffeId {
  const x509 = toX509(cert);
  const { uris } = infoOf(x509);
  const which = `certificate with serial ${x509.serialNumber}`;
  if (uris.length === 0) {
    throw certInvalid(`${which} carries no URI SAN; a workload certificate must carry exactly one spiffe:// URI`);
  }
  if (uris.length > 1) {
    throw certInvalid(`${which} carries ${uris.length} URI SANs (${uris.join(', ')}); a workload certificate must carry exactly one`);
  }
  try {
    return SpiffeId.parse(uris[0]!);
  } catch (err) {
    throw certInvalid(`${which} has a URI SAN that is not a mesh SPIFFE id: ${errorMessage(err)}`, err);
  }
}

/** Splits PEM text into its certificates (STRAIT_ERR_CERT_INVALID when there are none). */
export function certificatesFromPem(pem: string): X509Certificate[] {
  let blocks;
  try {
    blocks = pemDecodeAll(pem).filter((b) => b.label === 'CERTIFICATE');
  } catch (err) {
    throw certInvalid(`invalid PEM: ${errorMessage(err)}`, err);
  }
  if (blocks.length === 0) throw certInvalid('no "-----BEGIN CERTIFICATE-----" block found in the PEM text');
  return blocks.map((b) => toX509(b.der));
}

const MAX_CACHED_ROOT_BUNDLES = 16;
const rootCache = new Map<string, X509Certificate[]>();

function rootsOf(rootPem: string | string[]): X509Certificate[] {
  const key = Array.isArray(rootPem) ? rootPem.join('\n') : rootPem;
  let roots = rootCache.get(key);
  if (roots === undefined) {
    roots = certificatesFromPem(key);
    if (rootCache.size >= MAX_CACHED_ROOT_BUNDLES) rootCache.delete(rootCache.keys().next().value!);
    rootCache.set(key, roots);
  }
  return roots;
}

function issuedBy(child: X509Certificate, issuer: X509Certificate): boolean {
  return child.checkIssued(issuer) && child.verify(issuer.publicKey);
}

function checkTime(info: CertificateInfo, what: string, now: Date): void {
  if (now.getTime() > info.notAfter.getTime()) {
    throw peerError(`${what} expired at ${info.notAfter.toISOString()} (now ${now.toISOString()})`);
  }
  if (now.getTime() < info.notBefore.getTime()) {
    throw peerError(`${what} is not valid before ${info.notBefore.toISOString()} (now ${now.toISOString()}); check the clocks of both nodes`);
  }
}

/**
 * Verifies a peer's certificate chain (leaf first; order of the rest does not matter) against the mesh
 * root(s) and returns the leaf's SPIFFE id, which must be one of `expected`; an empty `expected` accepts any id
 * in `trustDomain`. Throws STRAIT_ERR_PEER_VERIFY saying what failed.
 */
export function verifyPeer(
  chain: CertificateInput[],
  rootPem: string | string[],
  expected: Iterable<string>,
  now: Date = new Date(),
  trustDomain: string = DEFAULT_TRUST_DOMAIN,
): SpiffeId {
  if (chain.length === 0) {
    throw peerError('peer presented no certificate; mesh peers must present their workload certificate (servers need requestCert: true)');
  }
  let presented: X509Certificate[];
  let leafInfo: CertificateInfo;
  let id: SpiffeId;
  try {
    presented = chain.map(toX509);
    leafInfo = infoOf(presented[0]!);
    id = spiffeIdOf(presented[0]!);
  } catch (err) {
    throw peerError(`peer certificate is not a usable workload certificate: ${errorMessage(err)}`, err);
  }
  const leaf = presented[0]!;
  if (leafInfo.ca || leaf.ca) throw peerError(`peer certificate for ${id} is a CA certificate, not a workload certificate`);
  checkTime(leafInfo, `peer certificate for ${id}`, now);

  const roots = rootsOf(rootPem);
  let current = leaf;
  for (let depth = 0; ; depth++) {
    const root = roots.find((r) => issuedBy(current, r));
    if (root !== undefined) {
      checkTime(infoOf(root), `mesh root "${nameOf(root.subject)}"`, now);
      break;
    }
    const issuer = presented.find((c) => c !== current && c.fingerprint256 !== current.fingerprint256 && issuedBy(current, c));
    if (issuer === undefined || depth + 1 >= MAX_CHAIN_LENGTH) {
      let detail = '';
      if (current !== leaf && issuedBy(current, current)) {
        detail = `; its chain ends at another root "${nameOf(current.subject)}" (SHA-256 ${current.fingerprint256})`;
      } else if (current !== leaf) {
        detail = `; intermediate "${nameOf(current.subject)}" is issued by "${nameOf(current.issuer)}", which is neither presented nor the mesh root`;
      }
      throw peerError(
        `peer certificate does not chain to the mesh root (issuer "${nameOf(leaf.issuer)}"${detail}); ` +
          'check that both sides trust the same mesh root',
      );
    }
    const info = infoOf(issuer);
    const what = `intermediate CA "${nameOf(issuer.subject)}"`;
    if (!issuer.ca || !info.ca) throw peerError(`${what} in the peer's chain is not a CA certificate`);
    if (!hasKeyUsage(info.keyUsage, KEY_USAGE.keyCertSign)) throw peerError(`${what} in the peer's chain may not sign certificates`);
    // pathLen counts the intermediates below this one; `depth` of them lie between it and the leaf.
    if (info.pathLen !== undefined && depth > info.pathLen) {
      throw peerError(`${what} allows ${info.pathLen} intermediates below it but the peer's chain has ${depth}`);
    }
    checkTime(info, what, now);
    current = issuer;
  }

  const wanted = new Set(expected);
  if (wanted.size === 0) {
    if (id.trustDomain !== trustDomain) {
      throw peerError(`peer presented ${id}, which is outside the mesh trust domain "${trustDomain}"`);
    }
  } else if (!wanted.has(id.toString())) {
    const list = [...wanted];
    const shown = list.length === 1 ? `${list[0]} was expected` : `one of ${list.join(', ')} was expected`;
    throw peerError(`peer presented ${id} but ${shown}`);
  }
  return id;
}

/** The certificate chain a TLS peer sent, leaf first, as DER buffers (empty when it sent none). */
export function peerCertificateChain(socket: TLSSocket): Buffer[] {
  const out: Buffer[] = [];
  const seen = new Set<string>();
  let cert = socket.getPeerCertificate(true) as DetailedPeerCertificate | undefined;
  while (cert !== undefined && cert.raw !== undefined && !seen.has(cert.fingerprint256)) {
    out.push(cert.raw);
    seen.add(cert.fingerprint256);
    cert = cert.issuerCertificate;
  }
  return out;
}

export interface MeshTlsOptions {
  key: string;
  /** Leaf and intermediates (the root is not sent: the peer has it). */
  cert: string;
  /** The mesh root(s). */
  ca: string[];
  minVersion: 'TLSv1.3';
  maxVersion: 'TLSv1.3';
  /** OpenSSL checks the chain to `ca` during the handshake; callers then run verifyPeer for the SPIFFE id. */
  rejectUnauthorized: true;
  /** Workload certificates carry no DNS names, so the hostname check is replaced by verifyPeer. */
  checkServerIdentity: () => undefined;
}

/**
 * Node TLS options (for tls.createServer — add `requestCert: true` — and tls.connect) for a mesh
 * connection: TLS 1.3 only, our key and chain, the mesh root as the only trust anchor.
 */
export function tlsContextOptions(cert: { keyPem: string; certChainPem: string[] }, rootPem: string | string[]): MeshTlsOptions {
  const roots = rootsOf(rootPem);
  const rootFingerprints = new Set(roots.map((r) => r.fingerprint256));
  const sent = cert.certChainPem.filter((pem) => !rootFingerprints.has(toX509(pem).fingerprint256));
  return {
    key: cert.keyPem,
    cert: sent.map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join(''),
    ca: roots.map((r) => r.toString()),
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    rejectUnauthorized: true,
    checkServerIdentity: () => undefined,
  };
}
