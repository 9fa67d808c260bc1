/**
 * L4 authorization (Istio's AuthorizationPolicy as ambient's ztunnel applies it): pure functions over the
 * `AuthorizationResource`s the controller sends (see src/controller/views.ts `toZtunnelAuthz`), no I/O.
 *
 * Semantics are Istio's (AuthorizationPolicy and PeerAuthentication references, as ambient's ztunnel applies them):
 *  - a matching DENY policy denies; else with no applicable ALLOW policy the connection is allowed; else it is
 *    allowed only if some ALLOW policy matches. AUDIT policies never decide; they are reported when they match.
 *  - a policy with no rules matches nothing (an applicable ALLOW policy without rules is "allow-nothing");
 *    a rule without from/to/when matches everything.
 *  - a rule matches when all its present clauses match: `from` (any entry), `to` (any entry), `when` (all
 *    conditions). An entry matches when all its present fields match: a positive field when any value matches,
 *    a `not*` field when no value matches. An empty list counts as absent (proto semantics).
 *  - a plaintext peer has no principal, namespace or service account: positive fields on those never match it,
 *    negative ones (`notPrincipals: ["*"]`) always do.
 *  - a policy whose `waypointEnforced` lists the peer's verified identity does not apply to the connection: that
 *    waypoint has enforced the whole policy (L7 rules included) on the request, with the original caller's identity
 *    (Strait's sidecar compatibility). Every other peer, plaintext included, gets the policy as usual.
 *
 * Invariant: resources are immutable once received (the xDS client replaces objects, it never edits them); the
 * compiled form of each rule list is cached in a WeakMap keyed by that list, so nothing is re-parsed per connection.
 */
import type { AuthorizationResource, L4Match, L4Rule } from '../../common/xds/resources.js';
import { IpBlocks } from './ip-blocks.js';
import { parsePrincipal } from './principal.js';

export interface ConnectionAttrs {
  /** SPIFFE id of the peer ("spiffe://td/ns/x/sa/y"); undefined for plaintext (no principal). */
  sourceIdentity?: string;
  sourceIp: string;
  destinationIp: string;
  destinationPort: number;
}

/** The local workload the connection is for. */
export interface AuthzTarget {
  namespace: string;
  labels: Record<string, string>;
}

export interface AuthzDecision {
  allowed: boolean;
  /** "ns/name" of the deciding policy, if any (a matching DENY or ALLOW policy). */
  policy?: string;
  /** Human reason for logs. */
  reason: string;
  /** "ns/name" of the AUDIT policies that matched (for logs). */
  audited: string[];
}

// ---------- applicability ----------

/**
 * Whether a policy (authz or peerauthn) applies to a workload, by its scope:
 * global without selector → every workload; global with selector → matching workloads of any namespace;
 * namespace → workloads of its namespace; workload → workloads of its namespace whose labels include the selector.
 */
export function policyApplies(p: AuthorizationResource, target: AuthzTarget): boolean {
  if (p.scope === 'global') return !p.selector || selectorMatches(p.selector, target.labels);
  if (p.namespace !== target.namespace) return false;
  if (p.scope === 'namespace') return true;
  return !p.selector || selectorMatches(p.selector, target.labels);
}

function selectorMatches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  for (const k in selector) {
    if (!Object.prototype.hasOwnProperty.call(labels, k) || labels[k] !== selector[k]) return false;
  }
  return true;
}

// ---------- authorization ----------

/**
 * Decides one inbound connection to `target`. `policies` may hold every resource the ztunnel knows; entries of
 * type 'peerauthn' and policies that do not apply to `target` are skipped. Rule indices in reasons are indices of
 * the L4 rules (ALLOW rules that needed L7 were dropped by the controller, so they may differ from the spec's).
 * When several DENY (or ALLOW) policies match, the first in iteration order is reported. A denial because no ALLOW
 * policy matched names the ALLOW rules the controller dropped for needing L7 (as ambient does), with what to do.
 */
