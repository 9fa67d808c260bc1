/**
 * The mesh certificate authority: a root generated once and persisted in the data directory, or a root or
 * intermediate the operator provides. Signs workload certificates (SPIFFE X.509-SVIDs) and the controller's
 * own serving certificate.
 */
import {
  X509Certificate,
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { StraitError, errorMessage } from '../common/errors.js';
import { parseCsr } from './csr.js';
import { DEFAULT_TRUST_DOMAIN, SpiffeId, validateTrustDomain } from './spiffe.js';
import {
  KEY_USAGE,
  OID,
  SIGNATURE_SCHEMES,
  authorityKeyIdExtension,
  basicConstraintsExtension,
  decodeDer,
  derName,
  extKeyUsageExtension,
  hasKeyUsage,
  keyIdentifier,
  keyUsageExtension,
  parseCertificate,
  pemDecodeAll,
  pemEncode,
  randomSerial,
  signCertificate,
  signatureSchemeFor,
  subjectAltNameExtension,
  subjectKeyIdExtension,
  type Asn1,
  type SignatureScheme,
} from './x509.js';

const generateKeyPairAsync = promisify(generateKeyPair);

export const ROOT_CERT_FILE = 'root-cert.pem';
export const ROOT_KEY_FILE = 'root-key.pem';
export const ROOT_COMMON_NAME = 'Strait Root CA';
export const DEFAULT_WORKLOAD_TTL_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_BACKDATE_MS = 5 * 60 * 1000;
export const DEFAULT_SERVING_TTL_MS = 365 * 24 * 60 * 60 * 1000;
export const ROOT_VALIDITY_MS = 10 * 365 * 24 * 60 * 60 * 1000;
const SERVING_COMMON_NAME = 'strait-controller';

export interface OperatorCaFiles {
  /** PEM certificate of the signing CA (a root, or an intermediate). */
  certFile: string;
  /** Its unencrypted PEM private key (PKCS#8, SEC1 or PKCS#1). */
  keyFile: string;
  /** When certFile is an intermediate: the rest of the chain up to the root, root last. */
  chainFile?: string;
}

export interface CertificateAuthorityOptions {
  /** Where a generated root is kept (root-cert.pem, root-key.pem). Created with mode 0700. */
  dataDir: string;
  trustDomain?: string;
  workloadTtlMs?: number;
  /** notBefore is set this far in the past to tolerate clock skew between nodes. */
  backdateMs?: number;
  operator?: OperatorCaFiles;
  /** Clock in ms since the epoch (tests). */
  now?: () => number;
}

export interface WorkloadCertificate {
  /** Leaf first, then intermediates, root last. */
  certChainPem: string[];
  notAfter: Date;
}

export interface ServingCertificateOptions {
  dnsNames: string[];
  ips: string[];
  identity?: SpiffeId;
  ttlMs?: number;
}

export interface ServingCertificate {
  keyPem: string;
  /** Leaf first, then intermediates, root last. */
  certChainPem: string[];
}

/** What signs: the CA key and the fields of its certificate that go into every leaf. */
interface Signer {
  key: KeyObject;
  scheme: SignatureScheme;
  /** The signing certificate's subject, used as the leaves' issuer. */
  subject: Asn1;
  keyId: Buffer;
  notAfter: Date;
  /** The signing certificate, intermediates, the root: appended after each leaf. */
  chainPem: string[];
}

function caError(message: string, cause?: unknown): StraitError {
  return new StraitError('STRAIT_ERR_CA_ROOT', message, cause === undefined ? undefined : { cause });
}

function configError(message: string): StraitError {
  return new StraitError('STRAIT_ERR_CONFIG', message);
}

function positiveMs(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw configError(`${name} must be a positive number of milliseconds, got ${value}`);
  return value;
}

function floorToSecond(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

const LEAF_EXTENSIONS = {
  basicConstraints: basicConstraintsExtension(false),
  keyUsage: keyUsageExtension([KEY_USAGE.digitalSignature, KEY_USAGE.keyEncipherment]),
  extKeyUsage: extKeyUsageExtension([OID.serverAuth, OID.clientAuth]),
};

export class CertificateAuthority {
  readonly trustDomain: string;
  /** The mesh root every peer verifies against. */
  readonly rootCertPem: string;
  /** Appended after each issued leaf: the signing certificate, any intermediates, the root. */
  readonly caChainPem: readonly string[];
  readonly #signer: Signer;
  readonly #workloadTtlMs: number;
  readonly #backdateMs: number;
  readonly #now: () => number;
  readonly #authorityKeyId: Asn1;

  private constructor(signer: Signer, trustDomain: string, workloadTtlMs: number, backdateMs: number, now: () => number) {
    this.#signer = signer;
    this.trustDomain = trustDomain;
    this.#workloadTtlMs = workloadTtlMs;
    this.#backdateMs = backdateMs;
    this.#now = now;
    this.#authorityKeyId = authorityKeyIdExtension(signer.keyId);
    this.caChainPem = Object.freeze([...signer.chainPem]);
    this.rootCertPem = signer.chainPem[signer.chainPem.length - 1]!;
  }

  /**
   * Without `operator`: loads `<dataDir>/root-cert.pem` and `root-key.pem`, or generates and writes them when
   * both are absent (never overwriting). With `operator`: uses the given root or intermediate.
   * Throws STRAIT_ERR_CA_ROOT naming the file and the fix, STRAIT_ERR_CONFIG for bad options.
   */
  static async loadOrCreate(opts: CertificateAuthorityOptions): Promise<CertificateAuthority> {
    const trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    validateTrustDomain(trustDomain);
    const workloadTtlMs = positiveMs('workloadTtlMs', opts.workloadTtlMs ?? DEFAULT_WORKLOAD_TTL_MS);
    const backdateMs = opts.backdateMs ?? DEFAULT_BACKDATE_MS;
    if (!Number.isFinite(backdateMs) || backdateMs < 0) throw configError(`backdateMs must be >= 0, got ${backdateMs}`);
    const now = opts.now ?? Date.now;
    const signer =
      opts.operator !== undefined
        ? await loadOperatorCa(opts.operator, now())
        : await loadOrCreateRoot(opts.dataDir, trustDomain, backdateMs, now());
    return new CertificateAuthority(signer, trustDomain, workloadTtlMs, backdateMs, now);
  }

  /** A new self-signed mesh root as PEM, written nowhere: the caller keeps it (e.g. in a Kubernetes Secret). */
  static async generateRootPem(opts: { trustDomain?: string; backdateMs?: number; now?: () => number } = {}): Promise<{ certPem: string; keyPem: string }> {
    const trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    validateTrustDomain(trustDomain);
    const { certPem, keyPem } = await generateRoot(trustDomain, opts.backdateMs ?? DEFAULT_BACKDATE_MS, (opts.now ?? Date.now)());
    return { certPem, keyPem };
  }

  /**
   * The CA of a self-signed root kept somewhere other than the data directory (a Kubernetes Secret); `where` names
   * it in errors (e.g. "Secret strait-system/strait-ca"). Throws STRAIT_ERR_CA_ROOT as loadOrCreate does.
   */
  static fromRootPem(opts: Omit<CertificateAuthorityOptions, 'dataDir' | 'operator'> & { certPem: string; keyPem: string; where: string }): CertificateAuthority {
    const trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    validateTrustDomain(trustDomain);
    const workloadTtlMs = positiveMs('workloadTtlMs', opts.workloadTtlMs ?? DEFAULT_WORKLOAD_TTL_MS);
    const backdateMs = opts.backdateMs ?? DEFAULT_BACKDATE_MS;
    const now = opts.now ?? Date.now;
    const signer = loadSigner(opts.certPem, `${opts.where} (certificate)`, opts.keyPem, `${opts.where} (key)`, undefined, now(), 'stored');
    return new CertificateAuthority(signer, trustDomain, workloadTtlMs, backdateMs, now);
  }

  /**
   * Signs a workload certificate for `identity` with the public key of `csrPem` (whose own names are
   * ignored). The leaf carries only the SPIFFE URI SAN. Throws STRAIT_ERR_CSR_INVALID for a bad CSR and
   * STRAIT_ERR_SPIFFE_ID for an identity outside this CA's trust domain.
   */
  signWorkload(csrPem: string, identity: SpiffeId, ttlMs: number = this.#workloadTtlMs): WorkloadCertificate {
    if (identity.trustDomain !== this.trustDomain) {
      throw new StraitError(
        'STRAIT_ERR_SPIFFE_ID',
        `refusing to sign ${identity}: its trust domain "${identity.trustDomain}" is not this CA's "${this.trustDomain}"`,
      );
    }
    positiveMs('ttlMs', ttlMs);
    const { spkiDer } = parseCsr(csrPem);
    const { certPem, notAfter } = this.#issue(spkiDer, ttlMs, {
      subject: derName([]),
      extensions: [subjectAltNameExtension({ uris: [identity.toString()] }, true), ...Object.values(LEAF_EXTENSIONS)],
    });
    return { certChainPem: [certPem, ...this.caChainPem], notAfter };
  }

  /** A key and certificate for the controller's own TLS listeners (gRPC, admin). */
  issueServing(opts: ServingCertificateOptions): ServingCertificate {
    const dnsNames = opts.dnsNames.map((d) => checkDnsName(d));
    const ipAddresses = opts.ips.map((ip) => ipBytes(ip));
    if (opts.identity !== undefined && opts.identity.trustDomain !== this.trustDomain) {
      throw configError(`serving identity ${opts.identity} is not in this CA's trust domain "${this.trustDomain}"`);
    }
    const uris = opts.identity === undefined ? [] : [opts.identity.toString()];
    if (dnsNames.length + ipAddresses.length + uris.length === 0) {
      throw configError('a serving certificate needs at least one DNS name, IP address or identity');
    }
    const ttlMs = positiveMs('ttlMs', opts.ttlMs ?? DEFAULT_SERVING_TTL_MS);
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const commonName = dnsNames.find((d) => d.length <= 64) ?? SERVING_COMMON_NAME;
    const { certPem } = this.#issue(publicKey.export({ type: 'spki', format: 'der' }), ttlMs, {
      subject: derName([
        [OID.organizationName, this.trustDomain],
        [OID.commonName, commonName],
      ]),
      extensions: [subjectAltNameExtension({ dnsNames, ipAddresses, uris }, false), ...Object.values(LEAF_EXTENSIONS)],
    });
    return {
      keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      certChainPem: [certPem, ...this.caChainPem],
    };
  }

  #issue(spkiDer: Buffer, ttlMs: number, leaf: { subject: Asn1; extensions: Asn1[] }): { certPem: string; notAfter: Date } {
    const signer = this.#signer;
    const now = this.#now();
    const notBefore = floorToSecond(now - this.#backdateMs);
    // A leaf never outlives the certificate that signed it.
    const notAfter = floorToSecond(Math.min(now + ttlMs, signer.notAfter.getTime()));
    const der = signCertificate(
      {
        serial: randomSerial(),
        issuer: signer.subject,
        subject: leaf.subject,
        notBefore,
        notAfter,
        spki: decodeDer(spkiDer),
        extensions: [...leaf.extensions, subjectKeyIdExtension(keyIdentifier(spkiDer)), this.#authorityKeyId],
      },
      signer.key,
      signer.scheme,
    );
    return { certPem: pemEncode('CERTIFICATE', der), notAfter };
  }
}

