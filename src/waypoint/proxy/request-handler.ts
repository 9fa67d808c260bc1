/**
 * One HTTP request through the waypoint (DESIGN §6):
 *
 *     L7 authz → route match → fault → request filters → backend choice (subset → ready endpoints − ejected →
 *     load balancer) → pool limits → upstream try over HBONE, inside timeouts and retries → response filters →
 *     metrics, access log, span
 *
 * Every decision is a pure function from src/waypoint/*.ts; this file only does the I/O around them.
 * Invariants: the client gets exactly one response (or a reset once a response started); a try that lost (timed
 * out, retried) is aborted and its body discarded; every request is recorded once, with its response flags.
 */
import http from 'node:http';
import type http2 from 'node:http2';
import type { Duplex, Readable } from 'node:stream';
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { formatHostPort } from '../../common/net.js';
import type { ProxyStateView } from '../../dataplane/state/proxy-state.js';
import type {
  BackendRef, HeaderOps, RouteAction, RouteRule, ServiceRoutesResource,
} from '../../common/xds/waypoint-resources.js';
import type { WaypointState } from '../waypoint-state.js';
import { matchRoute, type RouteInput } from '../router.js';
import { applyHeaderOps, redirectLocation, rewritePath, shadowAuthority } from '../filters.js';
import { normalizePath } from '../path.js';
import { authorizeRequest, type AuthzVerdict } from '../authz-l7.js';
import { pickWeighted } from '../upstream/balancer.js';
import { retriableOutcome, retryBackoffMs, retryDecision, type AttemptOutcome } from '../retry.js';
import { decideFault } from '../fault.js';
import type { Backends, Cluster, Endpoint } from '../upstream/backends.js';
import { UpstreamFailure, stripHopByHop, type UpstreamClient, type UpstreamResponse } from '../upstream/upstream-client.js';
import type { WaypointTelemetry } from '../telemetry/waypoint-telemetry.js';
import { destinationOf, peerFromWorkload, type HttpProtocol } from '../telemetry/request-record.js';
import { nowMs, type AttemptTrace } from '../telemetry/tracing.js';
import type { DownstreamContext } from './downstream.js';
import type { DownstreamProtocol, DownstreamRequest, DownstreamResponse } from './http-servers.js';
import { holdBody, type HeldBody } from './request-body.js';

export interface RequestHandlerOptions {
  state: ProxyStateView;
  waypoint: WaypointState;
  backends: Backends;
  upstream: UpstreamClient;
  telemetry: WaypointTelemetry;
  retryBufferBytes: number;
  /** All bodies held at once (bytes). */
  retryBufferTotalBytes: number;
  random: () => number;
  log: Logger;
  /** The waypoint's own SPIFFE id (for the destination's view of the caller and spans). */
  identity: string;
}

type Headers = Record<string, string | string[]>;

/** What the client finally got, for the record. */
interface Outcome {
  status: number;
  flags: string[];
  grpcStatus?: string;
  upstream?: Endpoint;
  cluster?: Cluster;
  route?: string;
  policy?: string;
  attempts: number;
  responseBytes: number;
  detail?: string;
}

const GRPC_CT = /^application\/grpc/;
/** x-forwarded-client-cert: the peer certificate details a proxy states; never taken from a client. */
const XFCC = 'x-forwarded-client-cert';
/** The body of an L7 authorization denial, as Envoy's RBAC filter writes it. */
const RBAC_DENIED = 'RBAC: access denied';

export class RequestHandler {
  /** Bytes of request bodies held for retries now, across requests (bounded by retryBufferTotalBytes). */
  private held = 0;

  constructor(private readonly o: RequestHandlerOptions) {}

  /** Bytes of request bodies held for retries now. */
  get heldBytes(): number {
    return this.held;
  }

  handle(req: DownstreamRequest, res: DownstreamResponse, ctx: DownstreamContext, protocol: DownstreamProtocol): void {
    void this.run(req, res, ctx, protocol).catch((err) => {
      this.o.log.error({ err: errorMessage(err) }, 'BUG: request handling failed');
      if (!res.headersSent) this.reply(res, 500, 'internal error\n');
      else res.destroy();
    });
  }

