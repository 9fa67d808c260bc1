/**
 * Istio's PeerAuthentication as the ztunnel applies it: which mTLS mode holds for a workload's port.
 */
import type { AuthorizationResource } from '../../common/xds/resources.js';
import type { MtlsMode } from '../../common/model/types.js';
import { policyApplies, type AuthzTarget } from './authorize.js';

export type EffectiveMtls = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

type PeerAuthnPolicy = Extract<AuthorizationResource, { type: 'peerauthn' }>;

/**
 * The mTLS mode for inbound connections to `target` on `port` (the workload's own port), as Istio composes
 * PeerAuthentications: one policy per level is chosen — workload (selector, same namespace) over namespace over
 * global (root namespace, no selector) — each level's mode overrides the levels above unless it is UNSET;
 * port-level modes apply only from the workload-level policy (UNSET there inherits the workload's mode);
 * nothing set → PERMISSIVE.
 *
 * Istio picks the oldest policy when several apply at one level; resources carry no timestamps, so here the
 * smallest "namespace/name" (plain string order) wins, deterministically.
 *
 * Istio ignores PeerAuthentications with a selector in the root namespace; the resource marks them scope
 * 'workload' like any other, so pass `opts.rootNamespace` to have them ignored too (without it they apply to
 * matching workloads of the root namespace only).
 */
export function effectiveMtlsMode(
  policies: Iterable<AuthorizationResource>, target: AuthzTarget, port: number, opts: { rootNamespace?: string } = {},
): EffectiveMtls {
  let global: PeerAuthnPolicy | undefined;
  let namespace: PeerAuthnPolicy | undefined;
  let workload: PeerAuthnPolicy | undefined;
  for (const p of policies) {
    if (p.type !== 'peerauthn') continue;
    switch (p.scope) {
      case 'global':
        // Global peerauthn never carries a selector (views make selector ones 'workload'); be strict anyway.
        if (!p.selector && (!global || earlier(p, global))) global = p;
        break;
      case 'namespace':
        if (p.namespace === target.namespace && (!namespace || earlier(p, namespace))) namespace = p;
        break;
      case 'workload':
        if (opts.rootNamespace !== undefined && p.namespace === opts.rootNamespace) break;
        if (policyApplies(p, target) && (!workload || earlier(p, workload))) workload = p;
        break;
    }
  }
  let mode: EffectiveMtls = 'PERMISSIVE';
  if (global && global.mode !== 'UNSET') mode = global.mode;
  if (namespace && namespace.mode !== 'UNSET') mode = namespace.mode;
  if (workload) {
    if (workload.mode !== 'UNSET') mode = workload.mode;
    const portMode: MtlsMode | undefined = workload.portLevel[String(port)];
    if (portMode !== undefined && portMode !== 'UNSET') mode = portMode;
  }
  return mode;
}

function earlier(a: PeerAuthnPolicy, b: PeerAuthnPolicy): boolean {
  return `${a.namespace}/${a.name}` < `${b.namespace}/${b.name}`;
}