// ---------------------------------------------------------------------------------------------------------
// The self-managed root

async function readIfPresent(file: string, what: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw caError(`cannot read the ${what} ${file}: ${errorMessage(err)}; check its permissions`, err);
  }
}

async function loadOrCreateRoot(dataDir: string, trustDomain: string, backdateMs: number, nowMs: number): Promise<Signer> {
  try {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw caError(`cannot create the CA data directory ${dataDir}: ${errorMessage(err)}; check the path and its permissions`, err);
  }
  const certPath = join(dataDir, ROOT_CERT_FILE);
  const keyPath = join(dataDir, ROOT_KEY_FILE);
  for (let attempt = 0; ; attempt++) {
    const [certText, keyText] = await Promise.all([
      readIfPresent(certPath, 'CA root certificate'),
      readIfPresent(keyPath, 'CA root key'),
    ]);
    if (certText !== undefined && keyText !== undefined) {
      return loadSigner(certText, certPath, keyText, keyPath, undefined, nowMs, 'root');
    }
    if (certText !== undefined || keyText !== undefined) {
      const [present, missing] = certText !== undefined ? [certPath, keyPath] : [keyPath, certPath];
      throw caError(
        `found ${present} but not ${missing}: the CA root is half present. Restore ${missing} from a backup, ` +
          `or delete ${present} to generate a new root (which re-keys the mesh: every workload certificate is re-issued)`,
      );
    }
    try {
      return await createRoot(certPath, keyPath, trustDomain, backdateMs, nowMs);
    } catch (err) {
      // Another process created the root between our read and our exclusive write: load theirs.
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && attempt === 0) continue;
      if (err instanceof StraitError) throw err;
      throw caError(`cannot write the CA root into ${dataDir}: ${errorMessage(err)}; check the directory's permissions`, err);
    }
  }
}