  private async run(req: DownstreamRequest, res: DownstreamResponse, ctx: DownstreamContext, protocol: DownstreamProtocol): Promise<void> {
    const startMs = nowMs();
    const method = req.method ?? 'GET';
    // Routes, policies and the backend all see the path normalised as Istio's BASE does (path.ts).
    const target = normalizePath(req.url ?? '/');
    const path = 'error' in target ? (req.url ?? '/') : target.path + target.query;
    const authority = (protocol === 'h2' ? (req.headers[':authority'] as string | undefined) : req.headers.host) ?? formatHostPort({ host: ctx.destinationIp, port: ctx.destinationPort });
    const header = (name: string): string | undefined => {
      const v = req.headers[name];
      return v === undefined ? undefined : Array.isArray(v) ? v.join(',') : String(v);
    };
    const grpc = GRPC_CT.test(header('content-type') ?? '');
    const serviceKey = ctx.service ? `${ctx.service.namespace}/${ctx.service.name}` : undefined;
    const trace = this.o.telemetry.begin(req.headers as Record<string, string | string[] | undefined>, serviceKey ? { service: serviceKey } : {}, startMs);
    const httpProtocol: HttpProtocol = protocol === 'h2' ? 'HTTP/2' : req.httpVersion === '1.0' ? 'HTTP/1.0' : 'HTTP/1.1';
    // Wire bytes as Istio counts them: the header block and the body.
    let requestBytes = headerBytes(req.headers);
    req.on('data', (c: Buffer) => { requestBytes += c.length; });
    let clientGone = false;
    res.once('close', () => { if (!res.writableFinished) clientGone = true; });
    /** AUDIT policies that matched: they decide nothing, the access log names them. */
    let audited: readonly string[] = [];

    const finish = (o: Outcome) => {
      const flags = clientGone && !o.flags.includes('DC') ? [...o.flags, 'DC'] : o.flags;
      this.o.telemetry.finish(trace, {
        startMs, durationMs: nowMs() - startMs, method, authority, path: req.url ?? '/', scheme: 'http', protocol: httpProtocol, grpc,
        status: o.status, ...(o.grpcStatus !== undefined && /^\d+$/.test(o.grpcStatus) ? { grpcStatus: Number(o.grpcStatus) } : {}),
        responseFlags: flags, requestBytes, responseBytes: o.responseBytes,
        source: peerFromWorkload(ctx.source, ctx.sourceIp, ctx.peerIdentity),
        destination: destinationOf(ctx.service, ctx.destinationPort, o.upstream?.workload ?? ctx.workload, o.upstream?.key),
        ...(o.route ? { route: o.route } : {}),
        ...(o.upstream ? { upstream: o.upstream.key } : {}),
        ...(o.cluster ? { upstreamCluster: clusterName(o.cluster) } : {}),
        attempts: o.attempts, ...(o.policy ? { policy: o.policy } : {}), ...(audited.length > 0 ? { audited } : {}),
        connectionSecurityPolicy: 'mutual_tls',
        ...(header('user-agent') ? { userAgent: header('user-agent')! } : {}),
        ...(o.detail ? { error: o.detail } : {}),
      });
    };
    const local = (status: number, flags: string[], body: string, extra: Partial<Outcome> = {}, headers: Headers = {}) => {
      req.resume();
      const bytes = this.reply(res, status, body, headers, grpc);
      // A gRPC call gets its answer as HTTP 200 with a grpc-status, and is recorded so, as Envoy records it.
      if (grpc && status !== 200) finish({ status: 200, flags, attempts: 0, responseBytes: bytes, grpcStatus: String(httpToGrpc(status)), ...extra });
      else finish({ status, flags, attempts: 0, responseBytes: bytes, ...extra });
    };

    if ('error' in target) return local(400, ['DPE'], `bad request target: ${target.error}\n`, { detail: target.error });

    // ---- L7 authorization: with the identity the caller's mTLS proved ----
    const verdict = this.authorize(ctx, { method, path, authority, header });
    audited = verdict.audited;
    if (!verdict.allowed) {
      // As Envoy: no response flag; the response code details name the policy (rbac_access_denied_matched_policy[...]).
      return local(403, [], RBAC_DENIED, denialOf(verdict));
    }

    // ---- route ----
    const table: ServiceRoutesResource | undefined = serviceKey ? this.o.waypoint.routesFor(serviceKey) : undefined;
    const input: RouteInput = { method, path, authority, port: ctx.destinationPort, header };
    let rule: RouteRule | undefined;
    if (table) {
      rule = matchRoute(table, input);
      if (!rule) return local(404, ['NR'], 'no route matched\n', { detail: `no rule of ${table.origin.objects.join(', ') || serviceKey} matched` });
    } else if (ctx.service) {
      rule = { name: 'default', match: {}, action: { kind: 'forward', backends: [{ service: serviceKey!, weight: 1 }] } };
    } else if (ctx.workload) {
      // A workload-addressed request (waypoint for workloads): straight to that workload.
      return this.forwardToWorkload(req, res, ctx, protocol, { method, path, authority, header, grpc, finish, local });
    } else {
      return local(404, ['NR'], 'no route\n');
    }
    const action: RouteAction = rule.action;
    if (action.kind === 'fail') return local(action.status, [action.flag], `${action.reason}\n`, { route: rule.name, detail: action.reason });
    if (action.kind === 'redirect') {
      const location = redirectLocation({ scheme: 'http', authority, port: ctx.destinationPort, path }, action.redirect, rule);
      const headers: Headers = { location };
      if (action.responseHeaders) applyHeaderOps(headers, action.responseHeaders);
      return local(action.redirect.statusCode, [], '', { route: rule.name }, headers);
    }

    // ---- fault injection ----
    const fault = decideFault(action.fault, this.o.random);
    const flags: string[] = [];
    if (fault.delayMs) {
      flags.push('DI');
      await new Promise((r) => setTimeout(r, fault.delayMs));
      if (clientGone) return finish({ status: 0, flags: [...flags, 'DC'], attempts: 0, responseBytes: 0, route: rule.name });
    }
    if (fault.abort) {
      if (fault.abort.grpcStatus !== undefined && grpc) {
        req.resume();
        const bytes = this.reply(res, 200, '', { 'grpc-status': String(fault.abort.grpcStatus), 'grpc-message': 'fault filter abort' }, true);
        return finish({ status: 200, flags: [...flags, 'FI'], grpcStatus: String(fault.abort.grpcStatus), attempts: 0, responseBytes: bytes, route: rule.name });
      }
      return local(fault.abort.status ?? 503, [...flags, 'FI'], 'fault filter abort', { route: rule.name });
    }

    // ---- request: headers, filters, body ----
    const upstreamHeaders: Headers = stripHopByHop(req.headers as Headers);
    delete upstreamHeaders['host'];
    // Certificate details only the mesh may state: a client's own copy is dropped (Envoy's default, SANITIZE).
    delete upstreamHeaders[XFCC];
    upstreamHeaders['x-forwarded-proto'] = 'http';
    upstreamHeaders['x-request-id'] = trace.requestId;
    let upstreamAuthority = authority;
    let upstreamPath = path;
    if (action.requestHeaders) {
      const r = applyHeaderOps(upstreamHeaders, action.requestHeaders);
      if (r.authority) upstreamAuthority = r.authority;
    }
    if (action.rewrite) {
      upstreamPath = rewritePath(path, rule, action.rewrite);
      if (action.rewrite.authority) upstreamAuthority = action.rewrite.authority;
    }
    const hasBody = protocol === 'h2' ? !(req as http2.Http2ServerRequest).stream.endAfterHeaders : (header('content-length') ?? '0') !== '0' || header('transfer-encoding') !== undefined;
    let body: HeldBody;
    // The limit is reserved before reading, so concurrent requests can never hold more than the total together.
    const reserve = Math.min(this.o.retryBufferBytes, Math.max(0, this.o.retryBufferTotalBytes - this.held));
    this.held += reserve;
    try {
      body = await holdBody(req, reserve, hasBody);
    } catch (err) {
      this.held -= reserve;
      return finish({ status: 0, flags: ['DC'], attempts: 0, responseBytes: 0, route: rule.name, detail: errorMessage(err) });
    }
    const kept = body.kind === 'buffered' ? body.bytes.length : 0;
    this.held -= reserve - kept;
    res.once('close', () => { this.held -= kept; });

    // ---- mirrors: a copy, its answer discarded ----
    for (const m of action.mirrors ?? []) {
      if (body.kind === 'streamed') break;
      if (this.o.random() * 100 >= m.percentage) continue;
      this.mirror(m.backend, ctx, { method, path: upstreamPath, authority: shadowAuthority(upstreamAuthority), headers: upstreamHeaders, body, protocol });
    }

    // ---- tries ----
    const timeoutMs = action.timeoutMs;
    const overall = new AbortController();
    // The client went away: the try in flight is cancelled (as Envoy resets the upstream stream), so a backend that
    // never answers holds no slot, connection or record.
    res.once('close', () => { if (!res.writableFinished) overall.abort(); });
    let timedOut = false;
    const overallTimer = timeoutMs && timeoutMs > 0 ? setTimeout(() => { timedOut = true; overall.abort(); }, timeoutMs) : undefined;
    const retries = action.retry?.retries ?? 0;
    const tried = new Set<string>();
    /** The maxRetries slot of the retry in flight: as Envoy, held from the retry's scheduling until its outcome. */
    let heldRetry: { release(): void } | undefined;
    let attempts = 0;
    let last: { response?: UpstreamResponse; failure?: UpstreamFailure; endpoint?: Endpoint; cluster?: Cluster; problem?: { status: number; flag: string; reason: string } } = {};
    try {
      for (;;) {
        if (clientGone) return finish({ status: 0, flags: [...flags, 'DC'], attempts, responseBytes: 0, route: rule.name });
        const backend = pickWeighted(action.backends, this.o.random);
        if (!backend) { last = { problem: { status: 500, flag: 'NR', reason: 'every backend of the route has weight 0' } }; break; }
        if (backend.fail) { last = { problem: { status: backend.fail.status, flag: backend.fail.flag, reason: backend.fail.reason } }; break; }
        const port = backend.port ?? ctx.destinationPort;
        const cl = this.o.backends.cluster(backend.service, port, backend.subset);
        if ('kind' in cl) { last = { problem: { status: cl.kind === 'no-service' ? 500 : 503, flag: cl.kind === 'no-service' ? 'NR' : 'NC', reason: cl.message } }; break; }
        const { usable } = this.o.backends.endpoints(cl);
        const ep = this.o.backends.pick(cl, usable, tried);
        if (!ep) { last = { cluster: cl, problem: { status: 503, flag: 'UH', reason: `no healthy endpoint of ${cl.name}` } }; break; }
        const permit = cl.breaker.tryStartRequest();
        if ('overflow' in permit) { last = { cluster: cl, endpoint: ep, problem: { status: 503, flag: 'UO', reason: `${cl.name}: connection pool overflow (${permit.overflow})` } }; break; }
        // HTTP/1.1 carries one request per connection at a time: past maxConnections a request waits for one
        // (http1MaxPendingRequests of them at most, each no longer than the pending timeout).
        const upstreamProtocol = this.upstreamProtocol(cl, port, protocol);
        let connLease: { release(): void } | undefined;
        if (upstreamProtocol === 'http1') {
          connLease = cl.breaker.tryOpenConnection();
          while (!connLease) {
            const w = cl.breaker.waitForConnection(overall.signal);
            if ('overflow' in w) break;
            const g = await w;
            if ('lease' in g) connLease = g.lease;
            else if ('idle' in g) connLease = cl.breaker.tryOpenConnection();
            else break;
          }
          if (!connLease) {
            permit.release();
            if (timedOut || clientGone) break;
            last = { cluster: cl, endpoint: ep, problem: { status: 503, flag: 'UO', reason: `${cl.name}: no upstream connection free (maxConnections ${cl.policy.connectionPool?.maxConnections}, pending queue full or timed out)` } };
            break;
          }
        }
        attempts++;
        tried.add(ep.key);
        const tryAbort = new AbortController();
        const onOverall = () => tryAbort.abort();
        overall.signal.addEventListener('abort', onOverall, { once: true });
        const perTry = action.perTryTimeoutMs;
        let tryTimedOut = false;
        const tryTimer = perTry && perTry > 0 ? setTimeout(() => { tryTimedOut = true; tryAbort.abort(); }, perTry) : undefined;
        const headers: Headers = { ...upstreamHeaders, 'x-envoy-attempt-count': String(attempts) };
        const span: AttemptTrace = trace.attempt({ upstream: ep.key, cluster: clusterName(cl) });
        span.apply(headers);
        let tryAuthority = upstreamAuthority;
        if (backend.requestHeaders) {
          const r = applyHeaderOps(headers, backend.requestHeaders);
          if (r.authority) tryAuthority = r.authority;
        }
        cl.active.set(ep.key, (cl.active.get(ep.key) ?? 0) + 1);
        /** Ends this try's timers and gives its pool slots back (idempotent). */
        const endTry = (status = 0, spanFlags: string[] = []) => {
          span.end({ status, responseFlags: spanFlags });
          if (tryTimer) clearTimeout(tryTimer);
          overall.signal.removeEventListener('abort', onOverall);
          permit.release();
          connLease?.release();
        };
        let outcome: AttemptOutcome;
        let retryPermit: { release(): void } | { overflow: string } | undefined;
        try {
          const response = await this.o.upstream.request(
            { address: ep.address, port: ep.port, identity: ep.identity, plaintext: ep.plaintext, protocol: upstreamProtocol, ...(cl.policy.connectionPool?.connectTimeoutMs ? { connectTimeoutMs: cl.policy.connectionPool.connectTimeoutMs } : {}) },
            {
              ...(cl.policy.connectionPool?.maxRequestsPerConnection ? { maxRequestsPerConnection: cl.policy.connectionPool.maxRequestsPerConnection } : {}),
              method, path: upstreamPath, authority: tryAuthority, headers,
              body: body.kind === 'none' ? undefined : body.kind === 'buffered' ? body.bytes : body.stream,
              tunnelHeaders: { forwarded: `for=${ctx.sourceIp.includes(':') ? `"[${ctx.sourceIp}]"` : ctx.sourceIp}` },
              signal: tryAbort.signal,
            },
          );
          const grpcStatus = headerValue(response.headers['grpc-status']);
          outcome = { status: response.status, ...(grpcStatus !== undefined ? { grpcStatus: Number(grpcStatus) } : {}) };
          heldRetry?.release();
          heldRetry = undefined;
          last = { response, endpoint: ep, cluster: cl };
          cl.outlier?.recordResult(ep.key, { status: response.status });
          // Envoy's URX: a retry policy would retry this response, but no retry is left.
          const wouldRetry = body.kind !== 'streamed' && retriableOutcome(action.retry, outcome);
          const retriable = wouldRetry && retryDecision(action.retry, attempts - 1, outcome);
          if (wouldRetry && !retriable && retries > 0) flags.push('URX');
          if (retriable) {
            retryPermit = cl.breaker.tryStartRetry();
            // maxRetries reached: the response in hand goes to the client, flagged UO (as Envoy's retry overflow).
            if ('overflow' in retryPermit) flags.push('UO');
          }
          if (!retriable || attempts > retries || (retryPermit && 'overflow' in retryPermit)) {
            // This response goes to the client; the try's slots are held until its body is done.
            return await this.respond(res, response, { action, backend, release: () => endTry(response.status), finish, flags, attempts, ep, cl, rule, grpc, overall: overall.signal });
          }
          response.body.resume();
          response.body.on('error', () => undefined);
          tryAbort.abort();
        } catch (err) {
          const f = err instanceof UpstreamFailure ? err : new UpstreamFailure('reset', errorMessage(err), err);
          const kind = tryTimedOut ? 'timeout' : timedOut ? 'timeout' : f.kind;
          last = { failure: new UpstreamFailure(kind, f.message, f.cause), endpoint: ep, cluster: cl };
          // A try cancelled because its client left says nothing about the endpoint (Envoy reports no result then).
          if (!(clientGone && !timedOut && !tryTimedOut)) cl.outlier?.recordResult(ep.key, { gatewayError: true });
          outcome = { error: kind === 'overflow' ? 'connect-failure' : kind };
          heldRetry?.release();
          heldRetry = undefined;
          if (timedOut || clientGone) break;
          if (body.kind === 'streamed' || !retriableOutcome(action.retry, outcome)) break;
          if (!retryDecision(action.retry, attempts - 1, outcome)) { if (retries > 0) flags.push('URX'); break; }
        } finally {
          cl.active.set(ep.key, Math.max(0, (cl.active.get(ep.key) ?? 1) - 1));
          endTry(last.response && last.endpoint === ep ? last.response.status : 0, last.failure ? [last.failure.kind === 'timeout' ? 'UT' : last.failure.kind === 'connect-failure' ? 'UF' : 'UC'] : []);
        }
        retryPermit ??= cl.breaker.tryStartRetry();
        if ('overflow' in retryPermit) { flags.push('UO'); break; }
        heldRetry = retryPermit;
        await new Promise((r) => setTimeout(r, retryBackoffMs(action.retry, attempts - 1, this.o.random)));
        if (timedOut) break;
      }
    } finally {
      if (overallTimer) clearTimeout(overallTimer);
      heldRetry?.release();
    }

    // ---- no usable response: answer locally with what went wrong ----
    const extra: Partial<Outcome> = { route: rule.name, attempts, ...(last.cluster ? { cluster: last.cluster } : {}), ...(last.endpoint ? { upstream: last.endpoint } : {}) };
    if (clientGone) return finish({ status: 0, flags: [...flags, 'DC'], responseBytes: 0, ...extra, attempts });
    if (timedOut) return local(504, [...flags, 'UT'], 'upstream request timeout', extra);
    if (last.problem) return local(last.problem.status, [...flags, last.problem.flag], `${last.problem.reason}\n`, { ...extra, detail: last.problem.reason });
    const f = last.failure;
    if (f?.kind === 'timeout') return local(504, [...flags, 'UT'], 'upstream request timeout', { ...extra, detail: f.message });
    if (f?.kind === 'connect-failure') return local(503, [...flags, 'UF'], 'upstream connect error or disconnect/reset before headers. reset reason: connection failure', { ...extra, detail: f.message });
    if (f?.kind === 'refused-stream') return local(503, [...flags, 'UR'], 'upstream connect error or disconnect/reset before headers. reset reason: refused stream', { ...extra, detail: f.message });
    return local(503, [...flags, 'UC'], 'upstream connect error or disconnect/reset before headers. reset reason: connection termination', { ...extra, ...(f ? { detail: f.message } : {}) });
  }

