import { StraitError } from '../common/errors.js';

/** The trust domain used when none is configured. */
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

const SCHEME = 'spiffe://';
/** SPIFFE ids are at most 2048 bytes (SPIFFE-ID spec §2.3). */
const MAX_SPIFFE_ID_LENGTH = 2048;
/** DNS names are at most 255 octets, trust domains are DNS-like. */
const MAX_TRUST_DOMAIN_LENGTH = 255;
const TRUST_DOMAIN_CHAR = /[a-z0-9._-]/;
const PATH_SEGMENT_CHAR = /[A-Za-z0-9._-]/;
const FORM = 'spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>';

/** Quotes user input so that control characters are visible in messages. */
const q = (s: string): string => JSON.stringify(s);

function invalid(input: string, what: string): StraitError {
  return new StraitError('STRAIT_ERR_SPIFFE_ID', `invalid SPIFFE id ${q(input)}: ${what} (expected ${FORM})`);
}

/** Returns a description of what is wrong with `td` as a trust domain, or undefined when it is fine. */
function trustDomainProblem(td: string): string | undefined {
  if (td.length === 0) return 'the trust domain is empty';
  if (td.length > MAX_TRUST_DOMAIN_LENGTH) return `the trust domain is longer than ${MAX_TRUST_DOMAIN_LENGTH} characters`;
  if (td !== td.toLowerCase()) return `the trust domain ${q(td)} must be lowercase`;
  for (const ch of td) {
    if (!TRUST_DOMAIN_CHAR.test(ch)) {
      return `the trust domain ${q(td)} contains ${describeChar(ch)} (allowed: a-z 0-9 . - _)`;
    }
  }
  return undefined;
}

function segmentProblem(kind: string, value: string): string | undefined {
  if (value.length === 0) return `the ${kind} is empty`;
  if (value === '.' || value === '..') return `the ${kind} must not be "${value}"`;
  for (const ch of value) {
    if (!PATH_SEGMENT_CHAR.test(ch)) {
      return `the ${kind} ${q(value)} contains ${describeChar(ch)} (allowed: A-Z a-z 0-9 . - _)`;
    }
  }
  return undefined;
}

function describeChar(ch: string): string {
  if (ch === ' ') return 'a space';
  const code = ch.codePointAt(0) ?? 0;
  if (code < 0x20 || code === 0x7f) return `the control character U+${code.toString(16).padStart(4, '0').toUpperCase()}`;
  return `the character "${ch}"`;
}

/**
 * Throws STRAIT_ERR_SPIFFE_ID when `td` is not a valid SPIFFE trust domain (lowercase letters, digits,
 * ".", "-", "_"). Used to reject a bad `--trust-domain` at start-up.
 */
export function validateTrustDomain(td: string): void {
  const problem = trustDomainProblem(td);
  if (problem !== undefined) {
    throw new StraitError('STRAIT_ERR_SPIFFE_ID', `invalid trust domain: ${problem} (check the configured trust domain)`);
  }
}

/** A workload identity `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`. Immutable. */
export class SpiffeId {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly #text: string;

  private constructor(trustDomain: string, namespace: string, serviceAccount: string) {
    this.trustDomain = trustDomain;
    this.namespace = namespace;
    this.serviceAccount = serviceAccount;
    this.#text = `${SCHEME}${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
  }

  /** Builds an id from its parts; throws STRAIT_ERR_SPIFFE_ID when a part is not allowed. */
  static of(trustDomain: string, namespace: string, serviceAccount: string): SpiffeId {
    const text = `${SCHEME}${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
    const problem =
      trustDomainProblem(trustDomain) ??
      segmentProblem('namespace', namespace) ??
      segmentProblem('service account', serviceAccount);
    if (problem !== undefined) throw invalid(text, problem);
    if (text.length > MAX_SPIFFE_ID_LENGTH) throw invalid(text, `it is longer than ${MAX_SPIFFE_ID_LENGTH} characters`);
    return new SpiffeId(trustDomain, namespace, serviceAccount);
  }

  /** Parses `spiffe://<td>/ns/<ns>/sa/<sa>`; throws STRAIT_ERR_SPIFFE_ID saying exactly what is malformed. */
  static parse(input: string): SpiffeId {
    if (typeof input !== 'string') {
      throw new StraitError('STRAIT_ERR_SPIFFE_ID', `invalid SPIFFE id: expected a string but got ${typeof input}`);
    }
    if (input.length === 0) throw invalid(input, 'it is empty');
    if (input.length > MAX_SPIFFE_ID_LENGTH) throw invalid(input, `it is longer than ${MAX_SPIFFE_ID_LENGTH} characters`);
    if (!input.startsWith(SCHEME)) {
      if (input.toLowerCase().startsWith(SCHEME)) throw invalid(input, 'the scheme must be lowercase "spiffe://"');
      const colon = input.indexOf(':');
      const scheme = colon > 0 && /^[A-Za-z][A-Za-z0-9+.-]*$/.test(input.slice(0, colon)) ? input.slice(0, colon) : undefined;
      throw invalid(input, scheme !== undefined ? `the scheme is "${scheme}" but must be "spiffe"` : 'it does not start with "spiffe://"');
    }
    if (input.includes('?')) throw invalid(input, 'it must not contain a query ("?...")');
    if (input.includes('#')) throw invalid(input, 'it must not contain a fragment ("#...")');

    const rest = input.slice(SCHEME.length);
    const slash = rest.indexOf('/');
    const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
    const path = slash === -1 ? '' : rest.slice(slash);
    if (trustDomain.includes('@')) throw invalid(input, 'the trust domain must not contain user info ("@")');
    if (trustDomain.includes(':')) throw invalid(input, 'the trust domain must not contain a port (":")');
    const tdProblem = trustDomainProblem(trustDomain);
    if (tdProblem !== undefined) throw invalid(input, tdProblem);

    const segments = path.split('/').slice(1);
    if (segments.length !== 4 || segments[0] !== 'ns' || segments[2] !== 'sa') {
      const shown = path === '' ? 'the path is empty' : `the path ${q(path)} is not /ns/<namespace>/sa/<service-account>`;
      throw invalid(input, shown);
    }
    const problem = segmentProblem('namespace', segments[1]!) ?? segmentProblem('service account', segments[3]!);
    if (problem !== undefined) throw invalid(input, problem);
    return new SpiffeId(trustDomain, segments[1]!, segments[3]!);
  }

  equals(other: SpiffeId | string | undefined | null): boolean {
    if (other === undefined || other === null) return false;
    return this.#text === (typeof other === 'string' ? other : other.#text);
  }

  toString(): string {
    return this.#text;
  }

  toJSON(): string {
    return this.#text;
  }
}