async function generateRoot(trustDomain: string, backdateMs: number, nowMs: number): Promise<{ signer: Signer; certPem: string; keyPem: string }> {
  const { privateKey, publicKey } = await generateKeyPairAsync('ec', { namedCurve: 'prime256v1' });
  const spkiDer = publicKey.export({ type: 'spki', format: 'der' });
  const keyId = keyIdentifier(spkiDer);
  const name = derName([
    [OID.organizationName, trustDomain],
    [OID.commonName, ROOT_COMMON_NAME],
  ]);
  const notAfter = floorToSecond(nowMs + ROOT_VALIDITY_MS);
  const der = signCertificate(
    {
      serial: randomSerial(),
      issuer: name,
      subject: name,
      notBefore: floorToSecond(nowMs - backdateMs),
      notAfter,
      spki: decodeDer(spkiDer),
      extensions: [
        basicConstraintsExtension(true),
        keyUsageExtension([KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign]),
        subjectKeyIdExtension(keyId),
      ],
    },
    privateKey,
    SIGNATURE_SCHEMES.ecdsaWithSha256,
  );
  const certPem = pemEncode('CERTIFICATE', der);
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return { signer: { key: privateKey, scheme: SIGNATURE_SCHEMES.ecdsaWithSha256, subject: name, keyId, notAfter, chainPem: [certPem] }, certPem, keyPem };
}

