/**
 * L7 authorization at the waypoint (DESIGN §6 "L7 authz"): Istio's AuthorizationPolicy semantics over the compiled
 * `L7PolicyResource`s, pure, no I/O.
 *
 * Decision (Istio's order; CUSTOM never reaches the waypoint):
 *  1. a matching DENY policy denies, and is named;
 *  2. else if no ALLOW policy applies to the request, it is allowed;
 *  3. else it is allowed only if some applicable ALLOW policy matches ("RBAC: access denied" otherwise, naming the
 *     ALLOW policies considered);
 *  AUDIT policies never decide; the ones that match are listed in `audited` for the access log.
 *
 * Matching (AuthorizationPolicy reference):
 *  - a policy with no rules matches nothing (so an applicable ALLOW policy without rules denies everything); a rule
 *    without from/to/when matches everything; rules are ORed;
 *  - a rule holds when all of its present parts hold: `from` (any source), `to` (any operation), `when` (every
 *    condition); a source or operation holds when all its present fields hold: a positive field when any value
 *    matches, a `not*` field when none does; an empty list counts as absent (proto semantics);
 *  - strings: "*" = present and non-empty, "abc*" prefix, "*abc" suffix, anything else exact. `hosts` compare
 *    case-insensitively against the Host / :authority as sent, port included (write "example.com:*" for any port, as
 *    Istio's best practices say); methods and paths case-sensitively;
 *  - principals, namespaces, serviceAccounts ("ns/sa", exact) come from `sourcePrincipal`, the identity the caller's
 *    mTLS certificate proved, never from a header; a request without one has none: positive fields never match it,
 *    `not*` fields always do;
 *  - ipBlocks and `source.ip` use `sourceIp`, remoteIpBlocks and `remote.ip` use `remoteIp` (the caller sets it; with
 *    Istio's default numTrustedProxies 0 it is the source address: X-Forwarded-For is not trusted); single addresses
 *    and CIDRs, IPv4 and IPv6 (ip-blocks.ts: an IPv4-mapped address counts as IPv4);
 *  - ports are the service port the request arrived for;
 *  - paths compare against the path without query, normalised (path.ts). A path holding `{*}` or `{**}` is an Envoy
 *    URI template (Istio 1.22+): `{*}` one path segment (one or more characters, no "/"), `{**}` any rest including
 *    "/" (zero or more characters) and only as the last operator; literal segments may not hold "*", "{" or "}";
 *  - `when` keys: request.headers[<name>] (name case-insensitive, repeated headers joined with ","), source.ip,
 *    remote.ip, source.namespace, source.principal, destination.port.
 *
 * Fail-closed rule: a field or condition the waypoint cannot evaluate — request.auth.* keys and requestPrincipals
 * (Strait validates no JWTs; RequestAuthentication is not implemented) unless the caller supplies `requestPrincipal`,
 * any other `when` key, and any value that does not parse (a bad CIDR, port or path template) — never holds in an
 * ALLOW policy and always holds in a DENY or AUDIT policy, as Istio does with attributes a proxy cannot see. Each such
 * field is listed by `authzPolicyProblems` for one log line.
 *
 * Invariant: policies are immutable once received; each policy's compiled rules are cached in a WeakMap keyed by the
 * policy object, so nothing is parsed per request.
 */
import type { L7Operation, L7PolicyResource, L7Rule, L7Source } from '../common/xds/waypoint-resources.js';
import { IpBlocks, parseIpBlock } from '../dataplane/policy/ip-blocks.js';
import { pathOf } from './path.js';
import { parsePrincipal } from '../dataplane/policy/principal.js';

