/**
 * String formats of Kubernetes, Istio and Gateway API fields, as pure predicates. Each `*_TEXT`
 * constant completes a message "... is not <text>".
 */
import { isIP } from 'node:net';

const LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const DNS1123_LABEL_RE = new RegExp(`^${LABEL}$`);
const DNS1123_SUBDOMAIN_RE = new RegExp(`^${LABEL}(\\.${LABEL})*$`);
const DNS1035_LABEL_RE = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL_RE.test(s);
}
export const DNS1123_LABEL_TEXT =
  "a valid DNS-1123 label (at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit)";

export function isDns1123Subdomain(s: string): boolean {
  return s.length <= 253 && DNS1123_SUBDOMAIN_RE.test(s);
}
export const DNS1123_SUBDOMAIN_TEXT =
  "a valid DNS-1123 subdomain (lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit, at most 253 characters)";

/** Service names: like a DNS-1123 label but starting with a letter. */
export function isDns1035Label(s: string): boolean {
  return s.length <= 63 && DNS1035_LABEL_RE.test(s);
}
export const DNS1035_LABEL_TEXT =
  "a valid DNS-1035 label (at most 63 lowercase letters, digits or '-', starting with a letter and ending with a letter or digit)";

const QUALIFIED_NAME_RE = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/** Label and annotation keys: `[prefix/]name`, prefix a DNS subdomain, name at most 63 characters. */
export function isLabelKey(s: string): boolean {
  const slash = s.lastIndexOf('/');
  const name = slash < 0 ? s : s.slice(slash + 1);
  if (slash >= 0 && !isDns1123Subdomain(s.slice(0, slash))) return false;
  return name.length <= 63 && QUALIFIED_NAME_RE.test(name);
}

export function isLabelValue(s: string): boolean {
  return s === '' || (s.length <= 63 && QUALIFIED_NAME_RE.test(s));
}

export function isIPAddress(s: string): boolean {
  return isIP(s) !== 0;
}
export const IP_TEXT = 'a valid IPv4 or IPv6 address';

/** An address with a prefix length ("10.0.0.0/8", "fd00::/64"). */
export function isCidr(s: string): boolean {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s);
  if (!m) return false;
  const family = isIP(m[1] ?? '');
  const bits = Number(m[2]);
  return (family === 4 && bits <= 32) || (family === 6 && bits <= 128);
}

export function isIPOrCidr(s: string): boolean {
  return isIPAddress(s) || isCidr(s);
}
export const IP_OR_CIDR_TEXT = 'a valid IP address or CIDR block (e.g. "10.0.0.1" or "10.0.0.0/16")';

/**
 * IANA service names as Kubernetes accepts them for named ports: at most 15 lowercase letters, digits
 * and '-', at least one letter, no leading, trailing or double '-'.
 */
export function isIanaServiceName(s: string): boolean {
  return (
    s.length >= 1 &&
    s.length <= 15 &&
    /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(s) &&
    /[a-z]/.test(s) &&
    !s.includes('--')
  );
}
export const IANA_SERVICE_NAME_TEXT =
  "a valid port name (at most 15 lowercase letters, digits or '-', with at least one letter, no leading, trailing or double '-')";

/** HTTP header names (RFC 7230 tokens), as Gateway API validates them. */
export function isHeaderName(s: string): boolean {
  return /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/.test(s);
}
export const HEADER_NAME_TEXT = 'a valid HTTP header name';

/** Gateway API hostnames: a DNS subdomain, optionally with a leading "*." wildcard; not an IP. */
export function isGatewayHostname(s: string): boolean {
  const rest = s.startsWith('*.') ? s.slice(2) : s;
  return isDns1123Subdomain(rest) && !isIPAddress(rest);
}
export const GATEWAY_HOSTNAME_TEXT =
  'a valid hostname (a lowercase DNS name, optionally starting with "*."; IP addresses are not allowed)';

/** Gateway API listener protocols: a core name (HTTP, HBONE, ...) or a domain-prefixed one. */
export function isGatewayProtocol(s: string): boolean {
  return /^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/.test(s) || new RegExp(`^${LABEL}(\\.${LABEL})*/[A-Za-z0-9]+$`).test(s);
}

/**
 * Istio's rule for wildcards in principals, namespaces and hosts: at most one `*`, and only as the
 * whole value, a prefix or a suffix.
 */
export function isIstioWildcard(s: string): boolean {
  const stars = s.split('*').length - 1;
  if (stars === 0) return true;
  if (stars > 1) return false;
  return s === '*' || s.startsWith('*') || s.endsWith('*');
}

/**
 * Why `s` is not a usable match regex, or undefined when it is. Istio and Envoy use RE2, which has no
 * lookaround and no backreferences, so those are refused even though JavaScript would accept them.
 */
export function regexError(s: string): string | undefined {
  try {
    new RegExp(s);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    return msg.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '');
  }
  if (/\(\?<?[=!]/.test(s)) return 'lookahead and lookbehind are not supported (RE2 syntax)';
  if (/(^|[^\\])(\\\\)*\\[1-9]/.test(s)) return 'backreferences are not supported (RE2 syntax)';
  return undefined;
}