export function authorize(policies: Iterable<AuthorizationResource>, target: AuthzTarget, conn: ConnectionAttrs): AuthzDecision {
  const ctx = new ConnContext(conn);
  let denyBy: string | undefined;
  let denyRule = -1;
  let allowBy: string | undefined;
  let allowRule = -1;
  let allowApplicable: string[] | undefined;
  /** Notes of applicable ALLOW policies about rules dropped for needing L7 (they could not match here). */
  const dropped: string[] = [];
  const audited: string[] = [];
  /** Policies the peer (a waypoint) has enforced itself. */
  const exempt: string[] = [];
  /** Applicable ALLOW policies that a waypoint enforces whole for the requests it carries (this connection did not come through it). */
  const viaWaypoint: string[] = [];

  for (const p of policies) {
    if (p.type !== 'authz' || !policyApplies(p, target)) continue;
    if (p.waypointEnforced !== undefined && conn.sourceIdentity !== undefined && p.waypointEnforced.includes(conn.sourceIdentity)) {
      exempt.push(keyOf(p));
      continue;
    }
    switch (p.action) {
      case 'DENY':
        if (denyBy === undefined) {
          const i = firstMatchingRule(p.rules, ctx);
          if (i >= 0) { denyBy = keyOf(p); denyRule = i; }
        }
        break;
      case 'ALLOW':
        (allowApplicable ??= []).push(keyOf(p));
        if (p.waypointEnforced && p.waypointEnforced.length > 0) viaWaypoint.push(keyOf(p));
        else for (const note of p.notes) dropped.push(`${keyOf(p)} ${note}`);
        if (allowBy === undefined && denyBy === undefined) {
          const i = firstMatchingRule(p.rules, ctx);
          if (i >= 0) { allowBy = keyOf(p); allowRule = i; }
        }
        break;
      case 'AUDIT':
        if (firstMatchingRule(p.rules, ctx) >= 0) audited.push(keyOf(p));
        break;
      default:
        // CUSTOM never reaches the ztunnel (views drop it); anything else is ignored rather than guessed at.
        break;
    }
  }

  if (denyBy !== undefined) {
    return { allowed: false, policy: denyBy, reason: `denied by DENY policy ${denyBy} (rules[${denyRule}])`, audited };
  }
  if (allowApplicable === undefined) {
    const also = exempt.length > 0 ? ` (${exempt.join(', ')} enforced by the peer, a waypoint, on the request)` : '';
    return { allowed: true, reason: `allowed: no ALLOW policy applies${also}`, audited };
  }
  if (allowBy !== undefined) {
    return { allowed: true, policy: allowBy, reason: `allowed by ALLOW policy ${allowBy} (rules[${allowRule}])`, audited };
  }
  const why = `denied: no ALLOW policy matched (${allowApplicable.join(', ')})`;
  const through = viaWaypoint.length > 0
    ? `; ${viaWaypoint.join(', ')} ${viaWaypoint.length === 1 ? 'is' : 'are'} enforced whole by the destination's waypoint, and this connection did not come through it: send the request to the service, not to the pod's address`
    : '';
  if (dropped.length === 0) return { allowed: false, reason: `${why}${through}`, audited };
  return { allowed: false, reason: `${why}${through}; ${dropped.join('; ')}; bind a waypoint to the destination (istio.io/use-waypoint) to enforce L7 rules`, audited };
}

function keyOf(p: { namespace: string; name: string }): string {
  return `${p.namespace}/${p.name}`;
}

/** Index of the first rule that matches, or -1 (always -1 for a policy without rules). */
function firstMatchingRule(rules: L4Rule[], ctx: ConnContext): number {
  if (rules.length === 0) return -1;
  const compiled = compileRules(rules);
  for (let i = 0; i < compiled.length; i++) if (ruleMatches(compiled[i]!, ctx)) return i;
  return -1;
}

// ---------- the connection, parsed once per call ----------

class ConnContext {
  /** Source identity without "spiffe://"; undefined for plaintext. */
  readonly principal: string | undefined;
  readonly namespace: string | undefined;
  /** "ns/sa" of the source identity. */
  readonly serviceAccount: string | undefined;
  readonly destinationPort: number;
  readonly sourceIp: string;
  readonly destinationIp: string;

  constructor(conn: ConnectionAttrs) {
    const id = conn.sourceIdentity ? parsePrincipal(conn.sourceIdentity) : undefined;
    this.principal = id?.principal;
    this.namespace = id?.namespace;
    this.serviceAccount = id?.serviceAccount;
    this.destinationPort = conn.destinationPort;
    this.sourceIp = conn.sourceIp;
    this.destinationIp = conn.destinationIp;
  }
}

