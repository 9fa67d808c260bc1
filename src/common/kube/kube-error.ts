/**
 * Errors from the Kubernetes API as StraitError('STRAIT_ERR_KUBE'), carrying the HTTP status and the Kubernetes
 * reason of the Status body. The message names the request (verb, resource, namespace/name) and the fix.
 */
import { StraitError } from '../errors.js';
import { qualifiedResource, type KubeResourceType } from './resource-types.js';

/** The verbs of Kubernetes authorization (what RBAC rules list). */
export type KubeVerb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';

/** What a request was about, for messages. */
export interface KubeRequestSubject {
  verb: KubeVerb;
  type: KubeResourceType;
  namespace?: string;
  name?: string;
  subresource?: string;
}

/** The fields of a Kubernetes `Status` body that matter to callers. */
export interface KubeStatus {
  message?: string;
  reason?: string;
  code?: number;
  details?: { name?: string; group?: string; kind?: string; causes?: { field?: string; message?: string; reason?: string }[]; retryAfterSeconds?: number };
}

export class KubeApiError extends StraitError {
  /** HTTP status, or 0 when no answer came (connection refused, TLS failure, timeout). */
  readonly status: number;
  /** Kubernetes reason (NotFound, Forbidden, Conflict, AlreadyExists, Expired, Gone, ...), '' when none. */
  readonly reason: string;
  readonly subject: KubeRequestSubject | undefined;
  readonly retryAfterSeconds: number | undefined;
  constructor(message: string, status: number, reason: string, subject?: KubeRequestSubject, opts: { cause?: unknown; retryAfterSeconds?: number } = {}) {
    super('STRAIT_ERR_KUBE', message, { cause: opts.cause });
    this.status = status;
    this.reason = reason;
    this.subject = subject;
    this.retryAfterSeconds = opts.retryAfterSeconds;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), status: this.status, reason: this.reason };
  }
}

export function isKubeApiError(err: unknown, status?: number): err is KubeApiError {
  return err instanceof KubeApiError && (status === undefined || err.status === status);
}

/** 410: the resourceVersion (of a watch or a list continue token) is older than the server keeps; relist. */
export function isResourceExpired(err: unknown): boolean {
  return err instanceof KubeApiError && (err.status === 410 || err.reason === 'Expired' || err.reason === 'Gone');
}

/** 404 on a collection whose kind the server does not serve (its CRD is not installed). */
export function isKindNotServed(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 404 && err.subject !== undefined && err.subject.name === undefined;
}

/** Retrying the same request may succeed: no answer, 429, 5xx, or an expired watch (after a relist). */
export function isRetriable(err: unknown): boolean {
  if (!(err instanceof KubeApiError)) return true;
  return err.status === 0 || err.status === 429 || err.status >= 500;
}

/** "pods default/web-1", "nodes" (a collection), "gateways.gateway.networking.k8s.io/status ns/wp". */
export function describeSubject(s: KubeRequestSubject): string {
  const resource = qualifiedResource(s.type) + (s.subresource ? `/${s.subresource}` : '');
  const where = s.name !== undefined ? ` ${s.namespace !== undefined ? `${s.namespace}/` : ''}${s.name}` : s.namespace !== undefined ? ` in namespace ${s.namespace}` : '';
  return `${resource}${where}`;
}

/** Builds the error for an HTTP answer that is not 2xx, from the Status body when there is one. */
export function kubeErrorFromStatus(httpStatus: number, body: KubeStatus | undefined, subject: KubeRequestSubject, server: string): KubeApiError {
  const reason = body?.reason ?? '';
  const serverMessage = body?.message ?? '';
  const what = `${subject.verb} ${describeSubject(subject)}`;
  const said = serverMessage ? `: ${serverMessage}` : '';
  const retryAfterSeconds = body?.details?.retryAfterSeconds;
  const mk = (message: string): KubeApiError => new KubeApiError(message, httpStatus, reason, subject, retryAfterSeconds !== undefined ? { retryAfterSeconds } : {});
  switch (httpStatus) {
    case 401:
      return mk(`the Kubernetes API server at ${server} rejected the credentials for ${what} (401 Unauthorized)${said}: check the kubeconfig's user (token, client certificate) or, in a pod, the mounted ServiceAccount token`);
    case 403: {
      const sub = subject.subresource ? `${subject.type.resource}/${subject.subresource}` : subject.type.resource;
      const scope = subject.namespace !== undefined ? `in namespace ${subject.namespace}` : 'at cluster scope';
      return mk(`forbidden: ${what} (403)${said}. The identity lacks "${subject.verb}" on "${sub}" in API group "${subject.type.group}" ${scope}: apply daemonset.yaml's RBAC (it grants Strait's ServiceAccounts what they use), or grant it with a Role/ClusterRole binding`);
    }
    case 404:
      if (subject.name === undefined || isNotServedBody(body)) {
        if (subject.type.crd) {
          return mk(`the Kubernetes API server does not serve ${subject.type.kind} (${qualifiedResource(subject.type)}/${subject.type.version}) for ${what}${said}: install the CustomResourceDefinition ${subject.type.crd.name} (from ${subject.type.crd.from})`);
        }
        return mk(`the Kubernetes API server does not serve ${qualifiedResource(subject.type)}/${subject.type.version} for ${what}${said}: is the cluster's Kubernetes version too old for this API?`);
      }
      return mk(`${subject.type.kind} ${describeSubject(subject)} not found (404)${said}`);
    case 409:
      if (reason === 'AlreadyExists') return mk(`${subject.type.kind} ${describeSubject(subject)} already exists (409)${said}`);
      return mk(`conflict on ${what} (409 ${reason || 'Conflict'})${said}: someone else changed it; read it again and retry`);
    case 410:
      return mk(`${what}: the resourceVersion is too old (410 ${reason || 'Gone'})${said}: list again and watch from the list's resourceVersion`);
    case 422:
      return mk(`the Kubernetes API server rejected ${what} as invalid (422)${said}`);
    case 429:
      return mk(`the Kubernetes API server asked to slow down on ${what} (429 TooManyRequests)${said}; retried with backoff`);
    default:
      if (httpStatus >= 500) return mk(`the Kubernetes API server failed ${what} (${httpStatus} ${reason})${said}; retried with backoff`);
      return mk(`${what} failed (${httpStatus} ${reason})${said}`);
  }
}

/** A 404 whose body says the resource type itself is unknown, rather than one object missing. */
function isNotServedBody(body: KubeStatus | undefined): boolean {
  if (!body) return true;
  return body.details?.name === undefined && /could not find the requested resource/.test(body.message ?? '');
}

/** No HTTP answer at all. */
export function kubeUnreachable(err: unknown, subject: KubeRequestSubject, server: string): KubeApiError {
  const cause = err instanceof Error ? err.message : String(err);
  return new KubeApiError(
    `cannot reach the Kubernetes API server at ${server} for ${subject.verb} ${describeSubject(subject)}: ${cause}: check the kubeconfig's server address and certificate authority (in a pod: KUBERNETES_SERVICE_HOST and the mounted ca.crt)`,
    0,
    '',
    subject,
    { cause: err },
  );
}
