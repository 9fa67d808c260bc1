/**
 * The ztunnel's L4 authorization and peer-authentication decisions: pure functions over the
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
 *
 * Invariant: resources are immutable once received (the xDS client replaces objects, it never edits them); the
 * compiled form of each rule list is cached in a WeakMap keyed by that list, so nothing is re-parsed per connection.
 */
import type { AuthorizationResource, L4Match, L4Rule } from '../../common/xds/resources.js';
import type { MtlsMode } from '../../common/model/types.js';

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

export type EffectiveMtls = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

type PeerAuthnPolicy = Extract<AuthorizationResource, { type: 'peerauthn' }>;

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
 * When several DENY (or ALLOW) policies match, the first in iteration order is reported.
 */
export function authorize(policies: Iterable<AuthorizationResource>, target: AuthzTarget, conn: ConnectionAttrs): AuthzDecision {
  const ctx = new ConnContext(conn);
  let denyBy: string | undefined;
  let denyRule = -1;
  let allowBy: string | undefined;
  let allowRule = -1;
  let allowApplicable: string[] | undefined;
  const audited: string[] = [];

  for (const p of policies) {
    if (p.type !== 'authz' || !policyApplies(p, target)) continue;
    switch (p.action) {
      case 'DENY':
        if (denyBy === undefined) {
          const i = firstMatchingRule(p.rules, ctx);
          if (i >= 0) { denyBy = keyOf(p); denyRule = i; }
        }
        break;
      case 'ALLOW':
        (allowApplicable ??= []).push(keyOf(p));
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
  if (allowApplicable === undefined) return { allowed: true, reason: 'allowed: no ALLOW policy applies', audited };
  if (allowBy !== undefined) {
    return { allowed: true, policy: allowBy, reason: `allowed by ALLOW policy ${allowBy} (rules[${allowRule}])`, audited };
  }
  return { allowed: false, reason: `denied: no ALLOW policy matched (${allowApplicable.join(', ')})`, audited };
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
  private srcIp: ParsedIp | null | undefined;
  private dstIp: ParsedIp | null | undefined;

  constructor(private readonly conn: ConnectionAttrs) {
    const id = conn.sourceIdentity ? parseIdentity(conn.sourceIdentity) : undefined;
    this.principal = id?.principal;
    this.namespace = id?.namespace;
    this.serviceAccount = id?.serviceAccount;
    this.destinationPort = conn.destinationPort;
  }

  get sourceIp(): ParsedIp | null {
    if (this.srcIp === undefined) this.srcIp = parseIpCached(this.conn.sourceIp);
    return this.srcIp;
  }

  get destinationIp(): ParsedIp | null {
    if (this.dstIp === undefined) this.dstIp = parseIpCached(this.conn.destinationIp);
    return this.dstIp;
  }
}

interface ParsedIdentity { principal: string; namespace?: string; serviceAccount?: string }

const identityCache = new Map<string, ParsedIdentity>();
const CACHE_MAX_ENTRIES = 10_000;

/**
 * "spiffe://td/ns/x/sa/y" → principal "td/ns/x/sa/y", namespace "x", service account "x/y". An id that is not
 * of that shape still has a principal (the id without "spiffe://") but no namespace or service account.
 */
function parseIdentity(id: string): ParsedIdentity {
  let parsed = identityCache.get(id);
  if (parsed) return parsed;
  const principal = id.startsWith('spiffe://') ? id.slice('spiffe://'.length) : id;
  parsed = { principal };
  const seg = principal.split('/');
  if (seg.length === 5 && seg[0] && seg[1] === 'ns' && seg[2] && seg[3] === 'sa' && seg[4]) {
    parsed.namespace = seg[2];
    parsed.serviceAccount = `${seg[2]}/${seg[4]}`;
  }
  if (identityCache.size >= CACHE_MAX_ENTRIES) identityCache.clear();
  identityCache.set(id, parsed);
  return parsed;
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
  /** Compiled per kind: StringMatcher[] | Cidr[] | Set<number>. */
  values?: StringMatcher[] | Cidr[] | PortSet;
  notValues?: StringMatcher[] | Cidr[] | PortSet;
}

interface CompiledMatch {
  principals?: StringMatcher[];
  notPrincipals?: StringMatcher[];
  namespaces?: StringMatcher[];
  notNamespaces?: StringMatcher[];
  serviceAccounts?: Set<string>;
  notServiceAccounts?: Set<string>;
  ipBlocks?: Cidr[];
  notIpBlocks?: Cidr[];
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
  if (nonEmpty(m.ipBlocks)) out.ipBlocks = compileCidrs(m.ipBlocks);
  if (nonEmpty(m.notIpBlocks)) out.notIpBlocks = compileCidrs(m.notIpBlocks);
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
function compileCidrs(blocks: string[]): Cidr[] {
  const out: Cidr[] = [];
  for (const b of blocks) {
    const c = parseCidrCached(b);
    if (c) out.push(c);
  }
  return out;
}

function compileCondition(c: { key: string; values?: string[]; notValues?: string[] }): CompiledCondition {
  let kind: ConditionKind;
  let compile: (v: string[]) => StringMatcher[] | Cidr[] | PortSet;
  switch (c.key) {
    case 'source.ip': case 'destination.ip': kind = c.key; compile = compileCidrs; break;
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
  if (m.ipBlocks && !anyCidr(m.ipBlocks, ctx.sourceIp)) return false;
  if (m.notIpBlocks && anyCidr(m.notIpBlocks, ctx.sourceIp)) return false;
  if (m.ports && !m.ports.has(ctx.destinationPort)) return false;
  if (m.notPorts && m.notPorts.has(ctx.destinationPort)) return false;
  if (m.when && !m.when.every((c) => conditionMatches(c, ctx))) return false;
  return true;
}

function conditionMatches(c: CompiledCondition, ctx: ConnContext): boolean {
  let test: (v: StringMatcher[] | Cidr[] | PortSet) => boolean;
  switch (c.kind) {
    case 'source.ip': test = (v) => anyCidr(v as Cidr[], ctx.sourceIp); break;
    case 'destination.ip': test = (v) => anyCidr(v as Cidr[], ctx.destinationIp); break;
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

function anyCidr(blocks: Cidr[], ip: ParsedIp | null): boolean {
  if (!ip) return false;
  for (const b of blocks) if (cidrContains(b, ip)) return true;
  return false;
}

// ---------- IP addresses and CIDR blocks ----------

/**
 * An address as four 32-bit words (IPv4 uses only w[3]). IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are
 * stored as IPv4, so "10.0.0.0/8" matches a dual-stack socket's "::ffff:10.1.2.3". IPv4 and IPv6 blocks never
 * match the other family (as in Envoy/ztunnel): "::/0" does not match 10.1.2.3 nor its mapped form.
 */
export interface ParsedIp { v4: boolean; w: [number, number, number, number] }
export interface Cidr { v4: boolean; w: [number, number, number, number]; prefix: number }

const ipCache = new Map<string, ParsedIp | null>();
const cidrCache = new Map<string, Cidr | null>();

function parseIpCached(s: string): ParsedIp | null {
  let ip = ipCache.get(s);
  if (ip === undefined) {
    ip = parseIp(s);
    if (ipCache.size >= CACHE_MAX_ENTRIES) ipCache.clear();
    ipCache.set(s, ip);
  }
  return ip;
}

function parseCidrCached(s: string): Cidr | null {
  let c = cidrCache.get(s);
  if (c === undefined) {
    c = parseCidr(s);
    if (cidrCache.size >= CACHE_MAX_ENTRIES) cidrCache.clear();
    cidrCache.set(s, c);
  }
  return c;
}

/** Parses an IPv4 or IPv6 address (zone id dropped); null when invalid. Exported for tests. */
export function parseIp(s: string): ParsedIp | null {
  if (s.includes(':')) {
    const w = parseIpv6(s);
    if (!w) return null;
    if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) return { v4: true, w: [0, 0, 0, w[3]] };
    return { v4: false, w };
  }
  const v4 = parseIpv4(s);
  return v4 === null ? null : { v4: true, w: [0, 0, 0, v4] };
}

/** "a.b.c.d" or "a.b.c.d/n", "x::y" or "x::y/n"; host bits are cleared. Null when invalid. Exported for tests. */
export function parseCidr(s: string): Cidr | null {
  const slash = s.indexOf('/');
  const addr = parseIp(slash < 0 ? s : s.slice(0, slash));
  if (!addr) return null;
  const mapped = addr.v4 && s.includes(':');
  const maxPrefix = addr.v4 && !mapped ? 32 : 128;
  let prefix = maxPrefix;
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return null;
    prefix = Number(p);
    if (prefix > maxPrefix) return null;
  }
  let v4 = addr.v4;
  const w: [number, number, number, number] = [...addr.w];
  if (mapped) {
    // ::ffff:a.b.c.d/n is the IPv4 block a.b.c.d/(n-96); a shorter prefix reaches beyond the mapped range
    // and stays an IPv6 block.
    if (prefix >= 96) prefix -= 96;
    else { v4 = false; w[2] = 0xffff; }
  }
  const base = v4 ? 96 : 0;
  for (let i = 0; i < 4; i++) w[i] = (w[i]! & wordMask(base + prefix - i * 32)) >>> 0;
  return { v4, w, prefix };
}

/** Mask for the word covering bits [i*32, i*32+32) given `bits` prefix bits left counted from that word's start. */
function wordMask(bits: number): number {
  if (bits >= 32) return 0xffffffff;
  if (bits <= 0) return 0;
  return (0xffffffff << (32 - bits)) >>> 0;
}

function cidrContains(c: Cidr, ip: ParsedIp): boolean {
  if (c.v4 !== ip.v4) return false;
  const base = c.v4 ? 96 : 0;
  for (let i = c.v4 ? 3 : 0; i < 4; i++) {
    const m = wordMask(base + c.prefix - i * 32);
    if (m === 0) return true;
    if (((ip.w[i]! & m) >>> 0) !== c.w[i]) return false;
  }
  return true;
}

function parseIpv4(s: string): number | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    n = n * 256 + v;
  }
  return n >>> 0;
}

function parseIpv6(input: string): [number, number, number, number] | null {
  let s = input;
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const g = items[i]!;
      if (i === items.length - 1 && g.includes('.')) {
        const v4 = parseIpv4(g);
        if (v4 === null) return null;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  if (!head) return null;
  let all: number[];
  if (halves.length === 2) {
    const tail = groups(halves[1]!);
    if (!tail) return null;
    // A dotted IPv4 part may only end the address.
    if (halves[0]!.includes('.')) return null;
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return null;
    all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  } else {
    all = head;
    if (all.length !== 8) return null;
  }
  return [
    ((all[0]! << 16) | all[1]!) >>> 0,
    ((all[2]! << 16) | all[3]!) >>> 0,
    ((all[4]! << 16) | all[5]!) >>> 0,
    ((all[6]! << 16) | all[7]!) >>> 0,
  ];
}

// ---------- peer authentication ----------

/**
 * The mTLS mode for inbound connections to `target` on `port` (the workload's own port), as Istio composes
 * PeerAuthentications: one policy per level is chosen — workload (selector, same namespace) over namespace over
 * global (root namespace, no selector) — each level's mode overrides the levels above unless it is UNSET;
 * port-level modes apply only from the workload-level policy (UNSET there inherits the workload's mode);
 * nothing set → PERMISSIVE.
 *
 * Istio picks the oldest policy when several apply at one level; resources carry no timestamps, so here the
 * smallest "namespace/name" (plain string order) wins, deterministically.
 *
 * Istio ignores PeerAuthentications with a selector in the root namespace; the resource marks them scope
 * 'workload' like any other, so pass `opts.rootNamespace` to have them ignored too (without it they apply to
 * matching workloads of the root namespace only).
 */
export function effectiveMtlsMode(
  policies: Iterable<AuthorizationResource>, target: AuthzTarget, port: number, opts: { rootNamespace?: string } = {},
): EffectiveMtls {
  let global: PeerAuthnPolicy | undefined;
  let namespace: PeerAuthnPolicy | undefined;
  let workload: PeerAuthnPolicy | undefined;
  for (const p of policies) {
    if (p.type !== 'peerauthn') continue;
    switch (p.scope) {
      case 'global':
        // Global peerauthn never carries a selector (views make selector ones 'workload'); be strict anyway.
        if (!p.selector && (!global || earlier(p, global))) global = p;
        break;
      case 'namespace':
        if (p.namespace === target.namespace && (!namespace || earlier(p, namespace))) namespace = p;
        break;
      case 'workload':
        if (opts.rootNamespace !== undefined && p.namespace === opts.rootNamespace) break;
        if (policyApplies(p, target) && (!workload || earlier(p, workload))) workload = p;
        break;
    }
  }
  let mode: EffectiveMtls = 'PERMISSIVE';
  if (global && global.mode !== 'UNSET') mode = global.mode;
  if (namespace && namespace.mode !== 'UNSET') mode = namespace.mode;
  if (workload) {
    if (workload.mode !== 'UNSET') mode = workload.mode;
    const portMode: MtlsMode | undefined = workload.portLevel[String(port)];
    if (portMode !== undefined && portMode !== 'UNSET') mode = portMode;
  }
  return mode;
}

function earlier(a: PeerAuthnPolicy, b: PeerAuthnPolicy): boolean {
  return keyOf(a) < keyOf(b);
}
