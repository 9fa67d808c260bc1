/**
 * Request and response filters of a route (DESIGN §6 "request filters", "response filters"), as pure functions:
 * header operations, path rewrite, and the Location of a redirect. The caller composes them around the upstream call
 * (STYLE "Composition over branches for L7 features").
 *
 * Header operations (Gateway API RequestHeaderModifier / ResponseHeaderModifier, Istio `headers`):
 *  - applied remove → set → add, Envoy's order (remove-before-add), each list in order;
 *  - names are case-insensitive (stored lower case);
 *  - `set` replaces every value of the name; `add` appends to an existing value with "," (Gateway API: "my-header:
 *    foo" + add bar → "foo,bar"), or creates the header; `set-cookie` is never comma-joined: added cookies become more
 *    values of its array;
 *  - never touched, whatever the config says (each such op is returned in `ignored`): pseudo-headers (":path", ...),
 *    the hop-by-hop headers (connection, keep-alive, proxy-connection, te, trailer, transfer-encoding, upgrade) and
 *    content-length, which frame the message and belong to the proxy, not to routing;
 *  - `host` is the authority: `set host` returns the new authority (the caller writes it to Host / :authority);
 *    `add host` and `remove host` are ignored (a request has exactly one authority).
 */
import type { HeaderOps, RedirectPolicy, RewritePolicy, RouteRule } from '../common/xds/waypoint-resources.js';
import { pathOf } from './path.js';
import { segmentPrefix } from './router.js';

export type HeaderMap = Record<string, string | string[] | undefined>;

export interface HeaderOpsResult {
  /** The new authority when an op targeted `host`. */
  authority?: string;
  /** Ops refused because they target a header the proxy owns, as "set connection" / "remove :path". */
  ignored: string[];
}

const PROTECTED = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'content-length']);

/** Applies `ops` to `headers` in place (lower-case keys, as Node gives them); see the file comment. */
export function applyHeaderOps(headers: HeaderMap, ops: HeaderOps | undefined): HeaderOpsResult {
  const result: HeaderOpsResult = { ignored: [] };
  if (!ops) return result;
  const refuse = (op: string, name: string): boolean => {
    if (name.startsWith(':') || PROTECTED.has(name)) { result.ignored.push(`${op} ${name}`); return true; }
    return false;
  };
  for (const raw of ops.remove ?? []) {
    const name = raw.toLowerCase();
    if (name === 'host') { result.ignored.push('remove host'); continue; }
    if (refuse('remove', name)) continue;
    deleteHeader(headers, name);
  }
  for (const [raw, value] of ops.set ?? []) {
    const name = raw.toLowerCase();
    if (name === 'host') { result.authority = value; continue; }
    if (refuse('set', name)) continue;
    deleteHeader(headers, name);
    headers[name] = value;
  }
  for (const [raw, value] of ops.add ?? []) {
    const name = raw.toLowerCase();
    if (name === 'host') { result.ignored.push('add host'); continue; }
    if (refuse('add', name)) continue;
    const existing = getHeader(headers, name);
    if (existing === undefined) headers[name] = name === 'set-cookie' ? [value] : value;
    else if (Array.isArray(existing)) { deleteHeader(headers, name); headers[name] = name === 'set-cookie' ? [...existing, value] : `${existing.join(',')},${value}`; }
    else { deleteHeader(headers, name); headers[name] = name === 'set-cookie' ? [existing, value] : `${existing},${value}`; }
  }
  return result;
}

/** A header whatever the case of its key (keys from Node are lower case; a map built by hand may not be). */
function getHeader(headers: HeaderMap, name: string): string | string[] | undefined {
  if (headers[name] !== undefined) return headers[name];
  for (const k of Object.keys(headers)) if (k.toLowerCase() === name && headers[k] !== undefined) return headers[k];
  return undefined;
}

function deleteHeader(headers: HeaderMap, name: string): void {
  for (const k of Object.keys(headers)) if (k.toLowerCase() === name) delete headers[k];
}

// ---------- path rewrite ----------

