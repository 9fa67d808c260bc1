/**
 * The mesh config in force: the `mesh` key of the ConfigMap named `istio` in the root namespace, as Istio reads it.
 * Any other ConfigMap is not read (the enforcement report says so). Pure.
 */
import type { ConfigMap, MeshConfig } from '../../common/model/types.js';
import { MESH_CONFIGMAP_NAME } from '../../common/model/validate-mesh-config.js';

export interface MeshSettings {
  config: MeshConfig;
  /** "ns/name" of the ConfigMap read, if any. */
  source?: string;
  selectorPolicies: 'waypoint' | 'istio';
}

export function meshSettings(configMaps: readonly ConfigMap[], rootNamespace: string): MeshSettings {
  const cm = configMaps.find((c) => c.metadata.name === MESH_CONFIGMAP_NAME && c.metadata.namespace === rootNamespace);
  const config = cm?.mesh ?? { extensionProviders: [] };
  return {
    config,
    ...(cm ? { source: `${rootNamespace}/${MESH_CONFIGMAP_NAME}` } : {}),
    selectorPolicies: config.strait?.selectorPolicies ?? 'waypoint',
  };
}

/** Whether this ConfigMap is the one Strait reads. */
export function isMeshConfigMap(cm: ConfigMap, rootNamespace: string): boolean {
  return cm.metadata.name === MESH_CONFIGMAP_NAME && cm.metadata.namespace === rootNamespace;
}
