/**
 * RBAC against what a component actually did: the requests the API server double refused, and the grants of
 * daemonset.yaml that no request used. A grant is split into its single permissions (one verb, one API group, one
 * resource, with the rule's namespace and resourceNames), so a rule that lists one verb too many is caught too.
 */
import { ruleAllows, type Grant } from './install-manifest.js';
import type { RequestLogEntry } from './kube-apiserver.js';

/** One permission of a grant: a single verb on a single group/resource (a subresource as "gateways/status"). */
export interface Permission extends Grant {
  verb: string;
  group: string;
  resource: string;
}

export function permissionsOf(grants: readonly Grant[]): Permission[] {
  const out: Permission[] = [];
  for (const g of grants) {
    for (const verb of g.verbs) {
      for (const group of g.apiGroups) {
        for (const resource of g.resources) out.push({ ...g, apiGroups: [group], resources: [resource], verbs: [verb], verb, group, resource });
      }
    }
  }
  return out;
}

export function describePermission(p: Permission): string {
  const where = p.namespace !== undefined ? ` in namespace ${p.namespace}` : '';
  const names = p.resourceNames?.length ? ` named ${p.resourceNames.join(', ')}` : '';
  return `${p.verb} ${p.resource}${p.group ? `.${p.group}` : ''}${where}${names} (${p.from})`;
}

/** Whether RBAC looked at the request and let it through (answered, and neither 401 nor 403). */
function admitted(r: RequestLogEntry): boolean {
  return r.code !== undefined && r.code !== 401 && r.code !== 403;
}

/** The permissions no admitted request of `user` needed: each is a grant beyond least privilege. */
export function unusedPermissions(grants: readonly Grant[], requests: readonly RequestLogEntry[], user: string): Permission[] {
  const mine = requests.filter((r) => r.user === user && admitted(r) && r.resource !== '');
  return permissionsOf(grants).filter(
    (p) =>
      !mine.some((r) =>
        ruleAllows(p, {
          verb: r.verb,
          group: r.group,
          resource: r.resource,
          ...(r.subresource !== undefined ? { subresource: r.subresource } : {}),
          ...(r.namespace !== undefined ? { namespace: r.namespace } : {}),
          ...(r.name !== undefined ? { name: r.name } : {}),
        }),
      ),
  );
}

/** Requests answered 401 or 403, described as RBAC sees them, each once (with "×N" when it was refused N times). */
export function refusedRequests(requests: readonly RequestLogEntry[]): string[] {
  const counts = new Map<string, number>();
  for (const r of requests) {
    if (r.code !== 401 && r.code !== 403) continue;
    const what = r.resource === '' ? `path ${r.path}` : `${r.resource}${r.subresource ? `/${r.subresource}` : ''}${r.group ? `.${r.group}` : ''}`;
    const where = r.namespace !== undefined ? ` in namespace ${r.namespace}` : '';
    const name = r.name !== undefined ? ` named ${r.name}` : '';
    const line = `${r.code} for ${r.user || 'an unauthenticated client'}: ${r.verb} ${what}${where}${name} (${r.method} ${r.path})`;
    counts.set(line, (counts.get(line) ?? 0) + 1);
  }
  return [...counts].map(([line, n]) => (n > 1 ? `${line} ×${n}` : line));
}