  /**
   * An HTTP/1.1 Upgrade request (WebSocket) is authorized like any other before it is passed through as bytes: a
   * denied (or malformed) one is answered here, on the socket, and logged; true when the caller may pass it on.
   */
  admitUpgrade(req: http.IncomingMessage, socket: Duplex, ctx: DownstreamContext): boolean {
    const startMs = nowMs();
    const method = req.method ?? 'GET';
    const target = normalizePath(req.url ?? '/');
    const authority = req.headers.host ?? formatHostPort({ host: ctx.destinationIp, port: ctx.destinationPort });
    const header = (name: string): string | undefined => {
      const v = req.headers[name];
      return v === undefined ? undefined : Array.isArray(v) ? v.join(',') : String(v);
    };
    let status: number;
    let body: string;
    let extra: { policy?: string; detail?: string; flags: string[]; audited?: readonly string[] };
    if ('error' in target) {
      status = 400;
      body = `bad request target: ${target.error}\n`;
      extra = { flags: ['DPE'], detail: target.error };
    } else {
      const verdict = this.authorize(ctx, { method, path: target.path + target.query, authority, header });
      if (verdict.allowed) {
        delete req.headers[XFCC];
        return true;
      }
      status = 403;
      body = RBAC_DENIED;
      extra = { flags: [], ...denialOf(verdict), audited: verdict.audited };
    }
    socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    const serviceKey = ctx.service ? `${ctx.service.namespace}/${ctx.service.name}` : undefined;
    const trace = this.o.telemetry.begin(req.headers as Record<string, string | string[] | undefined>, serviceKey ? { service: serviceKey } : {}, startMs);
    this.o.telemetry.finish(trace, {
      startMs, durationMs: nowMs() - startMs, method, authority, path: req.url ?? '/', scheme: 'http', protocol: req.httpVersion === '1.0' ? 'HTTP/1.0' : 'HTTP/1.1', grpc: false,
      status, responseFlags: extra.flags, requestBytes: headerBytes(req.headers), responseBytes: Buffer.byteLength(body),
      source: peerFromWorkload(ctx.source, ctx.sourceIp, ctx.peerIdentity), destination: destinationOf(ctx.service, ctx.destinationPort, ctx.workload),
      attempts: 0, ...(extra.policy ? { policy: extra.policy } : {}), ...(extra.audited?.length ? { audited: extra.audited } : {}),
      connectionSecurityPolicy: 'mutual_tls', ...(header('user-agent') ? { userAgent: header('user-agent')! } : {}), ...(extra.detail ? { error: extra.detail } : {}),
    });
    return false;
  }

