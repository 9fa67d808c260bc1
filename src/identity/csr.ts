/**
 * PKCS#10 certificate signing requests (RFC 2986): workloads make an EC P-256 key and a CSR; the CA checks
 * the CSR's self-signature (proof the requester holds the key) and takes only the public key from it.
 */
import { generateKeyPair, sign, verify, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { StraitError, errorMessage } from '../common/errors.js';
import type { SpiffeId } from './spiffe.js';
import {
  OID,
  SIGNATURE_SCHEMES,
  childrenOf,
  decodeDer,
  derContext,
  derName,
  derOid,
  derSequence,
  derSet,
  derSmallInteger,
  derBitString,
  encodeDer,
  oidOf,
  pemDecodeAll,
  pemEncode,
  readChildren,
  readElement,
  publicKeyFromSpki,
  subjectAltNameExtension,
  derWrap,
  type Asn1,
  type SignatureScheme,
  type SpkiPublicKey,
} from './x509.js';

const generateKeyPairAsync = promisify(generateKeyPair);

export const CSR_PEM_LABEL = 'CERTIFICATE REQUEST';
/** Written by some older tools (Netscape, Windows). */
const LEGACY_CSR_PEM_LABEL = 'NEW CERTIFICATE REQUEST';

export interface KeyAndCsr {
  /** PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----") of a fresh EC P-256 key. */
  keyPem: string;
  csrPem: string;
}

export interface CreateCsrOptions {
  /** Put this id in the CSR as a URI SAN. Optional: the CA ignores the CSR's names and uses the requested identity. */
  identity?: SpiffeId;
}

/** Makes a fresh EC P-256 key and a CSR for it (empty subject, SAN only when `identity` is given). */
export async function createKeyAndCsr(opts: CreateCsrOptions = {}): Promise<KeyAndCsr> {
  const { privateKey, publicKey } = await generateKeyPairAsync('ec', { namedCurve: 'prime256v1' });
  const csrDer = buildCsr(privateKey, publicKey, opts);
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    csrPem: pemEncode(CSR_PEM_LABEL, csrDer),
  };
}

function buildCsr(privateKey: KeyObject, publicKey: KeyObject, opts: CreateCsrOptions): Buffer {
  const attributes: Asn1[] = [];
  if (opts.identity !== undefined) {
    const extensions = derSequence([subjectAltNameExtension({ uris: [opts.identity.toString()] }, true)]);
    attributes.push(derSequence([derOid(OID.extensionRequest), derSet([extensions])]));
  }
  const info = derSequence([
    derSmallInteger(0), // version v1
    derName([]),
    decodeDer(publicKey.export({ type: 'spki', format: 'der' })),
    derContext(0, attributes), // [0] IMPLICIT SET OF Attribute
  ]);
  const infoDer = encodeDer(info);
  const scheme = SIGNATURE_SCHEMES.ecdsaWithSha256;
  const signature = sign(scheme.hash, infoDer, privateKey);
  return derWrap(0x30, [infoDer, encodeDer(scheme.algorithm), encodeDer(derBitString(signature))]);
}

export interface ParsedCsr {
  /** The requester's public key; the CSR's self-signature has been verified with it. */
  publicKey: KeyObject;
  /** The DER SubjectPublicKeyInfo exactly as the CSR carried it. */
  spkiDer: Buffer;
}

function invalidCsr(what: string, cause?: unknown): StraitError {
  return new StraitError(
    'STRAIT_ERR_CSR_INVALID',
    `certificate signing request rejected: ${what}`,
    cause === undefined ? undefined : { cause },
  );
}

const SCHEME_BY_OID = new Map<string, SignatureScheme>(Object.values(SIGNATURE_SCHEMES).map((s) => [s.oid, s]));

/**
 * Parses a PEM PKCS#10 request and verifies its self-signature. Accepts EC P-256/P-384 keys with ECDSA and
 * RSA (>= 2048 bits) with sha256WithRSAEncryption. Throws STRAIT_ERR_CSR_INVALID saying what is wrong.
 */
