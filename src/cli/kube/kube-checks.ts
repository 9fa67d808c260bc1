/**
 * `strait check`'s Kubernetes checks: the kubeconfig, the API server (a SelfSubjectAccessReview proves it answers and
 * accepts the credentials), the permissions `strait install` needs (one SelfSubjectAccessReview each), and the
 * CustomResourceDefinitions of every kind the Kubernetes source reads (KUBE_TYPES' crd), serving the version it reads.
 */
import { errorMessage } from '../../common/errors.js';
import { isKubeApiError, KUBE_TYPES, qualifiedResource, type KubeClient, type KubeObject, type KubeResourceType } from '../../common/kube/index.js';
import type { CheckFlags } from '../check.js';
import type { Finding } from './check-types.js';
import { connectKube } from './connect.js';

/**
 * What `strait install` creates (the kinds of daemonset.yaml; Strait ships no CRDs of its own): the verb "create" on
 * each. One list, here, until the install command exports its own. `namespaced`: checked in the system namespace.
 */
export const INSTALL_NEEDS: readonly { group: string; resource: string; namespaced: boolean }[] = [
  { group: '', resource: 'namespaces', namespaced: false },
  { group: 'rbac.authorization.k8s.io', resource: 'clusterroles', namespaced: false },
  { group: 'rbac.authorization.k8s.io', resource: 'clusterrolebindings', namespaced: false },
  { group: 'rbac.authorization.k8s.io', resource: 'roles', namespaced: true },
  { group: 'rbac.authorization.k8s.io', resource: 'rolebindings', namespaced: true },
  { group: '', resource: 'serviceaccounts', namespaced: true },
  { group: '', resource: 'services', namespaced: true },
  { group: 'apps', resource: 'deployments', namespaced: true },
  { group: 'apps', resource: 'daemonsets', namespaced: true },
  { group: 'policy', resource: 'poddisruptionbudgets', namespaced: true },
];

interface AccessReview extends KubeObject { status?: { allowed?: boolean; denied?: boolean; reason?: string; evaluationError?: string } }
interface CrdObject extends KubeObject { spec?: { versions?: { name: string; served?: boolean }[] } }

export async function kubeChecks(flags: CheckFlags, env: NodeJS.ProcessEnv): Promise<Finding[]> {
  const out: Finding[] = [];
  let kube;
  try {
    kube = await connectKube(flags, env, 10_000);
  } catch (err) {
    return [{ section: 'kubernetes', check: 'kubeconfig', result: 'fail', detail: errorMessage(err), fix: 'point --kubeconfig (or KUBECONFIG) at a kubeconfig, as for kubectl; --context picks a context' }];
  }
  try {
    out.push({ section: 'kubernetes', check: 'kubeconfig', result: 'pass', detail: `context ${kube.config.context} (${kube.config.source}: ${kube.config.paths.join(', ')}), server ${kube.config.server}` });
    const review = (verb: string, group: string, resource: string, namespace?: string) => kube.client.create<AccessReview>(KUBE_TYPES.SelfSubjectAccessReview, {
      spec: { resourceAttributes: { verb, group, resource, ...(namespace !== undefined ? { namespace } : {}) } },
    });
    try {
      await review('get', '', 'namespaces');
      out.push({ section: 'kubernetes', check: 'kubernetes-api', result: 'pass', detail: `${kube.config.server} answers and accepts the credentials` });
    } catch (err) {
      out.push({ section: 'kubernetes', check: 'kubernetes-api', result: 'fail', detail: errorMessage(err), fix: 'check the kubeconfig\'s server, certificate authority and credentials (kubectl get --raw /version must work)' });
      for (const check of ['permissions', 'crds']) out.push({ section: 'kubernetes', check, result: 'skip', detail: 'the Kubernetes API is not usable', fix: 'fix kubernetes-api first' });
      return out;
    }
    out.push(await permissions(review, flags.systemNamespace));
    out.push(await crds(kube.client));
    return out;
  } finally {
    kube.close();
  }
}

async function permissions(review: (verb: string, group: string, resource: string, namespace?: string) => Promise<AccessReview>, ns: string): Promise<Finding> {
  const denied: string[] = [];
  const failed: string[] = [];
  await Promise.all(INSTALL_NEEDS.map(async (n) => {
    const what = `create ${qualifiedResource(n)}${n.namespaced ? ` in ${ns}` : ''}`;
    try {
      const r = await review('create', n.group, n.resource, n.namespaced ? ns : undefined);
      if (r.status?.allowed !== true) denied.push(what);
    } catch (err) {
      failed.push(`${what}: ${errorMessage(err)}`);
    }
  }));
  if (failed.length > 0) return { section: 'kubernetes', check: 'permissions', result: 'fail', detail: `could not ask: ${failed.sort().join('; ')}`, fix: 'check the API server (see kubernetes-api)' };
  if (denied.length > 0) {
    return {
      section: 'kubernetes', check: 'permissions', result: 'fail', detail: `you may not ${denied.sort().join(', ')}`,
      fix: 'strait install creates cluster-wide RBAC and the strait-system namespace: run it as a cluster admin, or have one grant these (kubectl auth can-i create <resource> shows each)',
    };
  }
  return { section: 'kubernetes', check: 'permissions', result: 'pass', detail: `you may create everything strait install creates (${INSTALL_NEEDS.length} resource types)` };
}

async function crds(client: KubeClient): Promise<Finding> {
  const types = Object.values(KUBE_TYPES as Record<string, KubeResourceType>).filter((t) => t.crd);
  const missing: KubeResourceType[] = [];
  const wrongVersion: string[] = [];
  const unreadable: string[] = [];
  await Promise.all(types.map(async (t) => {
    try {
      const crd = await client.get<CrdObject>(KUBE_TYPES.CustomResourceDefinition, t.crd!.name);
      const served = (crd.spec?.versions ?? []).filter((v) => v.served !== false).map((v) => v.name);
      if (!served.includes(t.version)) wrongVersion.push(`${t.crd!.name} serves ${served.join(', ') || 'no version'}, not ${t.version}`);
    } catch (err) {
      if (isKubeApiError(err, 404)) missing.push(t);
      else unreadable.push(`${t.crd!.name}: ${errorMessage(err)}`);
    }
  }));
  if (unreadable.length > 0) {
    return { section: 'kubernetes', check: 'crds', result: 'warn', detail: `cannot read CustomResourceDefinitions: ${unreadable.sort().join('; ')}`, fix: 'ask for get on customresourcedefinitions.apiextensions.k8s.io to have this checked' };
  }
  if (missing.length > 0 || wrongVersion.length > 0) {
    const sources = [...new Set(missing.map((t) => t.crd!.from))].sort();
    return {
      section: 'kubernetes', check: 'crds', result: 'fail',
      detail: [missing.length > 0 ? `missing: ${missing.map((t) => t.crd!.name).sort().join(', ')}` : '', ...wrongVersion.sort()].filter(Boolean).join('; '),
      fix: `install ${[...sources, ...(wrongVersion.length > 0 ? ['newer CRDs that serve the versions named'] : [])].join(' and ')}`,
    };
  }
  return { section: 'kubernetes', check: 'crds', result: 'pass', detail: `all ${types.length} CustomResourceDefinitions Strait reads are installed: ${types.map((t) => t.crd!.name).sort().join(', ')}` };
}