  /**
   * A request the HTTP/1.1 parser refused (bad bytes, conflicting lengths, an oversized header block), answered 400 or
   * 431 before any headers were read: recorded as Envoy records a codec error, request line "- - -", flag DPE.
   */
  recordMalformed(ctx: DownstreamContext, status: number, code: string): void {
    const startMs = nowMs();
    this.o.telemetry.finish(this.o.telemetry.begin({}, {}, startMs), {
      startMs, durationMs: 0, method: '-', authority: '-', path: '-', scheme: 'http', protocol: 'HTTP/1.1', grpc: false,
      status, responseFlags: ['DPE'], requestBytes: 0, responseBytes: 0,
      source: peerFromWorkload(ctx.source, ctx.sourceIp, ctx.peerIdentity), destination: destinationOf(ctx.service, ctx.destinationPort, ctx.workload),
      attempts: 0, connectionSecurityPolicy: 'mutual_tls', error: code,
    });
  }

  /** The L7 policies' verdict on a request, with the identity the caller's mTLS proved (never a header). */
  private authorize(ctx: DownstreamContext, r: { method: string; path: string; authority: string; header: (name: string) => string | undefined }): AuthzVerdict {
    return authorizeRequest(this.o.waypoint.authorizationPolicies(), {
      ...(ctx.service ? { service: `${ctx.service.namespace}/${ctx.service.name}` } : {}),
      ...(ctx.workload ? { destinationWorkload: { namespace: ctx.workload.namespace, labels: ctx.workload.labels } } : {}),
      ...(ctx.peerIdentity.startsWith('spiffe://') ? { sourcePrincipal: ctx.peerIdentity.slice('spiffe://'.length) } : {}),
      // remote.ip as Istio's default numTrustedProxies 0 has it: the downstream address; X-Forwarded-For is the
      // client's to write, so it is not trusted.
      sourceIp: ctx.sourceIp, remoteIp: ctx.sourceIp,
      method: r.method, path: r.path, host: r.authority, port: ctx.destinationPort, header: r.header,
    });
  }