// ---------- compiled rules ----------

/** Istio string match: "*" any non-empty value, "*abc" suffix, "abc*" prefix, anything else exact. */
type StringMatcher =
  | { kind: 'presence' }
  | { kind: 'prefix'; value: string }
  | { kind: 'suffix'; value: string }
  | { kind: 'exact'; value: string };

type ConditionKind = 'source.ip' | 'source.namespace' | 'source.principal' | 'destination.ip' | 'destination.port' | 'unknown';

interface CompiledCondition {
  kind: ConditionKind;
  /** Compiled per kind: StringMatcher[] | IpBlocks | Set<number>. */
  values?: StringMatcher[] | IpBlocks | PortSet;
  notValues?: StringMatcher[] | IpBlocks | PortSet;
}

interface CompiledMatch {
  principals?: StringMatcher[];
  notPrincipals?: StringMatcher[];
  namespaces?: StringMatcher[];
  notNamespaces?: StringMatcher[];
  serviceAccounts?: Set<string>;
  notServiceAccounts?: Set<string>;
  ipBlocks?: IpBlocks;
  notIpBlocks?: IpBlocks;
  ports?: PortSet;
  notPorts?: PortSet;
  when?: CompiledCondition[];
}

interface CompiledRule {
  from?: CompiledMatch[];
  to?: CompiledMatch[];
  when?: CompiledCondition[];
}

type PortSet = Set<number>;

const compiledRules = new WeakMap<L4Rule[], CompiledRule[]>();

function compileRules(rules: L4Rule[]): CompiledRule[] {
  let c = compiledRules.get(rules);
  if (!c) {
    c = rules.map(compileRule);
    compiledRules.set(rules, c);
  }
  return c;
}

function compileRule(r: L4Rule): CompiledRule {
  const out: CompiledRule = {};
  if (r.from && r.from.length > 0) out.from = r.from.map(compileMatch);
  if (r.to && r.to.length > 0) out.to = r.to.map(compileMatch);
  if (r.when && r.when.length > 0) out.when = r.when.map(compileCondition);
  return out;
}

function nonEmpty(v: string[] | undefined): v is string[] {
  return v !== undefined && v.length > 0;
}

function compileMatch(m: L4Match): CompiledMatch {
  const out: CompiledMatch = {};
  if (nonEmpty(m.principals)) out.principals = m.principals.map(compileString);
  if (nonEmpty(m.notPrincipals)) out.notPrincipals = m.notPrincipals.map(compileString);
  if (nonEmpty(m.namespaces)) out.namespaces = m.namespaces.map(compileString);
  if (nonEmpty(m.notNamespaces)) out.notNamespaces = m.notNamespaces.map(compileString);
  if (nonEmpty(m.serviceAccounts)) out.serviceAccounts = new Set(m.serviceAccounts);
  if (nonEmpty(m.notServiceAccounts)) out.notServiceAccounts = new Set(m.notServiceAccounts);
  if (nonEmpty(m.ipBlocks)) out.ipBlocks = compileBlocks(m.ipBlocks);
  if (nonEmpty(m.notIpBlocks)) out.notIpBlocks = compileBlocks(m.notIpBlocks);
  if (nonEmpty(m.ports)) out.ports = compilePorts(m.ports);
  if (nonEmpty(m.notPorts)) out.notPorts = compilePorts(m.notPorts);
  if (m.when && m.when.length > 0) out.when = m.when.map(compileCondition);
  return out;
}

function compileString(s: string): StringMatcher {
  if (s === '*') return { kind: 'presence' };
  if (s.startsWith('*')) return { kind: 'suffix', value: s.slice(1) };
  if (s.endsWith('*')) return { kind: 'prefix', value: s.slice(0, -1) };
  return { kind: 'exact', value: s };
}

/** Invalid ports are left out: they never match (Istio's validation rejects them before they get here). */
function compilePorts(ports: string[]): PortSet {
  const set = new Set<number>();
  for (const p of ports) {
    if (/^\d{1,5}$/.test(p)) {
      const n = Number(p);
      if (n <= 65535) set.add(n);
    }
  }
  return set;
}

