/**
 * DER building blocks for X.509 certificates and PKCS#10 requests (RFC 5280, RFC 2986), internal to
 * src/identity. Structures are built with `forge.asn1`; node-forge's pki only handles RSA keys, so keys and
 * signatures (ECDSA P-256/P-384, RSA PKCS#1 v1.5) are done with node:crypto. Nothing here is exported from
 * the identity index.
 */
import { createRequire } from 'node:module';
import type forge from 'node-forge';
import { createHash, createPublicKey, randomBytes, sign, type KeyObject } from 'node:crypto';

// Only forge's ASN.1 layer and the util it stands on: the whole library (pki, tls, ciphers, PRNG) adds ~3 MB
// of resident memory to every process, and the ztunnel, which builds CSRs, is budgeted in megabytes.
const requireCjs = createRequire(import.meta.url);
const asn1 = requireCjs('node-forge/lib/asn1') as typeof forge.asn1;
const forgeUtil = requireCjs('node-forge/lib/util') as typeof forge.util;
export type Asn1 = forge.asn1.Asn1;
const UNIVERSAL = asn1.Class.UNIVERSAL;
const CONTEXT = asn1.Class.CONTEXT_SPECIFIC;
const T = asn1.Type;

export const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
  secp384r1: '1.3.132.0.34',
  rsaEncryption: '1.2.840.113549.1.1.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  sha256WithRsaEncryption: '1.2.840.113549.1.1.11',
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
  extensionRequest: '1.2.840.113549.1.9.14',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** KeyUsage bit numbers (RFC 5280 §4.2.1.3). */
export const KEY_USAGE = {
  digitalSignature: 0,
  keyEncipherment: 2,
  keyCertSign: 5,
  cRLSign: 6,
} as const;

/** GeneralName tags (RFC 5280 §4.2.1.6). */
const GENERAL_NAME = { dNSName: 2, uniformResourceIdentifier: 6, iPAddress: 7 } as const;

// ---------------------------------------------------------------------------------------------------------
// Encoding

const oidCache = new Map<string, string>();

export function derOid(oid: string): Asn1 {
  let bytes = oidCache.get(oid);
  if (bytes === undefined) {
    bytes = asn1.oidToDer(oid).getBytes();
    oidCache.set(oid, bytes);
  }
  return asn1.create(UNIVERSAL, T.OID, false, bytes);
}

export function derSequence(items: Asn1[]): Asn1 {
  return asn1.create(UNIVERSAL, T.SEQUENCE, true, items);
}

export function derSet(items: Asn1[]): Asn1 {
  return asn1.create(UNIVERSAL, T.SET, true, items);
}

/** A non-negative INTEGER from big-endian magnitude bytes (a leading 0x00 is added when the top bit is set). */
export function derUnsignedInteger(magnitude: Buffer): Asn1 {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  let bytes = magnitude.subarray(start);
  if (bytes.length === 0) bytes = Buffer.from([0]);
  if ((bytes[0]! & 0x80) !== 0) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return asn1.create(UNIVERSAL, T.INTEGER, false, bytes.toString('latin1'));
}

export function derSmallInteger(n: number): Asn1 {
  return asn1.create(UNIVERSAL, T.INTEGER, false, asn1.integerToDer(n).getBytes());
}

export function derBoolean(value: boolean): Asn1 {
  return asn1.create(UNIVERSAL, T.BOOLEAN, false, value ? '\xff' : '\x00');
}

export function derNull(): Asn1 {
  return asn1.create(UNIVERSAL, T.NULL, false, '');
}

export function derOctetString(bytes: Buffer): Asn1 {
  return asn1.create(UNIVERSAL, T.OCTETSTRING, false, bytes.toString('latin1'));
}

export function derBitString(bytes: Buffer, unusedBits = 0): Asn1 {
  return asn1.create(UNIVERSAL, T.BITSTRING, false, String.fromCharCode(unusedBits) + bytes.toString('latin1'));
}