  /** Writes the upstream's response to the client: status, filtered headers, body, trailers. */
  private async respond(res: DownstreamResponse, up: UpstreamResponse, o: {
    action: Extract<RouteAction, { kind: 'forward' }>; backend: BackendRef | undefined; release: () => void;
    finish: (o: Outcome) => void; flags: string[]; attempts: number; ep: Endpoint; cl: Cluster; rule: RouteRule; grpc: boolean; overall: AbortSignal;
  }): Promise<void> {
    const headers: Headers = { ...up.headers };
    if (o.backend?.responseHeaders) applyHeaderOps(headers, o.backend.responseHeaders);
    if (o.action.responseHeaders) applyHeaderOps(headers, o.action.responseHeaders);
    let bytes = 0;
    let grpcStatus = headerValue(up.headers['grpc-status']);
    try {
      if (up.headersOnly) {
        // Trailers-only (how a gRPC server answers a failed call): the headers go out with the end, as one HEADERS
        // frame with END_STREAM. Sent now, then ended, they would be read as metadata and the call would end with no
        // status (INTERNAL at the client).
        res.statusCode = up.status;
        for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
      } else {
        res.writeHead(up.status, headers as http.OutgoingHttpHeaders);
      }
    } catch (err) {
      up.body.destroy();
      o.release();
      return o.finish({ status: 502, flags: [...o.flags, 'UPE'], attempts: o.attempts, responseBytes: 0, route: o.rule.name, upstream: o.ep, cluster: o.cl, detail: errorMessage(err) });
    }
    await new Promise<void>((resolve) => {
      let done = false;
      const end = (flag?: string) => {
        if (done) return;
        done = true;
        o.release();
        o.finish({
          status: up.status, flags: flag ? [...o.flags, flag] : o.flags, attempts: o.attempts, responseBytes: bytes, route: o.rule.name, upstream: o.ep, cluster: o.cl,
          ...(grpcStatus !== undefined ? { grpcStatus } : {}),
        });
        resolve();
      };
      up.body.on('data', (c: Buffer) => {
        bytes += c.length;
        if (!(res as http.ServerResponse).write(c)) up.body.pause();
      });
      res.on('drain', () => up.body.resume());
      whenEnded(up.body, () => {
        void up.trailers.then((tr) => {
          if (tr && Object.keys(tr).length > 0) {
            grpcStatus = headerValue(tr['grpc-status']) ?? grpcStatus;
            try { res.addTrailers(tr as http.OutgoingHttpHeaders); } catch { /* trailers a client cannot take are dropped */ }
          }
          res.end();
          end();
        });
      });
      up.body.once('error', () => { res.destroy(); end('UR'); });
      const closed = () => { if (!up.body.readableEnded) { res.destroy(); end(o.overall.aborted ? 'UT' : 'UR'); } };
      if (up.body.destroyed) closed();
      else up.body.once('close', closed);
      res.once('close', () => { if (!res.writableFinished) { up.body.destroy(); end('DC'); } });
    });
  }

