import * as grpc from '@grpc/grpc-js';
import { StraitError, errorMessage, isStraitError } from '../common/errors.js';
import { loadProto, metadataValue, serviceOf } from '../common/grpc.js';
import { silentLogger, type Logger } from '../common/log.js';
import { RateLimitedLog } from '../common/rate-limited-log.js';
import type { MeshObject } from '../common/model/types.js';
import { SpiffeId, type CertificateAuthority } from '../identity/index.js';
import type { ControllerMetrics } from './metrics.js';
import { BootstrapTokens, CredentialError, callerFromHeaders, callerSubject, type Caller } from './tokens.js';
import { DEFAULT_DOOR_LIMITS, DOOR_LIMIT_FLAGS, type DoorLimits } from './door-limits.js';
import { TokenBuckets } from './token-buckets.js';

export const CA_METHOD_PATH = '/strait.ca.v1.CertificateService/CreateCertificate';
/** A CSR (PEM) longer than this is refused unread: a P-256 or RSA-4096 CSR is 0.5–2 KiB. */
export const MAX_CSR_BYTES = 64 * 1024;
export const DEFAULT_CA_FIRST_REQUEST_TIMEOUT_MS = 10_000;
import { LABEL_GATEWAY_NAME, WAYPOINT_GATEWAY_CLASS } from './views.js';

export interface CreateCertificateRequest {
  csr: string;
  identity: string;
  validity_duration: number;
}

/**
 * Who may hold which identity, indexed once per config change. A node may obtain the identity of any pod
 * scheduled on it (that pod's service account); a waypoint may obtain its own Gateway's identity (or that of one
 * of its pods' service accounts).
 */
export class IdentityIndex {
  private readonly onNode = new Set<string>(); // node \n ns \n sa
  private readonly waypoints = new Set<string>(); // ns/name
  private readonly waypointAccounts = new Set<string>(); // ns \n gateway \n sa

  constructor(objects: Iterable<MeshObject>) {
    for (const o of objects) {
      if (o.kind === 'Pod' && o.status.phase !== 'Succeeded' && o.status.phase !== 'Failed') {
        if (o.spec.nodeName) this.onNode.add(`${o.spec.nodeName}\n${o.metadata.namespace}\n${o.spec.serviceAccountName}`);
        const gw = o.metadata.labels[LABEL_GATEWAY_NAME];
        if (gw) this.waypointAccounts.add(`${o.metadata.namespace}\n${gw}\n${o.spec.serviceAccountName}`);
      }
      if (o.kind === 'Gateway' && o.spec.gatewayClassName === WAYPOINT_GATEWAY_CLASS) this.waypoints.add(`${o.metadata.namespace}/${o.metadata.name}`);
    }
  }

  /** Undefined when allowed, else the reason for refusing. */
  refuse(caller: Caller, id: SpiffeId): string | undefined {
    if (caller.type === 'debug') return `the debug credential reads xDS only; it may not obtain ${id}`;
    if (caller.type === 'node') {
      if (this.onNode.has(`${caller.node}\n${id.namespace}\n${id.serviceAccount}`)) return undefined;
      return `node ${caller.node} may not obtain ${id}: no pod with service account "${id.serviceAccount}" in namespace "${id.namespace}" is scheduled on node ${caller.node}`;
    }
    const wp = `${caller.namespace}/${caller.name}`;
    if (!this.waypoints.has(wp)) return `waypoint ${wp} may not obtain ${id}: no Gateway ${wp} with gatewayClassName ${WAYPOINT_GATEWAY_CLASS} exists`;
    if (id.namespace !== caller.namespace) return `waypoint ${wp} may not obtain ${id}: a waypoint's identity is in its own namespace`;
    if (id.serviceAccount === caller.name || this.waypointAccounts.has(`${caller.namespace}\n${caller.name}\n${id.serviceAccount}`)) return undefined;
    return `waypoint ${wp} may not obtain ${id}: it is neither the waypoint's service account "${caller.name}" nor that of one of its pods`;
  }
}

/** One-off form of IdentityIndex.refuse (tests, tools). */
export function refuseIdentity(caller: Caller, id: SpiffeId, objects: Iterable<MeshObject>): string | undefined {
  return new IdentityIndex(objects).refuse(caller, id);
}

