/**
 * A small typed REST client for the Kubernetes API over client-node's KubeConfig (which applies the
 * credentials and TLS settings of the kubeconfig or the in-cluster ServiceAccount to every request).
 * Invariants: every non-2xx answer becomes a KubeApiError naming the request and the fix; a response body is
 * bounded in bytes (and a watch event line too); one keep-alive agent is reused while the TLS material is unchanged.
 */
import http from 'node:http';
import https from 'node:https';
import { createHash } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeApiError, kubeErrorFromStatus, kubeUnreachable, type KubeRequestSubject, type KubeStatus, type KubeVerb } from './kube-error.js';
import { apiVersionOf, collectionPath, objectPath, type KubeResourceType } from './resource-types.js';
import type { LoadedKubeConfig } from './kubeconfig.js';
import {
  PATCH_CONTENT_TYPES,
  type DeleteOptions,
  type KubeList,
  type KubeObject,
  type ListOptions,
  type PatchType,
  type StoredKubeObject,
  type WatchOptions,
} from './types.js';
import { KubeWatch } from './watch.js';

export const DEFAULT_KUBE_REQUEST_TIMEOUT_MS = 30_000;
export const DEFAULT_KUBE_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_KUBE_MAX_WATCH_LINE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_KUBE_LIST_PAGE_SIZE = 500;
/** Sockets kept open to the API server (watches hold one each). */
export const DEFAULT_KUBE_MAX_SOCKETS = 64;

export interface KubeClientOptions {
  requestTimeoutMs?: number;
  maxResponseBytes?: number;
  maxWatchLineBytes?: number;
  userAgent?: string;
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export class KubeClient {
  readonly server: string;
  readonly #kc: KubeConfig;
  readonly #opts: Required<KubeClientOptions>;
  #agent: http.Agent | undefined;
  #agentKey = '';
  readonly #watches = new Set<KubeWatch>();

  constructor(config: KubeConfig | LoadedKubeConfig, opts: KubeClientOptions = {}) {
    this.#kc = 'kubeConfig' in config ? config.kubeConfig : config;
    const cluster = this.#kc.getCurrentCluster();
    if (!cluster?.server) throw new KubeApiError('the kubeconfig has no current cluster with a server address: fix the kubeconfig or pass --kube-context', 0, '');
    this.server = cluster.server.replace(/\/+$/, '');
    this.#opts = {
      requestTimeoutMs: opts.requestTimeoutMs ?? DEFAULT_KUBE_REQUEST_TIMEOUT_MS,
      maxResponseBytes: opts.maxResponseBytes ?? DEFAULT_KUBE_MAX_RESPONSE_BYTES,
      maxWatchLineBytes: opts.maxWatchLineBytes ?? DEFAULT_KUBE_MAX_WATCH_LINE_BYTES,
      userAgent: opts.userAgent ?? 'strait',
    };
  }

  async get<T extends KubeObject = KubeObject>(type: KubeResourceType, name: string, opts: { namespace?: string; subresource?: string } = {}): Promise<StoredKubeObject<T>> {
    const subject = subjectOf('get', type, opts.namespace, name, opts.subresource);
    return this.#json<StoredKubeObject<T>>('GET', objectPath(type, name, opts.namespace, opts.subresource), {}, undefined, subject);
  }

  /** One page of a list (see listAll for every page). */
  async list<T extends KubeObject = KubeObject>(type: KubeResourceType, opts: ListOptions = {}): Promise<KubeList<T>> {
    const query: Record<string, string | undefined> = {
      labelSelector: opts.labelSelector,
      fieldSelector: opts.fieldSelector,
      limit: opts.limit !== undefined ? String(opts.limit) : undefined,
      continue: opts.continue,
      resourceVersion: opts.resourceVersion,
      resourceVersionMatch: opts.resourceVersionMatch,
    };
    const list = await this.#json<KubeList<T>>('GET', collectionPath(type, opts.namespace), query, undefined, subjectOf('list', type, opts.namespace));
    const apiVersion = apiVersionOf(type);
    for (const item of list.items ?? []) {
      item.apiVersion ??= apiVersion;
      item.kind ??= type.kind;
    }
    list.items ??= [];
    return list;
  }

  /** Every page of a list at one resourceVersion; an expired continue token restarts the listing (at most twice). */
  async listAll<T extends KubeObject = KubeObject>(type: KubeResourceType, opts: Omit<ListOptions, 'limit' | 'continue'> & { pageSize?: number } = {}): Promise<{ items: StoredKubeObject<T>[]; resourceVersion: string }> {
    const { pageSize = DEFAULT_KUBE_LIST_PAGE_SIZE, ...rest } = opts;
    for (let attempt = 0; ; attempt++) {
      const items: StoredKubeObject<T>[] = [];
      let cont: string | undefined;
      let resourceVersion = '';
      try {
        do {
          const page: KubeList<T> = await this.list<T>(type, { ...rest, limit: pageSize, ...(cont ? { continue: cont } : {}) });
          items.push(...page.items);
          resourceVersion = page.metadata.resourceVersion;
          cont = page.metadata.continue || undefined;
        } while (cont);
        return { items, resourceVersion };
      } catch (err) {
        if (!(err instanceof KubeApiError && err.status === 410 && cont !== undefined && attempt < 2)) throw err;
      }
    }
  }