export interface AuthzRequest {
  /** "ns/name" of the service the request is for. */
  service?: string;
  /** The workload chosen for it, when known (selector policies); else selector policies apply by `service`. */
  destinationWorkload?: { namespace: string; labels: Record<string, string> };
  /** The verified mTLS peer's SPIFFE id, "cluster.local/ns/x/sa/y" ("spiffe://" accepted and dropped). */
  sourcePrincipal?: string;
  /** The client's address (HBONE source). */
  sourceIp: string;
  /** The original client (remote.ip); equals sourceIp unless a trusted proxy hop says otherwise. */
  remoteIp: string;
  method: string;
  /** Normalised request target (path.ts); the query is ignored. */
  path: string;
  /** Host / :authority as sent. */
  host: string;
  /** The service port the request arrived for. */
  port: number;
  /** A request header by lower-case name; repeated headers joined with ",". */
  header(name: string): string | undefined;
  /** A validated JWT principal "<iss>/<sub>"; absent: request-principal fields are evaluated fail-closed. */
  requestPrincipal?: string;
  /**
   * The connection is not HTTP (relayed as TCP): HTTP fields (hosts, methods, paths, request headers) cannot be
   * evaluated and fail closed, as the ztunnel treats them: an ALLOW rule with them never matches, a DENY rule with
   * them matches on its other fields.
   */
  tcp?: boolean;
}

export interface AuthzVerdict {
  allowed: boolean;
  /** "ns/name" of the policy that decided (a matching DENY or ALLOW policy). */
  policy?: string;
  /** Index of its rule that matched. */
  rule?: number;
  /** For the log line; a denial starts with "RBAC: access denied". */
  reason: string;
  /** Envoy's response code details for a denial: "rbac_access_denied_matched_policy[ns[x]-policy[y]-rule[0]]" or "...[none]". */
  details?: string;
  /** "ns/name" of the AUDIT policies that matched. */
  audited: string[];
  /** Denied because no ALLOW policy matched: the ALLOW policies that applied ("ns/name"). */
  considered?: string[];
}

/** Decides one request; `policies` may hold every L7 policy of the waypoint, the inapplicable ones are skipped. */
export function authorizeRequest(policies: readonly L7PolicyResource[], req: AuthzRequest): AuthzVerdict {
  const ctx = new RequestContext(req);
  const audited: string[] = [];
  let deny: { policy: L7PolicyResource; rule: number } | undefined;
  let allow: { policy: L7PolicyResource; rule: number } | undefined;
  let considered: string[] | undefined;

  for (const p of policies) {
    if (!policyAppliesTo(p, req)) continue;
    if (p.action === 'DENY') {
      if (deny) continue;
      const i = firstMatchingRule(p, ctx);
      if (i >= 0) deny = { policy: p, rule: i };
    } else if (p.action === 'ALLOW') {
      (considered ??= []).push(p.policy);
      if (allow || deny) continue;
      const i = firstMatchingRule(p, ctx);
      if (i >= 0) allow = { policy: p, rule: i };
    } else if (p.action === 'AUDIT') {
      if (firstMatchingRule(p, ctx) >= 0) audited.push(p.policy);
    }
  }

  if (deny) {
    const name = deny.policy.policy;
    return { allowed: false, policy: name, rule: deny.rule, reason: `RBAC: access denied by DENY policy ${name} (rules[${deny.rule}])`, details: rbacDetails(name, deny.rule), audited };
  }
  if (!considered) return { allowed: true, reason: 'allowed: no ALLOW policy applies', audited };
  if (allow) {
    const name = allow.policy.policy;
    return { allowed: true, policy: name, rule: allow.rule, reason: `allowed by ALLOW policy ${name} (rules[${allow.rule}])`, audited };
  }
  return { allowed: false, reason: `RBAC: access denied: no ALLOW policy matched (${considered.join(', ')})`, details: 'rbac_access_denied_matched_policy[none]', audited, considered };
}

function rbacDetails(policy: string, rule: number): string {
  const slash = policy.indexOf('/');
  return `rbac_access_denied_matched_policy[ns[${policy.slice(0, slash)}]-policy[${policy.slice(slash + 1)}]-rule[${rule}]]`;
}

/**
 * Whether `p` applies to `req`: `waypoint` → every request; `services` → requests for a listed service; `workloads`
 * → requests whose destination workload is in the policy's namespace and carries its selector's labels, or, while no
 * workload is chosen yet, requests for one of the services those workloads serve.
 */
export function policyAppliesTo(p: L7PolicyResource, req: Pick<AuthzRequest, 'service' | 'destinationWorkload'>): boolean {
  const s = p.scope;
  switch (s.kind) {
    case 'waypoint': return true;
    case 'services': return req.service !== undefined && s.services.includes(req.service);
    case 'workloads': {
      const w = req.destinationWorkload;
      if (!w) return req.service !== undefined && s.services.includes(req.service);
      if (w.namespace !== s.namespace) return false;
      for (const k in s.selector) if (!Object.prototype.hasOwnProperty.call(w.labels, k) || w.labels[k] !== s.selector[k]) return false;
      return true;
    }
    default: return false;
  }
}

