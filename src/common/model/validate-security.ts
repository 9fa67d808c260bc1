/** security.istio.io kinds: AuthorizationPolicy, PeerAuthentication; and the selector/targetRef parts Telemetry shares. */
import type {
  AuthorizationPolicy,
  AuthzAction,
  AuthzCondition,
  AuthzOperation,
  AuthzRule,
  AuthzSource,
  LabelSelector,
  MtlsMode,
  ObjectMeta,
  PeerAuthentication,
  PolicyTargetRef,
} from './types.js';
import {
  at,
  compact,
  describe,
  labels,
  list,
  mapOf,
  nonEmpty,
  oneOf,
  str,
  strList,
  struct,
  type Ctx,
  type Raw,
} from './fields.js';
import { IP_OR_CIDR_TEXT, isIPOrCidr, isIstioWildcard } from './formats.js';

// ---------- shared: selector and targetRefs ----------

export function workloadSelector(ctx: Ctx, v: unknown, path: string): LabelSelector | undefined {
  const s = struct(ctx, v, path, { known: ['matchLabels'] });
  if (!s) return undefined;
  return compact({ matchLabels: labels(ctx, s['matchLabels'], at(path, 'matchLabels')) });
}

/** The group each policy target kind lives in ("" is the core group). */
const TARGET_GROUPS: Readonly<Record<string, string>> = {
  Service: '',
  ServiceEntry: 'networking.istio.io',
  Gateway: 'gateway.networking.k8s.io',
  GatewayClass: 'gateway.networking.k8s.io',
};
const TARGET_KINDS = Object.keys(TARGET_GROUPS);

export function policyTargetRef(ctx: Ctx, v: unknown, path: string): PolicyTargetRef | undefined {
  const r = struct(ctx, v, path, { known: ['group', 'kind', 'name', 'namespace'] }, true);
  if (!r) return undefined;
  const kind = oneOf(ctx, r['kind'], at(path, 'kind'), TARGET_KINDS, true);
  const group = str(ctx, r['group'], at(path, 'group'));
  const expectedGroup = kind === undefined ? undefined : TARGET_GROUPS[kind];
  if (group !== undefined && expectedGroup !== undefined && group !== expectedGroup) {
    ctx.error(at(path, 'group'), `${describe(group)} is not the group of ${kind}; use ${describe(expectedGroup)}`);
  }
  const name = nonEmpty(ctx, r['name'], at(path, 'name'), true);
  const namespace = str(ctx, r['namespace'], at(path, 'namespace'));
  if (namespace && namespace !== ctx.namespace) {
    ctx.error(at(path, 'namespace'), `${describe(namespace)} differs from the policy's namespace; policies can only target objects in their own namespace`);
  }
  return compact({ group, kind: kind ?? '', name: name ?? '', namespace });
}

/** selector, targetRef and targetRefs pick what a policy applies to; at most one of them may be set. */
export function exclusiveTargets(ctx: Ctx, spec: Raw, fields: readonly string[]): void {
  const set = fields.filter((f) => spec[f] !== undefined && spec[f] !== null);
  if (set.length > 1) {
    ctx.error(at('spec', set[1] ?? ''), `cannot be combined with spec.${set[0]}; set only one of ${fields.join(', ')}`);
  }
}

// ---------- AuthorizationPolicy ----------

const ACTIONS: readonly AuthzAction[] = ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'];

/** Source and operation list fields, with the check each value gets. */
type ValueCheck = 'wildcard' | 'ipBlock' | 'port' | 'serviceAccount' | 'path' | 'plain';
const SOURCE_FIELDS: Readonly<Record<keyof AuthzSource, ValueCheck>> = {
  principals: 'wildcard',
  notPrincipals: 'wildcard',
  requestPrincipals: 'wildcard',
  notRequestPrincipals: 'wildcard',
  namespaces: 'wildcard',
  notNamespaces: 'wildcard',
  serviceAccounts: 'serviceAccount',
  notServiceAccounts: 'serviceAccount',
  ipBlocks: 'ipBlock',
  notIpBlocks: 'ipBlock',
  remoteIpBlocks: 'ipBlock',
  notRemoteIpBlocks: 'ipBlock',
};
const OPERATION_FIELDS: Readonly<Record<keyof AuthzOperation, ValueCheck>> = {
  hosts: 'wildcard',
  notHosts: 'wildcard',
  ports: 'port',
  notPorts: 'port',
  methods: 'plain',
  notMethods: 'plain',
  paths: 'path',
  notPaths: 'path',
};

