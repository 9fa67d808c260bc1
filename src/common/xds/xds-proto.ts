/**
 * Loads src/common/proto/xds.proto (copied next to the compiled code by scripts/copy-assets.mjs) and
 * provides the wire types plus a hand-rolled encoder for DeltaDiscoveryResponse.
 *
 * Why hand-rolled: the server sends the same resources to many streams. Each resource is encoded to its
 * protobuf bytes ONCE per body encoding (cached by ResourceEntry identity), a whole snapshot once per encoding
 * (cached by ResourceSet identity, optionally DEFLATEd: `packed_resources`), and a response is the concatenation
 * of those cached buffers plus a few string fields. Which encoding a stream gets is its Node.accept. The client and the request direction use the regular proto-loader
 * (protobufjs) codecs, so both codecs are exercised against each other in the tests.
 */
import { deflateRawSync, inflateRawSync, constants as zlibConstants } from 'node:zlib';
import type { PackageDefinition } from '@grpc/proto-loader';
import * as grpc from '@grpc/grpc-js';
import { loadProtoDefinition } from '../grpc.js';
import { StraitError, bug, errorMessage } from '../errors.js';
import type { ResourceEntry, ResourceSet } from './types.js';
import { BodyCodecError, encodeBody, hasProtoBody } from './body-codec.js';

export const XDS_SERVICE_NAME = 'strait.xds.v1.AggregatedDiscoveryService';
export const XDS_METHOD_NAME = 'DeltaAggregatedResources';

// Decoded messages (proto-loader with keepCase: true, defaults: true).
export interface WireNode {
  id: string;
  kind: string;
  node_name: string;
  namespace: string;
  name: string;
  /** Encodings the proxy reads besides JSON (ACCEPT_*); absent or [] from proxies older than the field. */
  accept?: string[];
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
  /** Set (and `body` empty) when the controller sent the protobuf body; absent from controllers before it. */
  proto_body?: Buffer;
}
export interface WireDeltaResponse {
  system_version_info: string;
  type_url: string;
  resources: WireResource[];
  removed_resources: string[];
  nonce: string;
  /** Raw-DEFLATEd ResourceList; empty or absent when the response has none. */
  packed_resources?: Buffer;
}

/** Node.accept: the proxy reads Resource.proto_body. */
export const ACCEPT_PROTO_BODIES = 'proto-bodies';
/** Node.accept: the proxy reads DeltaDiscoveryResponse.packed_resources. */
export const ACCEPT_PACKED_DEFLATE = 'packed-deflate';

/** How a stream's bodies are sent: decided once per stream from its Node.accept. */
export interface StreamEncoding {
  protoBodies: boolean;
  packed: boolean;
}
export const JSON_ENCODING: Readonly<StreamEncoding> = { protoBodies: false, packed: false };