async function createRoot(certPath: string, keyPath: string, trustDomain: string, backdateMs: number, nowMs: number): Promise<Signer> {
  const { signer, certPem, keyPem } = await generateRoot(trustDomain, backdateMs, nowMs);
  // 'wx' never overwrites: an existing file (a racing process) fails with EEXIST. The key goes first so
  // that a crash in between leaves a half pair, which the next start reports instead of silently re-keying.
  await writeFile(keyPath, keyPem, { mode: 0o600, flag: 'wx' });
  await chmod(keyPath, 0o600);
  await writeFile(certPath, certPem, { mode: 0o644, flag: 'wx' });
  await chmod(certPath, 0o644);
  return signer;
}

// ---------------------------------------------------------------------------------------------------------
// Loading a CA certificate + key (our persisted root, or the operator's)

interface LoadedCert {
  x509: X509Certificate;
  pem: string;
  file: string;
}

function readCertificates(text: string, file: string): LoadedCert[] {
  let blocks;
  try {
    blocks = pemDecodeAll(text);
  } catch (err) {
    throw caError(`${file} is not valid PEM: ${errorMessage(err)}`, err);
  }
  const certs = blocks.filter((b) => b.label === 'CERTIFICATE');
  if (certs.length === 0) throw caError(`${file} holds no "-----BEGIN CERTIFICATE-----" block; check the file`);
  return certs.map((b) => {
    try {
      return { x509: new X509Certificate(b.der), pem: b.pem, file };
    } catch (err) {
      throw caError(`${file} holds a certificate that cannot be parsed: ${errorMessage(err)}`, err);
    }
  });
}

