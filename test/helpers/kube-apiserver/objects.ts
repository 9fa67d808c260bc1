/**
 * What the API server does to an object on each write, over the store: names (generateName), uid,
 * creationTimestamp, generation, resourceVersion preconditions (409 Conflict), the status subresource, no-op
 * updates (no new version), namespace existence, and deletion with owner-reference garbage collection
 * (background: dependents whose owners are all gone are deleted after the owner).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { ApiError, errors, successStatus } from './status.js';
import { apiVersionFor, groupResource, type KindDef, type KindRegistry } from './registry.js';
import { objectKey, type Obj, type ObjectStore } from './store.js';
import { clone, jsonPatch, mergePatch, PatchError } from './patch.js';

const NAME_CHARS = 'bcdfghjklmnpqrstvwxz2456789';
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

export type PropagationPolicy = 'Background' | 'Foreground' | 'Orphan';

export function grOf(k: Pick<KindDef, 'group' | 'resource'>): string {
  return `${k.group}/${k.resource}`;
}

/** The object as the API returns it: apiVersion of the requested version and kind first. */
export function present(k: KindDef, version: string, o: Obj): Obj {
  const { apiVersion: _a, kind: _k, ...rest } = o;
  return { kind: k.kind, apiVersion: apiVersionFor(k.group, version), ...rest };
}

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Everything but metadata and status: what bumps metadata.generation. */
function specPart(o: Obj): string {
  const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = o;
  return JSON.stringify(rest);
}

function sameIgnoringVersion(a: Obj, b: Obj): boolean {
  const strip = (o: Obj): string => {
    const c = clone(o);
    delete c['metadata']?.resourceVersion;
    delete c['apiVersion'];
    delete c['kind'];
    return JSON.stringify(sortKeys(c));
  };
  return strip(a) === strip(b);
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Obj)[k])]));
  return v;
}

export class ObjectOps {
  constructor(
    readonly store: ObjectStore,
    readonly kinds: KindRegistry,
    readonly opts: { namespaceLifecycle: boolean; garbageCollectionDelayMs?: number },
  ) {}

  get(k: KindDef, namespace: string | undefined, name: string): Obj {
    const o = this.store.get(grOf(k), objectKey(k.namespaced ? namespace : undefined, name));
    if (!o) throw errors.notFound(k, name);
    return o;
  }