/**
 * The request target after `rewrite` (query kept as sent):
 *  - `fullPath` replaces the whole path;
 *  - `prefix` replaces the part the rule's path match matched: with a segment prefix (Gateway API ReplacePrefixMatch)
 *    element-wise, trailing slashes of the match and of the replacement ignored, never producing "" or "//"
 *    ("/foo/bar" with /foo → "/" gives "/bar", "/foo" gives "/"); with a plain prefix (VirtualService) the first
 *    len(prefix) characters; with an exact or regex match, or no path match (Envoy's implicit prefix "/"),
 *    the whole path for exact/regex and the leading "/" otherwise, as Envoy's prefix_rewrite does.
 * Returns `target` unchanged when `rewrite` changes no path.
 */
export function rewritePath(target: string, rule: RouteRule, rewrite: Pick<RewritePolicy, 'fullPath' | 'prefix'> | undefined): string {
  if (!rewrite || (rewrite.fullPath === undefined && rewrite.prefix === undefined)) return target;
  const path = pathOf(target);
  const rest = target.slice(path.length);
  if (rewrite.fullPath !== undefined) return `${rewrite.fullPath || '/'}${rest}`;
  return `${replacePrefix(path, rule, rewrite.prefix!)}${rest}`;
}

function replacePrefix(path: string, rule: RouteRule, replacement: string): string {
  const m = rule.match.path;
  if (m && (m.type === 'exact' || m.type === 'regex')) return replacement || '/';
  if (m && m.segments) {
    const matched = segmentPrefix(m.value).length;
    const out = segmentPrefix(replacement) + path.slice(matched);
    return out === '' ? '/' : out;
  }
  const matched = m ? m.value.length : 1;
  const out = replacement + path.slice(matched);
  return out === '' ? '/' : out;
}

// ---------- redirect ----------

export interface RedirectInput {
  /** Scheme the client used; the waypoint's inner traffic is "http". */
  scheme?: string;
  /** Host header / :authority, possibly with a port. */
  authority: string;
  /** The service port the request arrived for (Gateway API: the listener port). */
  port: number;
  /** Request target (path + query), normalised. */
  path: string;
}

const DEFAULT_PORTS: Record<string, number> = { http: 80, https: 443 };

/**
 * The Location of a redirect, Gateway API RequestRedirect semantics: scheme, host (without the request's port) and path
 * default to the request's; the port is `redirect.port`, else the scheme's well-known port when the redirect sets a
 * scheme, else the port the request arrived for; the port is left out for http:80 and https:443. The path is
 * replaced as `rewritePath` does (fullPath or prefix), the query kept.
 */
export function redirectLocation(req: RedirectInput, redirect: RedirectPolicy, rule: RouteRule): string {
  const scheme = (redirect.scheme ?? req.scheme ?? 'http').toLowerCase();
  const host = formatHost(redirect.host ?? hostOf(req.authority));
  const port = redirect.port ?? (redirect.scheme !== undefined ? DEFAULT_PORTS[scheme] : req.port);
  const showPort = port !== undefined && DEFAULT_PORTS[scheme] !== port;
  const target = rewritePath(req.path, rule, { fullPath: redirect.fullPath, prefix: redirect.prefix });
  return `${scheme}://${host}${showPort ? `:${port}` : ''}${target}`;
}

/**
 * The authority of a mirrored request, as Envoy sends shadows: the host suffixed with "-shadow", the port kept
 * ("reviews:9080" → "reviews-shadow:9080", "[fd00::1]:80" → "[fd00::1]-shadow:80").
 */
export function shadowAuthority(authority: string): string {
  const host = hostOf(authority);
  return `${host}-shadow${authority.slice(host.length)}`;
}

/** The host of an authority without its port ("[::1]:80" → "[::1]", "a.b:80" → "a.b"). */
function hostOf(authority: string): string {
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    return end < 0 ? authority : authority.slice(0, end + 1);
  }
  const colon = authority.lastIndexOf(':');
  return colon >= 0 && authority.indexOf(':') === colon ? authority.slice(0, colon) : authority;
}

function formatHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}