function readPrivateKey(text: string, file: string): KeyObject {
  try {
    return createPrivateKey({ key: text, format: 'pem' });
  } catch (err) {
    throw caError(
      `cannot read the private key in ${file}: ${errorMessage(err)}; it must be an unencrypted PEM key (PKCS#8, SEC1 or PKCS#1)`,
      err,
    );
  }
}

function isSelfSigned(c: X509Certificate): boolean {
  return c.checkIssued(c) && c.verify(c.publicKey);
}

function checkValidity(c: LoadedCert, nowMs: number, fix: string): Date {
  const info = parseCertificate(c.x509.raw);
  if (nowMs > info.notAfter.getTime()) {
    throw caError(`the CA certificate "${c.x509.subject.replace(/\n/g, ', ')}" in ${c.file} expired at ${info.notAfter.toISOString()}; ${fix}`);
  }
  if (nowMs < info.notBefore.getTime()) {
    throw caError(
      `the CA certificate "${c.x509.subject.replace(/\n/g, ', ')}" in ${c.file} is not valid before ${info.notBefore.toISOString()}; check this machine's clock`,
    );
  }
  return info.notAfter;
}

async function loadOperatorCa(files: OperatorCaFiles, nowMs: number): Promise<Signer> {
  const read = async (file: string, what: string): Promise<string> => {
    const text = await readIfPresent(file, what);
    if (text === undefined) throw caError(`the ${what} ${file} does not exist; check the path`);
    return text;
  };
  const certText = await read(files.certFile, 'operator CA certificate');
  const keyText = await read(files.keyFile, 'operator CA key');
  const chainText = files.chainFile === undefined ? undefined : await read(files.chainFile, 'operator CA chain');
  return loadSigner(certText, files.certFile, keyText, files.keyFile, chainText === undefined ? undefined : { text: chainText, file: files.chainFile! }, nowMs, 'operator');
}