  create(k: KindDef, namespace: string | undefined, body: Obj, opts: { admission: boolean }): Obj {
    const o = clone(body);
    const meta = (o['metadata'] ??= {});
    if (!meta.name && meta.generateName) meta.name = `${meta.generateName}${[...randomBytes(5)].map((b) => NAME_CHARS[b % NAME_CHARS.length]).join('')}`;
    if (!meta.name) throw errors.invalid(k, '', 'metadata.name', 'Required value: name or generateName is required');
    this.#checkName(k, meta.name);
    if (k.namespaced) {
      if (namespace !== undefined && meta.namespace !== undefined && meta.namespace !== namespace) {
        throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      meta.namespace = namespace ?? meta.namespace ?? 'default';
      if (opts.admission && this.opts.namespaceLifecycle && !this.store.get('/namespaces', objectKey(undefined, meta.namespace))) throw errors.namespaceNotFound(meta.namespace);
    } else {
      delete meta.namespace;
    }
    const gr = grOf(k);
    if (this.store.get(gr, objectKey(meta.namespace, meta.name))) throw errors.alreadyExists(k, meta.name);
    meta.uid = randomUUID();
    meta.creationTimestamp = now();
    delete meta.resourceVersion;
    delete meta.deletionTimestamp;
    if (k.status || k.crd) meta.generation = 1;
    if (opts.admission && k.status) {
      if (k.kind === 'Namespace') o['status'] = { phase: 'Active' };
      else if (k.kind === 'Pod') o['status'] = { phase: 'Pending' };
      else if (k.kind !== 'Node') delete o['status'];
    } else if (k.kind === 'Namespace' && !o['status']) {
      o['status'] = { phase: 'Active' };
    }
    delete o['apiVersion'];
    delete o['kind'];
    return this.store.write(gr, o);
  }

  /** PUT of the main resource (status kept) or of /status (only status taken). */
  replace(k: KindDef, namespace: string | undefined, name: string, body: Obj, subresource: string | undefined): Obj {
    const old = this.get(k, namespace, name);
    const meta = body['metadata'] ?? {};
    if (meta.name !== undefined && meta.name !== name) throw errors.badRequest(`the name of the object (${meta.name}) does not match the name on the URL (${name})`);
    if (k.namespaced && meta.namespace !== undefined && meta.namespace !== namespace) throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
    if (meta.resourceVersion !== undefined && meta.resourceVersion !== '' && meta.resourceVersion !== old['metadata'].resourceVersion) throw errors.conflict(k, name);
    if (meta.uid !== undefined && meta.uid !== old['metadata'].uid) throw errors.preconditionFailed(k, name, `UID in precondition: ${meta.uid}, UID in object meta: ${old['metadata'].uid}`);
    let next: Obj;
    if (subresource === 'status') {
      if (!k.status) throw errors.resourceNotFound();
      next = clone(old);
      next['status'] = clone(body['status']);
      if (next['status'] === undefined) delete next['status'];
    } else if (subresource !== undefined) {
      throw errors.resourceNotFound();
    } else {
      next = clone(body);
      delete next['apiVersion'];
      delete next['kind'];
      next['metadata'] = { ...clone(meta), name, uid: old['metadata'].uid, creationTimestamp: old['metadata'].creationTimestamp };
      if (k.namespaced) next['metadata'].namespace = namespace;
      else delete next['metadata'].namespace;
      if (old['metadata'].generation !== undefined) next['metadata'].generation = old['metadata'].generation + (specPart(old) !== specPart(next) ? 1 : 0);
      if (k.status) {
        if (old['status'] === undefined) delete next['status'];
        else next['status'] = clone(old['status']);
      }
    }
    if (sameIgnoringVersion(old, next)) return old;
    return this.store.write(grOf(k), next);
  }

  patch(k: KindDef, version: string, namespace: string | undefined, name: string, contentType: string, patch: unknown, subresource: string | undefined): Obj {
    const old = present(k, version, this.get(k, namespace, name));
    let patched: Obj;
    try {
      switch (contentType) {
        case 'application/merge-patch+json':
          patched = mergePatch(old, patch) as Obj;
          break;
        case 'application/strategic-merge-patch+json':
          if (k.crd) throw errors.unsupportedMediaType(contentType, ['application/json-patch+json', 'application/merge-patch+json', 'application/apply-patch+yaml']);
          // The double applies strategic merge as a JSON merge patch (lists are replaced, not merged by key).
          patched = mergePatch(old, patch) as Obj;
          break;
        case 'application/json-patch+json':
          patched = jsonPatch(old, patch) as Obj;
          break;
        default:
          throw errors.unsupportedMediaType(contentType, ['application/json-patch+json', 'application/merge-patch+json', ...(k.crd ? [] : ['application/strategic-merge-patch+json'])]);
      }
    } catch (err) {
      if (err instanceof PatchError) throw new ApiError(err.status, err.status === 400 ? 'BadRequest' : 'Invalid', err.message);
      throw err;
    }
    if (!patched || typeof patched !== 'object' || typeof patched['metadata'] !== 'object') throw errors.badRequest('the patch removed the object\'s metadata');
    return this.replace(k, namespace, name, patched, subresource);
  }

  /** Deletes one object; returns what the API answers (the namespace itself while it terminates, else a Status). */
  delete(k: KindDef, namespace: string | undefined, name: string, opts: { propagation?: PropagationPolicy; preconditions?: { resourceVersion?: string; uid?: string } }): Obj {
    const old = this.get(k, namespace, name);
    const pre = opts.preconditions ?? {};
    if (pre.uid && pre.uid !== old['metadata'].uid) throw errors.preconditionFailed(k, name, `UID in precondition: ${pre.uid}, UID in object meta: ${old['metadata'].uid}`);
    if (pre.resourceVersion && pre.resourceVersion !== old['metadata'].resourceVersion) {
      throw errors.preconditionFailed(k, name, `ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${old['metadata'].resourceVersion}`);
    }
    if (k.kind === 'Namespace' && k.group === '') {
      if (old['metadata'].deletionTimestamp) return old;
      old['metadata'].deletionTimestamp = now();
      old['status'] = { ...(old['status'] ?? {}), phase: 'Terminating' };
      const terminating = this.store.write(grOf(k), old);
      setImmediate(() => this.#finishNamespace(name));
      return terminating;
    }
    this.removeNow(k, namespace, name, opts.propagation ?? 'Background');
    return successStatus({ name, ...(k.group ? { group: k.group } : {}), kind: k.resource, uid: old['metadata'].uid });
  }

  /** Deletes without the API's checks (the test's own delete); dependents are collected after. */
  removeNow(k: KindDef, namespace: string | undefined, name: string, propagation: PropagationPolicy): Obj | undefined {
    const gone = this.store.remove(grOf(k), objectKey(k.namespaced ? namespace : undefined, name));
    if (!gone) return undefined;
    const uid = gone['metadata'].uid as string;
    if (propagation === 'Orphan') this.#orphan(uid);
    else if (this.opts.garbageCollectionDelayMs) setTimeout(() => this.#collect(uid), this.opts.garbageCollectionDelayMs).unref();
    else setImmediate(() => this.#collect(uid));
    return gone;
  }

  #finishNamespace(ns: string): void {
    for (const k of this.kinds.all()) {
      if (!k.namespaced || k.virtual) continue;
      for (const o of this.store.list(grOf(k))) if (o['metadata'].namespace === ns) this.removeNow(k, ns, o['metadata'].name, 'Background');
    }
    const nsKind = this.kinds.byResource('', 'v1', 'namespaces')!;
    this.store.remove(grOf(nsKind), objectKey(undefined, ns));
  }

  /** Garbage collection: dependents of a deleted owner whose owners are now all gone. */
  #collect(uid: string): void {
    for (const k of this.kinds.all()) {
      if (k.virtual) continue;
      for (const o of this.store.list(grOf(k))) {
        const refs = (o['metadata'].ownerReferences ?? []) as { uid: string }[];
        if (!refs.some((r) => r.uid === uid)) continue;
        if (refs.some((r) => r.uid !== uid && this.#uidExists(r.uid))) continue;
        this.removeNow(k, o['metadata'].namespace, o['metadata'].name, 'Background');
      }
    }
  }

  #orphan(uid: string): void {
    for (const k of this.kinds.all()) {
      if (k.virtual) continue;
      for (const o of this.store.list(grOf(k))) {
        const refs = (o['metadata'].ownerReferences ?? []) as { uid: string }[];
        if (!refs.some((r) => r.uid === uid)) continue;
        o['metadata'].ownerReferences = refs.filter((r) => r.uid !== uid);
        if (o['metadata'].ownerReferences.length === 0) delete o['metadata'].ownerReferences;
        this.store.write(grOf(k), o);
      }
    }
  }

  #uidExists(uid: string): boolean {
    for (const gr of this.store.types()) if (this.store.list(gr).some((o) => o['metadata'].uid === uid)) return true;
    return false;
  }

  #checkName(k: KindDef, name: string): void {
    if (k.group === 'rbac.authorization.k8s.io') {
      // RBAC names are path segments (system:basic-user is fine).
      if (name === '.' || name === '..' || /[/%]/.test(name)) throw errors.invalid(k, name, 'metadata.name', `Invalid value: "${name}": may not contain '/' or '%'`);
      return;
    }
    const [re, text] =
      k.kind === 'Namespace' && k.group === ''
        ? [DNS1123_LABEL, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"]
        : k.kind === 'Service' && k.group === ''
          ? [DNS1035_LABEL, "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character"]
          : [DNS1123_SUBDOMAIN, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"];
    const max = re === DNS1123_SUBDOMAIN ? 253 : 63;
    if (name.length > max || !re.test(name)) throw errors.invalid(k, name, 'metadata.name', `Invalid value: "${name}": ${text}`);
  }
}

export { groupResource };