  async create<T extends KubeObject = KubeObject>(type: KubeResourceType, object: T, opts: { namespace?: string } = {}): Promise<StoredKubeObject<T>> {
    const namespace = opts.namespace ?? (type.namespaced ? object.metadata?.namespace : undefined);
    const body = { apiVersion: apiVersionOf(type), kind: type.kind, ...object };
    return this.#json<StoredKubeObject<T>>('POST', collectionPath(type, namespace), {}, body, subjectOf('create', type, namespace, object.metadata?.name));
  }

  /** PUT: fails with 409 Conflict when metadata.resourceVersion is set and stale. */
  async replace<T extends KubeObject = KubeObject>(type: KubeResourceType, object: T, opts: { subresource?: 'status' } = {}): Promise<StoredKubeObject<T>> {
    const name = object.metadata?.name;
    if (!name) throw new KubeApiError(`BUG: replace of a ${type.kind} without metadata.name`, 0, '');
    const namespace = type.namespaced ? object.metadata?.namespace : undefined;
    const body = { apiVersion: apiVersionOf(type), kind: type.kind, ...object };
    return this.#json<StoredKubeObject<T>>('PUT', objectPath(type, name, namespace, opts.subresource), {}, body, subjectOf('update', type, namespace, name, opts.subresource));
  }

  async patch<T extends KubeObject = KubeObject>(
    type: KubeResourceType,
    name: string,
    patch: unknown,
    opts: { namespace?: string; patchType?: PatchType; subresource?: 'status' } = {},
  ): Promise<StoredKubeObject<T>> {
    const contentType = PATCH_CONTENT_TYPES[opts.patchType ?? 'merge'];
    return this.#json<StoredKubeObject<T>>('PATCH', objectPath(type, name, opts.namespace, opts.subresource), {}, patch, subjectOf('patch', type, opts.namespace, name, opts.subresource), contentType);
  }

  /** Returns what the server answered (the object, or a Status). */
  async delete(type: KubeResourceType, name: string, opts: DeleteOptions = {}): Promise<KubeObject> {
    const body = opts.propagationPolicy || opts.preconditions
      ? { apiVersion: 'v1', kind: 'DeleteOptions', ...(opts.propagationPolicy ? { propagationPolicy: opts.propagationPolicy } : {}), ...(opts.preconditions ? { preconditions: opts.preconditions } : {}) }
      : undefined;
    return this.#json<KubeObject>('DELETE', objectPath(type, name, opts.namespace), {}, body, subjectOf('delete', type, opts.namespace, name));
  }

