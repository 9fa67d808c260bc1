/**
 * Route matching (DESIGN §6 "route match"): the first rule of a service's route table whose RequestMatch holds. The
 * controller has already ordered the rules by Gateway API / Istio precedence, so the waypoint only evaluates in order.
 *
 * Semantics, per condition (all must hold; an empty match matches every request):
 *  - path: against the path without query. The caller passes the target as `normalizePath` (path.ts) returned it:
 *    Envoy matches the path after Istio's BASE normalisation, without decoding anything else.
 *      exact  — the whole path (case-insensitive with `ignoreCase`);
 *      prefix — with `segments` (Gateway API PathPrefix, Envoy path_separated_prefix) element-wise: "/foo" matches
 *               "/foo", "/foo/" and "/foo/bar" but not "/foobar", a trailing "/" in the value is ignored and "/"
 *               matches everything; without (VirtualService `prefix`) a plain string prefix;
 *      regex  — an RE2 full match (re2.ts).
 *  - method, authority, headers, query parameters: ValueMatch — exact, prefix, regex (full match) or present, then
 *    `invert`; an absent value fails every kind, so with `invert` an absent header matches (Istio withoutHeaders).
 *    Header names are lower case; repeated headers arrive joined with "," (RouteInput.header).
 *    Query parameters are parsed as URLSearchParams does and the first value of a name counts (Gateway API).
 *  - port: the service port the request arrived for.
 * A rule with a regex that does not compile never matches; `routeTableProblems` lists why, for one log line.
 *
 * Invariant: route tables are immutable once received (the xDS client replaces them); each rule's compiled matcher is
 * cached in a WeakMap keyed by the rule object, so regexes compile once per rule, not per request.
 */
import type { RequestMatch, RouteRule, ServiceRoutesResource, StringMatchKind, ValueMatch } from '../common/xds/waypoint-resources.js';
import { pathOf, queryOf } from './path.js';
import { compileRe2 } from './re2.js';

export interface RouteInput {
  method: string;
  /** The request target as normalizePath returned it (path + query); the query is ignored for path matching. */
  path: string;
  authority: string;
  /** The service port the request arrived for. */
  port: number;
  /** A request header by lower-case name; repeated headers joined with ",". */
  header(name: string): string | undefined;
}

type Test = (value: string | undefined) => boolean;

interface CompiledRule {
  /** Undefined when a regex of the rule did not compile: the rule never matches. */
  matches?: (req: RouteInput, path: string, query: () => URLSearchParams) => boolean;
  problems: string[];
}

const compiled = new WeakMap<RouteRule, CompiledRule>();

function compiledRule(rule: RouteRule): CompiledRule {
  let c = compiled.get(rule);
  if (!c) {
    c = compileMatch(rule.name, rule.match);
    compiled.set(rule, c);
  }
  return c;
}

/** The first rule of `table` whose match holds for `req`, or undefined (the caller answers 404, flag NR). */
export function matchRoute(table: ServiceRoutesResource, req: RouteInput): RouteRule | undefined {
  const path = pathOf(req.path);
  let params: URLSearchParams | undefined;
  const query = (): URLSearchParams => (params ??= new URLSearchParams(queryOf(req.path)));
  for (const rule of table.rules) {
    const c = compiledRule(rule);
    if (c.matches && c.matches(req, path, query)) return rule;
  }
  return undefined;
}

/** Why some rules of `table` can never match (regexes that do not compile), one line each; [] when none. */
export function routeTableProblems(table: ServiceRoutesResource): string[] {
  return table.rules.flatMap((r) => compiledRule(r).problems);
}

// ---------- compilation ----------

function compileMatch(ruleName: string, m: RequestMatch): CompiledRule {
  const problems: string[] = [];
  const tests: ((req: RouteInput, path: string, query: () => URLSearchParams) => boolean)[] = [];
  const note = (where: string) => (problem: string) => problems.push(`${ruleName}: ${where}: ${problem}; the rule never matches`);

  if (m.port !== undefined) {
    const port = m.port;
    tests.push((req) => req.port === port);
  }
  if (m.method) {
    const t = compileValue(m.method, note('method'));
    if (t) tests.push((req) => t(req.method));
  }
  if (m.authority) {
    const t = compileValue(m.authority, note('authority'));
    if (t) tests.push((req) => t(req.authority));
  }
  if (m.path) {
    const t = compilePath(m.path, note('path'));
    if (t) tests.push((_req, path) => t(path));
  }
  for (const h of m.headers ?? []) {
    const t = compileValue(h, note(`header ${h.name}`));
    const name = h.name.toLowerCase();
    if (t) tests.push((req) => t(req.header(name)));
  }
  for (const q of m.queryParams ?? []) {
    const t = compileValue(q, note(`query parameter ${q.name}`));
    const name = q.name;
    if (t) tests.push((_req, _path, query) => t(query().get(name) ?? undefined));
  }
  if (problems.length > 0) return { problems };
  return { matches: (req, path, query) => tests.every((t) => t(req, path, query)), problems };
}

function compileValue(v: ValueMatch, problem: (p: string) => void): Test | undefined {
  let base: Test;
  if (v.type === 'present') {
    base = (s) => s !== undefined;
  } else {
    const t = compileString(v.type, v.value ?? '', false, problem);
    if (!t) return undefined;
    base = (s) => s !== undefined && t(s);
  }
  return v.invert ? (s) => !base(s) : base;
}

function compileString(type: StringMatchKind, value: string, ignoreCase: boolean, problem: (p: string) => void): ((s: string) => boolean) | undefined {
  if (type === 'regex') {
    const r = compileRe2(value, { ignoreCase });
    if ('problem' in r) { problem(r.problem); return undefined; }
    return (s) => r.regex.test(s);
  }
  if (ignoreCase) {
    const lower = value.toLowerCase();
    return type === 'exact' ? (s) => s.toLowerCase() === lower : (s) => s.slice(0, lower.length).toLowerCase() === lower;
  }
  return type === 'exact' ? (s) => s === value : (s) => s.startsWith(value);
}

function compilePath(p: NonNullable<RequestMatch['path']>, problem: (p: string) => void): ((path: string) => boolean) | undefined {
  if (p.type !== 'prefix' || !p.segments) return compileString(p.type, p.value, p.ignoreCase ?? false, problem);
  const prefix = segmentPrefix(p.value);
  if (prefix === '') return () => true;
  const starts = compileString('prefix', prefix, p.ignoreCase ?? false, problem)!;
  return (path) => starts(path) && (path.length === prefix.length || path[prefix.length] === '/');
}

/** A Gateway API PathPrefix value without its trailing slashes ("/" → "", the prefix every path has). */
export function segmentPrefix(value: string): string {
  let end = value.length;
  while (end > 0 && value[end - 1] === '/') end--;
  return value.slice(0, end);
}