export function validateAuthorizationPolicy(ctx: Ctx, raw: Raw, meta: ObjectMeta, apiVersion: string): AuthorizationPolicy {
  const spec = struct(ctx, raw['spec'], 'spec', { known: ['selector', 'targetRef', 'targetRefs', 'action', 'provider', 'rules'] }) ?? {};
  exclusiveTargets(ctx, spec, ['selector', 'targetRef', 'targetRefs']);
  const action = oneOf(ctx, spec['action'], 'spec.action', ACTIONS) ?? 'ALLOW';
  const provider = authzProvider(ctx, spec['provider'], action);
  return {
    apiVersion: apiVersion as AuthorizationPolicy['apiVersion'],
    kind: 'AuthorizationPolicy',
    metadata: meta,
    spec: compact({
      selector: workloadSelector(ctx, spec['selector'], 'spec.selector'),
      targetRef: spec['targetRef'] === undefined ? undefined : policyTargetRef(ctx, spec['targetRef'], 'spec.targetRef'),
      targetRefs: list(ctx, spec['targetRefs'], 'spec.targetRefs', (v, p) => policyTargetRef(ctx, v, p)),
      action,
      provider,
      rules: list(ctx, spec['rules'], 'spec.rules', (v, p) => authzRule(ctx, v, p)) ?? [],
    }),
  };
}

function authzProvider(ctx: Ctx, v: unknown, action: AuthzAction): { name: string } | undefined {
  if (action !== 'CUSTOM') {
    if (v !== undefined && v !== null) ctx.error('spec.provider', 'is only allowed with action: CUSTOM');
    return undefined;
  }
  const p = struct(ctx, v, 'spec.provider', { known: ['name'] }, 'action CUSTOM needs the name of an extension provider from the mesh config');
  if (!p) return undefined;
  return { name: nonEmpty(ctx, p['name'], 'spec.provider.name', true) ?? '' };
}

function authzRule(ctx: Ctx, v: unknown, path: string): AuthzRule | undefined {
  const r = struct(ctx, v, path, { known: ['from', 'to', 'when'] }, true);
  if (!r) return undefined;
  return compact({
    from: nonEmptyIfSet(ctx, r['from'], at(path, 'from'), (x, p) => {
      const f = struct(ctx, x, p, { known: ['source'] }, true);
      const source = f && authzFields(ctx, f['source'], at(p, 'source'), SOURCE_FIELDS);
      return source ? { source } : undefined;
    }),
    to: nonEmptyIfSet(ctx, r['to'], at(path, 'to'), (x, p) => {
      const t = struct(ctx, x, p, { known: ['operation'] }, true);
      const operation = t && authzFields(ctx, t['operation'], at(p, 'operation'), OPERATION_FIELDS);
      return operation ? { operation } : undefined;
    }),
    when: nonEmptyIfSet(ctx, r['when'], at(path, 'when'), (x, p) => authzCondition(ctx, x, p)),
  });
}

/** Istio rejects `from: []`, `to: []` and `when: []`: an empty list is almost always a mistake. */
function nonEmptyIfSet<T>(ctx: Ctx, v: unknown, path: string, item: (v: unknown, path: string) => T | undefined): T[] | undefined {
  if (Array.isArray(v) && v.length === 0) {
    ctx.error(path, 'must not be empty; remove the field or add an entry');
    return undefined;
  }
  return list(ctx, v, path, item);
}

/** A source or an operation: lists of strings, each checked per field; at least one field set. */
function authzFields<T extends string>(
  ctx: Ctx,
  v: unknown,
  path: string,
  fields: Readonly<Record<T, ValueCheck>>,
): Partial<Record<T, string[]>> | undefined {
  const names = Object.keys(fields) as T[];
  const s = struct(ctx, v, path, { known: names }, true);
  if (!s) return undefined;
  const out: Partial<Record<T, string[]>> = {};
  for (const name of names) {
    const values = authzValues(ctx, s[name], at(path, name), fields[name]);
    if (values !== undefined) out[name] = values;
  }
  if (!names.some((n) => s[n] !== undefined && s[n] !== null)) {
    ctx.error(path, `must not be empty; set at least one of ${names.join(', ')}`);
  }
  if ((s['serviceAccounts'] ?? s['notServiceAccounts']) && (s['principals'] ?? s['notPrincipals'])) {
    ctx.error(at(path, 'serviceAccounts'), 'cannot be combined with principals or notPrincipals in the same source');
  }
  return out;
}

function authzValues(ctx: Ctx, v: unknown, path: string, check: ValueCheck): string[] | undefined {
  if (check === 'port') {
    return list(ctx, v, path, (x, p) => authzPort(ctx, x, p));
  }
  return list(ctx, v, path, (x, p) => {
    const s = str(ctx, x, p, true);
    if (s === undefined) return undefined;
    const problem = s === '' ? 'must not be empty' : valueProblem(s, check);
    if (problem) {
      ctx.error(p, problem);
      return undefined;
    }
    return s;
  });
}

const WILDCARD_PROBLEM = (s: string): string =>
  `${describe(s)} has "*" in the wrong place; use one "*" as the whole value, a prefix ("*.example.com") or a suffix ("cluster.local/ns/foo/*")`;