/** Who is calling, from the call's metadata; throws (or rejects) with a StraitError when not allowed in. */
export type CallerAuthenticator = (md: grpc.Metadata) => Caller | Promise<Caller>;

export interface CaServerOptions {
  ca: CertificateAuthority;
  /** Bootstrap tokens (file source), or a Kubernetes TokenReview with node authorization. */
  authenticate: CallerAuthenticator;
  /** The current who-may-hold-what index (rebuilt by the owner when config changes). */
  identities: () => IdentityIndex;
  /** Longest validity a caller may ask for; also the default. */
  maxTtlMs: number;
  metrics?: ControllerMetrics;
  logger?: Logger;
  /** Where refusals are logged at a bounded rate (shared with the xDS server); default: one of its own. */
  refusalLog?: RateLimitedLog;
  /** A call that sends no request within this time after its headers is ended (DEADLINE_EXCEEDED). */
  firstRequestTimeoutMs?: number;
  /** Calls open and certificates per credential (defaults: DEFAULT_DOOR_LIMITS); enforced by interceptor(). */
  limits?: Partial<Pick<DoorLimits, 'caMaxCallsPerCredential' | 'caCertBurst' | 'caCertsPerMinute'>>;
}

/** Why a caller's call is refused before its request is read, and the message it gets. */
interface LimitRefusal {
  reason: 'calls_per_credential' | 'rate_limited';
  message: string;
}

/** Authenticates a caller from gRPC metadata; throws StraitError(STRAIT_ERR_AUTH_TOKEN). */
export function authenticate(tokens: BootstrapTokens, md: grpc.Metadata): Caller {
  const { caller, token } = callerFromHeaders((k) => metadataValue(md, k));
  if (!tokens.verify(caller, token)) {
    throw new CredentialError('wrong_token', `bootstrap token for ${callerSubject(caller)} is wrong; use the token the controller wrote to <data-dir>/tokens/ (or \`strait token\`)`);
  }
  return caller;
}

/**
 * gRPC CertificateService: CreateCertificate(csr, identity) → chain.
 * Invariants: `openCalls` counts, per credential, the calls admitted by interceptor() and not yet ended (each is
 * decremented exactly once, when grpc-js reports the call's end); each admitted call spent one token of its
 * credential's bucket.
 */
export class CaServer {
  private readonly log: Logger;
  private readonly refusals: RateLimitedLog;
  private readonly limits: Pick<DoorLimits, 'caMaxCallsPerCredential' | 'caCertBurst' | 'caCertsPerMinute'>;
  private readonly openCalls = new Map<string, number>();
  private readonly buckets: TokenBuckets;
  constructor(private readonly opts: CaServerOptions) {
    this.log = opts.logger ?? silentLogger();
    this.refusals = opts.refusalLog ?? new RateLimitedLog({ logger: this.log, level: 'warn', msg: 'certificate request refused', what: 'refused certificate requests' });
    this.limits = {
      caMaxCallsPerCredential: opts.limits?.caMaxCallsPerCredential ?? DEFAULT_DOOR_LIMITS.caMaxCallsPerCredential,
      caCertBurst: opts.limits?.caCertBurst ?? DEFAULT_DOOR_LIMITS.caCertBurst,
      caCertsPerMinute: opts.limits?.caCertsPerMinute ?? DEFAULT_DOOR_LIMITS.caCertsPerMinute,
    };
    this.buckets = new TokenBuckets(this.limits.caCertBurst, this.limits.caCertsPerMinute);
  }

  /** Admits one call of `subject` (counting it open and spending a token), or says why not. */
  private admit(subject: string): LimitRefusal | undefined {
    const open = this.openCalls.get(subject) ?? 0;
    const { caMaxCallsPerCredential: maxCalls, caCertBurst: burst, caCertsPerMinute: perMinute } = this.limits;
    if (open >= maxCalls) {
      return {
        reason: 'calls_per_credential',
        message: `${subject} already has ${open} CreateCertificate calls open; the limit is ${maxCalls} per credential (raise it with ${DOOR_LIMIT_FLAGS.caMaxCallsPerCredential})`,
      };
    }
    const waitMs = this.buckets.take(subject);
    if (waitMs > 0) {
      return {
        reason: 'rate_limited',
        message: `${subject} has obtained its ${burst} certificates at once and ${perMinute} per minute after that; retry in ${waitMs} ms (raise the limits with ${DOOR_LIMIT_FLAGS.caCertBurst} and ${DOOR_LIMIT_FLAGS.caCertsPerMinute})`,
      };
    }
    this.openCalls.set(subject, open + 1);
    return undefined;
  }

