/**
 * Request-path normalisation as Istio's default (`pathNormalization: BASE`) applies it before routing and L7
 * authorization, and before forwarding: the normalised path is what routes and policies see AND what the backend
 * receives, so a policy and the application never disagree about which path a request is for.
 *
 * BASE (Istio "Authorization Policy Normalization" reference; Envoy `normalize_path`):
 *  - a percent-encoded NUL (%00) rejects the request (400);
 *  - percent-encoded unreserved characters (ALPHA, DIGIT, "-", ".", "_", "~") are decoded, once (no double decoding);
 *    every other escape is kept, its hex digits upper-cased (RFC 3986 §6.2.2.1), so "%2f" stays an escaped "/";
 *  - a backslash becomes "/";
 *  - dot segments are resolved as RFC 3986 §5.2.4 says ("/a/./b/../c" → "/a/c"), after the decoding above, so
 *    "/a/%2e%2e/b" → "/b";
 *  - repeated slashes are kept (merging them is MERGE_SLASHES, not BASE); the query is kept as sent and not normalised;
 *    a fragment (never valid in a request target) is dropped.
 * The request target must be origin-form (start with "/"); anything else ("*", absolute-form) is rejected, and the
 * caller answers 400. Nothing else is decoded: routes and policies match the escaped path, as Envoy's do.
 */

export interface NormalizedTarget {
  /** The normalised path, without query. */
  path: string;
  /** "" or the query including its leading "?", as received. */
  query: string;
}

export interface RejectedTarget {
  /** Why the target cannot be normalised (for the 400's log line). */
  error: string;
}

const HEX = '0123456789ABCDEF';

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

function isUnreserved(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e;
}

/** Normalises a request target (path with optional query) as Istio's BASE option does; see the file comment. */
export function normalizePath(target: string): NormalizedTarget | RejectedTarget {
  const hash = target.indexOf('#');
  const noFragment = hash < 0 ? target : target.slice(0, hash);
  const q = noFragment.indexOf('?');
  const raw = q < 0 ? noFragment : noFragment.slice(0, q);
  const query = q < 0 ? '' : noFragment.slice(q);
  if (!raw.startsWith('/')) return { error: `request target ${JSON.stringify(target.slice(0, 64))} is not an absolute path (origin-form, starting with "/")` };

  let decoded = '';
  let plain = true;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x25 /* % */ && i + 2 < raw.length) {
      const hi = hexValue(raw.charCodeAt(i + 1));
      const lo = hexValue(raw.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) {
        const byte = hi * 16 + lo;
        if (byte === 0) return { error: 'request path contains an encoded NUL (%00)' };
        plain = false;
        decoded += isUnreserved(byte) ? String.fromCharCode(byte) : `%${HEX[hi]}${HEX[lo]}`;
        i += 2;
        continue;
      }
    }
    if (c === 0x5c /* \ */) {
      plain = false;
      decoded += '/';
      continue;
    }
    decoded += raw[i];
  }
  const path = plain && !hasDotSegment(decoded) ? decoded : removeDotSegments(decoded);
  return { path, query };
}

/** Whether "." or ".." occurs as a whole segment (the common case, none, skips the rebuild). */
function hasDotSegment(path: string): boolean {
  return /\/\.\.?(?:\/|$)/.test(path);
}

/** RFC 3986 §5.2.4 for an absolute path: "." segments vanish, ".." removes the one before; a trailing one leaves "/". */
function removeDotSegments(path: string): string {
  const segments = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    const last = i === segments.length - 1;
    if (s === '.' || s === '..') {
      if (s === '..') out.pop();
      if (last) out.push('');
      continue;
    }
    out.push(s);
  }
  return `/${out.join('/')}`;
}

/** The path without its query (and fragment), for matching a target that is already normalised. */
export function pathOf(target: string): string {
  const q = target.search(/[?#]/);
  return q < 0 ? target : target.slice(0, q);
}

/** The query of a target without its leading "?" ("" when none; fragment dropped). */
export function queryOf(target: string): string {
  const q = target.indexOf('?');
  if (q < 0) return '';
  const hash = target.indexOf('#', q);
  return hash < 0 ? target.slice(q + 1) : target.slice(q + 1, hash);
}
