/**
 * RBAC evaluation as the Kubernetes RBAC authorizer does it, over the Roles, ClusterRoles, RoleBindings and
 * ClusterRoleBindings in the double's store. Aggregated ClusterRoles (aggregationRule) are not expanded.
 */

export interface UserInfo {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export interface RequestAttributes {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  /** For non-resource requests (/api, /version, ...). */
  path?: string;
}

interface PolicyRule {
  verbs?: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}
interface Subject {
  kind: string;
  name: string;
  namespace?: string;
}
interface Binding {
  metadata: { namespace?: string };
  subjects?: Subject[];
  roleRef: { kind: string; name: string };
}
interface Role {
  metadata: { name: string; namespace?: string };
  rules?: PolicyRule[];
}

/** What the authorizer reads from the store. */
export interface RbacObjects {
  clusterRoles(): Role[];
  roles(namespace: string): Role[];
  clusterRoleBindings(): Binding[];
  roleBindings(namespace: string): Binding[];
}

/** The user a ServiceAccount token authenticates as, with the groups the API server adds. */
export function serviceAccountUser(namespace: string, name: string): UserInfo {
  return {
    username: `system:serviceaccount:${namespace}:${name}`,
    groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
  };
}

export function authorize(rbac: RbacObjects, user: UserInfo, a: RequestAttributes): { allowed: boolean; reason: string } {
  const groups = new Set(user.groups ?? []);
  if (groups.has('system:masters')) return { allowed: true, reason: 'system:masters' };
  for (const b of rbac.clusterRoleBindings()) {
    if (!bindsUser(b, user, groups)) continue;
    const role = b.roleRef.kind === 'ClusterRole' ? rbac.clusterRoles().find((r) => r.metadata.name === b.roleRef.name) : undefined;
    if (role && rulesAllow(role.rules ?? [], a)) return { allowed: true, reason: `RBAC: allowed by ClusterRoleBinding to ClusterRole "${role.metadata.name}"` };
  }
  if (a.namespace) {
    for (const b of rbac.roleBindings(a.namespace)) {
      if (!bindsUser(b, user, groups)) continue;
      const role =
        b.roleRef.kind === 'ClusterRole'
          ? rbac.clusterRoles().find((r) => r.metadata.name === b.roleRef.name)
          : rbac.roles(a.namespace).find((r) => r.metadata.name === b.roleRef.name);
      if (role && rulesAllow(role.rules ?? [], a)) return { allowed: true, reason: `RBAC: allowed by RoleBinding in ${a.namespace} to ${b.roleRef.kind} "${b.roleRef.name}"` };
    }
  }
  return { allowed: false, reason: '' };
}

function bindsUser(b: Binding, user: UserInfo, groups: Set<string>): boolean {
  for (const s of b.subjects ?? []) {
    if (s.kind === 'User' && s.name === user.username) return true;
    if (s.kind === 'Group' && groups.has(s.name)) return true;
    if (s.kind === 'ServiceAccount' && `system:serviceaccount:${s.namespace ?? b.metadata.namespace}:${s.name}` === user.username) return true;
  }
  return false;
}

function rulesAllow(rules: PolicyRule[], a: RequestAttributes): boolean {
  return rules.some((r) => ruleAllows(r, a));
}

function ruleAllows(r: PolicyRule, a: RequestAttributes): boolean {
  if (!matches(r.verbs, a.verb)) return false;
  if (a.path !== undefined) {
    return (r.nonResourceURLs ?? []).some((u) => u === '*' || u === a.path || (u.endsWith('*') && a.path!.startsWith(u.slice(0, -1))));
  }
  if (!matches(r.apiGroups, a.group)) return false;
  const combined = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const resOk = (r.resources ?? []).some((x) => x === '*' || x === combined || (a.subresource !== undefined && x === `*/${a.subresource}`));
  if (!resOk) return false;
  if (r.resourceNames && r.resourceNames.length > 0) return a.name !== undefined && r.resourceNames.includes(a.name);
  return true;
}

function matches(list: string[] | undefined, v: string): boolean {
  return (list ?? []).some((x) => x === '*' || x === v);
}
