/**
 * Loads src/common/proto/xds.proto (copied next to the compiled code by scripts/copy-assets.mjs) and
 * provides the wire types plus a hand-rolled encoder for DeltaDiscoveryResponse.
 *
 * Why hand-rolled: the server sends the same resources to many streams. Each resource is encoded to its
 * protobuf bytes ONCE (cached by ResourceEntry identity) and a response is the concatenation of those cached
 * buffers plus a few string fields. The client and the request direction use the regular proto-loader
 * (protobufjs) codecs, so both codecs are exercised against each other in the tests.
 */
import type { PackageDefinition } from '@grpc/proto-loader';
import * as grpc from '@grpc/grpc-js';
import { loadProtoDefinition } from '../grpc.js';
import { bug } from '../errors.js';
import type { ResourceEntry } from './types.js';

export const XDS_SERVICE_NAME = 'strait.xds.v1.AggregatedDiscoveryService';
export const XDS_METHOD_NAME = 'DeltaAggregatedResources';

// Decoded messages (proto-loader with keepCase: true, defaults: true).
export interface WireNode {
  id: string;
  kind: string;
  node_name: string;
  namespace: string;
  name: string;
}
export interface WireErrorDetail {
  code: number;
  message: string;
}
export interface WireDeltaRequest {
  node: WireNode | null;
  type_url: string;
  resource_names_subscribe: string[];
  resource_names_unsubscribe: string[];
  initial_resource_versions: Record<string, string>;
  response_nonce: string;
  error_detail: WireErrorDetail | null;
}
export interface WireResource {
  name: string;
  version: string;
  body: Buffer;
}
export interface WireDeltaResponse {
  system_version_info: string;
  type_url: string;
  resources: WireResource[];
  removed_resources: string[];
  nonce: string;
}

/** What the server writes to a stream; `resources` are cached encodings from encodedResourceField(). */
export interface OutgoingDeltaResponse {
  systemVersionInfo: string;
  typeUrl: string;
  resources: readonly Buffer[];
  removed: readonly string[];
  nonce: string;
}

export interface XdsProto {
  packageDefinition: PackageDefinition;
  /** The service with proto-loader codecs in both directions (what clients use). */
  service: grpc.ServiceDefinition;
  /** The same service, responses serialised by encodeDeltaResponse or passed through pre-encoded (what XdsServer registers). */
  serverService: grpc.ServiceDefinition;
  /** Generic client constructor for the service. */
  Client: grpc.ServiceClientConstructor;
}

let cached: XdsProto | undefined;

/** Loads the xDS protocol definition once per process. */
export function loadXdsProto(): XdsProto {
  if (cached) return cached;
  const packageDefinition = loadProtoDefinition('xds.proto');
  const service = packageDefinition[XDS_SERVICE_NAME] as grpc.ServiceDefinition | undefined;
  if (!service || !(XDS_METHOD_NAME in service)) {
    throw bug(`${XDS_SERVICE_NAME}/${XDS_METHOD_NAME} missing from xds.proto`);
  }
  const method = (service as Record<string, grpc.MethodDefinition<unknown, unknown>>)[XDS_METHOD_NAME]!;
  const serverService: grpc.ServiceDefinition = {
    [XDS_METHOD_NAME]: {
      ...method,
      // The server encodes each response itself (to know its size before writing); plain objects still work.
      responseSerialize: (value: OutgoingDeltaResponse | Buffer) => (Buffer.isBuffer(value) ? value : encodeDeltaResponse(value)),
    },
  };
  const Client = grpc.makeGenericClientConstructor(service, 'AggregatedDiscoveryService');
  cached = { packageDefinition, service, serverService, Client };
  return cached;
}

// --- protobuf encoding -------------------------------------------------------------------------------

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, offset: number, n: number): number {
  while (n >= 0x80) {
    buf[offset++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[offset++] = n;
  return offset;
}

/** Size of a length-delimited field (tag, length, payload) whose tag fits one byte. */
function fieldSize(payloadLength: number): number {
  return 1 + varintSize(payloadLength) + payloadLength;
}

function writeStringField(buf: Buffer, offset: number, tag: number, value: string, byteLength: number): number {
  buf[offset++] = tag;
  offset = writeVarint(buf, offset, byteLength);
  return offset + buf.write(value, offset, 'utf8');
}

// Tags: (field number << 3) | wire type 2 (length-delimited).
const TAG_1 = 0x0a;
const TAG_2 = 0x12;
const TAG_3 = 0x1a;
const TAG_4 = 0x22;
const TAG_5 = 0x2a;

const encodedResources = new WeakMap<ResourceEntry, Buffer>();

/**
 * `DeltaDiscoveryResponse.resources` field bytes (tag 3 + length + Resource{name, version, body}) for one
 * entry. Cached by object identity: a resource is JSON-encoded once however many streams receive it.
 */
export function encodedResourceField(entry: ResourceEntry): Buffer {
  let out = encodedResources.get(entry);
  if (out) return out;
  const body = Buffer.from(JSON.stringify(entry.body ?? null), 'utf8');
  const nameLen = Buffer.byteLength(entry.name, 'utf8');
  const versionLen = Buffer.byteLength(entry.version, 'utf8');
  let inner = 0;
  if (nameLen) inner += fieldSize(nameLen);
  if (versionLen) inner += fieldSize(versionLen);
  if (body.length) inner += fieldSize(body.length);
  out = Buffer.allocUnsafe(fieldSize(inner));
  let o = 0;
  out[o++] = TAG_3;
  o = writeVarint(out, o, inner);
  if (nameLen) o = writeStringField(out, o, TAG_1, entry.name, nameLen);
  if (versionLen) o = writeStringField(out, o, TAG_2, entry.version, versionLen);
  if (body.length) {
    out[o++] = TAG_3;
    o = writeVarint(out, o, body.length);
    o += body.copy(out, o);
  }
  if (o !== out.length) throw bug(`resource encoding wrote ${o} of ${out.length} bytes`);
  encodedResources.set(entry, out);
  return out;
}

/** Serialises a DeltaDiscoveryResponse from pre-encoded resources. */
export function encodeDeltaResponse(res: OutgoingDeltaResponse): Buffer {
  const svLen = Buffer.byteLength(res.systemVersionInfo, 'utf8');
  const typeLen = Buffer.byteLength(res.typeUrl, 'utf8');
  const nonceLen = Buffer.byteLength(res.nonce, 'utf8');
  let size = 0;
  if (svLen) size += fieldSize(svLen);
  if (typeLen) size += fieldSize(typeLen);
  for (const r of res.resources) size += r.length;
  const removedLens = res.removed.map((n) => Buffer.byteLength(n, 'utf8'));
  for (const len of removedLens) size += fieldSize(len);
  if (nonceLen) size += fieldSize(nonceLen);
  const buf = Buffer.allocUnsafe(size);
  let o = 0;
  if (svLen) o = writeStringField(buf, o, TAG_1, res.systemVersionInfo, svLen);
  if (typeLen) o = writeStringField(buf, o, TAG_2, res.typeUrl, typeLen);
  for (const r of res.resources) o += r.copy(buf, o);
  for (let i = 0; i < res.removed.length; i++) o = writeStringField(buf, o, TAG_4, res.removed[i]!, removedLens[i]!);
  if (nonceLen) o = writeStringField(buf, o, TAG_5, res.nonce, nonceLen);
  if (o !== size) throw bug(`response encoding wrote ${o} of ${size} bytes`);
  return buf;
}