  /**
   * HTTP version towards the backend, as Istio chooses it: the service port's appProtocol, else its name's prefix
   * (`http2-*`, `grpc-*` → h2; `http-*` → HTTP/1.1), else the client's own protocol.
   */
  private upstreamProtocol(c: Cluster, port: number, downstream: DownstreamProtocol): 'http1' | 'h2' {
    const p = c.service.ports.find((x) => x.port === port);
    const declared = (p?.appProtocol ?? p?.name?.split('-')[0] ?? '').toLowerCase();
    if (declared === 'http2' || declared === 'grpc' || declared === 'grpc-web' || declared === 'kubernetes.io/h2c' || declared === 'h2c') return 'h2';
    if (declared === 'http' || declared === 'http1') return 'http1';
    return downstream;
  }

  private forwardToWorkload(
    req: DownstreamRequest, res: DownstreamResponse, ctx: DownstreamContext, protocol: DownstreamProtocol,
    r: { method: string; path: string; authority: string; header: (n: string) => string | undefined; grpc: boolean; finish: (o: Outcome) => void; local: (status: number, flags: string[], body: string, extra?: Partial<Outcome>) => void },
  ): Promise<void> {
    const w = ctx.workload!;
    const ep: Endpoint = { key: `${ctx.destinationIp}:${ctx.destinationPort}`, address: ctx.destinationIp, port: ctx.destinationPort, workload: w, identity: w.identity, plaintext: w.protocol !== 'HBONE' };
    const headers: Headers = stripHopByHop(req.headers as Headers);
    delete headers['host'];
    delete headers[XFCC];
    return this.o.upstream.request({ address: ep.address, port: ep.port, identity: ep.identity, plaintext: ep.plaintext, protocol }, {
      method: r.method, path: r.path, authority: r.authority, headers, body: req as Readable, signal: new AbortController().signal,
    }).then(
      (up) => new Promise<void>((resolve) => {
        res.writeHead(up.status, up.headers as http.OutgoingHttpHeaders);
        let bytes = 0;
        up.body.on('data', (c: Buffer) => { bytes += c.length; });
        if (up.body.readableEnded) res.end();
        else up.body.pipe(res as unknown as NodeJS.WritableStream);
        whenEnded(up.body, () => { r.finish({ status: up.status, flags: [], attempts: 1, responseBytes: bytes, upstream: ep }); resolve(); });
        up.body.once('error', () => { res.destroy(); r.finish({ status: up.status, flags: ['UR'], attempts: 1, responseBytes: bytes, upstream: ep }); resolve(); });
      }),
      (err) => r.local(503, [err instanceof UpstreamFailure && err.kind === 'connect-failure' ? 'UF' : 'UC'], 'upstream connect error or disconnect/reset before headers\n', { attempts: 1, upstream: ep, detail: errorMessage(err) }),
    );
  }