  /**
   * Opens a watch. Rejects on an HTTP error (403, 404, 410, ...); the returned stream yields events and throws a
   * KubeApiError for an ERROR event (410 Expired when the resourceVersion was compacted) or a broken connection.
   */
  async watch<T extends KubeObject = KubeObject>(type: KubeResourceType, opts: WatchOptions = {}): Promise<KubeWatch<T>> {
    const timeoutSeconds = opts.timeoutSeconds ?? 300 + Math.floor(Math.random() * 300);
    const query: Record<string, string | undefined> = {
      watch: '1',
      labelSelector: opts.labelSelector,
      fieldSelector: opts.fieldSelector,
      resourceVersion: opts.resourceVersion,
      allowWatchBookmarks: opts.allowWatchBookmarks === false ? undefined : 'true',
      timeoutSeconds: String(timeoutSeconds),
    };
    const subject = subjectOf('watch', type, opts.namespace);
    const { req, res } = await this.#open('GET', collectionPath(type, opts.namespace), query, undefined, subject, undefined, (timeoutSeconds + 30) * 1000);
    if (res.statusCode !== 200) {
      const body = await readBody(res, this.#opts.maxResponseBytes).catch(() => Buffer.alloc(0));
      req.destroy();
      throw this.#errorFor({ status: res.statusCode ?? 0, headers: res.headers, body }, subject);
    }
    const w = new KubeWatch<T>(req, res, {
      subject,
      server: this.server,
      maxLineBytes: this.#opts.maxWatchLineBytes,
      apiVersion: apiVersionOf(type),
      kind: type.kind,
      onClose: () => this.#watches.delete(w as KubeWatch),
    });
    this.#watches.add(w as KubeWatch);
    return w;
  }

  /** Ends every open watch and the idle keep-alive connections. */
  close(): void {
    for (const w of this.#watches) w.close();
    this.#agent?.destroy();
    this.#agent = undefined;
  }

  async #json<T>(method: string, path: string, query: Record<string, string | undefined>, body: unknown, subject: KubeRequestSubject, contentType = 'application/json'): Promise<T> {
    const { req, res } = await this.#open(method, path, query, body, subject, contentType, this.#opts.requestTimeoutMs);
    let raw: Buffer;
    try {
      raw = await readBody(res, this.#opts.maxResponseBytes);
    } catch (err) {
      req.destroy();
      throw kubeUnreachable(err, subject, this.server);
    }
    const status = res.statusCode ?? 0;
    if (status < 200 || status > 299) throw this.#errorFor({ status, headers: res.headers, body: raw }, subject);
    try {
      return JSON.parse(raw.toString('utf8')) as T;
    } catch (err) {
      throw new KubeApiError(`the Kubernetes API server answered ${subject.verb} ${path} with a body that is not JSON: is ${this.server} a Kubernetes API server?`, status, '', subject, { cause: err });
    }
  }

  #errorFor(r: RawResponse, subject: KubeRequestSubject): KubeApiError {
    let parsed: KubeStatus | undefined;
    try {
      const v = JSON.parse(r.body.toString('utf8')) as KubeStatus & { kind?: string };
      if (v && typeof v === 'object') parsed = v;
    } catch {
      const text = r.body.toString('utf8').trim().slice(0, 200);
      if (text) parsed = { message: text };
    }
    const retryAfter = Number(r.headers['retry-after']);
    if (parsed && Number.isFinite(retryAfter) && retryAfter > 0) parsed.details = { ...parsed.details, retryAfterSeconds: retryAfter };
    return kubeErrorFromStatus(r.status, parsed, subject, this.server);
  }

  async #open(
    method: string,
    path: string,
    query: Record<string, string | undefined>,
    body: unknown,
    subject: KubeRequestSubject,
    contentType: string | undefined,
    timeoutMs: number,
  ): Promise<{ req: http.ClientRequest; res: http.IncomingMessage }> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, v);
    const opts: https.RequestOptions = {};
    try {
      await this.#kc.applyToHTTPSOptions(opts);
    } catch (err) {
      throw new KubeApiError(`cannot apply the kubeconfig's credentials for ${subject.verb} ${path}: ${err instanceof Error ? err.message : String(err)}: check the certificate, key and token files it names`, 0, '', subject, { cause: err });
    }
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: http.OutgoingHttpHeaders = {
      ...(opts.headers as http.OutgoingHttpHeaders | undefined),
      accept: 'application/json',
      'user-agent': this.#opts.userAgent,
      ...(payload ? { 'content-type': contentType ?? 'application/json', 'content-length': payload.length } : {}),
    };
    const secure = url.protocol === 'https:';
    const agent = secure ? this.#agentFor(opts) : undefined;
    const requestOpts: https.RequestOptions = {
      method,
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port || (secure ? 443 : 80),
      path: url.pathname + url.search,
      headers,
      ...(opts.auth ? { auth: opts.auth } : {}),
      ...(agent ? { agent } : {}),
    };
    return new Promise((resolve, reject) => {
      const req = (secure ? https : http).request(requestOpts, (res) => resolve({ req, res }));
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (err) => reject(kubeUnreachable(err, subject, this.server)));
      req.end(payload);
    });
  }

  /** The proxy agent client-node built when the cluster has a proxy-url; else one keep-alive agent per TLS material. */
  #agentFor(opts: https.RequestOptions): http.Agent {
    const cluster = this.#kc.getCurrentCluster();
    if (cluster?.proxyUrl && opts.agent) return opts.agent as http.Agent;
    const tls = { ca: opts.ca, cert: opts.cert, key: opts.key, servername: opts.servername, rejectUnauthorized: opts.rejectUnauthorized };
    const key = createHash('sha256').update(JSON.stringify(tls, (_k, v) => (Buffer.isBuffer(v) ? v.toString('base64') : v))).digest('hex');
    if (!this.#agent || key !== this.#agentKey) {
      this.#agent?.destroy();
      this.#agent = new https.Agent({
        keepAlive: true,
        maxSockets: DEFAULT_KUBE_MAX_SOCKETS,
        ...(tls.ca ? { ca: tls.ca } : {}),
        ...(tls.cert ? { cert: tls.cert } : {}),
        ...(tls.key ? { key: tls.key } : {}),
        ...(tls.servername ? { servername: tls.servername } : {}),
        ...(tls.rejectUnauthorized !== undefined ? { rejectUnauthorized: tls.rejectUnauthorized } : {}),
      });
      this.#agentKey = key;
    }
    return this.#agent;
  }
}

function subjectOf(verb: KubeVerb, type: KubeResourceType, namespace?: string, name?: string, subresource?: string): KubeRequestSubject {
  return {
    verb,
    type,
    ...(type.namespaced && namespace !== undefined ? { namespace } : {}),
    ...(name !== undefined ? { name } : {}),
    ...(subresource !== undefined ? { subresource } : {}),
  };
}

function readBody(res: http.IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) {
        res.destroy(new Error(`the response is larger than ${maxBytes} bytes`));
        return;
      }
      chunks.push(c);
    });
    res.on('end', () => resolve(Buffer.concat(chunks)));
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('the connection closed before the response ended')));
  });
}
