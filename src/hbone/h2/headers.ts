/**
 * Well-formedness of received header lists (RFC 9113 §8.1–§8.5), as pure functions: each returns undefined
 * for a well-formed list, or why it is malformed (the stream is then reset with PROTOCOL_ERROR, §8.1.1).
 * HBONE only needs CONNECT, but every request is checked the same way, so a malformed GET is refused as
 * malformed rather than answered 405.
 */
import type { HeaderList } from './hpack.js';

/** A lower-case token (RFC 9110 §5.6.2), optionally a pseudo-header's leading colon. */
const FIELD_NAME = /^:?[!#$%&'*+\-.^_`|~0-9a-z]+$/;
/** No NUL, CR or LF anywhere, and no leading or trailing space or tab (RFC 9113 §8.2.1). */
const BAD_VALUE = /[\0\r\n]|^[ \t]|[ \t]$/;
/** Connection-specific fields: meaningless in HTTP/2 and forbidden (§8.2.2). */
const CONNECTION_SPECIFIC = new Set(['connection', 'proxy-connection', 'keep-alive', 'transfer-encoding', 'upgrade']);
const REQUEST_PSEUDO = new Set([':method', ':scheme', ':authority', ':path']);

/** What a well-formed request carried that the connection needs later. */
export interface RequestInfo {
  /** The declared content-length, when there is one (DATA must add up to it, §8.1.1). */
  contentLength?: number;
}

/** The rules every field of every header section obeys; `pseudo` lists the pseudo-headers allowed here. */
function checkFields(list: HeaderList, pseudo: ReadonlySet<string>, what: string): string | undefined {
  let regular = false;
  const seen = new Set<string>();
  for (const [name, value] of list) {
    if (!FIELD_NAME.test(name)) return `${what}: field name "${printable(name)}" is not a lower-case token`;
    if (BAD_VALUE.test(value)) return `${what}: the value of "${name}" contains NUL, CR or LF, or starts or ends with white space`;
    if (name.charCodeAt(0) === 0x3a) {
      if (!pseudo.has(name)) return `${what}: pseudo-header ${name} is not allowed here`;
      if (regular) return `${what}: pseudo-header ${name} after a regular field`;
      if (seen.has(name)) return `${what}: pseudo-header ${name} appears twice`;
      seen.add(name);
      continue;
    }
    regular = true;
    if (CONNECTION_SPECIFIC.has(name)) return `${what}: connection-specific field "${name}" is not allowed in HTTP/2`;
    if (name === 'te' && value !== 'trailers') return `${what}: te may only be "trailers"`;
  }
  return undefined;
}

/** Parses content-length values (repeats must agree); NaN when malformed. */
function contentLengthOf(list: HeaderList): number | undefined {
  let length: number | undefined;
  for (const [name, value] of list) {
    if (name !== 'content-length') continue;
    for (const part of value.split(',')) {
      const v = part.trim();
      if (!/^\d{1,15}$/.test(v)) return Number.NaN;
      const n = Number(v);
      if (length !== undefined && length !== n) return Number.NaN;
      length = n;
    }
  }
  return length;
}

/** A request's header section. Returns the reason it is malformed, or what the connection must track. */
export function checkRequest(list: HeaderList): { malformed: string } | RequestInfo {
  const bad = checkFields(list, REQUEST_PSEUDO, 'request');
  if (bad !== undefined) return { malformed: bad };
  let method: string | undefined;
  let scheme = false;
  let path: string | undefined;
  let authority = false;
  for (const [name, value] of list) {
    if (name === ':method') method = value;
    else if (name === ':scheme') scheme = true;
    else if (name === ':path') path = value;
    else if (name === ':authority') authority = true;
  }
  if (method === undefined || method === '') return { malformed: 'request: :method is missing' };
  if (method === 'CONNECT') {
    // §8.5: :authority only; :scheme and :path are omitted (extended CONNECT, RFC 8441, is not enabled).
    if (!authority) return { malformed: 'CONNECT request: :authority is missing' };
    if (scheme || path !== undefined) return { malformed: 'CONNECT request: :scheme and :path must be omitted' };
  } else {
    if (!scheme) return { malformed: 'request: :scheme is missing' };
    if (path === undefined) return { malformed: 'request: :path is missing' };
    if (path === '') return { malformed: 'request: :path is empty' };
  }
  const contentLength = contentLengthOf(list);
  if (Number.isNaN(contentLength)) return { malformed: 'request: content-length is not a single non-negative integer' };
  // A CONNECT's DATA is the tunnel, not content (RFC 9110 §9.3.6): a content-length there bounds nothing.
  return contentLength === undefined || method === 'CONNECT' ? {} : { contentLength };
}

const RESPONSE_PSEUDO = new Set([':status']);

/** A response's header section; returns its status, or why it is malformed. */
export function checkResponse(list: HeaderList): { malformed: string } | { status: number } {
  const bad = checkFields(list, RESPONSE_PSEUDO, 'response');
  if (bad !== undefined) return { malformed: bad };
  const status = list.find(([name]) => name === ':status')?.[1];
  if (status === undefined) return { malformed: 'response: :status is missing' };
  if (!/^[1-5]\d\d$/.test(status)) return { malformed: `response: :status "${printable(status)}" is not a three-digit code` };
  return { status: Number(status) };
}

const NO_PSEUDO = new Set<string>();

/** A trailer section: regular fields only. */
export function checkTrailers(list: HeaderList): string | undefined {
  return checkFields(list, NO_PSEUDO, 'trailers');
}

function printable(s: string): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 64 ? `${clean.slice(0, 61)}...` : clean;
}