function loadSigner(
  certText: string,
  certFile: string,
  keyText: string,
  keyFile: string,
  chain: { text: string; file: string } | undefined,
  nowMs: number,
  kind: 'root' | 'operator' | 'stored',
): Signer {
  const certs = readCertificates(certText, certFile);
  if (chain !== undefined) certs.push(...readCertificates(chain.text, chain.file));
  const signing = certs[0]!;
  const key = readPrivateKey(keyText, keyFile);
  const fix =
    kind === 'root'
      ? `delete ${certFile} and ${keyFile} to generate a new root (which re-keys the mesh), or provide an operator CA`
      : kind === 'stored'
        ? `delete it to generate a new root (which re-keys the mesh), or provide an operator CA`
        : 'provide a valid CA certificate';

  const keySpki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  if (!keySpki.equals(signing.x509.publicKey.export({ type: 'spki', format: 'der' }))) {
    throw caError(
      `the private key in ${keyFile} does not belong to the certificate in ${certFile}; ` +
        (kind !== 'operator' ? `restore the matching pair, or ${fix}` : 'check that the two files are a pair'),
    );
  }
  const scheme = signatureSchemeFor(key);
  if (typeof scheme === 'string') throw caError(`the CA key in ${keyFile}: ${scheme}`);
  const signingInfo = parseCertificate(signing.x509.raw);
  if (!signing.x509.ca) {
    throw caError(`the certificate in ${certFile} is not a CA certificate (basicConstraints CA:TRUE is missing); ${fix}`);
  }
  if (!hasKeyUsage(signingInfo.keyUsage, KEY_USAGE.keyCertSign)) {
    throw caError(`the certificate in ${certFile} may not sign certificates (keyUsage lacks keyCertSign); ${fix}`);
  }
  const notAfter = checkValidity(signing, nowMs, fix);

  // Every certificate must be issued by the next one, and the last must be a self-signed root.
  for (let i = 0; i < certs.length; i++) {
    const c = certs[i]!;
    const next = certs[i + 1];
    if (next === undefined) {
      if (!isSelfSigned(c.x509)) {
        const where =
          kind !== 'operator'
            ? `${certFile} must hold a self-signed root; use the operator CA options for an intermediate`
            : chain === undefined
              ? 'it is an intermediate, so give chainFile with the certificates up to the root'
              : `append the root certificate to ${chain.file}`;
        throw caError(
          `the CA chain does not end in a self-signed root: "${c.x509.subject.replace(/\n/g, ', ')}" from ${c.file} ` +
            `is issued by "${c.x509.issuer.replace(/\n/g, ', ')}"; ${where}`,
        );
      }
      break;
    }
    if (isSelfSigned(c.x509)) {
      throw caError(`"${c.x509.subject.replace(/\n/g, ', ')}" in ${c.file} is a self-signed root but more certificates follow it; the root must be last`);
    }
    if (!(c.x509.checkIssued(next.x509) && c.x509.verify(next.x509.publicKey))) {
      throw caError(
        `"${c.x509.subject.replace(/\n/g, ', ')}" in ${c.file} is not issued by the next certificate ` +
          `"${next.x509.subject.replace(/\n/g, ', ')}" in ${next.file}; order the chain from the signing CA up to the root`,
      );
    }
    if (!next.x509.ca) throw caError(`"${next.x509.subject.replace(/\n/g, ', ')}" in ${next.file} is not a CA certificate`);
    checkValidity(next, nowMs, 'replace it');
  }

  const keyId = signingInfo.subjectKeyId ?? keyIdentifier(keySpki);
  return { key, scheme, subject: signingInfo.subject, keyId, notAfter, chainPem: certs.map((c) => c.pem) };
}

// ---------------------------------------------------------------------------------------------------------
// Serving certificate names

const DNS_LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

function checkDnsName(name: string): string {
  const labels = name.split('.');
  const ok =
    name.length > 0 &&
    name.length <= 253 &&
    labels.every((l, i) => DNS_LABEL.test(l) || (i === 0 && l === '*' && labels.length > 2));
  if (!ok) throw configError(`"${name}" is not a valid DNS name for a serving certificate`);
  return name.toLowerCase();
}

/** The 4 or 16 address bytes of an IP literal, as the iPAddress SAN wants them. */
export function ipBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (!isIPv6(ip) || ip.includes('%')) throw configError(`"${ip}" is not an IP address (zone ids are not allowed)`);
  let text = ip;
  const words: number[] = [];
  const lastColon = text.lastIndexOf(':');
  let v4: number[] = [];
  if (text.includes('.')) {
    v4 = text.slice(lastColon + 1).split('.').map(Number);
    text = text.slice(0, lastColon + 1) + '0:0';
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((h) => parseInt(h, 16)));
  const headWords = parse(head);
  const tailWords = tail === undefined ? [] : parse(tail);
  words.push(...headWords, ...new Array<number>(8 - headWords.length - tailWords.length).fill(0), ...tailWords);
  const out = Buffer.alloc(16);
  words.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  if (v4.length === 4) Buffer.from(v4).copy(out, 12);
  return out;
}