export function derUtf8String(s: string): Asn1 {
  return asn1.create(UNIVERSAL, T.UTF8, false, Buffer.from(s, 'utf8').toString('latin1'));
}

/** UTCTime for 1950-2049, GeneralizedTime otherwise (RFC 5280 §4.1.2.5); seconds precision. */
export function derTime(date: Date): Asn1 {
  const year = date.getUTCFullYear();
  if (year >= 1950 && year < 2050) return asn1.create(UNIVERSAL, T.UTCTIME, false, asn1.dateToUtcTime(date));
  return asn1.create(UNIVERSAL, T.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date));
}

/** A context-specific tag: constructed (EXPLICIT or IMPLICIT SEQUENCE/SET) with children, or primitive bytes. */
export function derContext(tag: number, value: Asn1[] | Buffer): Asn1 {
  if (Array.isArray(value)) return asn1.create(CONTEXT, tag, true, value);
  return asn1.create(CONTEXT, tag, false, value.toString('latin1'));
}

export function encodeDer(node: Asn1): Buffer {
  return Buffer.from(asn1.toDer(node).getBytes(), 'latin1');
}

/** Strict DER parse of a whole buffer; BIT/OCTET STRING contents are left as bytes. Throws on malformed input. */
export function decodeDer(der: Buffer): Asn1 {
  const options = { strict: true, parseAllBytes: true, decodeBitStrings: false };
  // @types/node-forge only declares the boolean form of the options argument.
  return (asn1.fromDer as unknown as (b: forge.util.ByteBuffer, o: typeof options) => Asn1)(
    forgeUtil.createBuffer(der.toString('latin1')),
    options,
  );
}

export function bytesOf(node: Asn1): Buffer {
  if (typeof node.value !== 'string') throw new Error('expected a primitive ASN.1 value');
  return Buffer.from(node.value, 'latin1');
}

export function oidOf(node: Asn1): string {
  if (node.tagClass !== UNIVERSAL || node.type !== T.OID || typeof node.value !== 'string') {
    throw new Error('expected an OBJECT IDENTIFIER');
  }
  return asn1.derToOid(node.value);
}

export function childrenOf(node: Asn1, what: string): Asn1[] {
  if (!Array.isArray(node.value)) throw new Error(`expected ${what} to be a constructed value`);
  return node.value;
}

/** A Name with one attribute per RDN, e.g. [[OID.organizationName, 'cluster.local'], [OID.commonName, 'x']]. */
export function derName(attributes: Array<[oid: string, value: string]>): Asn1 {
  return derSequence(attributes.map(([oid, value]) => derSet([derSequence([derOid(oid), derUtf8String(value)])])));
}

export function derExtension(oid: string, critical: boolean, value: Asn1): Asn1 {
  const parts = [derOid(oid)];
  if (critical) parts.push(derBoolean(true));
  parts.push(derOctetString(encodeDer(value)));
  return derSequence(parts);
}

export function basicConstraintsExtension(ca: boolean): Asn1 {
  return derExtension(OID.basicConstraints, true, derSequence(ca ? [derBoolean(true)] : []));
}

export function keyUsageExtension(bits: number[]): Asn1 {
  const highest = Math.max(...bits);
  const bytes = Buffer.alloc((highest >> 3) + 1);
  for (const bit of bits) bytes[bit >> 3]! |= 0x80 >> (bit & 7);
  // DER: trailing zero bits are not encoded; the unused-bits count says how many are missing.
  const unused = 7 - (highest & 7);
  return derExtension(OID.keyUsage, true, derBitString(bytes, unused));
}

export function extKeyUsageExtension(oids: string[]): Asn1 {
  return derExtension(OID.extKeyUsage, false, derSequence(oids.map(derOid)));
}

export function subjectKeyIdExtension(keyId: Buffer): Asn1 {
  return derExtension(OID.subjectKeyIdentifier, false, derOctetString(keyId));
}