/** What a proxy's Node.accept asks for. Unknown entries are ignored (a newer proxy may know more). */
export function streamEncoding(accept: readonly string[] | undefined): StreamEncoding {
  return { protoBodies: accept?.includes(ACCEPT_PROTO_BODIES) ?? false, packed: accept?.includes(ACCEPT_PACKED_DEFLATE) ?? false };
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

const TAG_4_BYTES = 0x22;
const TAG_6 = 0x32;

/** zlib level of packed snapshots: most of the gain at a fraction of the default level's time (bench/README.md). */
export const PACKED_DEFLATE_LEVEL = zlibConstants.Z_BEST_SPEED;

const jsonResources = new WeakMap<ResourceEntry, Buffer>();
const protoResources = new WeakMap<ResourceEntry, Buffer>();

/** Resource{name, version, body | proto_body} as a `resources` field (tag 3 + length + message). */
function resourceField(entry: ResourceEntry, body: Buffer, bodyTag: number): Buffer {
  const nameLen = Buffer.byteLength(entry.name, 'utf8');
  const versionLen = Buffer.byteLength(entry.version, 'utf8');
  let inner = 0;
  if (nameLen) inner += fieldSize(nameLen);
  if (versionLen) inner += fieldSize(versionLen);
  // A proto body is written even when empty (a message of defaults): an empty `body` then says "see proto_body".
  if (body.length || bodyTag === TAG_4_BYTES) inner += fieldSize(body.length);
  const out = Buffer.allocUnsafe(fieldSize(inner));
  let o = 0;
  out[o++] = TAG_3;
  o = writeVarint(out, o, inner);
  if (nameLen) o = writeStringField(out, o, TAG_1, entry.name, nameLen);
  if (versionLen) o = writeStringField(out, o, TAG_2, entry.version, versionLen);
  if (body.length || bodyTag === TAG_4_BYTES) {
    out[o++] = bodyTag;
    o = writeVarint(out, o, body.length);
    o += body.copy(out, o);
  }
  if (o !== out.length) throw bug(`resource encoding wrote ${o} of ${out.length} bytes`);
  return out;
}

/**
 * `DeltaDiscoveryResponse.resources` field bytes (tag 3 + length + Resource{name, version, body}) for one
 * entry. Cached by object identity: a resource is JSON-encoded once however many streams receive it.
 */
export function encodedResourceField(entry: ResourceEntry): Buffer {
  let out = jsonResources.get(entry);
  if (out) return out;
  out = resourceField(entry, Buffer.from(JSON.stringify(entry.body ?? null), 'utf8'), TAG_3);
  jsonResources.set(entry, out);
  return out;
}

/** Called when a body cannot be sent as protobuf and goes as JSON (the server logs it, rate-limited). */
export type ProtoFallbackHook = (typeUrl: string, name: string, why: string) => void;

/**
 * The `resources` field of one entry in a stream's encoding: the protobuf body when the stream reads them and the
 * type's schema carries this body exactly, else JSON. Cached by object identity, like encodedResourceField.
 */
export function encodedResourceFieldAs(entry: ResourceEntry, typeUrl: string, enc: StreamEncoding, onFallback?: ProtoFallbackHook): Buffer {
  if (!enc.protoBodies || !hasProtoBody(typeUrl)) return encodedResourceField(entry);
  let out = protoResources.get(entry);
  if (out) return out;
  try {
    out = resourceField(entry, encodeBody(typeUrl, entry.body), TAG_4_BYTES);
  } catch (err) {
    if (!(err instanceof BodyCodecError)) throw err;
    onFallback?.(typeUrl, entry.name, err.message);
    out = encodedResourceField(entry);
  }
  protoResources.set(entry, out);
  return out;
}

/** A whole snapshot encoded for one (type, encoding): cached per ResourceSet object (a snapshot never changes). */
const snapshots = new WeakMap<ResourceSet, Map<string, Buffer>>();

/**
 * Every entry of `snapshot`, in its iteration order, as response bytes for a stream that holds none of them: the
 * concatenated `resources` fields, or with enc.packed one `packed_resources` field holding them DEFLATEd. Built once
 * per (snapshot, type, encoding) and shared by every stream that needs the whole snapshot (an initial sync).
 */
export function encodedSnapshot(snapshot: ResourceSet, typeUrl: string, enc: StreamEncoding, onFallback?: ProtoFallbackHook): Buffer {
  let byKey = snapshots.get(snapshot);
  if (!byKey) {
    byKey = new Map();
    snapshots.set(snapshot, byKey);
  }
  const key = `${typeUrl} ${enc.protoBodies && hasProtoBody(typeUrl) ? 'p' : 'j'}${enc.packed ? 'z' : ''}`;
  let out = byKey.get(key);
  if (out) return out;
  const parts: Buffer[] = [];
  for (const entry of snapshot.values()) parts.push(encodedResourceFieldAs(entry, typeUrl, enc, onFallback));
  const plain = Buffer.concat(parts);
  if (enc.packed) {
    const packed = deflateRawSync(plain, { level: PACKED_DEFLATE_LEVEL });
    out = Buffer.allocUnsafe(fieldSize(packed.length));
    let o = 0;
    out[o++] = TAG_6;
    o = writeVarint(out, o, packed.length);
    o += packed.copy(out, o);
  } else {
    out = plain;
  }
  byKey.set(key, out);
  return out;
}

// --- decoding packed resources (the client) -----------------------------------------------------------------

function readVarint(buf: Buffer, pos: { o: number }, end: number): number {
  let result = 0;
  let mul = 1;
  for (let i = 0; i < 8; i++) {
    if (pos.o >= end) throw new Error('truncated varint');
    const b = buf[pos.o++]!;
    result += (b & 0x7f) * mul;
    if (b < 0x80) return result;
    mul *= 128;
  }
  throw new Error('varint too long');
}

function skipField(buf: Buffer, wireType: number, pos: { o: number }, end: number): void {
  if (wireType === 0) readVarint(buf, pos, end);
  else if (wireType === 1) pos.o += 8;
  else if (wireType === 2) pos.o += readVarint(buf, pos, end);
  else if (wireType === 5) pos.o += 4;
  else throw new Error(`unsupported wire type ${wireType}`);
  if (pos.o > end) throw new Error('truncated field');
}

/** One Resource message in buf[start, end). */
function decodeResource(buf: Buffer, start: number, end: number): WireResource {
  const pos = { o: start };
  const r: WireResource = { name: '', version: '', body: Buffer.alloc(0) };
  while (pos.o < end) {
    const tag = readVarint(buf, pos, end);
    const field = tag >>> 3;
    const wt = tag & 7;
    if (wt !== 2 || field < 1 || field > 4) {
      skipField(buf, wt, pos, end);
      continue;
    }
    const len = readVarint(buf, pos, end);
    if (pos.o + len > end) throw new Error('truncated Resource field');
    const s = pos.o;
    pos.o += len;
    if (field === 1) r.name = buf.toString('utf8', s, s + len);
    else if (field === 2) r.version = buf.toString('utf8', s, s + len);
    else if (field === 3) r.body = buf.subarray(s, s + len);
    else r.proto_body = buf.subarray(s, s + len);
  }
  return r;
}

/**
 * The resources of a `packed_resources` field: at most maxResources of them decoded, `total` counts all. Refuses
 * (StraitError STRAIT_ERR_XDS_LIMIT) more than maxBytes once inflated, and (STRAIT_ERR_XDS_PROTOCOL) anything
 * malformed.
 */
export function decodePackedResources(packed: Buffer, maxBytes: number, maxResources: number): { resources: WireResource[]; total: number } {
  let plain: Buffer;
  try {
    plain = inflateRawSync(packed, { maxOutputLength: maxBytes });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new StraitError('STRAIT_ERR_XDS_LIMIT', `packed resources inflate to more than ${maxBytes} bytes, the most this proxy accepts in one response (--xds-max-message-size)`);
    }
    throw new StraitError('STRAIT_ERR_XDS_PROTOCOL', `packed resources are not valid raw DEFLATE data: ${errorMessage(err)}`);
  }
  const out: WireResource[] = [];
  let total = 0;
  const pos = { o: 0 };
  try {
    while (pos.o < plain.length) {
      const tag = readVarint(plain, pos, plain.length);
      if (tag !== TAG_3) {
        skipField(plain, tag & 7, pos, plain.length);
        continue;
      }
      const len = readVarint(plain, pos, plain.length);
      if (pos.o + len > plain.length) throw new Error('truncated Resource');
      if (++total <= maxResources) out.push(decodeResource(plain, pos.o, pos.o + len));
      pos.o += len;
    }
  } catch (err) {
    if (err instanceof StraitError) throw err;
    throw new StraitError('STRAIT_ERR_XDS_PROTOCOL', `packed resources are malformed: ${errorMessage(err)}`);
  }
  return { resources: out, total };
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