  private mirror(backend: Omit<BackendRef, 'weight'>, ctx: DownstreamContext, r: { method: string; path: string; authority: string; headers: Headers; body: HeldBody; protocol: DownstreamProtocol }): void {
    const cl = this.o.backends.cluster(backend.service, backend.port ?? ctx.destinationPort, backend.subset);
    if ('kind' in cl) return;
    const ep = this.o.backends.pick(cl, this.o.backends.endpoints(cl).usable);
    if (!ep) return;
    const headers = { ...r.headers };
    if (backend.requestHeaders) applyHeaderOps(headers, backend.requestHeaders);
    this.o.upstream.request({ address: ep.address, port: ep.port, identity: ep.identity, plaintext: ep.plaintext, protocol: this.upstreamProtocol(cl, cl.port, r.protocol) }, {
      method: r.method, path: r.path, authority: r.authority, headers, body: r.body.kind === 'buffered' ? r.body.bytes : undefined, signal: AbortSignal.timeout(30_000),
    }).then((up) => { up.body.resume(); up.body.on('error', () => undefined); }, () => undefined);
  }

  /** A local response; gRPC clients get their status in grpc-status. Returns the body's size. */
  private reply(res: DownstreamResponse, status: number, body: string, headers: Headers = {}, grpc = false): number {
    if (res.headersSent) { res.destroy(); return 0; }
    const out: Headers = { ...headers };
    if (grpc && status !== 200) {
      out['content-type'] = 'application/grpc';
      out['grpc-status'] = String(httpToGrpc(status));
      out['grpc-message'] = encodeURIComponent(body.trim());
      status = 200;
      body = '';
    }
    if (body) {
      out['content-type'] = out['content-type'] ?? 'text/plain';
      out['content-length'] = String(Buffer.byteLength(body));
    }
    // The headers leave with the end (not with writeHead, which sends them at once): over HTTP/2 an answer without a
    // body is then one HEADERS frame with END_STREAM, the trailers-only form in which a gRPC client must get its status.
    res.statusCode = status;
    for (const [k, v] of Object.entries(out)) res.setHeader(k, v);
    if (body) res.end(body);
    else res.end();
    return Buffer.byteLength(body);
  }
}

