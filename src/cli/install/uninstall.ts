/**
 * `strait uninstall`: the plan (pure) and its run. See apply.ts for why the steps come in this order.
 */
import { KUBE_TYPES, type KubeClient } from '../../common/kube/index.js';
import { applyObject, deleteObject, describeObject, waitDaemonSetReady, waitGone, waitPodsGone, type WaitOptions } from './apply.js';
import { cleanupDaemonSet, SYSTEM_NAMESPACE, type ManifestObject } from './manifest.js';

/** The root-certificate ConfigMap the controller copies into every namespace with a waypoint. */
export const ROOT_CONFIGMAP = 'strait-ca-root';
const MANAGED_BY_CONTROLLER = 'app.kubernetes.io/managed-by=strait-controller';

export interface UninstallPlan {
  /** Deleted first; uninstall waits until its pods are gone. */
  ztunnel?: ManifestObject;
  /** Applied next (in `namespace`, created for it if absent); uninstall waits until it is ready on every node. */
  cleanup?: ManifestObject;
  namespace: ManifestObject;
  /** Deleted after the clean-up, in this order (the reverse of install's), the namespace last. */
  rest: ManifestObject[];
}

export function uninstallPlan(installed: readonly ManifestObject[], o: { nodeCleanup: boolean }): UninstallPlan {
  const ztunnel = installed.find((x) => x.kind === 'DaemonSet' && x.metadata.name === 'strait-ztunnel');
  const namespace = installed.find((x) => x.kind === 'Namespace' && x.metadata.name === SYSTEM_NAMESPACE);
  if (!namespace) throw new Error(`BUG: the manifests hold no Namespace ${SYSTEM_NAMESPACE}`);
  const rest = installed.filter((x) => x !== ztunnel && x !== namespace).reverse();
  return { ...(ztunnel ? { ztunnel } : {}), ...(o.nodeCleanup ? { cleanup: cleanupDaemonSet(installed) } : {}), namespace, rest };
}

/** What a dry run prints: one line per step. */
export function describePlan(p: UninstallPlan): string[] {
  const lines: string[] = [];
  if (p.ztunnel) lines.push(`${describeObject(p.ztunnel)} deleted (dry run); then waits until its pods are gone (each removes its node's capture rules)`);
  if (p.cleanup) lines.push(`${describeObject(p.cleanup)} created (dry run); then waits until node-teardown.sh has run on every node, and deletes it`);
  for (const o of p.rest) lines.push(`${describeObject(o)} deleted (dry run)`);
  lines.push(`configmap/${ROOT_CONFIGMAP} deleted in every namespace where the controller made one (dry run)`);
  lines.push(`${describeObject(p.namespace)} deleted (dry run); then waits until it is gone`);
  return lines;
}

/** The objects a dry run with -o prints: what it would create, then what it would delete. */
export function planObjects(p: UninstallPlan): ManifestObject[] {
  return [...(p.cleanup ? [p.cleanup] : []), ...(p.ztunnel ? [p.ztunnel] : []), ...p.rest, p.namespace];
}

export async function runUninstall(client: KubeClient, p: UninstallPlan, wait: WaitOptions, report: (line: string) => void): Promise<void> {
  const ns = p.namespace.metadata.name;
  if (p.ztunnel) {
    report(`${describeObject(p.ztunnel)} ${(await deleteObject(client, p.ztunnel)) ? 'deleted' : 'not found'}`);
    await waitPodsGone(client, ns, p.ztunnel.metadata.name, wait);
  }
  if (p.cleanup) {
    // The clean-up needs its namespace (with the privileged Pod Security level), also after a half-done uninstall.
    const nsAction = await applyObject(client, p.namespace);
    if (nsAction !== 'unchanged') report(`${describeObject(p.namespace)} ${nsAction} (for the node clean-up)`);
    report(`${describeObject(p.cleanup)} ${await applyObject(client, p.cleanup)}`);
    const nodes = await waitDaemonSetReady(client, p.cleanup, wait);
    report(`capture rules removed on ${nodes} node(s)`);
    report(`${describeObject(p.cleanup)} ${(await deleteObject(client, p.cleanup)) ? 'deleted' : 'not found'}`);
  }
  for (const o of p.rest) report(`${describeObject(o)} ${(await deleteObject(client, o)) ? 'deleted' : 'not found'}`);
  const roots = (await client.listAll(KUBE_TYPES.ConfigMap, { labelSelector: MANAGED_BY_CONTROLLER, fieldSelector: `metadata.name=${ROOT_CONFIGMAP}` })).items;
  for (const cm of roots) {
    if (cm.metadata.namespace === ns) continue;
    const obj = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: cm.metadata.name, namespace: cm.metadata.namespace! } };
    report(`configmap/${ROOT_CONFIGMAP} -n ${cm.metadata.namespace} ${(await deleteObject(client, obj)) ? 'deleted' : 'not found'}`);
  }
  const existed = await deleteObject(client, p.namespace);
  report(`${describeObject(p.namespace)} ${existed ? 'deleted' : 'not found'}`);
  if (existed) await waitGone(client, p.namespace, wait);
}
