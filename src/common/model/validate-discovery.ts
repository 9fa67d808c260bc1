/**
 * discovery.k8s.io/v1 EndpointSlice: the endpoints of a Service without a selector (Kubernetes' own slices of a
 * selector Service mirror its pods, which Strait reads directly). Limits are the API server's.
 */
import { isIP } from 'node:net';
import type { EndpointSlice, EndpointSliceEndpoint, EndpointSlicePort, ObjectMeta } from './types.js';
import { at, bool, compact, describe, keyed, list, nonEmpty, oneOf, port, str, struct, uniqueIn, type Ctx, type Raw } from './fields.js';
import { DNS1123_LABEL_TEXT, isDns1123Label } from './formats.js';

/** The label that ties a slice to its Service (set by whoever writes the slice). */
export const LABEL_SERVICE_NAME = 'kubernetes.io/service-name';
/** The label Kubernetes' own EndpointSlice controller puts on the slices it manages. */
export const LABEL_MANAGED_BY = 'endpointslice.kubernetes.io/managed-by';
export const KUBE_ENDPOINTSLICE_CONTROLLER = 'endpointslice-controller.k8s.io';

const ADDRESS_TYPES = ['IPv4', 'IPv6', 'FQDN'] as const;
const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;
const MAX_ENDPOINTS = 1000;
const MAX_PORTS = 100;
const MAX_ADDRESSES = 100;

export function validateEndpointSlice(ctx: Ctx, raw: Raw, meta: ObjectMeta): EndpointSlice {
  const addressType = oneOf(ctx, raw['addressType'], 'addressType', ADDRESS_TYPES, true);
  const endpoints = list(ctx, raw['endpoints'], 'endpoints', (x, p) => endpoint(ctx, x, p, addressType)) ?? [];
  const ports = list(ctx, raw['ports'], 'ports', (x, p) => slicePort(ctx, x, p)) ?? [];
  if (Array.isArray(raw['endpoints']) && raw['endpoints'].length > MAX_ENDPOINTS) {
    ctx.error('endpoints', `has ${raw['endpoints'].length} endpoints; an EndpointSlice holds at most ${MAX_ENDPOINTS} (split them over several slices with the same ${LABEL_SERVICE_NAME} label)`);
  }
  if (Array.isArray(raw['ports'])) {
    if (raw['ports'].length > MAX_PORTS) ctx.error('ports', `has ${raw['ports'].length} ports; an EndpointSlice holds at most ${MAX_PORTS}`);
    uniqueIn(ctx, raw['ports'], 'ports', 'name', (item) => (typeof item['name'] === 'string' ? item['name'] : ''));
  }
  if (addressType === 'FQDN') {
    ctx.warn('addressType', `FQDN endpoints are not resolved by Strait, so this slice adds no endpoints to its Service; list the addresses (addressType IPv4 or IPv6) instead`);
  }
  const service = meta.labels[LABEL_SERVICE_NAME];
  if (service === undefined || service === '') {
    ctx.warn(keyed('metadata.labels', LABEL_SERVICE_NAME), `is missing, so this slice belongs to no Service and is not used; set it to the name of the Service (in the same namespace) whose endpoints these are`);
  }
  return { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: meta, addressType: addressType ?? 'IPv4', endpoints, ports };
}

function endpoint(ctx: Ctx, v: unknown, path: string, addressType: EndpointSlice['addressType'] | undefined): EndpointSliceEndpoint | undefined {
  const e = struct(ctx, v, path, {
    known: ['addresses', 'conditions', 'targetRef', 'nodeName'],
    silent: ['hostname', 'zone', 'hints', 'deprecatedTopology'],
  }, true);
  if (!e) return undefined;
  const addrPath = at(path, 'addresses');
  const addresses = list(ctx, e['addresses'], addrPath, (x, p) => address(ctx, x, p, addressType), true) ?? [];
  if (Array.isArray(e['addresses']) && (e['addresses'].length === 0 || e['addresses'].length > MAX_ADDRESSES)) {
    ctx.error(addrPath, `must hold 1 to ${MAX_ADDRESSES} addresses, has ${e['addresses'].length}`);
  }
  const c = struct(ctx, e['conditions'], at(path, 'conditions'), { known: ['ready', 'serving', 'terminating'], silent: [] });
  const conditions = compact({
    ready: bool(ctx, c?.['ready'], at(path, 'conditions.ready')),
    serving: bool(ctx, c?.['serving'], at(path, 'conditions.serving')),
    terminating: bool(ctx, c?.['terminating'], at(path, 'conditions.terminating')),
  });
  const refPath = at(path, 'targetRef');
  const r = struct(ctx, e['targetRef'], refPath, { known: ['kind', 'name', 'namespace'], silent: ['uid', 'apiVersion', 'resourceVersion', 'fieldPath'] });
  const targetRef = r
    ? compact({ kind: str(ctx, r['kind'], at(refPath, 'kind')) ?? '', name: nonEmpty(ctx, r['name'], at(refPath, 'name'), true) ?? '', namespace: str(ctx, r['namespace'], at(refPath, 'namespace')) || undefined })
    : undefined;
  return compact({ addresses, conditions, targetRef, nodeName: str(ctx, e['nodeName'], at(path, 'nodeName')) || undefined });
}

function address(ctx: Ctx, v: unknown, path: string, addressType: EndpointSlice['addressType'] | undefined): string | undefined {
  const s = nonEmpty(ctx, v, path, true);
  if (s === undefined || addressType === undefined || addressType === 'FQDN') return s;
  const family = isIP(s);
  const want = addressType === 'IPv4' ? 4 : 6;
  if (family !== want) {
    ctx.error(path, `${describe(s)} is not an ${addressType} address (the slice's addressType)${family !== 0 ? `; put ${family === 4 ? 'IPv4' : 'IPv6'} addresses in a slice of that addressType` : ''}`);
    return undefined;
  }
  return s;
}

function slicePort(ctx: Ctx, v: unknown, path: string): EndpointSlicePort | undefined {
  const p = struct(ctx, v, path, { known: ['name', 'port', 'protocol', 'appProtocol'], silent: [] }, true);
  if (!p) return undefined;
  const name = str(ctx, p['name'], at(path, 'name'));
  if (name !== undefined && name !== '' && !isDns1123Label(name)) {
    ctx.error(at(path, 'name'), `${describe(name)} is not ${DNS1123_LABEL_TEXT} (it must equal the name of the Service port)`);
  }
  const number = port(ctx, p['port'], at(path, 'port'));
  if (number === undefined && (p['port'] === undefined || p['port'] === null)) {
    ctx.warn(at(path, 'port'), `is not set ("all ports"), which Strait cannot route (it needs the endpoint's port); this port of the slice is not used: set the port number`);
  }
  return compact({
    name: name || undefined,
    port: number,
    protocol: oneOf(ctx, p['protocol'], at(path, 'protocol'), PROTOCOLS) ?? 'TCP',
    appProtocol: str(ctx, p['appProtocol'], at(path, 'appProtocol')),
  });
}
