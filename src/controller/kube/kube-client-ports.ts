/**
 * The controller's Kubernetes ports (ObjectApi for its writers, TokenReview for authentication) over the shared
 * client (src/common/kube). Only the kinds the controller writes or reads one by one are mapped.
 */
import { StraitError } from '../../common/errors.js';
import type { KubeClient } from '../../common/kube/client.js';
import { KUBE_TYPES, type KubeResourceType } from '../../common/kube/resource-types.js';
import type { KubePorts } from './kube-control-plane.js';
import { isNotFound } from './kube-errors.js';
import type { ObjectApi, ObjectRef } from './object-api.js';
import type { TokenReviewStatus } from './token-reviewer.js';
import type { KubeObject } from './waypoint-objects.js';

const TYPES: Record<string, KubeResourceType> = {
  Lease: KUBE_TYPES.Lease,
  Secret: KUBE_TYPES.Secret,
  ConfigMap: KUBE_TYPES.ConfigMap,
  ServiceAccount: KUBE_TYPES.ServiceAccount,
  Service: KUBE_TYPES.Service,
  Deployment: KUBE_TYPES.Deployment,
  Gateway: KUBE_TYPES.Gateway,
};

function typeOf(kind: string): KubeResourceType {
  const t = TYPES[kind];
  if (!t) throw new StraitError('STRAIT_ERR_BUG', `BUG: the controller does not write ${kind} objects`);
  return t;
}

export function kubeObjectApi(client: KubeClient): ObjectApi {
  const body = (o: KubeObject) => o as unknown as Parameters<KubeClient['create']>[1];
  return {
    async get<T>(ref: ObjectRef): Promise<T | undefined> {
      try {
        return (await client.get(typeOf(ref.kind), ref.name, ref.namespace ? { namespace: ref.namespace } : {})) as unknown as T;
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    create: async <T extends KubeObject>(o: T) => (await client.create(typeOf(o.kind), body(o))) as unknown as T,
    replace: async <T extends KubeObject>(o: T) => (await client.replace(typeOf(o.kind), body(o))) as unknown as T,
    replaceStatus: async <T extends KubeObject>(o: T) => (await client.replace(typeOf(o.kind), body(o), { subresource: 'status' })) as unknown as T,
    async delete(ref: ObjectRef): Promise<void> {
      try {
        await client.delete(typeOf(ref.kind), ref.name, { ...(ref.namespace ? { namespace: ref.namespace } : {}), propagationPolicy: 'Background' });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    },
  };
}

export function kubePorts(client: KubeClient): KubePorts {
  return {
    objects: kubeObjectApi(client),
    review: async (token, audiences) => {
      const answer = await client.create(KUBE_TYPES.TokenReview, { metadata: {}, spec: { token, audiences } } as unknown as Parameters<KubeClient['create']>[1]);
      return ((answer as unknown as { status?: TokenReviewStatus }).status ?? {});
    },
  };
}
