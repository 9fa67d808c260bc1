/** `Status` bodies exactly as the Kubernetes API server writes them for failures. */
import { groupResource, type KindDef } from './registry.js';

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: { reason?: string; message?: string; field?: string }[];
  retryAfterSeconds?: number;
}

/** A failure the double answers with: HTTP code + Status body. */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusDetails,
    /** For 410 on a list continue: the token to continue inconsistently. */
    readonly continueToken?: string,
  ) {
    super(message);
  }

  toStatus(): Record<string, unknown> {
    return statusBody(this.code, this.reason, this.message, this.details, this.continueToken);
  }
}

export function statusBody(code: number, reason: string, message: string, details?: StatusDetails, continueToken?: string): Record<string, unknown> {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: continueToken ? { continue: continueToken } : {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

export function successStatus(details: StatusDetails): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details };
}

function det(k: KindDef, name?: string): StatusDetails {
  return { ...(name !== undefined ? { name } : {}), ...(k.group ? { group: k.group } : {}), kind: k.resource };
}

export const errors = {
  notFound: (k: KindDef, name: string) => new ApiError(404, 'NotFound', `${groupResource(k)} "${name}" not found`, det(k, name)),
  resourceNotFound: () => new ApiError(404, 'NotFound', 'the server could not find the requested resource', {}),
  namespaceNotFound: (ns: string) => new ApiError(404, 'NotFound', `namespaces "${ns}" not found`, { name: ns, kind: 'namespaces' }),
  alreadyExists: (k: KindDef, name: string) => new ApiError(409, 'AlreadyExists', `${groupResource(k)} "${name}" already exists`, det(k, name)),
  conflict: (k: KindDef, name: string) =>
    new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${groupResource(k)} "${name}": the object has been modified; please apply your changes to the latest version and try again`, det(k, name)),
  preconditionFailed: (k: KindDef, name: string, what: string) =>
    new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${groupResource(k)} "${name}": Precondition failed: ${what}`, det(k, name)),
  invalid: (k: KindDef, name: string, field: string, message: string) =>
    new ApiError(422, 'Invalid', `${k.kind} "${name}" is invalid: ${field}: ${message}`, { ...det(k, name), kind: k.kind, causes: [{ reason: 'FieldValueInvalid', message, field }] }),
  badRequest: (message: string) => new ApiError(400, 'BadRequest', message),
  expiredWatch: (rv: string, current: number) => new ApiError(410, 'Expired', `too old resource version: ${rv} (${current})`),
  expiredList: (rv: string) => new ApiError(410, 'Expired', `The resourceVersion for the provided list is too old (${rv}).`),
  expiredContinue: (token: string) =>
    new ApiError(
      410,
      'Expired',
      'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.',
      undefined,
      token,
    ),
  tooLargeResourceVersion: (rv: string, current: number) =>
    new ApiError(504, 'Timeout', `Timeout: Too large resource version: ${rv}, current: ${current}`, { causes: [{ reason: 'ResourceVersionTooLarge', message: `Too large resource version` }], retryAfterSeconds: 1 }),
  methodNotAllowed: (method: string) => new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`, { causes: [{ message: method }] }),
  unsupportedMediaType: (ct: string, accepted: string[]) =>
    new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`, { causes: [{ message: ct }] }),
  tooLarge: () => new ApiError(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728'),
  unauthorized: () => new ApiError(401, 'Unauthorized', 'Unauthorized'),
};

/** The 403 text of the RBAC authorizer: `pods "x" is forbidden: User "u" cannot get resource "pods" in API group "" in the namespace "ns"`. */
export function forbidden(a: { user: string; verb: string; group: string; resource: string; subresource?: string; namespace?: string; name?: string }): ApiError {
  const gr = a.group === '' ? a.resource : `${a.resource}.${a.group}`;
  const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const scope = a.namespace ? `in the namespace "${a.namespace}"` : 'at the cluster scope';
  const subject = a.name ? `${gr} "${a.name}"` : gr;
  return new ApiError(403, 'Forbidden', `${subject} is forbidden: User "${a.user}" cannot ${a.verb} resource "${res}" in API group "${a.group}" ${scope}`, {
    ...(a.name ? { name: a.name } : {}),
    ...(a.group ? { group: a.group } : {}),
    kind: a.resource,
  });
}