/** Fields of `p` evaluated fail-closed (see the file comment), one line each; [] when none. */
export function authzPolicyProblems(p: L7PolicyResource): string[] {
  return compiledPolicy(p).problems;
}

function firstMatchingRule(p: L7PolicyResource, ctx: RequestContext): number {
  const rules = compiledPolicy(p).rules;
  for (let i = 0; i < rules.length; i++) if (rules[i]!(ctx)) return i;
  return -1;
}

// ---------- the request, parsed once per decision ----------

class RequestContext {
  readonly principal: string | undefined;
  readonly namespace: string | undefined;
  readonly serviceAccount: string | undefined;
  readonly path: string;
  readonly hostLower: string;

  constructor(readonly req: AuthzRequest) {
    const id = req.sourcePrincipal === undefined ? undefined : parsePrincipal(req.sourcePrincipal);
    this.principal = id?.principal;
    this.namespace = id?.namespace;
    this.serviceAccount = id?.serviceAccount;
    this.path = pathOf(req.path);
    this.hostLower = req.host.toLowerCase();
  }
}

// ---------- compilation ----------

type Pred = (ctx: RequestContext) => boolean;

interface CompiledPolicy { rules: Pred[]; problems: string[] }

const compiledPolicies = new WeakMap<L7PolicyResource, CompiledPolicy>();

function compiledPolicy(p: L7PolicyResource): CompiledPolicy {
  let c = compiledPolicies.get(p);
  if (!c) {
    const problems: string[] = [];
    const failClosed = p.action !== 'ALLOW';
    const rules = p.rules.map((r, i) => compileRule(r, new Compiler(`${p.policy} rules[${i}]`, failClosed, problems)));
    c = { rules, problems };
    compiledPolicies.set(p, c);
  }
  return c;
}

/** Compiles the fields of one rule; `unsupported` is the constant a field that cannot be evaluated takes. */
class Compiler {
  constructor(readonly where: string, readonly unsupported: boolean, readonly problems: string[]) {}

  /** A constant predicate for a field that cannot be evaluated, noted once. */
  failClosed(field: string, why: string): Pred {
    const value = this.unsupported;
    this.problems.push(`${this.where}: ${field}: ${why}; it ${value ? 'always matches (DENY/AUDIT)' : 'never matches (ALLOW)'}`);
    return () => value;
  }
}

function nonEmpty(v: readonly string[] | undefined): v is readonly string[] {
  return v !== undefined && v.length > 0;
}

function compileRule(r: L7Rule, c: Compiler): Pred {
  const parts: Pred[] = [];
  if (r.from && r.from.length > 0) {
    const sources = r.from.map((s, i) => compileSource(s, c, i));
    parts.push((ctx) => sources.some((s) => s(ctx)));
  }
  if (r.to && r.to.length > 0) {
    const ops = r.to.map((o, i) => compileOperation(o, c, i));
    parts.push((ctx) => ops.some((o) => o(ctx)));
  }
  for (const [i, w] of (r.when ?? []).entries()) parts.push(compileCondition(w, c, i));
  return all(parts);
}

function all(parts: Pred[]): Pred {
  if (parts.length === 0) return () => true;
  if (parts.length === 1) return parts[0]!;
  return (ctx) => parts.every((p) => p(ctx));
}

/**
 * One positive/negative field pair: `test(values)` builds a matcher over a list, `value(ctx)` reads the attribute.
 * Positive: any value matches; negative: none does. A list that does not compile fails closed.
 */
function field<T>(c: Compiler, name: string, values: readonly string[] | undefined, notValues: readonly string[] | undefined,
  compile: (v: readonly string[]) => ((x: T) => boolean) | string, read: (ctx: RequestContext) => T): Pred[] {
  const out: Pred[] = [];
  for (const [list, negative] of [[values, false], [notValues, true]] as const) {
    if (!nonEmpty(list)) continue;
    const fieldName = negative ? `not${name[0]!.toUpperCase()}${name.slice(1)}` : name;
    const m = compile(list);
    if (typeof m === 'string') { out.push(c.failClosed(fieldName, m)); continue; }
    out.push(negative ? (ctx) => !m(read(ctx)) : (ctx) => m(read(ctx)));
  }
  return out;
}