  private callEnded(subject: string): void {
    const left = (this.openCalls.get(subject) ?? 1) - 1;
    if (left > 0) this.openCalls.set(subject, left);
    else this.openCalls.delete(subject);
  }

  /**
   * A server interceptor that checks a CreateCertificate call's credentials from its headers, before its request
   * is read (a caller without valid ones is refused at once), then its credential's open calls and certificate
   * rate (RESOURCE_EXHAUSTED naming the flag), and ends a call whose request does not follow within the
   * first-request timeout. Other methods pass through untouched.
   */
  interceptor(): grpc.ServerInterceptor {
    const timeoutMs = this.opts.firstRequestTimeoutMs ?? DEFAULT_CA_FIRST_REQUEST_TIMEOUT_MS;
    return (method, next) => {
      if (method.path !== CA_METHOD_PATH) return new grpc.ServerInterceptingCall(next);
      let timer: NodeJS.Timeout | undefined;
      let admitted: string | undefined;
      let ended = false;
      const call: grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(next, {
        start: (startNext) => startNext({
          onReceiveMetadata: (md, mdNext) => {
            const admit = (subject: string) => {
              if (ended) return; // cancelled while its credentials were being checked
              const refusal = this.admit(subject);
              if (refusal) {
                this.opts.metrics?.csrReceived.inc();
                this.opts.metrics?.csrRefused.inc({ reason: refusal.reason });
                this.refused(refusal.reason, { peer: call.getPeer(), caller: subject, err: refusal.message });
                call.sendStatus({ code: grpc.status.RESOURCE_EXHAUSTED, details: refusal.message });
                return;
              }
              admitted = subject;
              timer = setTimeout(() => {
                this.opts.metrics?.limitExceeded.inc({ limit: 'first_request_timeout' });
                this.refused('first_request_timeout', { peer: call.getPeer() });
                call.sendStatus({ code: grpc.status.DEADLINE_EXCEEDED, details: `no CreateCertificate request within ${timeoutMs} ms of the call's headers (raise it with --xds-first-request-timeout)` });
              }, timeoutMs);
              timer.unref();
              mdNext(md);
            };
            const refuse = (err: unknown) => {
              if (ended) return;
              const reason = (err as { reason?: unknown }).reason;
              this.refused(typeof reason === 'string' ? reason : 'unauthenticated', { peer: call.getPeer(), err: errorMessage(err) });
              this.opts.metrics?.csrReceived.inc();
              this.opts.metrics?.csrRefused.inc({ reason: 'unauthenticated' });
              call.sendStatus({ code: toGrpcError(err).code ?? grpc.status.UNAUTHENTICATED, details: errorMessage(err) });
            };
            let answer: Caller | Promise<Caller>;
            try {
              answer = this.opts.authenticate(md);
            } catch (err) {
              refuse(err);
              return;
            }
            if (answer instanceof Promise) answer.then((c) => admit(callerSubject(c)), refuse);
            else admit(callerSubject(answer));
          },
          onReceiveMessage: (msg, msgNext) => {
            clearTimeout(timer);
            msgNext(msg);
          },
          // grpc-js reports every call's end here (after its status, or when the stream closes), exactly once.
          onCancel: () => {
            ended = true;
            clearTimeout(timer);
            if (admitted !== undefined) this.callEnded(admitted);
            admitted = undefined;
          },
        }),
        sendStatus: (status, statusNext) => {
          clearTimeout(timer);
          statusNext(status);
        },
      });
      return call;
    };
  }

  private refused(reason: string, fields: Record<string, unknown>): void {
    this.opts.metrics?.authRefused.inc({ service: 'ca', reason });
    this.refusals.record(reason, { ...fields, service: 'ca' }, 'certificate request refused');
  }