function valueProblem(s: string, check: ValueCheck): string | undefined {
  switch (check) {
    case 'wildcard':
      return isIstioWildcard(s) ? undefined : WILDCARD_PROBLEM(s);
    case 'path':
      // "{*}" and "{**}" path templates have their own syntax; other paths follow the wildcard rule.
      return s.includes('{') || isIstioWildcard(s) ? undefined : WILDCARD_PROBLEM(s);
    case 'ipBlock':
      return isIPOrCidr(s) ? undefined : `${describe(s)} is not ${IP_OR_CIDR_TEXT}`;
    case 'serviceAccount':
      return /^[^/\s]+\/[^/\s]+$/.test(s) ? undefined : `${describe(s)} is not "<namespace>/<service account>"`;
    default:
      return undefined;
  }
}

/** Ports are strings in Istio's API; numbers are accepted and converted, as Istio's own decoding does. */
function authzPort(ctx: Ctx, v: unknown, path: string): string | undefined {
  const s = typeof v === 'number' ? String(v) : str(ctx, v, path, true);
  if (s === undefined) return undefined;
  const n = /^\d{1,5}$/.test(s) ? Number(s) : Number.NaN;
  if (!(n >= 1 && n <= 65535)) {
    ctx.error(path, `${describe(v)} is not a port number from 1 to 65535`);
    return undefined;
  }
  return String(n);
}

/** Condition keys Istio accepts in `when`; bracketed ones need a name inside the brackets. */
const CONDITION_KEYS = [
  'source.ip',
  'remote.ip',
  'source.namespace',
  'source.principal',
  'source.serviceAccount',
  'request.auth.principal',
  'request.auth.audiences',
  'request.auth.presenter',
  'destination.ip',
  'destination.port',
  'connection.sni',
];
const BRACKETED_KEYS = ['request.headers', 'request.auth.claims'];
const CONDITION_KEYS_TEXT = [...CONDITION_KEYS, ...BRACKETED_KEYS.map((k) => `${k}[<name>]`), 'experimental.envoy.filters.*'].join(', ');

function isConditionKey(key: string): boolean {
  if (CONDITION_KEYS.includes(key) || key.startsWith('experimental.envoy.filters.')) return true;
  return BRACKETED_KEYS.some((k) => key.startsWith(`${k}[`) && key.endsWith(']') && key.length > k.length + 2);
}

function authzCondition(ctx: Ctx, v: unknown, path: string): AuthzCondition | undefined {
  const c = struct(ctx, v, path, { known: ['key', 'values', 'notValues'] }, true);
  if (!c) return undefined;
  const key = nonEmpty(ctx, c['key'], at(path, 'key'), true);
  if (key !== undefined && !isConditionKey(key)) {
    ctx.error(at(path, 'key'), `${describe(key)} is not a supported condition key; use one of ${CONDITION_KEYS_TEXT}`);
  }
  const check: ValueCheck = key === 'destination.port' ? 'port' : /^(source|remote|destination)\.ip$/.test(key ?? '') ? 'ipBlock' : 'plain';
  const values = check === 'plain' ? strList(ctx, c['values'], at(path, 'values')) : authzValues(ctx, c['values'], at(path, 'values'), check);
  const notValues =
    check === 'plain' ? strList(ctx, c['notValues'], at(path, 'notValues')) : authzValues(ctx, c['notValues'], at(path, 'notValues'), check);
  const count = (x: unknown): number => (Array.isArray(x) ? x.length : 0);
  if (count(c['values']) + count(c['notValues']) === 0) {
    ctx.error(path, 'needs at least one entry in values or notValues');
  }
  return compact({ key: key ?? '', values, notValues });
}

// ---------- PeerAuthentication ----------

const MTLS_MODES: readonly MtlsMode[] = ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'];

function mtls(ctx: Ctx, v: unknown, path: string): { mode: MtlsMode } | undefined {
  const m = struct(ctx, v, path, { known: ['mode'] });
  if (!m) return undefined;
  return { mode: oneOf(ctx, m['mode'], at(path, 'mode'), MTLS_MODES) ?? 'UNSET' };
}

export function validatePeerAuthentication(ctx: Ctx, raw: Raw, meta: ObjectMeta, apiVersion: string): PeerAuthentication {
  const spec = struct(ctx, raw['spec'], 'spec', { known: ['selector', 'mtls', 'portLevelMtls'] }) ?? {};
  const selector = workloadSelector(ctx, spec['selector'], 'spec.selector');
  const portLevelMtls = mapOf<{ mode: MtlsMode }>(ctx, spec['portLevelMtls'], 'spec.portLevelMtls', (v, p, key) => {
    const n = /^\d{1,5}$/.test(key) ? Number(key) : Number.NaN;
    if (!(n >= 1 && n <= 65535)) ctx.error(p, `${describe(key)} is not a port number from 1 to 65535`);
    return mtls(ctx, v, p) ?? { mode: 'UNSET' as const };
  });
  if (portLevelMtls !== undefined && !selector?.matchLabels) {
    ctx.error('spec.portLevelMtls', 'requires spec.selector with matchLabels: port-level settings apply only to selected workloads');
  }
  return {
    apiVersion: apiVersion as PeerAuthentication['apiVersion'],
    kind: 'PeerAuthentication',
    metadata: meta,
    spec: compact({ selector, mtls: mtls(ctx, spec['mtls'], 'spec.mtls'), portLevelMtls }),
  };
}
