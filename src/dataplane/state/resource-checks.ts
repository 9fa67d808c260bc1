/**
 * What the proxy checks in each resource body it receives before the state takes it: a failed check NACKs the whole
 * response with a STRAIT_ERR_XDS_PROTOCOL message naming the resource and field, and the state keeps what it had.
 */
import { StraitError } from '../../common/errors.js';
import type { AuthorizationResource, ServiceResource, WorkloadResource } from '../../common/xds/resources.js';

/** Rejects a malformed resource body: the whole response is NACKed with this message. */
function check(cond: unknown, type: string, name: string, what: string): asserts cond {
  if (!cond) throw new StraitError('STRAIT_ERR_XDS_PROTOCOL', `${type} ${name}: ${what}`);
}

const isStr = (v: unknown): v is string => typeof v === 'string';
const isStrArr = (v: unknown): v is string[] => Array.isArray(v) && v.every(isStr);

export function checkWorkload(name: string, b: unknown): WorkloadResource {
  const w = b as WorkloadResource;
  check(w && typeof w === 'object', 'Workload', name, 'body is not an object');
  check(isStr(w.uid) && w.uid === name, 'Workload', name, 'uid must equal the resource name');
  check(isStr(w.namespace) && isStr(w.identity) && w.identity.startsWith('spiffe://'), 'Workload', name, 'namespace and a spiffe:// identity are required');
  check(isStrArr(w.addresses), 'Workload', name, 'addresses must be a list of strings');
  check(w.protocol === 'HBONE' || w.protocol === 'TCP', 'Workload', name, `protocol "${String(w.protocol)}" is not HBONE or TCP`);
  return w;
}

export function checkService(name: string, b: unknown): ServiceResource {
  const s = b as ServiceResource;
  check(s && typeof s === 'object', 'Service', name, 'body is not an object');
  check(`${s.namespace}/${s.name}` === name, 'Service', name, 'namespace/name must equal the resource name');
  check(isStrArr(s.vips) && Array.isArray(s.ports) && Array.isArray(s.endpoints), 'Service', name, 'vips, ports and endpoints are required lists');
  return s;
}

export function checkAuthorization(name: string, b: unknown): AuthorizationResource {
  const a = b as AuthorizationResource;
  check(a && typeof a === 'object', 'Authorization', name, 'body is not an object');
  check(a.type === 'authz' || a.type === 'peerauthn', 'Authorization', name, `type "${String((a as { type?: unknown }).type)}" is not authz or peerauthn`);
  if (a.type === 'authz') check(Array.isArray(a.rules) && ['ALLOW', 'DENY', 'AUDIT'].includes(a.action), 'Authorization', name, 'rules and an ALLOW/DENY/AUDIT action are required');
  if (a.type === 'authz' && a.waypointEnforced !== undefined) {
    check(isStrArr(a.waypointEnforced) && a.waypointEnforced.every((id) => id.startsWith('spiffe://')), 'Authorization', name, 'waypointEnforced must be a list of spiffe:// identities');
  }
  return a;
}