export function authorityKeyIdExtension(keyId: Buffer): Asn1 {
  return derExtension(OID.authorityKeyIdentifier, false, derSequence([derContext(0, keyId)]));
}

export interface SubjectAltNames {
  uris?: string[];
  dnsNames?: string[];
  /** Already-encoded addresses: 4 bytes for IPv4, 16 for IPv6. */
  ipAddresses?: Buffer[];
}

export function generalNames(names: SubjectAltNames): Asn1 {
  const items: Asn1[] = [];
  for (const dns of names.dnsNames ?? []) items.push(derContext(GENERAL_NAME.dNSName, Buffer.from(dns, 'ascii')));
  for (const ip of names.ipAddresses ?? []) items.push(derContext(GENERAL_NAME.iPAddress, ip));
  for (const uri of names.uris ?? []) items.push(derContext(GENERAL_NAME.uniformResourceIdentifier, Buffer.from(uri, 'ascii')));
  return derSequence(items);
}

/** SubjectAltName; critical when the subject is empty (RFC 5280 §4.2.1.6). */
export function subjectAltNameExtension(names: SubjectAltNames, critical: boolean): Asn1 {
  return derExtension(OID.subjectAltName, critical, generalNames(names));
}

/** A random positive 128-bit serial number (RFC 5280 allows up to 20 octets). */
export function randomSerial(): Buffer {
  if (serialPoolOffset + SERIAL_BYTES > serialPool.length) {
    serialPool = randomBytes(SERIAL_BYTES * 256);
    serialPoolOffset = 0;
  }
  const bytes = Buffer.from(serialPool.subarray(serialPoolOffset, serialPoolOffset + SERIAL_BYTES));
  serialPool.fill(0, serialPoolOffset, serialPoolOffset + SERIAL_BYTES);
  serialPoolOffset += SERIAL_BYTES;
  if (bytes[0] === 0) bytes[0] = 1;
  return bytes;
}

// One randomBytes call per 256 serials: each call costs ~10 us on the signing hot path.
const SERIAL_BYTES = 16;
let serialPool = Buffer.alloc(0);
let serialPoolOffset = 0;

// ---------------------------------------------------------------------------------------------------------
// Signatures

export interface SignatureScheme {
  /** e.g. "ecdsa-with-SHA256" */
  readonly name: string;
  readonly oid: string;
  readonly hash: 'sha256' | 'sha384';
  /** The AlgorithmIdentifier (ECDSA: no parameters; RSA: NULL parameters). */
  readonly algorithm: Asn1;
}

function scheme(name: string, oid: string, hash: 'sha256' | 'sha384', nullParams: boolean): SignatureScheme {
  return { name, oid, hash, algorithm: derSequence(nullParams ? [derOid(oid), derNull()] : [derOid(oid)]) };
}

export const SIGNATURE_SCHEMES = {
  ecdsaWithSha256: scheme('ecdsa-with-SHA256', OID.ecdsaWithSha256, 'sha256', false),
  ecdsaWithSha384: scheme('ecdsa-with-SHA384', OID.ecdsaWithSha384, 'sha384', false),
  sha256WithRsa: scheme('sha256WithRSAEncryption', OID.sha256WithRsaEncryption, 'sha256', true),
} as const;

/** Key kinds we accept for CA keys and CSRs: EC P-256, EC P-384 and RSA >= 2048 bits. */
export function describeKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') return `EC ${details.namedCurve ?? 'unknown curve'}`;
  if (key.asymmetricKeyType === 'rsa') return `RSA ${details.modulusLength ?? '?'}-bit`;
  return String(key.asymmetricKeyType ?? key.type);
}

