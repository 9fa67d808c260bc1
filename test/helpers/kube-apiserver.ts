/**
 * An in-process Kubernetes API server double for tests. It speaks the wire protocol the Kubernetes API documents
 * (HTTPS, JSON, resourceVersion, list chunking with limit/continue, chunked watch streams with bookmarks, 410 Gone
 * after compaction, 409 on stale updates, merge/JSON patches, the status subresource, owner-reference garbage
 * collection, TokenReview, SubjectAccessReviews, optional RBAC with real 403 Status bodies, discovery), so
 * @kubernetes/client-node and Strait's own client talk to it unmodified. Tests control it directly: put/get/
 * delete/list objects, compact(), dropWatches(), bookmark(), failNext(), and read the request log.
 *
 * Deliberate simplifications: no server-side apply (415), strategic merge patch is applied as a JSON merge
 * patch, no finalizers, aggregated ClusterRoles are not expanded, no admission beyond namespace existence.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import https from 'node:https';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { ApiError, errors, forbidden, statusBody } from './kube-apiserver/status.js';
import { DEFAULT_KINDS, KindRegistry, apiVersionFor, splitApiVersion, type KindDef } from './kube-apiserver/registry.js';
import { ObjectStore, objectKey, type Obj } from './kube-apiserver/store.js';
import { ObjectOps, grOf, present, type PropagationPolicy } from './kube-apiserver/objects.js';
import { parseFieldSelector, parseLabelSelector, SelectorError } from './kube-apiserver/selectors.js';
import { authorize, serviceAccountUser, type RequestAttributes, type UserInfo } from './kube-apiserver/rbac.js';
import { WatchConn, type WatchInfo } from './kube-apiserver/watch.js';
import { apiGroupDoc, apiGroupList, apiResourceList, apiVersions, versionInfo } from './kube-apiserver/discovery.js';
import { makeClientCert, makeDoubleTls, type DoubleTls } from './kube-apiserver/tls.js';
import { clone } from './kube-apiserver/patch.js';

export type { UserInfo } from './kube-apiserver/rbac.js';
export type { KindDef } from './kube-apiserver/registry.js';
export type { WatchInfo } from './kube-apiserver/watch.js';
export { serviceAccountUser } from './kube-apiserver/rbac.js';
export { DEFAULT_KINDS } from './kube-apiserver/registry.js';

/** The audience of tokens the API server itself accepts (what TokenReview without a function checks). */
export const API_SERVER_AUDIENCE = 'https://kubernetes.default.svc.cluster.local';
const MAX_BODY_BYTES = 3 * 1024 * 1024;

export interface TokenReviewResult {
  authenticated: boolean;
  user?: UserInfo;
  audiences?: string[];
  error?: string;
}

export interface KubeApiServerOptions {
  /** Loopback address to listen on (default 127.0.0.1); port 0 unless given. */
  host?: string;
  port?: number;
  /** Enforce RBAC from the Roles/ClusterRoles/bindings in the store (default false: every authenticated user may do anything). */
  rbac?: boolean;
  /** Custom resources answer 404 (and are absent from discovery) until their CRD `<resource>.<group>` exists (default false). */
  requireCrds?: boolean;
  /** Answers TokenReviews; default: tokens added with addToken, audience API_SERVER_AUDIENCE unless the token lists its own. */
  tokenReview?: (token: string, audiences: string[]) => TokenReviewResult | Promise<TokenReviewResult>;
  /** Versions kept for watch resumption before the oldest are compacted away (default 10000). */
  historyLimit?: number;
  /** Send a BOOKMARK on every watch that allows them this often (default: only when bookmark() is called). */
  bookmarkIntervalMs?: number;
  /** Creating a namespaced object in a namespace that does not exist is 404, as the NamespaceLifecycle admission does (default true). */
  namespaceLifecycle?: boolean;
  /**
   * How long dependents outlive their deleted owner before garbage collection removes them (default 0: at once). A
   * cluster's garbage collector (kube-controller-manager) works from its own watches, so owners' controllers may see
   * the deletion, and clean up themselves, before it does.
   */
  garbageCollectionDelayMs?: number;
  /** Create the namespaces `default` and `kube-system` at start (default true). */
  seedNamespaces?: boolean;
  /** More resource types to serve. */
  kinds?: KindDef[];
}

export interface FailNextOptions {
  /** HTTP method (GET, POST, ...); any when unset. */
  method?: string;
  /** Kubernetes verb (get, list, watch, create, update, patch, delete); any when unset. */
  verb?: string;
  /** A path prefix (e.g. "/api/v1/pods") or a RegExp tested against path + query; any when unset. */
  path?: string | RegExp;
  status: number;
  /** How many matching requests fail (default 1). */
  count?: number;
  reason?: string;
  message?: string;
  /** Sets Retry-After (seconds) and details.retryAfterSeconds. */
  retryAfterSeconds?: number;
}

