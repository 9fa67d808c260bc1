/**
 * Turns one untrusted document into a typed MeshObject or into Problems. Errors reject the object;
 * warnings (unknown fields, ignored upstream features) do not. No input is silently dropped.
 */
import type { ErrorCode } from '../errors.js';
import type { Kind, MeshObject, ObjectMeta, Problem, Severity, SourceRef } from './types.js';
import { CLUSTER_SCOPED_KINDS } from './types.js';
import { annotations, at, describe, isMapping, labels, missing, str, struct, type Ctx, type FieldSet, type Raw } from './fields.js';
import {
  DNS1035_LABEL_TEXT,
  DNS1123_LABEL_TEXT,
  DNS1123_SUBDOMAIN_TEXT,
  isDns1035Label,
  isDns1123Label,
  isDns1123Subdomain,
} from './formats.js';
import { validateNamespace, validateNode, validatePod, validateService } from './validate-core.js';
import { validateEndpointSlice } from './validate-discovery.js';
import { validateConfigMap } from './validate-mesh-config.js';
import { validateAuthorizationPolicy, validatePeerAuthentication } from './validate-security.js';
import { validateDestinationRule, validateVirtualService } from './validate-networking.js';
import { validateTelemetry } from './validate-telemetry.js';
import { validateGateway, validateHTTPRoute } from './validate-gateway.js';
import { apiGroupOf, ignoredKindReason, ignoredKindsOf, isMeshApiGroup } from './ignored-kinds.js';

export interface ValidateResult {
  object?: MeshObject;
  problems: Problem[];
}

/** An error found before validation (e.g. a duplicate YAML key), reported with the object's identity. */
export interface PriorError {
  path: string;
  message: string;
  code?: ErrorCode;
}

export interface ValidateOptions {
  /** Prefix for every field path, e.g. "items[2]" for an object inside a List. */
  pathPrefix?: string;
  /** Errors already known for this document; they reject the object. */
  priorErrors?: readonly PriorError[];
}

type NameFormat = 'dns1123-label' | 'dns1123-subdomain' | 'dns1035-label';

type KindValidator = (ctx: Ctx, raw: Raw, meta: ObjectMeta, apiVersion: string) => MeshObject;

interface KindInfo {
  kind: Kind;
  apiVersions: readonly string[];
  nameFormat: NameFormat;
  /** true when the validator reads `status`; otherwise status is accepted silently. */
  readsStatus: boolean;
  validate: KindValidator;
  /** Top-level fields besides apiVersion, kind and metadata (default: spec). */
  body?: readonly string[];
}

const ISTIO_SECURITY = ['security.istio.io/v1', 'security.istio.io/v1beta1'];
const ISTIO_NETWORKING = ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'];
const ISTIO_TELEMETRY = ['telemetry.istio.io/v1', 'telemetry.istio.io/v1alpha1'];
const GATEWAY_API = ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'];

/** The supported kinds; name formats follow what the Kubernetes API server enforces for each. */
const KINDS: readonly KindInfo[] = [
  { kind: 'Namespace', apiVersions: ['v1'], nameFormat: 'dns1123-label', readsStatus: false, validate: validateNamespace },
  { kind: 'Node', apiVersions: ['v1'], nameFormat: 'dns1123-subdomain', readsStatus: true, validate: validateNode },
  { kind: 'Pod', apiVersions: ['v1'], nameFormat: 'dns1123-subdomain', readsStatus: true, validate: validatePod },
  { kind: 'Service', apiVersions: ['v1'], nameFormat: 'dns1035-label', readsStatus: false, validate: validateService },
  { kind: 'ConfigMap', apiVersions: ['v1'], nameFormat: 'dns1123-subdomain', readsStatus: false, validate: validateConfigMap, body: ['data', 'binaryData', 'immutable'] },
  { kind: 'EndpointSlice', apiVersions: ['discovery.k8s.io/v1'], nameFormat: 'dns1123-subdomain', readsStatus: false, validate: validateEndpointSlice, body: ['addressType', 'endpoints', 'ports'] },
  { kind: 'AuthorizationPolicy', apiVersions: ISTIO_SECURITY, nameFormat: 'dns1123-subdomain', readsStatus: false, validate: validateAuthorizationPolicy },
  { kind: 'PeerAuthentication', apiVersions: ISTIO_SECURITY, nameFormat: 'dns1123-subdomain', readsStatus: false, validate: validatePeerAuthentication },
  { kind: 'VirtualService', apiVersions: ISTIO_NETWORKING, nameFormat: 'dns1123-subdomain', readsStatus: false, validate: validateVirtualService },
  { kind: 'DestinationRule', apiVersions: ISTIO_NETWORKING, nameFormat: 'dns1123-subdomain', readsStatus: false, validate: validateDestinationRule },
  { kind: 'Telemetry', apiVersions: ISTIO_TELEMETRY, nameFormat: 'dns1123-subdomain', readsStatus: false, validate: validateTelemetry },
  { kind: 'Gateway', apiVersions: GATEWAY_API, nameFormat: 'dns1123-subdomain', readsStatus: false, validate: validateGateway },
  { kind: 'HTTPRoute', apiVersions: GATEWAY_API, nameFormat: 'dns1123-subdomain', readsStatus: false, validate: validateHTTPRoute },
];