function compileSource(s: L7Source, c: Compiler, i: number): Pred {
  const sc = new Compiler(`${c.where} from[${i}]`, c.unsupported, c.problems);
  const parts: Pred[] = [
    ...field(sc, 'principals', s.principals, s.notPrincipals, stringMatcher, (ctx) => ctx.principal),
    ...field(sc, 'namespaces', s.namespaces, s.notNamespaces, stringMatcher, (ctx) => ctx.namespace),
    ...field(sc, 'serviceAccounts', s.serviceAccounts, s.notServiceAccounts, exactSet, (ctx) => ctx.serviceAccount),
    ...field(sc, 'ipBlocks', s.ipBlocks, s.notIpBlocks, ipMatcher, (ctx) => ctx.req.sourceIp),
    ...field(sc, 'remoteIpBlocks', s.remoteIpBlocks, s.notRemoteIpBlocks, ipMatcher, (ctx) => ctx.req.remoteIp),
  ];
  if (nonEmpty(s.requestPrincipals) || nonEmpty(s.notRequestPrincipals)) {
    const evaluated = field(sc, 'requestPrincipals', s.requestPrincipals, s.notRequestPrincipals, stringMatcher, (ctx) => ctx.req.requestPrincipal);
    const unknown = sc.failClosed('requestPrincipals', 'needs a validated JWT (RequestAuthentication), which Strait does not implement');
    parts.push((ctx) => (ctx.req.requestPrincipal === undefined ? unknown(ctx) : evaluated.every((p) => p(ctx))));
  }
  return all(parts);
}

function compileOperation(o: L7Operation, c: Compiler, i: number): Pred {
  const oc = new Compiler(`${c.where} to[${i}]`, c.unsupported, c.problems);
  return all([
    ...httpOnly(oc, field(oc, 'hosts', o.hosts, o.notHosts, (v) => stringMatcher(v.map((h) => h.toLowerCase())), (ctx) => ctx.hostLower)),
    ...field(oc, 'ports', o.ports, o.notPorts, portMatcher, (ctx) => ctx.req.port),
    ...httpOnly(oc, field(oc, 'methods', o.methods, o.notMethods, stringMatcher, (ctx) => ctx.req.method)),
    ...httpOnly(oc, field(oc, 'paths', o.paths, o.notPaths, pathMatcher, (ctx) => ctx.path)),
  ]);
}

/** An HTTP field on a TCP connection takes the fail-closed constant (see AuthzRequest.tcp). */
function httpOnly(c: Compiler, preds: Pred[]): Pred[] {
  const value = c.unsupported;
  return preds.map((p) => (ctx: RequestContext) => (ctx.req.tcp ? value : p(ctx)));
}

const HEADER_KEY = /^request\.headers\[(.+)\]$/;

function compileCondition(w: { key: string; values?: string[]; notValues?: string[] }, c: Compiler, i: number): Pred {
  const cc = new Compiler(`${c.where} when[${i}] ${w.key}`, c.unsupported, c.problems);
  const header = HEADER_KEY.exec(w.key);
  let parts: Pred[];
  if (header) {
    const name = header[1]!.toLowerCase();
    parts = httpOnly(cc, field(cc, 'values', w.values, w.notValues, stringMatcher, (ctx) => ctx.req.header(name)));
  } else {
    switch (w.key) {
      case 'source.ip': parts = field(cc, 'values', w.values, w.notValues, ipMatcher, (ctx) => ctx.req.sourceIp); break;
      case 'remote.ip': parts = field(cc, 'values', w.values, w.notValues, ipMatcher, (ctx) => ctx.req.remoteIp); break;
      case 'source.namespace': parts = field(cc, 'values', w.values, w.notValues, stringMatcher, (ctx) => ctx.namespace); break;
      case 'source.principal': parts = field(cc, 'values', w.values, w.notValues, stringMatcher, (ctx) => ctx.principal); break;
      case 'destination.port': parts = field(cc, 'values', w.values, w.notValues, portMatcher, (ctx) => ctx.req.port); break;
      default: {
        const why = w.key.startsWith('request.auth.')
          ? 'needs a validated JWT (RequestAuthentication), which Strait does not implement'
          : 'is not a condition the waypoint evaluates (request.headers[...], source.ip, remote.ip, source.namespace, source.principal, destination.port)';
        return cc.failClosed('key', why);
      }
    }
  }
  return all(parts);
}

