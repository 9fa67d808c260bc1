/** The labels and names Istio's ambient mode reads, as users write them. */
export const DATAPLANE_MODE_LABEL = 'istio.io/dataplane-mode';
export const AMBIENT = 'ambient';
export const USE_WAYPOINT_LABEL = 'istio.io/use-waypoint';
export const WAYPOINT_FOR_LABEL = 'istio.io/waypoint-for';
export const WAYPOINT_FOR_VALUES = ['service', 'workload', 'all', 'none'] as const;
export type WaypointFor = (typeof WAYPOINT_FOR_VALUES)[number];
export const WAYPOINT_CLASS = 'istio-waypoint';
/** The listener every waypoint Gateway has (Istio's): HBONE on 15008. */
export const WAYPOINT_LISTENER = { name: 'mesh', port: 15008, protocol: 'HBONE' } as const;
