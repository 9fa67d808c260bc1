/** Discovery documents (/api, /apis, /apis/<group>, /api/v1, /apis/<group>/<version>, /version). */
import { apiVersionFor, type KindDef } from './registry.js';

const OBJECT_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

export type Served = (k: KindDef, version: string) => boolean;

export function apiVersions(serverAddress: string): object {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
}

function groupVersions(kinds: readonly KindDef[], group: string, served: Served): string[] {
  const out: string[] = [];
  for (const k of kinds) if (k.group === group) for (const v of k.versions) if (served(k, v) && !out.includes(v)) out.push(v);
  return out;
}

function apiGroup(kinds: readonly KindDef[], group: string, served: Served): object | undefined {
  const versions = groupVersions(kinds, group, served);
  if (versions.length === 0) return undefined;
  const vs = versions.map((v) => ({ groupVersion: `${group}/${v}`, version: v }));
  return { name: group, versions: vs, preferredVersion: vs[0] };
}

export function apiGroupList(kinds: readonly KindDef[], served: Served): object {
  const names = [...new Set(kinds.filter((k) => k.group !== '').map((k) => k.group))];
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: names.map((g) => apiGroup(kinds, g, served)).filter((g) => g !== undefined) };
}

export function apiGroupDoc(kinds: readonly KindDef[], group: string, served: Served): object | undefined {
  const g = apiGroup(kinds, group, served);
  return g ? { kind: 'APIGroup', apiVersion: 'v1', ...g } : undefined;
}

export function apiResourceList(kinds: readonly KindDef[], group: string, version: string, served: Served): object | undefined {
  const here = kinds.filter((k) => k.group === group && k.versions.includes(version) && served(k, version));
  if (here.length === 0) return undefined;
  const resources: object[] = [];
  for (const k of here) {
    resources.push({
      name: k.resource,
      singularName: k.singular,
      namespaced: k.namespaced,
      kind: k.kind,
      verbs: k.virtual ? ['create'] : OBJECT_VERBS,
      ...(k.shortNames ? { shortNames: k.shortNames } : {}),
    });
    if (k.status) resources.push({ name: `${k.resource}/status`, singularName: '', namespaced: k.namespaced, kind: k.kind, verbs: ['get', 'patch', 'update'] });
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: apiVersionFor(group, version), resources };
}

export function versionInfo(): object {
  return {
    major: '1',
    minor: '31',
    gitVersion: 'v1.31.0-strait-double',
    gitCommit: '0000000000000000000000000000000000000000',
    gitTreeState: 'clean',
    buildDate: '2024-08-13T07:28:49Z',
    goVersion: 'go1.22.5',
    compiler: 'gc',
    platform: 'linux/amd64',
  };
}