  addTo(server: grpc.Server): void {
    const svc = serviceOf(loadProto('ca.proto'), 'strait.ca.v1.CertificateService');
    server.addService(svc.service, {
      CreateCertificate: (call: grpc.ServerUnaryCall<CreateCertificateRequest, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        this.create(call.request, call.metadata).then((chain) => cb(null, { cert_chain: chain }), (err) => cb(toGrpcError(err)));
      },
    });
  }

  /** One certificate request, start to finish; throws StraitError whose code maps to a gRPC status. */
  async create(req: CreateCertificateRequest, md: grpc.Metadata): Promise<string[]> {
    const m = this.opts.metrics;
    m?.csrReceived.inc();
    let caller: Caller;
    try {
      // The interceptor authenticated this call already: a Kubernetes review answers this one from its cache.
      caller = await this.opts.authenticate(md);
    } catch (err) {
      // Normally refused by interceptor() before the request was read; this covers servers without it.
      m?.csrRefused.inc({ reason: 'unauthenticated' });
      this.refused(err instanceof CredentialError ? err.reason : 'unauthenticated', { err: errorMessage(err) });
      throw err;
    }
    if ((req.csr ?? '').length > MAX_CSR_BYTES) {
      m?.csrRefused.inc({ reason: 'bad_csr' });
      throw new StraitError('STRAIT_ERR_CSR_INVALID', `the CSR is ${req.csr.length} bytes; at most ${MAX_CSR_BYTES} are accepted`);
    }
    let id: SpiffeId;
    try {
      id = SpiffeId.parse(req.identity ?? '');
    } catch (err) {
      m?.csrRefused.inc({ reason: 'bad_identity' });
      throw err;
    }
    if (id.trustDomain !== this.opts.ca.trustDomain) {
      m?.csrRefused.inc({ reason: 'trust_domain' });
      throw new StraitError('STRAIT_ERR_IDENTITY_DENIED', `identity ${id} is outside this mesh's trust domain "${this.opts.ca.trustDomain}"`);
    }
    const reason = this.opts.identities().refuse(caller, id);
    if (reason) {
      m?.csrRefused.inc({ reason: 'not_on_node' });
      this.refused('identity_denied', { caller: callerSubject(caller), identity: id.toString(), err: reason });
      throw new StraitError('STRAIT_ERR_IDENTITY_DENIED', reason);
    }
    const askedMs = Number(req.validity_duration ?? 0) * 1000;
    const ttlMs = askedMs > 0 ? Math.min(askedMs, this.opts.maxTtlMs) : this.opts.maxTtlMs;
    try {
      const { certChainPem } = this.opts.ca.signWorkload(req.csr ?? '', id, ttlMs);
      m?.certsIssued.inc();
      this.log.debug({ caller: callerSubject(caller), identity: id.toString(), ttlMs }, 'issued workload certificate');
      return certChainPem;
    } catch (err) {
      if (isStraitError(err, 'STRAIT_ERR_CSR_INVALID')) m?.csrParseErrors.inc();
      m?.csrRefused.inc({ reason: 'bad_csr' });
      throw err;
    }
  }
}

/** Maps our error codes to gRPC statuses; the message travels as the status details. */
export function toGrpcError(err: unknown): Partial<grpc.StatusObject> {
  const code = isStraitError(err) ? STATUS_BY_CODE[err.code] ?? grpc.status.INTERNAL : grpc.status.INTERNAL;
  return { code, details: errorMessage(err) };
}

const STATUS_BY_CODE: Partial<Record<string, grpc.status>> = {
  STRAIT_ERR_AUTH_TOKEN: grpc.status.UNAUTHENTICATED,
  STRAIT_ERR_TOKEN_REVIEW: grpc.status.UNAVAILABLE,
  STRAIT_ERR_IDENTITY_DENIED: grpc.status.PERMISSION_DENIED,
  STRAIT_ERR_SPIFFE_ID: grpc.status.INVALID_ARGUMENT,
  STRAIT_ERR_CSR_INVALID: grpc.status.INVALID_ARGUMENT,
  STRAIT_ERR_XDS_PROTOCOL: grpc.status.INVALID_ARGUMENT,
};