const KIND_BY_NAME = new Map<string, KindInfo>(KINDS.map((k) => [k.kind, k]));

/** Whether Strait reads objects of this kind (under one of its apiVersions). */
export function isSupportedKind(kind: string): boolean {
  return KIND_BY_NAME.has(kind);
}

/** "Namespace, Node, Pod, Service, ConfigMap (v1); EndpointSlice (discovery.k8s.io/v1); AuthorizationPolicy, PeerAuthentication (security.istio.io/v1, v1beta1); ..." */
export const SUPPORTED_KINDS_TEXT: string = (() => {
  const groups = new Map<string, string[]>();
  for (const k of KINDS) {
    const versions = k.apiVersions.map((v, i) => (i === 0 ? v : v.slice(v.lastIndexOf('/') + 1))).join(', ');
    groups.set(versions, [...(groups.get(versions) ?? []), k.kind]);
  }
  return [...groups].map(([versions, kinds]) => `${kinds.join(', ')} (${versions})`).join('; ');
})();

const NAME_CHECKS: Record<NameFormat, { ok: (s: string) => boolean; text: string }> = {
  'dns1123-label': { ok: isDns1123Label, text: DNS1123_LABEL_TEXT },
  'dns1123-subdomain': { ok: isDns1123Subdomain, text: DNS1123_SUBDOMAIN_TEXT },
  'dns1035-label': { ok: isDns1035Label, text: DNS1035_LABEL_TEXT },
};

const METADATA_FIELDS: FieldSet = {
  known: ['name', 'namespace', 'labels', 'annotations', 'creationTimestamp', 'uid'],
  // Written by the API server or by controllers; meaningless for the mesh.
  silent: [
    'resourceVersion',
    'generation',
    'managedFields',
    'ownerReferences',
    'finalizers',
    'selfLink',
    'deletionTimestamp',
    'deletionGracePeriodSeconds',
    'generateName',
  ],
};

/** Collects problems for one object; the identity fields fill in as metadata is read. */
class ProblemSink implements Ctx {
  readonly problems: Problem[] = [];
  kind: string | undefined;
  namespace: string | undefined;
  name: string | undefined;

  constructor(
    private readonly src: SourceRef,
    private readonly prefix: string,
  ) {}

  get errorCount(): number {
    return this.problems.filter((p) => p.severity === 'error').length;
  }

  error(path: string, message: string, code: ErrorCode = 'STRAIT_ERR_MANIFEST_INVALID'): void {
    this.add('error', path, message, code);
  }

  warn(path: string, message: string, code: ErrorCode = 'STRAIT_ERR_MANIFEST_INVALID'): void {
    this.add('warning', path, message, code);
  }

  private add(severity: Severity, path: string, message: string, code: ErrorCode): void {
    const fullPath = this.prefix ? (path ? at(this.prefix, path) : this.prefix) : path;
    const p: Problem = { severity, file: this.src.file, doc: this.src.doc, path: fullPath, message, code };
    if (this.kind !== undefined) p.kind = this.kind;
    if (this.namespace !== undefined) p.namespace = this.namespace;
    if (this.name !== undefined) p.name = this.name;
    this.problems.push(p);
  }

  /** Problems recorded before the identity was known get it afterwards, so every line names the object. */
  stampIdentity(): void {
    for (const p of this.problems) {
      if (p.kind === undefined && this.kind !== undefined) p.kind = this.kind;
      if (p.namespace === undefined && this.namespace !== undefined) p.namespace = this.namespace;
      if (p.name === undefined && this.name !== undefined) p.name = this.name;
    }
  }
}

/** Validates one document (already converted from YAML to plain values). */
export function validateObject(raw: unknown, src: SourceRef, options: ValidateOptions = {}): ValidateResult {
  const sink = new ProblemSink(src, options.pathPrefix ?? '');
  const object = validateInto(sink, raw);
  for (const e of options.priorErrors ?? []) sink.error(e.path, e.message, e.code);
  sink.stampIdentity();
  return sink.errorCount === 0 && object ? { object, problems: sink.problems } : { problems: sink.problems };
}

function validateInto(sink: ProblemSink, raw: unknown): MeshObject | undefined {
  if (!isMapping(raw)) {
    sink.error('', `expected a mapping with apiVersion, kind and metadata, got ${describe(raw)}`);
    return undefined;
  }
  identify(sink, raw);
  const info = kindInfo(sink, raw);
  if (!info) return undefined;

  struct(sink, raw, '', {
    known: ['apiVersion', 'kind', 'metadata', ...(info.body ?? ['spec']), ...(info.readsStatus ? ['status'] : [])],
    silent: info.readsStatus ? [] : ['status'],
  });
  const meta = metadata(sink, raw['metadata'], info);
  if (!meta) return undefined;
  return info.validate(sink, raw, meta, raw['apiVersion'] as string);
}

