export * from './types.js';
export { diffResourceSets, EMPTY_RESOURCE_SET, type ResourceDiff } from './resource-diff.js';
export {
  loadXdsProto,
  encodeDeltaResponse,
  encodedResourceField,
  XDS_SERVICE_NAME,
  XDS_METHOD_NAME,
  type XdsProto,
  type WireDeltaRequest,
  type WireDeltaResponse,
  type WireNode,
  type WireResource,
  type WireErrorDetail,
  type OutgoingDeltaResponse,
} from './xds-proto.js';
export {
  XdsServer,
  DEFAULT_XDS_DEBOUNCE_MS,
  XDS_DEBOUNCE_MAX_FACTOR,
  DEFAULT_XDS_MAX_CONCURRENT_INITIAL_SYNCS,
  DEFAULT_XDS_LARGE_SYNC_RESOURCES,
  XDS_TRANSPORT_RECEIVE_FACTOR,
  type XdsServerOptions,
  type XdsPrincipal,
} from './xds-server.js';
export {
  DEFAULT_XDS_LIMITS,
  XDS_LIMIT_FLAGS,
  XdsLimitError,
  resolveXdsLimits,
  type XdsLimits,
  type XdsLimitName,
} from './xds-limits.js';
export {
  XdsClient,
  DEFAULT_XDS_INITIAL_BACKOFF_MS,
  DEFAULT_XDS_MAX_BACKOFF_MS,
  DEFAULT_XDS_MAX_RECEIVE_BYTES,
  DEFAULT_XDS_MAX_RESOURCES_PER_RESPONSE,
  DEFAULT_XDS_MAX_RESOURCES_HELD,
  DEFAULT_XDS_MAX_NAME_BYTES,
  MAX_UNSENT_REQUESTS,
  type XdsClientLimits,
  type XdsClientOptions,
  type XdsClientEvents,
  type XdsSubscription,
} from './xds-client.js';
