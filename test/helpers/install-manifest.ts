/**
 * daemonset.yaml for tests: its objects (as `strait install` renders them) and its RBAC, so that tests can ask what
 * a ServiceAccount of the install may do (e.g. check every request of the double's log against it).
 */
import { cleanupDaemonSet, renderInstall, type ManifestObject, type RenderOptions } from '../../src/cli/install/manifest.js';
import type { RequestAttributes } from './kube-apiserver/rbac.js';

export type { ManifestObject } from '../../src/cli/install/manifest.js';

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

export interface RoleObject {
  kind: 'ClusterRole' | 'Role';
  name: string;
  /** Role only. */
  namespace?: string;
  rules: PolicyRule[];
}

export interface BindingObject {
  kind: 'ClusterRoleBinding' | 'RoleBinding';
  name: string;
  /** RoleBinding only. */
  namespace?: string;
  roleRef: { apiGroup: string; kind: 'ClusterRole' | 'Role'; name: string };
  subjects: { kind: string; name: string; namespace?: string; apiGroup?: string }[];
}

export interface InstallRbac {
  roles: RoleObject[];
  bindings: BindingObject[];
}

/** A rule as it applies to one subject: where (undefined = every namespace and the cluster-scoped resources). */
export interface Grant extends PolicyRule {
  namespace?: string;
  /** The role and binding it comes from, for messages. */
  from: string;
}

/** One API request as RBAC sees it (the double's `requests` log has these fields). */
export type RbacRequest = Omit<RequestAttributes, 'path'>;

/** The objects of daemonset.yaml (or `strait install --image IMAGE`'s), in apply order. */
export function installObjects(opts: RenderOptions = {}): ManifestObject[] {
  return renderInstall(opts);
}

/** What `strait uninstall` applies besides: the node clean-up DaemonSet. */
export function uninstallCleanupObjects(opts: RenderOptions = {}): ManifestObject[] {
  return [cleanupDaemonSet(renderInstall(opts))];
}

export function rbacOf(objects: readonly ManifestObject[]): InstallRbac {
  const roles: RoleObject[] = [];
  const bindings: BindingObject[] = [];
  for (const o of objects) {
    if (o.apiVersion !== 'rbac.authorization.k8s.io/v1') continue;
    const ns = o.metadata.namespace;
    if (o.kind === 'ClusterRole' || o.kind === 'Role') {
      roles.push({ kind: o.kind, name: o.metadata.name, ...(o.kind === 'Role' ? { namespace: ns ?? 'default' } : {}), rules: (o['rules'] as PolicyRule[] | undefined) ?? [] });
    } else if (o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding') {
      bindings.push({
        kind: o.kind, name: o.metadata.name, ...(o.kind === 'RoleBinding' ? { namespace: ns ?? 'default' } : {}),
        roleRef: o['roleRef'] as BindingObject['roleRef'], subjects: (o['subjects'] as BindingObject['subjects'] | undefined) ?? [],
      });
    }
  }
  return { roles, bindings };
}

/** The RBAC of daemonset.yaml. */
export function installRbac(): InstallRbac {
  return rbacOf(installObjects());
}

/** Every rule granted to the ServiceAccount `namespace/name`, with the namespace it holds in. */
export function grantsFor(rbac: InstallRbac, sa: { namespace: string; name: string }): Grant[] {
  const out: Grant[] = [];
  for (const b of rbac.bindings) {
    if (!b.subjects.some((s) => s.kind === 'ServiceAccount' && s.name === sa.name && s.namespace === sa.namespace)) continue;
    const role = rbac.roles.find((r) => r.kind === b.roleRef.kind && r.name === b.roleRef.name && (r.kind === 'ClusterRole' || r.namespace === b.namespace));
    if (!role) continue;
    const where = b.kind === 'RoleBinding' ? b.namespace : undefined;
    for (const rule of role.rules) out.push({ ...rule, ...(where !== undefined ? { namespace: where } : {}), from: `${b.kind} ${b.name} → ${role.kind} ${role.name}` });
  }
  return out;
}

/** Whether a rule admits the request, by Kubernetes RBAC's matching (groups, resources with subresource, verbs, names). */
export function ruleAllows(rule: Grant, req: RbacRequest): boolean {
  if (rule.namespace !== undefined && req.namespace !== rule.namespace) return false;
  const any = (list: string[], v: string) => list.includes('*') || list.includes(v);
  const resource = req.subresource ? `${req.resource}/${req.subresource}` : req.resource;
  if (!any(rule.apiGroups, req.group) || !any(rule.resources, resource) || !any(rule.verbs, req.verb)) return false;
  if (rule.resourceNames && rule.resourceNames.length > 0) return req.name !== undefined && rule.resourceNames.includes(req.name);
  return true;
}

/** The rule that admits the request for this ServiceAccount, or undefined when RBAC forbids it. */
export function allowedBy(grants: readonly Grant[], req: RbacRequest): Grant | undefined {
  return grants.find((g) => ruleAllows(g, req));
}