/** The signature scheme to use with `key`, or a string saying why the key is not supported. */
export function signatureSchemeFor(key: KeyObject): SignatureScheme | string {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    if (details.namedCurve === 'prime256v1') return SIGNATURE_SCHEMES.ecdsaWithSha256;
    if (details.namedCurve === 'secp384r1') return SIGNATURE_SCHEMES.ecdsaWithSha384;
    return `unsupported EC curve ${details.namedCurve ?? '(unknown)'} (use P-256 or P-384)`;
  }
  if (key.asymmetricKeyType === 'rsa') {
    if ((details.modulusLength ?? 0) < 2048) return `RSA key of ${details.modulusLength ?? '?'} bits is too small (use >= 2048)`;
    return SIGNATURE_SCHEMES.sha256WithRsa;
  }
  return `unsupported key type ${describeKey(key)} (use EC P-256, EC P-384 or RSA >= 2048)`;
}

export interface SpkiPublicKey {
  key: KeyObject;
  /** "EC P-256", "EC P-384" or "RSA 2048-bit". */
  description: string;
  family: 'ec' | 'rsa';
}

const CURVES = new Map([
  [OID.prime256v1, { jwk: 'P-256', coordinateBytes: 32 }],
  [OID.secp384r1, { jwk: 'P-384', coordinateBytes: 48 }],
]);

/**
 * Reads a DER SubjectPublicKeyInfo, accepting only EC P-256, EC P-384 and RSA >= 2048 bits; throws a plain
 * Error saying what is unsupported. EC keys are imported as JWK, which with OpenSSL 3 is about twice as fast
 * as decoding the DER, and curve and size come from the SPKI itself rather than from asymmetricKeyDetails
 * (also slow): this is on the signing hot path.
 */
export function publicKeyFromSpki(spkiDer: Buffer): SpkiPublicKey {
  const spki = readElement(spkiDer, 0);
  if (spki.tag !== 0x30 || spki.end !== spkiDer.length) throw new Error('SubjectPublicKeyInfo is not a single SEQUENCE');
  const [algorithm, bits] = readChildren(spkiDer, spki);
  if (algorithm?.tag !== 0x30 || bits?.tag !== 0x03 || spkiDer[bits.contentStart] !== 0) {
    throw new Error('SubjectPublicKeyInfo is malformed');
  }
  const [algOid, params] = readChildren(spkiDer, algorithm);
  if (algOid?.tag !== 0x06) throw new Error('SubjectPublicKeyInfo has no algorithm OID');
  const algorithmOid = asn1.derToOid(spkiDer.subarray(algOid.contentStart, algOid.end).toString('latin1'));
  const keyBits = spkiDer.subarray(bits.contentStart + 1, bits.end);

  if (algorithmOid === OID.ecPublicKey) {
    const curveOid =
      params?.tag === 0x06 ? asn1.derToOid(spkiDer.subarray(params.contentStart, params.end).toString('latin1')) : '(explicit parameters)';
    const curve = CURVES.get(curveOid as typeof OID.prime256v1);
    if (curve === undefined) throw new Error(`unsupported EC curve ${curveOid} (use P-256 or P-384)`);
    const n = curve.coordinateBytes;
    let key: KeyObject;
    if (keyBits.length === 1 + 2 * n && keyBits[0] === 0x04) {
      const x = keyBits.subarray(1, 1 + n).toString('base64url');
      const y = keyBits.subarray(1 + n).toString('base64url');
      key = createPublicKey({ key: { kty: 'EC', crv: curve.jwk, x, y }, format: 'jwk' });
    } else {
      key = createPublicKey({ key: spkiDer, format: 'der', type: 'spki' }); // compressed point
    }
    return { key, description: `EC ${curve.jwk}`, family: 'ec' };
  }
  if (algorithmOid === OID.rsaEncryption) {
    const key = createPublicKey({ key: spkiDer, format: 'der', type: 'spki' });
    const modulusBits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (modulusBits < 2048) throw new Error(`RSA key of ${modulusBits} bits is too small (use >= 2048)`);
    return { key, description: `RSA ${modulusBits}-bit`, family: 'rsa' };
  }
  throw new Error(`unsupported public key algorithm ${algorithmOid} (use EC P-256, EC P-384 or RSA >= 2048)`);
}

// ---------------------------------------------------------------------------------------------------------
// Certificates

