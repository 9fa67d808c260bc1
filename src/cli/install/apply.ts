/**
 * Applies and removes the install's objects through the Kubernetes client. Apply is create-or-replace, object by
 * object in the manifest's order: absent → POST; present and already as wanted → nothing; present and different →
 * PUT with the resourceVersion just read (a 409 from a concurrent writer, or an AlreadyExists race, reads again and
 * retries). So applying twice changes nothing the second time, as `kubectl apply` does.
 *
 * Uninstall is ordered so that no node is left with capture rules pointing at nothing: the ztunnel DaemonSet goes
 * first, and uninstall waits until its pods are gone (each removes its node's rules as it stops); then the clean-up
 * DaemonSet runs node-teardown.sh on every node (for a ztunnel that was killed before it could) and uninstall waits
 * until it reports done on every node it was scheduled to; only then is the rest deleted, the namespace last.
 */
import { StraitError } from '../../common/errors.js';
import { isKubeApiError, KUBE_TYPES, qualifiedResource, type KubeClient, type KubeResourceType } from '../../common/kube/index.js';
import { CLEANUP_NAME, SYSTEM_NAMESPACE, type ManifestObject } from './manifest.js';

/** The kinds daemonset.yaml holds that the shared client's table does not name. */
const INSTALL_TYPES: readonly KubeResourceType[] = [
  { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'clusterroles', kind: 'ClusterRole', namespaced: false },
  { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'clusterrolebindings', kind: 'ClusterRoleBinding', namespaced: false },
  { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'roles', kind: 'Role', namespaced: true },
  { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'rolebindings', kind: 'RoleBinding', namespaced: true },
  { group: 'policy', version: 'v1', resource: 'poddisruptionbudgets', kind: 'PodDisruptionBudget', namespaced: true },
];

const fail = (msg: string, cause?: unknown) => new StraitError('STRAIT_ERR_INSTALL', msg, cause === undefined ? undefined : { cause });

export function resourceTypeOf(o: Pick<ManifestObject, 'apiVersion' | 'kind'>): KubeResourceType {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') as [string, string] : ['', o.apiVersion];
  const t = [...Object.values(KUBE_TYPES), ...INSTALL_TYPES].find((x) => x.group === group && x.version === version && x.kind === o.kind);
  if (!t) throw fail(`BUG: no resource type for ${o.apiVersion} ${o.kind}: add it to src/cli/install/apply.ts`);
  return t;
}

/** "daemonset.apps/strait-ztunnel", as kubectl names an object in its output. */
export function describeObject(o: Pick<ManifestObject, 'apiVersion' | 'kind' | 'metadata'>): string {
  const t = resourceTypeOf(o);
  return `${qualifiedResource({ group: t.group, resource: t.kind.toLowerCase() })}/${o.metadata.name}`;
}

/** Whether every field of `want` is in `have` with the same value (fields the server added are ignored). */
export function contains(have: unknown, want: unknown): boolean {
  if (want === null || typeof want !== 'object') return have === want;
  if (Array.isArray(want)) return Array.isArray(have) && have.length === want.length && want.every((w, i) => contains(have[i], w));
  if (have === null || typeof have !== 'object' || Array.isArray(have)) return false;
  return Object.entries(want as Record<string, unknown>).every(([k, v]) => contains((have as Record<string, unknown>)[k], v));
}

export type ApplyAction = 'created' | 'configured' | 'unchanged';

type Stored = ManifestObject & { metadata: ManifestObject['metadata'] & { resourceVersion: string; annotations?: Record<string, string> }; spec?: Record<string, unknown> };

/** What a PUT sends: the wanted object on the stored one's resourceVersion, keeping what others set and the server owns. */
function replacement(want: ManifestObject, have: Stored): ManifestObject {
  const next = structuredClone(want) as Stored;
  next.metadata = {
    ...next.metadata,
    labels: { ...(have.metadata.labels ?? {}), ...(want.metadata.labels ?? {}) },
    ...(have.metadata.annotations || want.metadata['annotations'] ? { annotations: { ...(have.metadata.annotations ?? {}), ...((want.metadata['annotations'] as Record<string, string> | undefined) ?? {}) } } : {}),
    resourceVersion: have.metadata.resourceVersion,
  };
  // A Service's cluster IPs are the server's and immutable.
  if (want.kind === 'Service' && have.spec && next.spec) {
    for (const f of ['clusterIP', 'clusterIPs', 'ipFamilies', 'ipFamilyPolicy']) if (have.spec[f] !== undefined && next.spec[f] === undefined) next.spec[f] = have.spec[f];
  }
  return next;
}

const MAX_APPLY_ATTEMPTS = 5;

async function getOrUndefined(client: KubeClient, o: Pick<ManifestObject, 'apiVersion' | 'kind' | 'metadata'>): Promise<Stored | undefined> {
  try {
    return (await client.get(resourceTypeOf(o), o.metadata.name, o.metadata.namespace ? { namespace: o.metadata.namespace } : {})) as unknown as Stored;
  } catch (err) {
    if (isKubeApiError(err, 404)) return undefined;
    throw err;
  }
}

/** Creates or replaces one object; see the file comment. */
export async function applyObject(client: KubeClient, want: ManifestObject): Promise<ApplyAction> {
  const type = resourceTypeOf(want);
  for (let attempt = 1; ; attempt++) {
    const have = await getOrUndefined(client, want);
    try {
      if (!have) {
        await client.create(type, want as never, want.metadata.namespace ? { namespace: want.metadata.namespace } : {});
        return 'created';
      }
      if (contains(have, want)) return 'unchanged';
      await client.replace(type, replacement(want, have) as never);
      return 'configured';
    } catch (err) {
      // Someone else created or changed it between our read and our write: read again.
      if (isKubeApiError(err, 409) && attempt < MAX_APPLY_ATTEMPTS) continue;
      throw fail(`${describeObject(want)}: ${(err as Error).message}`, err);
    }
  }
}