export function parseCsr(csrPem: string): ParsedCsr {
  if (typeof csrPem !== 'string' || csrPem.trim() === '') throw invalidCsr('it is empty');
  let blocks;
  try {
    blocks = pemDecodeAll(csrPem);
  } catch (err) {
    throw invalidCsr(`${errorMessage(err)}`, err);
  }
  if (blocks.length === 0) {
    throw invalidCsr(`it is not PEM (expected a "-----BEGIN ${CSR_PEM_LABEL}-----" block)`);
  }
  if (blocks.length > 1) throw invalidCsr(`it holds ${blocks.length} PEM blocks but exactly one is expected`);
  const block = blocks[0]!;
  if (block.label !== CSR_PEM_LABEL && block.label !== LEGACY_CSR_PEM_LABEL) {
    throw invalidCsr(`the PEM label is "${block.label}" but "${CSR_PEM_LABEL}" was expected`);
  }
  return parseCsrDer(block.der);
}

export function parseCsrDer(der: Buffer): ParsedCsr {
  // The exact bytes of CertificationRequestInfo are what was signed: slice them rather than re-encode.
  let infoDer: Buffer;
  let info: Asn1[];
  let algorithmOid: string;
  let signatureBits: Buffer;
  let spkiDer: Buffer;
  try {
    const outer = readElement(der, 0);
    if (outer.tag !== 0x30 || outer.end !== der.length) throw new Error('not a single DER SEQUENCE');
    const parts = readChildren(der, outer);
    if (parts.length !== 3) throw new Error(`CertificationRequest has ${parts.length} fields, expected 3`);
    const [infoEl, , sigEl] = parts as [typeof outer, typeof outer, typeof outer];
    infoDer = der.subarray(infoEl.start, infoEl.end);
    const spkiEl = readChildren(der, infoEl)[2];
    if (spkiEl === undefined) throw new Error('CertificationRequestInfo has no public key');
    spkiDer = der.subarray(spkiEl.start, spkiEl.end);

    const request = childrenOf(decodeDer(der), 'CertificationRequest');
    info = childrenOf(request[0]!, 'CertificationRequestInfo');
    algorithmOid = oidOf(childrenOf(request[1]!, 'AlgorithmIdentifier')[0]!);
    if (sigEl.tag !== 0x03 || der[sigEl.contentStart] !== 0) throw new Error('signature is not a whole-byte BIT STRING');
    signatureBits = der.subarray(sigEl.contentStart + 1, sigEl.end);
  } catch (err) {
    throw invalidCsr(`it is not a DER PKCS#10 request (${errorMessage(err)})`, err);
  }
  const version = info[0];
  if (version === undefined || typeof version.value !== 'string' || version.value !== '\x00') {
    throw invalidCsr('the version is not v1 (0)');
  }

  let publicKey: SpkiPublicKey;
  try {
    publicKey = publicKeyFromSpki(spkiDer);
  } catch (err) {
    throw invalidCsr(`its public key is not usable: ${errorMessage(err)}`, err);
  }
  const scheme = SCHEME_BY_OID.get(algorithmOid);
  if (scheme === undefined) {
    throw invalidCsr(
      `unsupported signature algorithm ${algorithmOid} (use ecdsa-with-SHA256/SHA384 or sha256WithRSAEncryption)`,
    );
  }
  if ((publicKey.family === 'ec') !== scheme.name.startsWith('ecdsa')) {
    throw invalidCsr(`signature algorithm ${scheme.name} does not fit its ${publicKey.description} key`);
  }
  let ok: boolean;
  try {
    ok = verify(scheme.hash, infoDer, publicKey.key, signatureBits);
  } catch (err) {
    throw invalidCsr(`its signature could not be checked (${errorMessage(err)})`, err);
  }
  if (!ok) {
    throw invalidCsr('its signature does not verify (the request was altered or signed with another key)');
  }
  return { publicKey: publicKey.key, spkiDer };
}
