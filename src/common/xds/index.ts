export * from './types.js';
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