/** Invalid blocks are left out: they never match (so an invalid ipBlocks-only entry matches nothing). */
function compileBlocks(blocks: string[]): IpBlocks {
  return new IpBlocks(blocks);
}

function compileCondition(c: { key: string; values?: string[]; notValues?: string[] }): CompiledCondition {
  let kind: ConditionKind;
  let compile: (v: string[]) => StringMatcher[] | IpBlocks | PortSet;
  switch (c.key) {
    case 'source.ip': case 'destination.ip': kind = c.key; compile = compileBlocks; break;
    case 'source.namespace': case 'source.principal': kind = c.key; compile = (v) => v.map(compileString); break;
    case 'destination.port': kind = c.key; compile = compilePorts; break;
    default: return { kind: 'unknown' };
  }
  const out: CompiledCondition = { kind };
  if (nonEmpty(c.values)) out.values = compile(c.values);
  if (nonEmpty(c.notValues)) out.notValues = compile(c.notValues);
  return out;
}

// ---------- matching ----------

function ruleMatches(r: CompiledRule, ctx: ConnContext): boolean {
  if (r.from && !r.from.some((m) => matchMatches(m, ctx))) return false;
  if (r.to && !r.to.some((m) => matchMatches(m, ctx))) return false;
  if (r.when && !r.when.every((c) => conditionMatches(c, ctx))) return false;
  return true;
}

function matchMatches(m: CompiledMatch, ctx: ConnContext): boolean {
  if (m.principals && !anyString(m.principals, ctx.principal)) return false;
  if (m.notPrincipals && anyString(m.notPrincipals, ctx.principal)) return false;
  if (m.namespaces && !anyString(m.namespaces, ctx.namespace)) return false;
  if (m.notNamespaces && anyString(m.notNamespaces, ctx.namespace)) return false;
  if (m.serviceAccounts && !(ctx.serviceAccount !== undefined && m.serviceAccounts.has(ctx.serviceAccount))) return false;
  if (m.notServiceAccounts && ctx.serviceAccount !== undefined && m.notServiceAccounts.has(ctx.serviceAccount)) return false;
  if (m.ipBlocks && !inBlocks(m.ipBlocks, ctx.sourceIp)) return false;
  if (m.notIpBlocks && inBlocks(m.notIpBlocks, ctx.sourceIp)) return false;
  if (m.ports && !m.ports.has(ctx.destinationPort)) return false;
  if (m.notPorts && m.notPorts.has(ctx.destinationPort)) return false;
  if (m.when && !m.when.every((c) => conditionMatches(c, ctx))) return false;
  return true;
}

function conditionMatches(c: CompiledCondition, ctx: ConnContext): boolean {
  let test: (v: StringMatcher[] | IpBlocks | PortSet) => boolean;
  switch (c.kind) {
    case 'source.ip': test = (v) => inBlocks(v as IpBlocks, ctx.sourceIp); break;
    case 'destination.ip': test = (v) => inBlocks(v as IpBlocks, ctx.destinationIp); break;
    case 'source.namespace': test = (v) => anyString(v as StringMatcher[], ctx.namespace); break;
    case 'source.principal': test = (v) => anyString(v as StringMatcher[], ctx.principal); break;
    case 'destination.port': test = (v) => (v as PortSet).has(ctx.destinationPort); break;
    default: return false; // unknown keys never match
  }
  if (c.values && !test(c.values)) return false;
  if (c.notValues && test(c.notValues)) return false;
  return true;
}

/** Any matcher matches `s`; an absent value (plaintext) matches none. */
function anyString(matchers: StringMatcher[], s: string | undefined): boolean {
  if (s === undefined) return false;
  for (const m of matchers) {
    switch (m.kind) {
      case 'presence': if (s.length > 0) return true; break;
      case 'prefix': if (s.startsWith(m.value)) return true; break;
      case 'suffix': if (s.endsWith(m.value)) return true; break;
      case 'exact': if (s === m.value) return true; break;
    }
  }
  return false;
}

/** `ip` falls in one of `blocks` (an unparsable address in none). */
function inBlocks(blocks: IpBlocks, ip: string): boolean {
  return blocks.has(ip);
}