/** What the access log says of a denial: the policy that decided (or the ALLOW policies none of which matched) and Envoy's details. */
function denialOf(v: AuthzVerdict): { policy?: string; detail: string } {
  const decidedBy = v.policy ?? v.considered?.join(',');
  return { ...(decidedBy ? { policy: decidedBy } : {}), detail: v.details ?? v.reason };
}

/** Istio's cluster name for a try: outbound|<port>|<subset>|<service host>. */
function clusterName(c: Cluster): string {
  return `outbound|${c.port}|${c.subset ?? ''}|${c.service.hostname}`;
}

/** Size of a header block as sent on HTTP/1.1 ("name: value\r\n" per field). */
function headerBytes(h: Record<string, string | string[] | undefined>): number {
  let n = 0;
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    for (const x of Array.isArray(v) ? v : [v]) n += k.length + x.length + 4;
  }
  return n;
}

/**
 * Calls `fn` once `body` has ended, also when it ended before the caller got it: an HTTP/2 response whose HEADERS
 * carry END_STREAM (a trailers-only gRPC answer: every failed call) has emitted 'end' and 'close' by the time the
 * try's promise resolves, and a listener added then would wait forever.
 */
function whenEnded(body: Readable, fn: () => void): void {
  if (body.readableEnded) queueMicrotask(fn);
  else body.once('end', fn);
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return v === undefined ? undefined : Array.isArray(v) ? v[0] : v;
}

/** HTTP status of a local reply → gRPC status, as Envoy maps them. */
function httpToGrpc(status: number): number {
  switch (status) {
    case 400: return 13;
    case 401: return 16;
    case 403: return 7;
    case 404: return 12;
    case 429: case 502: case 503: case 504: return 14;
    default: return 2;
  }
}

export type { HeaderOps };
