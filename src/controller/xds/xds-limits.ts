/**
 * What one xDS peer may make the server hold, and how a request is checked against it. Defaults are sized for a
 * 10,000-pod mesh (12,500 resources: 10,000 workloads, 2,000 services, 500 policies; names under 600 bytes) with
 * room to spare; each limit names the controller flag that raises it, so a refusal says how to fix it.
 */
import * as grpc from '@grpc/grpc-js';
import { StraitError } from '../../common/errors.js';
import type { WireDeltaRequest } from '../../common/xds/xds-proto.js';

export interface XdsLimits {
  /** Streams open at once per credential (node or waypoint token). */
  maxStreamsPerCredential: number;
  /** xDS streams open at once on one HTTP/2 connection. */
  maxStreamsPerConnection: number;
  /** resource_names_subscribe + resource_names_unsubscribe of one request. */
  maxNamesPerRequest: number;
  /** Explicitly subscribed names of one stream, all types together. */
  maxNamesPerStream: number;
  /** Bytes of one resource name, version, type URL or node field. */
  maxNameBytes: number;
  /** initial_resource_versions entries of one request. */
  maxInitialVersions: number;
  /** Bytes of one request message (the gRPC receive limit). */
  maxRequestBytes: number;
  /** Bytes handed to the transport and not yet taken by the network, per stream, before pushes are coalesced. */
  maxQueuedBytes: number;
  /** Responses of one type sent and not yet ACKed or NACKed before pushes of that type are coalesced. */
  maxUnackedResponses: number;
  /** A stream that has not read what it was sent, or not answered a response, for this long is disconnected. */
  stallTimeoutMs: number;
  /** A stream that sends no first request within this time is closed. */
  firstRequestTimeoutMs: number;
  /** Initial-sync slots (large first responses not yet taken by the transport) one credential may hold at once. */
  maxInitialSyncsPerCredential: number;
}

export const DEFAULT_XDS_LIMITS: Readonly<XdsLimits> = {
  maxStreamsPerCredential: 64,
  maxStreamsPerConnection: 8,
  maxNamesPerRequest: 20_000,
  maxNamesPerStream: 50_000,
  maxNameBytes: 1024,
  maxInitialVersions: 50_000,
  maxRequestBytes: 4 * 1024 * 1024,
  maxQueuedBytes: 4 * 1024 * 1024,
  maxUnackedResponses: 16,
  stallTimeoutMs: 30_000,
  firstRequestTimeoutMs: 10_000,
  maxInitialSyncsPerCredential: 2,
};

/** The controller flag that sets each limit (named in refusals and log lines). */
export const XDS_LIMIT_FLAGS: Readonly<Record<keyof XdsLimits, string>> = {
  maxStreamsPerCredential: '--xds-max-streams-per-credential',
  maxStreamsPerConnection: '--xds-max-streams-per-connection',
  maxNamesPerRequest: '--xds-max-names-per-request',
  maxNamesPerStream: '--xds-max-names-per-stream',
  maxNameBytes: '--xds-max-name-length',
  maxInitialVersions: '--xds-max-initial-versions',
  maxRequestBytes: '--xds-max-message-size',
  maxQueuedBytes: '--xds-max-queued-bytes',
  maxUnackedResponses: '--xds-max-unacked',
  stallTimeoutMs: '--xds-stall-timeout',
  firstRequestTimeoutMs: '--xds-first-request-timeout',
  maxInitialSyncsPerCredential: '--xds-max-initial-syncs-per-credential',
};

/** Metric label of each limit (strait_xds_limit_exceeded_total{limit}). */
export type XdsLimitName =
  | 'streams_per_credential'
  | 'streams_per_connection'
  | 'names_per_request'
  | 'names_per_stream'
  | 'name_length'
  | 'initial_versions'
  | 'message_size'
  | 'first_request_timeout';

/** A request or stream over a limit: ends that stream only, with `status` and a message naming the flag. */
export class XdsLimitError extends StraitError {
  constructor(
    readonly limit: XdsLimitName,
    readonly status: grpc.status,
    message: string,
  ) {
    super('STRAIT_ERR_XDS_LIMIT', message);
  }
}

/** Completes and validates limits (every value a positive integer). */
export function resolveXdsLimits(partial: Partial<XdsLimits> = {}): XdsLimits {
  const out = { ...DEFAULT_XDS_LIMITS, ...partial };
  for (const [k, v] of Object.entries(out) as [keyof XdsLimits, number][]) {
    if (!Number.isInteger(v) || v < 1) {
      throw new StraitError('STRAIT_ERR_CONFIG', `xDS limit ${k} (${XDS_LIMIT_FLAGS[k]}) must be an integer >= 1 (got ${v})`);
    }
  }
  return out;
}

function tooLong(what: string, value: string, limits: XdsLimits): XdsLimitError | undefined {
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes <= limits.maxNameBytes) return undefined;
  return new XdsLimitError(
    'name_length',
    grpc.status.INVALID_ARGUMENT,
    `${what} "${value.slice(0, 40)}…" is ${bytes} bytes; the limit is ${limits.maxNameBytes} (raise it with ${XDS_LIMIT_FLAGS.maxNameBytes})`,
  );
}

/** Checks one request's sizes (not the per-stream total); returns the first violation. */
export function checkRequest(req: WireDeltaRequest, limits: XdsLimits): XdsLimitError | undefined {
  const type = req.type_url.slice(0, 100);
  const names = req.resource_names_subscribe.length + req.resource_names_unsubscribe.length;
  if (names > limits.maxNamesPerRequest) {
    return new XdsLimitError(
      'names_per_request',
      grpc.status.RESOURCE_EXHAUSTED,
      `a DeltaDiscoveryRequest for ${type} names ${names} resources; the limit is ${limits.maxNamesPerRequest} per request (raise it with ${XDS_LIMIT_FLAGS.maxNamesPerRequest}, or subscribe in several requests)`,
    );
  }
  const initial = req.initial_resource_versions ?? {};
  let entries = 0;
  for (const _ in initial) entries++;
  if (entries > limits.maxInitialVersions) {
    return new XdsLimitError(
      'initial_versions',
      grpc.status.RESOURCE_EXHAUSTED,
      `a DeltaDiscoveryRequest for ${type} carries ${entries} initial_resource_versions; the limit is ${limits.maxInitialVersions} (raise it with ${XDS_LIMIT_FLAGS.maxInitialVersions})`,
    );
  }
  const n = req.node;
  const fields: [string, string][] = [['type_url', req.type_url], ['response_nonce', req.response_nonce]];
  if (n) fields.push(['node.id', n.id], ['node.kind', n.kind], ['node.node_name', n.node_name], ['node.namespace', n.namespace], ['node.name', n.name]);
  for (const [what, v] of fields) {
    const e = v ? tooLong(what, v, limits) : undefined;
    if (e) return e;
  }
  for (const name of req.resource_names_subscribe) {
    const e = tooLong('resource name', name, limits);
    if (e) return e;
  }
  for (const name of req.resource_names_unsubscribe) {
    const e = tooLong('resource name', name, limits);
    if (e) return e;
  }
  for (const name in initial) {
    const e = tooLong('resource name', name, limits) ?? tooLong(`version of ${name.slice(0, 40)}`, initial[name] ?? '', limits);
    if (e) return e;
  }
  if (req.error_detail && Buffer.byteLength(req.error_detail.message ?? '', 'utf8') > 64 * 1024) {
    return new XdsLimitError('message_size', grpc.status.INVALID_ARGUMENT, 'a NACK message is longer than 64 KiB; shorten error_detail.message');
  }
  return undefined;
}