export interface RequestLogEntry {
  verb: string;
  group: string;
  resource: string;
  subresource: string | undefined;
  namespace: string | undefined;
  name: string | undefined;
  /** Username, '' for an unauthenticated request. */
  user: string;
  method: string;
  path: string;
  query: string;
  /** HTTP status answered (set when the answer starts). */
  code?: number;
  /** When the request arrived (Date.now()). */
  at: number;
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
}

interface Route {
  group: string;
  version: string;
  resource: string;
  namespace: string | undefined;
  name: string | undefined;
  subresource: string | undefined;
  /** The path after `.../proxy/` of a proxy subresource request. */
  proxyPath?: string;
}

type TokenEntry = UserInfo & { audiences?: string[] };

export class KubeApiServer {
  readonly host: string;
  port = 0;
  readonly tls: DoubleTls;
  /** A token for a `system:masters` user (allowed everything, also with RBAC on). */
  readonly adminToken = randomBytes(16).toString('hex');
  /** Every request, in arrival order. */
  readonly requests: RequestLogEntry[] = [];
  rbacEnforced: boolean;
  requireCrds: boolean;
  tokenReview: KubeApiServerOptions['tokenReview'];

  readonly #server: https.Server;
  readonly #kinds: KindRegistry;
  readonly #store: ObjectStore;
  readonly #ops: ObjectOps;
  readonly #tokens = new Map<string, TokenEntry>();
  readonly #watches = new Set<WatchConn>();
  readonly #failures: (FailNextOptions & { left: number })[] = [];
  #bookmarkTimer: NodeJS.Timeout | undefined;