// ---------- value matchers ----------

type StringTest = (s: string) => boolean;

/** Istio string match: "*" non-empty, "*abc" suffix, "abc*" prefix, else exact; an absent value matches nothing. */
function stringMatcher(values: readonly string[]): (s: string | undefined) => boolean {
  const tests: StringTest[] = values.map((v) => {
    if (v === '*') return (s) => s.length > 0;
    if (v.startsWith('*')) { const suffix = v.slice(1); return (s) => s.endsWith(suffix); }
    if (v.endsWith('*')) { const prefix = v.slice(0, -1); return (s) => s.startsWith(prefix); }
    return (s) => s === v;
  });
  return (s) => s !== undefined && tests.some((t) => t(s));
}

function exactSet(values: readonly string[]): (s: string | undefined) => boolean {
  const set = new Set(values);
  return (s) => s !== undefined && set.has(s);
}

function ipMatcher(values: readonly string[]): ((ip: string) => boolean) | string {
  const bad = values.filter((v) => parseIpBlock(v) === null);
  if (bad.length > 0) return `${bad.map((b) => JSON.stringify(b)).join(', ')} is not an IP address or CIDR block`;
  const blocks = new IpBlocks(values);
  return (ip) => blocks.has(ip);
}

function portMatcher(values: readonly string[]): ((port: number) => boolean) | string {
  const set = new Set<number>();
  for (const v of values) {
    if (!/^\d{1,5}$/.test(v) || Number(v) > 65535) return `${JSON.stringify(v)} is not a port`;
    set.add(Number(v));
  }
  return (port) => set.has(port);
}

function pathMatcher(values: readonly string[]): ((path: string) => boolean) | string {
  const tests: StringTest[] = [];
  const plain: string[] = [];
  for (const v of values) {
    if (!v.includes('{') && !v.includes('}')) { plain.push(v); continue; }
    const t = compilePathTemplate(v);
    if (typeof t === 'string') return t;
    tests.push((s) => t.test(s));
  }
  if (plain.length > 0) { const m = stringMatcher(plain); tests.push((s) => m(s)); }
  return (path) => tests.some((t) => t(path));
}

/** RFC 3986 pchar without "*" (Envoy's URI template literal set); `{**}` also spans "/". */
const PCHAR = "a-zA-Z0-9\\-._~%!$&'()+,;:@=";

/**
 * An Istio path template as a full-match RegExp, or why it is not one: it starts with "/", each segment is `{*}`,
 * `{**}` or a literal of pchars without "*", "{", "}"; `{**}` is the last operator.
 */
export function compilePathTemplate(template: string): RegExp | string {
  const bad = (why: string) => `path template ${JSON.stringify(template)} ${why}`;
  if (!template.startsWith('/')) return bad('must start with "/"');
  let re = '';
  let sawTextGlob = false;
  const segments = template.slice(1).split('/');
  for (const [i, seg] of segments.entries()) {
    if (seg === '' && i < segments.length - 1) return bad('has an empty segment ("//")');
    re += '\\/';
    if (seg === '{*}' || seg === '{**}') {
      if (sawTextGlob) return bad('has an operator after {**} ({**} must be the last operator)');
      if (seg === '{**}') { sawTextGlob = true; re += `[${PCHAR}\\/]*`; } else re += `[${PCHAR}]+`;
      continue;
    }
    if (/[*{}]/.test(seg)) return bad(`has ${JSON.stringify(seg)}: "*", "{" and "}" are allowed only as a whole {*} or {**} segment`);
    if (!new RegExp(`^[${PCHAR}]*$`).test(seg)) return bad(`has characters outside RFC 3986 pchar in ${JSON.stringify(seg)}`);
    re += seg.replace(/[.$()+\\-]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}