export interface CertificateFields {
  serial: Buffer;
  issuer: Asn1;
  subject: Asn1;
  notBefore: Date;
  notAfter: Date;
  /** SubjectPublicKeyInfo. */
  spki: Asn1;
  extensions: Asn1[];
}

/** Builds the TBSCertificate, signs it with `key` and returns the Certificate DER. */
export function signCertificate(fields: CertificateFields, key: KeyObject, scheme: SignatureScheme): Buffer {
  const tbs = derSequence([
    derContext(0, [derSmallInteger(2)]), // version v3
    derUnsignedInteger(fields.serial),
    scheme.algorithm,
    fields.issuer,
    derSequence([derTime(fields.notBefore), derTime(fields.notAfter)]),
    fields.subject,
    fields.spki,
    derContext(3, [derSequence(fields.extensions)]),
  ]);
  const tbsDer = encodeDer(tbs);
  const signature = sign(scheme.hash, tbsDer, key);
  // Wrap the already-encoded TBS rather than encoding it a second time.
  return derWrap(0x30, [tbsDer, encodeDer(scheme.algorithm), encodeDer(derBitString(signature))]);
}

/** Tag + length + the concatenated parts. */
export function derWrap(tag: number, parts: Buffer[]): Buffer {
  let length = 0;
  for (const p of parts) length += p.length;
  let header: Buffer;
  if (length < 0x80) header = Buffer.from([tag, length]);
  else if (length < 0x100) header = Buffer.from([tag, 0x81, length]);
  else if (length < 0x10000) header = Buffer.from([tag, 0x82, length >> 8, length & 0xff]);
  else header = Buffer.from([tag, 0x83, length >> 16, (length >> 8) & 0xff, length & 0xff]);
  return Buffer.concat([header, ...parts], header.length + length);
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING (without the unused-bits octet). */
export function keyIdentifier(spkiDer: Buffer): Buffer {
  const spki = readElement(spkiDer, 0);
  const [, bits] = readChildren(spkiDer, spki);
  if (bits === undefined || bits.tag !== 0x03) throw new Error('SubjectPublicKeyInfo has no BIT STRING');
  return createHash('sha1').update(spkiDer.subarray(bits.contentStart + 1, bits.end)).digest();
}

export interface CertificateInfo {
  /** The subject Name, ready to be used as the issuer of certificates this one signs. */
  subject: Asn1;
  notBefore: Date;
  notAfter: Date;
  uris: string[];
  dnsNames: string[];
  ca: boolean;
  pathLen: number | undefined;
  /** KeyUsage bits, or undefined when the extension is absent (then any usage is allowed). */
  keyUsage: Buffer | undefined;
  subjectKeyId: Buffer | undefined;
}

export function hasKeyUsage(keyUsage: Buffer | undefined, bit: number): boolean {
  if (keyUsage === undefined) return true;
  const byte = keyUsage[bit >> 3];
  return byte !== undefined && (byte & (0x80 >> (bit & 7))) !== 0;
}

function timeOf(node: Asn1): Date {
  const value = typeof node.value === 'string' ? node.value : '';
  if (node.type === T.UTCTIME) return asn1.utcTimeToDate(value);
  if (node.type === T.GENERALIZEDTIME) return asn1.generalizedTimeToDate(value);
  throw new Error('validity time is neither UTCTime nor GeneralizedTime');
}

/** Reads the fields the identity code needs from a certificate DER. Throws a plain Error when malformed. */
export function parseCertificate(der: Buffer): CertificateInfo {
  const cert = childrenOf(decodeDer(der), 'Certificate');
  const tbs = childrenOf(cert[0]!, 'TBSCertificate');
  const offset = tbs[0]?.tagClass === CONTEXT && tbs[0]?.type === 0 ? 1 : 0;
  const validity = childrenOf(tbs[offset + 3]!, 'Validity');
  const subject = tbs[offset + 4];
  if (subject === undefined || validity.length !== 2) throw new Error('TBSCertificate is truncated');
  const info: CertificateInfo = {
    subject,
    notBefore: timeOf(validity[0]!),
    notAfter: timeOf(validity[1]!),
    uris: [],
    dnsNames: [],
    ca: false,
    pathLen: undefined,
    keyUsage: undefined,
    subjectKeyId: undefined,
  };
  const extsWrapper = tbs.find((n) => n.tagClass === CONTEXT && n.type === 3);
  if (extsWrapper === undefined) return info;
  for (const ext of childrenOf(childrenOf(extsWrapper, 'extensions')[0]!, 'Extensions')) {
    const parts = childrenOf(ext, 'Extension');
    const oid = oidOf(parts[0]!);
    const value = decodeDer(bytesOf(parts[parts.length - 1]!));
    switch (oid) {
      case OID.subjectAltName:
        for (const name of childrenOf(value, 'GeneralNames')) {
          if (name.tagClass !== CONTEXT) continue;
          if (name.type === GENERAL_NAME.uniformResourceIdentifier) info.uris.push(bytesOf(name).toString('latin1'));
          else if (name.type === GENERAL_NAME.dNSName) info.dnsNames.push(bytesOf(name).toString('latin1'));
        }
        break;
      case OID.basicConstraints:
        for (const item of childrenOf(value, 'BasicConstraints')) {
          if (item.type === T.BOOLEAN) info.ca = bytesOf(item)[0] !== 0;
          else if (item.type === T.INTEGER) info.pathLen = asn1.derToInteger(item.value as string);
        }
        break;
      case OID.keyUsage: {
        const bits = bytesOf(value);
        info.keyUsage = bits.subarray(1);
        break;
      }
      case OID.subjectKeyIdentifier:
        info.subjectKeyId = bytesOf(value);
        break;
    }
  }
  return info;
}

// ---------------------------------------------------------------------------------------------------------
// Raw DER walking, for the exact signed bytes of a CSR and for SubjectPublicKeyInfo.

export interface DerElement {
  tag: number;
  start: number;
  contentStart: number;
  end: number;
}

/** Reads one DER element header at `offset`; throws on anything malformed or running past `limit`. */
export function readElement(buf: Buffer, offset: number, limit = buf.length): DerElement {
  if (offset + 2 > limit) throw new Error('DER element is truncated');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new Error('DER high tag numbers are not supported');
  let length = buf[offset + 1]!;
  let contentStart = offset + 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    if (n === 0 || n > 4) throw new Error('DER length is indefinite or too large');
    if (contentStart + n > limit) throw new Error('DER length is truncated');
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[contentStart + i]!;
    contentStart += n;
  }
  const end = contentStart + length;
  if (end > limit) throw new Error('DER element runs past the end of its container');
  return { tag, start: offset, contentStart, end };
}

export function readChildren(buf: Buffer, parent: DerElement): DerElement[] {
  const out: DerElement[] = [];
  let offset = parent.contentStart;
  while (offset < parent.end) {
    const child = readElement(buf, offset, parent.end);
    out.push(child);
    offset = child.end;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// PEM

export function pemEncode(label: string, der: Buffer): string {
  const b64 = der.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

export interface PemBlock {
  label: string;
  der: Buffer;
  /** The block's text, normalised (what pemEncode would produce). */
  pem: string;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;

/** All PEM blocks in `text`; throws a plain Error on a block whose labels disagree or whose base64 is bad. */
export function pemDecodeAll(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const m of text.matchAll(PEM_BLOCK)) {
    const [, label, body, endLabel] = m as unknown as [string, string, string, string];
    if (label !== endLabel) throw new Error(`PEM block BEGIN ${label} ends with END ${endLabel}`);
    const b64 = body.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0 || b64.length === 0) {
      throw new Error(`PEM block ${label} has invalid base64 content`);
    }
    const der = Buffer.from(b64, 'base64');
    blocks.push({ label, der, pem: pemEncode(label, der) });
  }
  return blocks;
}