  private constructor(opts: KubeApiServerOptions) {
    this.host = opts.host ?? '127.0.0.1';
    this.rbacEnforced = opts.rbac ?? false;
    this.requireCrds = opts.requireCrds ?? false;
    this.tokenReview = opts.tokenReview;
    this.#kinds = new KindRegistry([...DEFAULT_KINDS, ...(opts.kinds ?? [])]);
    this.#store = new ObjectStore(opts.historyLimit ?? 10_000);
    this.#ops = new ObjectOps(this.#store, this.#kinds, { namespaceLifecycle: opts.namespaceLifecycle ?? true, ...(opts.garbageCollectionDelayMs ? { garbageCollectionDelayMs: opts.garbageCollectionDelayMs } : {}) });
    this.tls = makeDoubleTls(this.host);
    this.#tokens.set(this.adminToken, { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] });
    this.#server = https.createServer({ cert: this.tls.cert, key: this.tls.key, ca: this.tls.caCert, requestCert: true, rejectUnauthorized: false }, (req, res) => {
      void this.#handle(req, res);
    });
    this.#store.subscribe((e) => {
      for (const w of this.#watches) if (grOf(w.kind) === e.gr) w.deliver(e);
      if (e.type === 'DELETED' && e.gr === 'apiextensions.k8s.io/customresourcedefinitions' && this.requireCrds) setImmediate(() => this.#crdGone(String(e.object['metadata'].name)));
    });
    if (opts.seedNamespaces ?? true) for (const ns of ['default', 'kube-system']) this.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    for (const o of BOOTSTRAP_RBAC) this.put(o);
    if (opts.bookmarkIntervalMs) {
      this.#bookmarkTimer = setInterval(() => this.bookmark(), opts.bookmarkIntervalMs);
      this.#bookmarkTimer.unref();
    }
  }

  static async start(opts: KubeApiServerOptions = {}): Promise<KubeApiServer> {
    const s = new KubeApiServer(opts);
    await new Promise<void>((resolve, reject) => {
      s.#server.once('error', reject);
      s.#server.listen(opts.port ?? 0, s.host, () => resolve());
    });
    s.port = (s.#server.address() as { port: number }).port;
    return s;
  }

  get url(): string {
    return `https://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
  }

  get caPem(): string {
    return this.tls.caCert;
  }

  /** The current (global) resourceVersion. */
  get resourceVersion(): string {
    return String(this.#store.resourceVersion);
  }

  // ---------- identities ----------

  /** Bearer token → user. `audiences` (default [API_SERVER_AUDIENCE]) matters for TokenReview without a function. */
  addToken(token: string, user: UserInfo & { audiences?: string[] }): void {
    this.#tokens.set(token, user);
  }

  /** A token that authenticates as the ServiceAccount ns/name (with its groups); returns the token. */
  addServiceAccountToken(namespace: string, name: string, token = randomBytes(16).toString('hex'), audiences?: string[]): string {
    this.#tokens.set(token, { ...serviceAccountUser(namespace, name), ...(audiences ? { audiences } : {}) });
    return token;
  }

  /** A client certificate (PEM) the double authenticates as user/groups (CN/O), for kubeconfigs with client-certificate-data. */
  clientCertificate(user: string, groups: string[] = []): { cert: string; key: string } {
    return makeClientCert(this.tls, user, groups);
  }

  /** A kubeconfig (YAML) for this server with a token (default: the admin token) or a client certificate. */
  kubeconfig(opts: { token?: string; clientCert?: { cert: string; key: string }; context?: string; namespace?: string; user?: string } = {}): string {
    const context = opts.context ?? 'double';
    const user = opts.user ?? 'double-user';
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    const userBody = opts.clientCert
      ? `    client-certificate-data: ${b64(opts.clientCert.cert)}\n    client-key-data: ${b64(opts.clientCert.key)}\n`
      : `    token: ${opts.token ?? this.adminToken}\n`;
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: double',
      '  cluster:',
      `    server: ${this.url}`,
      `    certificate-authority-data: ${b64(this.tls.caCert)}`,
      'users:',
      `- name: ${user}`,
      '  user:',
      userBody.trimEnd(),
      'contexts:',
      `- name: ${context}`,
      '  context:',
      '    cluster: double',
      `    user: ${user}`,
      ...(opts.namespace ? [`    namespace: ${opts.namespace}`] : []),
      `current-context: ${context}`,
      '',
    ].join('\n');
  }

  /** Writes kubeconfig(opts) to `file` (mode 0600) and returns the path. */
  writeKubeconfig(file: string, opts: Parameters<KubeApiServer['kubeconfig']>[0] = {}): string {
    writeFileSync(file, this.kubeconfig(opts), { mode: 0o600 });
    return file;
  }

  // ---------- direct object access (no authentication, authorization or admission) ----------

  /** Creates or replaces an object as given (status included), bumping the resourceVersion and notifying watches. */
  put(obj: Obj): Obj {
    const k = this.#kindOf(obj);
    const meta = obj['metadata'] ?? {};
    const ns = k.namespaced ? (meta.namespace ?? 'default') : undefined;
    const existing = this.#store.get(grOf(k), objectKey(ns, meta.name));
    if (!existing) return present(k, k.versions[0]!, this.#ops.create(k, ns, obj, { admission: false }));
    const next = clone(obj);
    delete next['apiVersion'];
    delete next['kind'];
    next['metadata'] = { ...clone(meta), uid: existing['metadata'].uid, creationTimestamp: existing['metadata'].creationTimestamp, ...(ns ? { namespace: ns } : {}) };
    delete next['metadata'].resourceVersion;
    if (existing['metadata'].generation !== undefined) {
      const spec = (o: Obj): string => JSON.stringify({ ...o, metadata: undefined, status: undefined, apiVersion: undefined, kind: undefined });
      next['metadata'].generation = existing['metadata'].generation + (spec(existing) !== spec(next) ? 1 : 0);
    }
    return present(k, k.versions[0]!, this.#store.write(grOf(k), next));
  }

  get(ref: ObjectRef): Obj | undefined {
    const k = this.#kindOf(ref);
    const o = this.#store.get(grOf(k), objectKey(k.namespaced ? (ref.namespace ?? 'default') : undefined, ref.name));
    return o ? present(k, splitApiVersion(ref.apiVersion).version, o) : undefined;
  }

  /** Deletes an object (dependents are garbage-collected after); returns the deleted object, if it existed. */
  delete(ref: ObjectRef, propagation: PropagationPolicy = 'Background'): Obj | undefined {
    const k = this.#kindOf(ref);
    const gone = this.#ops.removeNow(k, k.namespaced ? (ref.namespace ?? 'default') : undefined, ref.name, propagation);
    return gone ? present(k, splitApiVersion(ref.apiVersion).version, gone) : undefined;
  }

  list(apiVersion: string, kind: string, namespace?: string): Obj[] {
    const k = this.#kindOf({ apiVersion, kind });
    return this.#store
      .list(grOf(k))
      .filter((o) => namespace === undefined || o['metadata'].namespace === namespace)
      .map((o) => present(k, splitApiVersion(apiVersion).version, o));
  }

  /** Loads RBAC objects (e.g. parsed from daemonset.yaml); other kinds in the list are ignored. */
  loadRbac(objects: readonly Obj[]): void {
    for (const o of objects) if (o && o['apiVersion'] === 'rbac.authorization.k8s.io/v1') this.put(o);
  }

  /** A CustomResourceDefinition object for "<resource>.<group>" serving the double's versions of that kind. */
  crdObject(name: string): Obj {
    const k = this.#kinds.all().find((x) => `${x.resource}.${x.group}` === name);
    if (!k) throw new Error(`the double knows no kind whose CRD is ${name}`);
    return {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name },
      spec: {
        group: k.group,
        names: { plural: k.resource, singular: k.singular, kind: k.kind, listKind: `${k.kind}List`, ...(k.shortNames ? { shortNames: k.shortNames } : {}) },
        scope: k.namespaced ? 'Namespaced' : 'Cluster',
        versions: k.versions.map((v, i) => ({
          name: v,
          served: true,
          storage: i === 0,
          schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
          ...(k.status ? { subresources: { status: {} } } : {}),
        })),
      },
    };
  }

  /** Installs the CRDs (default: every custom kind the double knows). */
  installCrds(names?: string[]): void {
    const all = this.#kinds.all().filter((k) => k.crd).map((k) => `${k.resource}.${k.group}`);
    for (const n of names ?? all) this.put(this.crdObject(n));
  }

  // ---------- test controls ----------

  /** Compacts history: watches and Exact lists from any older resourceVersion now get 410. */
  compact(): void {
    this.#store.compact();
  }

  /** Ends every open watch stream: cleanly (like a server timeout), or by resetting the connection. */
  dropWatches(opts: { abrupt?: boolean } = {}): number {
    const n = this.#watches.size;
    for (const w of [...this.#watches]) w.end(opts.abrupt ?? false);
    return n;
  }

  /** Sends a BOOKMARK at the current resourceVersion on every watch that allows them. */
  bookmark(): void {
    for (const w of this.#watches) w.bookmark(this.#store.resourceVersion);
  }

  /** Makes the next `count` matching requests fail with `status` (a real Status body; 429/503 with Retry-After when given). */
  failNext(f: FailNextOptions): void {
    this.#failures.push({ ...f, left: f.count ?? 1 });
  }

  openWatches(): WatchInfo[] {
    return [...this.#watches].map((w) => ({ ...w.info }));
  }

  async close(): Promise<void> {
    if (this.#bookmarkTimer) clearInterval(this.#bookmarkTimer);
    this.dropWatches({ abrupt: true });
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  // ---------- HTTP ----------

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://double');
    const method = (req.method ?? 'GET').toUpperCase();
    const entry: RequestLogEntry = { verb: '', group: '', resource: '', subresource: undefined, namespace: undefined, name: undefined, user: '', method, path: url.pathname, query: url.search, at: Date.now() };
    this.requests.push(entry);
    const origWriteHead = res.writeHead.bind(res);
    res.writeHead = ((code: number, ...rest: unknown[]) => {
      entry.code = code;
      return (origWriteHead as (...a: unknown[]) => ServerResponse)(code, ...rest);
    }) as typeof res.writeHead;
    try {
      const body = await readBody(req);
      if (['/healthz', '/livez', '/readyz'].includes(url.pathname)) return sendText(res, 200, 'ok');
      const user = this.#authenticate(req);
      if (!user && url.pathname !== '/version') throw errors.unauthorized();
      entry.user = user?.username ?? '';
      const route = parseResourcePath(url.pathname);
      if (!route) {
        entry.verb = method.toLowerCase();
        this.#checkFailure(entry, url);
        if (this.rbacEnforced && user && !authorize(this.#rbacObjects(), user, { verb: entry.verb, group: '', resource: '', path: url.pathname }).allowed) {
          throw new ApiError(403, 'Forbidden', `forbidden: User "${user.username}" cannot ${entry.verb} path "${url.pathname}"`, {});
        }
        return this.#nonResource(res, url.pathname, user);
      }
      const isWatch = route.legacyWatch || (method === 'GET' && (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1'));
      entry.verb = verbOf(method, route, isWatch);
      Object.assign(entry, { group: route.group, resource: route.resource, subresource: route.subresource, namespace: route.namespace, name: route.name });
      this.#checkFailure(entry, url);
      const k = this.#kinds.byResource(route.group, route.version, route.resource);
      if (!k || !this.#served(k, route.version)) throw errors.resourceNotFound();
      if (route.namespace !== undefined && !k.namespaced) throw errors.resourceNotFound();
      if (this.rbacEnforced && user) {
        const attrs: RequestAttributes = { verb: entry.verb, group: route.group, resource: route.resource, ...opt('subresource', route.subresource), ...opt('namespace', route.namespace), ...opt('name', route.name) };
        if (!authorize(this.#rbacObjects(), user, attrs).allowed) throw forbidden({ user: user.username, ...attrs });
      }
      await this.#resource(req, res, url, method, route, k, isWatch, body, user!);
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof ApiError) {
        const headers: Record<string, string> = {};
        if (err.details?.retryAfterSeconds !== undefined) headers['retry-after'] = String(err.details.retryAfterSeconds);
        return sendJson(res, err.code, err.toStatus(), headers);
      }
      sendJson(res, 500, statusBody(500, 'InternalError', `Internal error occurred: ${err instanceof Error ? err.message : String(err)}`));
    }
  }

  #checkFailure(entry: RequestLogEntry, url: URL): void {
    const i = this.#failures.findIndex(
      (f) =>
        f.left > 0 &&
        (f.method === undefined || f.method.toUpperCase() === entry.method) &&
        (f.verb === undefined || f.verb === entry.verb) &&
        (f.path === undefined || (typeof f.path === 'string' ? url.pathname.startsWith(f.path) : f.path.test(url.pathname + url.search))),
    );
    if (i < 0) return;
    const f = this.#failures[i]!;
    if (--f.left === 0) this.#failures.splice(i, 1);
    const reason = f.reason ?? REASONS[f.status] ?? 'InternalError';
    throw new ApiError(f.status, reason, f.message ?? `${reason} (injected by the test)`, f.retryAfterSeconds !== undefined ? { retryAfterSeconds: f.retryAfterSeconds } : undefined);
  }

  #authenticate(req: IncomingMessage): UserInfo | undefined {
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ')) {
      const t = this.#tokens.get(auth.slice(7).trim());
      if (!t) return undefined;
      const { audiences: _a, ...user } = t;
      return user;
    }
    const socket = req.socket as TLSSocket;
    if (socket.authorized) {
      const cert = socket.getPeerCertificate();
      const cn = cert?.subject?.CN;
      if (cn) {
        const o = cert.subject.O;
        const groups = o === undefined ? [] : Array.isArray(o) ? o : [o];
        return { username: String(cn), groups: [...groups.map(String), 'system:authenticated'] };
      }
    }
    return undefined;
  }

  #served(k: KindDef, version: string): boolean {
    if (!k.crd || !this.requireCrds) return true;
    const crd = this.#store.get('apiextensions.k8s.io/customresourcedefinitions', objectKey(undefined, `${k.resource}.${k.group}`));
    if (!crd) return false;
    const versions = crd['spec']?.versions as { name: string; served?: boolean }[] | undefined;
    return !versions || versions.some((v) => v.name === version && v.served !== false);
  }

  #rbacObjects() {
    const list = (resource: string): Obj[] => this.#store.list(`rbac.authorization.k8s.io/${resource}`) as Obj[];
    return {
      clusterRoles: () => list('clusterroles') as never[],
      roles: (ns: string) => list('roles').filter((r) => r['metadata'].namespace === ns) as never[],
      clusterRoleBindings: () => list('clusterrolebindings') as never[],
      roleBindings: (ns: string) => list('rolebindings').filter((r) => r['metadata'].namespace === ns) as never[],
    };
  }

  #nonResource(res: ServerResponse, path: string, user: UserInfo | undefined): void {
    const served = (k: KindDef, v: string): boolean => this.#served(k, v);
    const kinds = this.#kinds.all();
    if (path === '/version') return sendJson(res, 200, versionInfo());
    if (!user) throw errors.unauthorized();
    if (path === '/api') return sendJson(res, 200, apiVersions(`${this.host}:${this.port}`));
    if (path === '/apis') return sendJson(res, 200, apiGroupList(kinds, served));
    const segs = path.split('/').filter((s) => s !== '');
    let doc: object | undefined;
    if (segs[0] === 'api' && segs.length === 2) doc = apiResourceList(kinds, '', segs[1]!, served);
    else if (segs[0] === 'apis' && segs.length === 2) doc = apiGroupDoc(kinds, segs[1]!, served);
    else if (segs[0] === 'apis' && segs.length === 3) doc = apiResourceList(kinds, segs[1]!, segs[2]!, served);
    if (!doc) throw errors.resourceNotFound();
    sendJson(res, 200, doc);
  }

  async #resource(req: IncomingMessage, res: ServerResponse, url: URL, method: string, route: Route, k: KindDef, isWatch: boolean, body: Buffer, user: UserInfo): Promise<void> {
    const q = url.searchParams;
    if (k.virtual) {
      if (method !== 'POST' || route.name !== undefined) throw errors.methodNotAllowed(method);
      return this.#review(res, k, parseJson(body), user);
    }
    const v = route.version;
    if (isWatch && route.name !== undefined && method === 'GET') {
      // Watching one object (the legacy /watch/.../name form): a watch with a metadata.name field selector.
      const named = new URLSearchParams(q);
      named.set('fieldSelector', [q.get('fieldSelector'), `metadata.name=${route.name}`].filter(Boolean).join(','));
      return this.#watch(res, k, { ...route, name: undefined }, named, user);
    }
    if (route.name === undefined) {
      if (method === 'GET' && isWatch) return this.#watch(res, k, route, q, user);
      if (method === 'GET') return sendJson(res, 200, this.#list(k, route, q));
      if (method === 'POST') {
        requireJson(req);
        const created = this.#ops.create(k, route.namespace, parseJson(body), { admission: true });
        return sendJson(res, 201, present(k, v, created));
      }
      if (method === 'DELETE') return sendJson(res, 200, this.#deleteCollection(k, route, q));
      throw errors.methodNotAllowed(method);
    }
    if (route.subresource === 'proxy' && k.kind === 'Pod' && k.group === '') return this.#proxyToPod(req, res, url, method, route, body);
    if (route.subresource !== undefined && route.subresource !== 'status') throw errors.resourceNotFound();
    if (route.subresource === 'status' && !k.status) throw errors.resourceNotFound();
    switch (method) {
      case 'GET':
        return sendJson(res, 200, present(k, v, this.#ops.get(k, route.namespace, route.name)));
      case 'PUT': {
        requireJson(req);
        const o = parseJson(body);
        checkTypeMeta(o, k, v);
        return sendJson(res, 200, present(k, v, this.#ops.replace(k, route.namespace, route.name, o, route.subresource)));
      }
      case 'PATCH': {
        const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
        return sendJson(res, 200, present(k, v, this.#ops.patch(k, v, route.namespace, route.name, ct, parseJson(body), route.subresource)));
      }
      case 'DELETE': {
        if (route.subresource !== undefined) throw errors.methodNotAllowed(method);
        const opts = body.length > 0 ? parseJson(body) : {};
        const propagation = (q.get('propagationPolicy') ?? opts['propagationPolicy'] ?? undefined) as PropagationPolicy | undefined;
        const out = this.#ops.delete(k, route.namespace, route.name, { ...(propagation ? { propagation } : {}), ...(opts['preconditions'] ? { preconditions: opts['preconditions'] } : {}) });
        return sendJson(res, 200, out['kind'] === 'Status' ? out : present(k, v, out));
      }
      default:
        throw errors.methodNotAllowed(method);
    }
  }

  /**
   * `pods/NAME:PORT/proxy/PATH` as the API server's pod proxy does it: an HTTP request to the pod's status.podIP on
   * PORT, the answer passed back as it came; 503 with a Status when nothing answers there.
   */
  async #proxyToPod(req: IncomingMessage, res: ServerResponse, url: URL, method: string, route: Route, body: Buffer): Promise<void> {
    const [podName, port = '80'] = (route.name ?? '').split(':');
    const pod = this.#ops.get(this.#kinds.byResource('', 'v1', 'pods')!, route.namespace, podName!);
    const podIP = (pod['status'] as { podIP?: string } | undefined)?.podIP;
    if (!podIP) throw new ApiError(503, 'ServiceUnavailable', `pod ${podName} has no IP address yet`, {});
    const target = { host: podIP, port: Number(port), path: `/${route.proxyPath ?? ''}${url.search}` };
    await new Promise<void>((resolve) => {
      const out = http.request({ ...target, method, headers: { ...(req.headers['content-type'] ? { 'content-type': req.headers['content-type'] } : {}) } }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, { ...(answer.headers['content-type'] ? { 'content-type': answer.headers['content-type'] } : {}) });
        answer.pipe(res);
        answer.on('end', resolve);
        answer.on('error', () => resolve());
      });
      out.setTimeout(10_000, () => out.destroy(new Error('timeout')));
      out.on('error', (err) => {
        if (!res.headersSent) sendJson(res, 503, statusBody(503, 'ServiceUnavailable', `error trying to reach service: dial tcp ${podIP}:${port}: ${err.message}`));
        else res.destroy();
        resolve();
      });
      out.end(body.length > 0 ? body : undefined);
    });
  }

  #selectors(q: URLSearchParams): { labels: (o: Obj) => boolean; fields: (o: Obj) => boolean } {
    try {
      return { labels: parseLabelSelector(q.get('labelSelector')), fields: parseFieldSelector(q.get('fieldSelector')) };
    } catch (err) {
      if (err instanceof SelectorError) throw errors.badRequest(err.message);
      throw err;
    }
  }

  #list(k: KindDef, route: Route, q: URLSearchParams): Obj {
    const sel = this.#selectors(q);
    const current = this.#store.resourceVersion;
    const rvParam = q.get('resourceVersion') ?? '';
    const match = q.get('resourceVersionMatch') ?? '';
    const limit = Number(q.get('limit') ?? '0');
    const cont = q.get('continue') ?? '';
    let at = current;
    let startAfter = '';
    if (cont) {
      const token = decodeContinue(cont);
      if (!token) throw errors.badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
      if (token.rv < this.#store.compactedAt) throw errors.expiredContinue(encodeContinue({ rv: current, start: token.start }));
      at = token.rv;
      startAfter = token.start;
    } else if (match === 'Exact') {
      const n = parseRv(rvParam);
      if (n < this.#store.compactedAt) throw errors.expiredList(rvParam);
      if (n > current) throw errors.tooLargeResourceVersion(rvParam, current);
      at = n;
    } else if (rvParam !== '' && rvParam !== '0') {
      const n = parseRv(rvParam);
      if (n > current) throw errors.tooLargeResourceVersion(rvParam, current);
    }
    const all = (at === current ? this.#store.list(grOf(k)) : this.#store.listAt(grOf(k), at)).filter(
      (o) => (route.namespace === undefined || o['metadata'].namespace === route.namespace) && sel.labels(o) && sel.fields(o),
    );
    const after = startAfter ? all.filter((o) => objectKey(o['metadata'].namespace, o['metadata'].name) > startAfter) : all;
    const page = limit > 0 ? after.slice(0, limit) : after;
    const more = after.length - page.length;
    const metadata: Obj = { resourceVersion: String(at) };
    if (more > 0) {
      const last = page[page.length - 1]!;
      metadata['continue'] = encodeContinue({ rv: at, start: objectKey(last['metadata'].namespace, last['metadata'].name) });
      if (!q.get('labelSelector') && !q.get('fieldSelector')) metadata['remainingItemCount'] = more;
    }
    const apiVersion = apiVersionFor(k.group, route.version);
    // The API server leaves apiVersion and kind out of the items of built-in lists; custom resources keep them.
    const items = page.map((o) => (k.crd ? present(k, route.version, o) : (({ apiVersion: _a, kind: _k, ...rest }) => rest)(o)));
    return { kind: `${k.kind}List`, apiVersion, metadata, items };
  }

  #deleteCollection(k: KindDef, route: Route, q: URLSearchParams): Obj {
    const sel = this.#selectors(q);
    const doomed = this.#store.list(grOf(k)).filter((o) => (route.namespace === undefined || o['metadata'].namespace === route.namespace) && sel.labels(o) && sel.fields(o));
    const items = doomed.map((o) => this.#ops.removeNow(k, o['metadata'].namespace, o['metadata'].name, 'Background')).filter((o) => o !== undefined);
    return { kind: `${k.kind}List`, apiVersion: apiVersionFor(k.group, route.version), metadata: { resourceVersion: String(this.#store.resourceVersion) }, items };
  }

  #watch(res: ServerResponse, k: KindDef, route: Route, q: URLSearchParams, user: UserInfo): void {
    const sel = this.#selectors(q);
    const rvParam = q.get('resourceVersion') ?? '';
    const bookmarks = q.get('allowWatchBookmarks') === 'true' || q.get('allowWatchBookmarks') === '1';
    const initialEvents = q.get('sendInitialEvents') === 'true';
    const timeout = q.get('timeoutSeconds') !== null ? Number(q.get('timeoutSeconds')) : undefined;
    if (initialEvents && (q.get('resourceVersionMatch') !== 'NotOlderThan' || !bookmarks)) {
      throw errors.invalid(k, '', 'resourceVersionMatch', 'Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan and allowWatchBookmarks');
    }
    const fromRv = rvParam === '' || rvParam === '0' ? undefined : parseRv(rvParam);
    const w = new WatchConn(k, route.version, res, { namespace: route.namespace, ...sel }, { namespace: route.namespace, user: user.username, resourceVersion: rvParam, bookmarks });
    w.start(timeout, () => this.#watches.delete(w));
    if (w.ended) return;
    if (fromRv !== undefined && !initialEvents) {
      const events = this.#store.eventsSince(grOf(k), fromRv);
      if (!events) return w.error(errors.expiredWatch(rvParam, this.#store.resourceVersion));
      for (const e of events) w.deliver(e);
    } else {
      for (const o of this.#store.list(grOf(k))) if (w.matches(o)) w.send('ADDED', o);
      if (initialEvents) w.bookmark(this.#store.resourceVersion, { 'k8s.io/initial-events-end': 'true' });
    }
    this.#watches.add(w);
  }

  async #review(res: ServerResponse, k: KindDef, body: Obj, user: UserInfo): Promise<void> {
    const spec = (body['spec'] ?? {}) as Obj;
    const typeMeta = { apiVersion: apiVersionFor(k.group, 'v1'), kind: k.kind, metadata: { creationTimestamp: null } };
    if (k.kind === 'TokenReview') {
      const token = String(spec['token'] ?? '');
      const audiences = (spec['audiences'] ?? []) as string[];
      const status = this.tokenReview ? await this.tokenReview(token, audiences) : this.#defaultTokenReview(token, audiences);
      return sendJson(res, 201, { ...typeMeta, spec, status: { ...status, ...(status.authenticated ? {} : { user: {} }) } });
    }
    let who: UserInfo = user;
    if (k.kind === 'SubjectAccessReview') who = { username: String(spec['user'] ?? ''), groups: (spec['groups'] ?? []) as string[] };
    const ra = spec['resourceAttributes'] as Obj | undefined;
    const nra = spec['nonResourceAttributes'] as Obj | undefined;
    const attrs: RequestAttributes = ra
      ? { verb: String(ra['verb'] ?? ''), group: String(ra['group'] ?? ''), resource: String(ra['resource'] ?? ''), ...opt('subresource', ra['subresource'] || undefined), ...opt('namespace', ra['namespace'] || undefined), ...opt('name', ra['name'] || undefined) }
      : { verb: String(nra?.['verb'] ?? ''), group: '', resource: '', path: String(nra?.['path'] ?? '') };
    const decision = this.rbacEnforced ? authorize(this.#rbacObjects(), who, attrs) : { allowed: true, reason: 'the API server double does not enforce RBAC' };
    return sendJson(res, 201, { ...typeMeta, spec, status: { allowed: decision.allowed, ...(decision.reason ? { reason: decision.reason } : {}) } });
  }

  #defaultTokenReview(token: string, audiences: string[]): TokenReviewResult {
    const t = this.#tokens.get(token);
    if (!t) return { authenticated: false, error: '[invalid bearer token, token lookup failed]' };
    const has = t.audiences ?? [API_SERVER_AUDIENCE];
    const wanted = audiences.length > 0 ? audiences : [API_SERVER_AUDIENCE];
    const common = wanted.filter((a) => has.includes(a));
    if (common.length === 0) return { authenticated: false, error: `[invalid bearer token, token audiences ${JSON.stringify(has)} is invalid for the target audiences ${JSON.stringify(wanted)}]` };
    const { audiences: _a, ...u } = t;
    return { authenticated: true, user: u, audiences: common };
  }

  /** As the API server does when a CRD is deleted: its objects go (watchers see DELETED), then its watches end. */
  #crdGone(name: string): void {
    const k = this.#kinds.all().find((x) => x.crd && `${x.resource}.${x.group}` === name);
    if (!k || this.#served(k, k.versions[0]!)) return;
    for (const o of this.#store.list(grOf(k))) this.#ops.removeNow(k, o['metadata'].namespace, o['metadata'].name, 'Background');
    for (const w of [...this.#watches]) if (w.kind === k) w.end();
  }

  #kindOf(ref: { apiVersion?: unknown; kind?: unknown }): KindDef {
    const k = this.#kinds.byKind(String(ref.apiVersion ?? ''), String(ref.kind ?? ''));
    if (!k || k.virtual) throw new Error(`the Kubernetes API double does not store ${String(ref.apiVersion)} ${String(ref.kind)}`);
    return k;
  }
}

/** The API server's bootstrap roles every authenticated user has: discovery and reviews of its own access. */
const BOOTSTRAP_RBAC: readonly Obj[] = [
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'system:basic-user' },
    rules: [{ apiGroups: ['authorization.k8s.io'], resources: ['selfsubjectaccessreviews', 'selfsubjectrulesreviews'], verbs: ['create'] }],
  },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'system:discovery' },
    rules: [{ nonResourceURLs: ['/api', '/api/*', '/apis', '/apis/*', '/healthz', '/livez', '/readyz', '/version', '/version/'], verbs: ['get'] }],
  },
  ...['system:basic-user', 'system:discovery'].map((name) => ({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:authenticated' }],
  })),
];

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

function opt<K extends string, V>(key: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [key]: v }) as { [P in K]?: V };
}

function parseResourcePath(pathname: string): (Route & { legacyWatch: boolean }) | undefined {
  const segs = pathname.split('/').filter((s) => s !== '').map(decodeURIComponent);
  let group: string;
  let version: string;
  let rest: string[];
  if (segs[0] === 'api' && segs.length >= 3) {
    group = '';
    version = segs[1]!;
    rest = segs.slice(2);
  } else if (segs[0] === 'apis' && segs.length >= 4) {
    group = segs[1]!;
    version = segs[2]!;
    rest = segs.slice(3);
  } else {
    return undefined;
  }
  let legacyWatch = false;
  if (rest[0] === 'watch') {
    legacyWatch = true;
    rest = rest.slice(1);
  }
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3 && !(group === '' && rest.length === 3 && (rest[2] === 'status' || rest[2] === 'finalize'))) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, subresource, ...extra] = rest;
  if (!resource || (extra.length > 0 && subresource !== 'proxy')) return undefined;
  return { group, version, resource, namespace, name, subresource, legacyWatch, ...(subresource === 'proxy' ? { proxyPath: extra.join('/') } : {}) };
}

function verbOf(method: string, route: Route, isWatch: boolean): string {
  switch (method) {
    case 'GET':
      return isWatch ? 'watch' : route.name === undefined ? 'list' : 'get';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return route.name === undefined ? 'deletecollection' : 'delete';
    default:
      return method.toLowerCase();
  }
}

function parseRv(rv: string): number {
  const n = Number(rv);
  if (!/^\d+$/.test(rv) || !Number.isSafeInteger(n)) throw errors.badRequest(`invalid resource version: ${rv}`);
  return n;
}

function encodeContinue(t: { rv: number; start: string }): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv: t.rv, start: t.start })).toString('base64');
}

function decodeContinue(s: string): { rv: number; start: string } | undefined {
  try {
    const t = JSON.parse(Buffer.from(s, 'base64').toString('utf8')) as { v?: string; rv?: number; start?: string };
    return t.v === 'meta.k8s.io/v1' && typeof t.rv === 'number' && typeof t.start === 'string' ? { rv: t.rv, start: t.start } : undefined;
  } catch {
    return undefined;
  }
}

function requireJson(req: IncomingMessage): void {
  const ct = (req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim();
  if (ct !== 'application/json') throw errors.unsupportedMediaType(ct, ['application/json', 'application/yaml', 'application/vnd.kubernetes.protobuf']);
}

function checkTypeMeta(o: Obj, k: KindDef, version: string): void {
  if (o['kind'] !== undefined && o['kind'] !== k.kind) throw errors.badRequest(`the kind in the body (${String(o['kind'])}) does not match the kind on the URL (${k.kind})`);
  if (o['apiVersion'] !== undefined && o['apiVersion'] !== apiVersionFor(k.group, version)) {
    throw errors.badRequest(`the API version in the data (${String(o['apiVersion'])}) does not match the expected API version (${apiVersionFor(k.group, version)})`);
  }
}

function parseJson(body: Buffer): Obj {
  try {
    const v = JSON.parse(body.toString('utf8')) as unknown;
    if (v === null || typeof v !== 'object') throw new Error('not an object');
    return v as Obj;
  } catch (err) {
    throw errors.badRequest(`the body of the request is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(errors.tooLarge());
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendText(res: ServerResponse, code: number, text: string): void {
  res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Starts a double (see KubeApiServerOptions); close it in after(). */
export function startKubeApiServer(opts: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  return KubeApiServer.start(opts);
}