/** Fills in kind/namespace/name for messages from whatever the document says, before checking it. */
function identify(sink: ProblemSink, raw: Raw): void {
  const kind = raw['kind'];
  const meta = raw['metadata'];
  if (typeof kind === 'string' && kind !== '') sink.kind = kind;
  const name = isMapping(meta) ? meta['name'] : undefined;
  const namespace = isMapping(meta) ? meta['namespace'] : undefined;
  if (typeof name === 'string' && name !== '') sink.name = name;
  if (CLUSTER_SCOPED_KINDS.has(kind as Kind)) return;
  if (typeof namespace === 'string' && namespace !== '') sink.namespace = namespace;
  else if (KIND_BY_NAME.has(kind as string)) sink.namespace = 'default';
  else if (typeof raw['apiVersion'] === 'string' && kind !== 'GatewayClass' && ignoredKindReason(raw['apiVersion'], kind as string) !== undefined) sink.namespace = 'default';
}

function kindInfo(ctx: ProblemSink, raw: Raw): KindInfo | undefined {
  const apiVersion = str(ctx, raw['apiVersion'], 'apiVersion', 'e.g. "v1" or "security.istio.io/v1"');
  const kind = str(ctx, raw['kind'], 'kind', `supported: ${SUPPORTED_KINDS_TEXT}`);
  if (apiVersion === undefined || kind === undefined) return undefined;
  const info = KIND_BY_NAME.get(kind);
  if (info?.apiVersions.includes(apiVersion)) return info;
  const group = apiGroupOf(apiVersion);
  const ignored = ignoredKindReason(apiVersion, kind);
  if (ignored !== undefined) {
    ctx.warn('', `${group} ${kind} is not supported by Strait (ignored): ${ignored}`, 'STRAIT_ERR_MANIFEST_IGNORED');
    return undefined;
  }
  if (!info && isMeshApiGroup(group)) {
    const read = KINDS.filter((k) => k.apiVersions.some((v) => apiGroupOf(v) === group)).map((k) => k.kind);
    const known = [...(read.length > 0 ? [`${read.join(', ')} (read)`] : []), ...(ignoredKindsOf(group).length > 0 ? [`${ignoredKindsOf(group).join(', ')} (ignored)`] : [])];
    ctx.error('kind', `${describe(kind)} is not a ${group} kind Strait knows (misspelt?); ${group} kinds: ${known.join('; ')}`);
    return undefined;
  }
  if (!info) {
    ctx.error('kind', `${describe(kind)} is not supported; supported kinds: ${SUPPORTED_KINDS_TEXT}`);
    return undefined;
  }
  ctx.error('apiVersion', `${describe(apiVersion)} does not serve ${kind}; use ${info.apiVersions.join(' or ')}`);
  return undefined;
}

function metadata(ctx: Ctx, v: unknown, info: KindInfo): ObjectMeta | undefined {
  const m = struct(ctx, v, 'metadata', METADATA_FIELDS, true);
  if (!m) return undefined;
  const check = NAME_CHECKS[info.nameFormat];
  const name = str(ctx, m['name'], 'metadata.name', true);
  if (name === '') missing(ctx, 'metadata.name', true);
  else if (name !== undefined && !check.ok(name)) ctx.error('metadata.name', `${describe(name)} is not ${check.text}`);

  const ns = str(ctx, m['namespace'], 'metadata.namespace');
  const clusterScoped = CLUSTER_SCOPED_KINDS.has(info.kind);
  if (clusterScoped && ns) ctx.warn('metadata.namespace', `ignored: ${info.kind} is cluster-scoped`);
  if (!clusterScoped && ns && !isDns1123Label(ns)) ctx.error('metadata.namespace', `${describe(ns)} is not ${DNS1123_LABEL_TEXT}`);
  const created = creationTimestamp(ctx, m['creationTimestamp']);
  return {
    name: name ?? '',
    ...(clusterScoped ? {} : { namespace: ns || 'default' }),
    labels: labels(ctx, m['labels'], 'metadata.labels') ?? {},
    annotations: annotations(ctx, m['annotations'], 'metadata.annotations') ?? {},
    ...(created !== undefined ? { creationTimestamp: created } : {}),
    ...(typeof m['uid'] === 'string' && m['uid'] ? { uid: m['uid'] } : {}),
  };
}

/**
 * RFC 3339 ("2024-05-01T10:00:00Z"), as the API server writes it; kept in UTC ISO form so that strings compare in
 * time order. YAML reads an unquoted timestamp as a date, which is accepted too.
 */
function creationTimestamp(ctx: Ctx, v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (v instanceof Date && !Number.isNaN(v.getTime())) return v.toISOString();
  const s = str(ctx, v, 'metadata.creationTimestamp');
  if (s === undefined) return undefined;
  const t = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.test(s) ? Date.parse(s) : Number.NaN;
  if (Number.isNaN(t)) {
    ctx.error('metadata.creationTimestamp', `${describe(s)} is not an RFC 3339 time such as "2024-05-01T10:00:00Z"`);
    return undefined;
  }
  return new Date(t).toISOString();
}