/**
 * Applies every object in order; `report` gets one kubectl-style line per object. A clean-up DaemonSet left by an
 * unfinished uninstall is deleted first: its pods would sit on every node, and one restarting would remove the
 * capture rules of the ztunnels installed now.
 */
export async function applyAll(client: KubeClient, objects: readonly ManifestObject[], report: (line: string) => void): Promise<ApplyAction[]> {
  const ns = objects.find((o) => o.kind === 'Namespace')?.metadata.name ?? SYSTEM_NAMESPACE;
  const leftover = { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: CLEANUP_NAME, namespace: ns } };
  if ((await getOrUndefined(client, leftover)) && (await deleteObject(client, leftover))) report(`${describeObject(leftover)} deleted (left by an unfinished uninstall)`);
  const out: ApplyAction[] = [];
  for (const o of objects) {
    const action = await applyObject(client, o);
    report(`${describeObject(o)} ${action}`);
    out.push(action);
  }
  return out;
}

/** Deletes one object; false when it was not there. */
export async function deleteObject(client: KubeClient, o: Pick<ManifestObject, 'apiVersion' | 'kind' | 'metadata'>): Promise<boolean> {
  try {
    await client.delete(resourceTypeOf(o), o.metadata.name, { ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}), propagationPolicy: 'Background' });
    return true;
  } catch (err) {
    if (isKubeApiError(err, 404)) return false;
    throw fail(`${describeObject(o)}: ${(err as Error).message}`, err);
  }
}

export interface WaitOptions {
  timeoutMs: number;
  pollMs: number;
}

/** Polls `check` until it returns a value other than undefined, or fails with `timedOut()` after the timeout. */
async function waitFor<T>(check: () => Promise<T | undefined>, o: WaitOptions, timedOut: () => Promise<string>): Promise<T> {
  const until = Date.now() + o.timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() >= until) throw fail(await timedOut());
    await new Promise((r) => setTimeout(r, o.pollMs));
  }
}

const podsOf = async (client: KubeClient, namespace: string, app: string) =>
  (await client.listAll(KUBE_TYPES.Pod, { namespace, labelSelector: `app.kubernetes.io/name=${app}` })).items as unknown as { metadata: { name: string }; spec?: { nodeName?: string }; status?: { conditions?: { type: string; status: string }[] } }[];

/** Waits until no pod of the app is left (their containers have stopped). */
export async function waitPodsGone(client: KubeClient, namespace: string, app: string, o: WaitOptions): Promise<void> {
  await waitFor(async () => ((await podsOf(client, namespace, app)).length === 0 ? true : undefined), o, async () => {
    const left = await podsOf(client, namespace, app);
    return `${left.length} ${app} pod(s) still running after ${Math.round(o.timeoutMs / 1000)}s (${left.map((p) => `${p.metadata.name} on ${p.spec?.nodeName ?? '?'}`).join(', ')}): ` +
      `each removes its node's capture rules as it stops; see kubectl -n ${namespace} describe pod -l app.kubernetes.io/name=${app}, then run strait uninstall again`;
  });
}

type DaemonSetStatus = { metadata: { generation?: number }; status?: { observedGeneration?: number; desiredNumberScheduled?: number; numberReady?: number } };

/** Waits until the DaemonSet's pod is ready on every node it is scheduled to (as `kubectl rollout status` reads it). */
export async function waitDaemonSetReady(client: KubeClient, ds: ManifestObject, o: WaitOptions): Promise<number> {
  const ns = ds.metadata.namespace ?? SYSTEM_NAMESPACE;
  const read = async () => (await client.get(KUBE_TYPES.DaemonSet, ds.metadata.name, { namespace: ns })) as unknown as DaemonSetStatus;
  return waitFor(async () => {
    const d = await read();
    const s = d.status ?? {};
    const observed = s.observedGeneration !== undefined && s.observedGeneration >= (d.metadata.generation ?? 0);
    return observed && s.desiredNumberScheduled !== undefined && s.numberReady === s.desiredNumberScheduled ? s.desiredNumberScheduled : undefined;
  }, o, async () => {
    const s = (await read()).status ?? {};
    const pending = (await podsOf(client, ns, ds.metadata.name)).filter((p) => !p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    return `the node clean-up finished on ${s.numberReady ?? 0} of ${s.desiredNumberScheduled ?? '?'} nodes within ${Math.round(o.timeoutMs / 1000)}s` +
      (pending.length ? `; not done on: ${pending.map((p) => p.spec?.nodeName ?? p.metadata.name).join(', ')}` : '') +
      `. See kubectl -n ${ns} logs -l app.kubernetes.io/name=${CLEANUP_NAME}; the DaemonSet ${ds.metadata.name} and the rest of the install are left in place: fix the cause and run strait uninstall again`;
  });
}

/** Waits until the object is gone (a namespace finishes terminating). */
export async function waitGone(client: KubeClient, obj: ManifestObject, o: WaitOptions): Promise<void> {
  await waitFor(async () => ((await getOrUndefined(client, obj)) === undefined ? true : undefined), o,
    async () => `${describeObject(obj)} is still terminating after ${Math.round(o.timeoutMs / 1000)}s: see kubectl get ${describeObject(obj)} -o yaml (its finalizers and conditions)`);
}
