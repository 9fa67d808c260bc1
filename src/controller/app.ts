/**
 * The controller process: wires the file source, store, views, xDS server, CA service and admin server.
 * The only place concrete controller classes are put together.
 */
import * as grpc from '@grpc/grpc-js';
import { tls13ServerCredentials } from '../common/grpc.js';
import { StraitError, errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { formatProblem } from '../common/model/types.js';
import { formatHostPort, type HostPort } from '../common/net.js';
import { XdsServer, type XdsPrincipal } from './xds/xds-server.js';
import { RateLimitedLog } from '../common/rate-limited-log.js';
import type { ProxyInfo } from '../common/xds/types.js';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CertificateAuthority, ROOT_CERT_FILE } from '../identity/index.js';
import { AdminServer } from '../common/admin.js';
import { CaServer, IdentityIndex, authenticate } from './ca-server.js';
import type { ControllerConfig } from './config.js';
import { ControllerMetrics } from './metrics.js';
import { ConfigReport } from './config-report.js';
import { createSource } from './sources/index.js';
import { ConfigStore } from './store.js';
import { BootstrapTokens, callerSubject, type Caller } from './tokens.js';
import { MeshViewSource } from './view-source.js';
import { resetAfterStatusInterceptor } from './reset-after-status.js';
import { WAYPOINT_GATEWAY_CLASS } from './views.js';

/** With an operator-provided CA, the mesh root is copied here (inside the data directory) for proxies and users. */
export const OPERATOR_ROOT_COPY = 'mesh-root-cert.pem';

export interface RunningController {
  xdsAddress: HostPort;
  adminAddress: HostPort;
  rootCertPem: string;
  rootCertFile: string;
  close(): Promise<void>;
}

interface CallerPrincipal extends XdsPrincipal {
  caller: Caller;
}

/**
 * Which node a credential may connect as, and so which types it reads: a node token only as that node's ztunnel,
 * a waypoint token only as that waypoint, the debug credential only as kind "debug".
 */
function authorizeProxy(caller: Caller, proxy: ProxyInfo): void {
  const refuse = (reason: 'wrong_kind' | 'wrong_node', why: string) => {
    throw Object.assign(new StraitError('STRAIT_ERR_IDENTITY_DENIED', `${callerSubject(caller)} may not subscribe as ${proxy.kind} ${describeProxy(proxy)}: ${why}`), { reason });
  };
  const kindFor = { node: 'ztunnel', waypoint: 'waypoint', debug: 'debug' } as const;
  if (proxy.kind !== kindFor[caller.type]) {
    refuse('wrong_kind', `a ${caller.type} credential connects only as kind "${kindFor[caller.type]}"${proxy.kind === 'debug' ? ' (kind "debug" needs the debug credential: `strait token --debug`)' : ''}`);
  }
  if (caller.type === 'node' && caller.node !== proxy.nodeName) refuse('wrong_node', `the token is node ${caller.node}'s`);
  if (caller.type === 'waypoint' && (caller.namespace !== proxy.namespace || caller.name !== proxy.name)) refuse('wrong_node', `the token is waypoint ${caller.namespace}/${caller.name}'s`);
}

function describeProxy(p: ProxyInfo): string {
  return p.kind === 'waypoint' ? `${p.namespace}/${p.name}` : `on node ${p.nodeName}`;
}

export async function startController(cfg: ControllerConfig, log: Logger): Promise<RunningController> {
  const metrics = new ControllerMetrics();
  const ca = await CertificateAuthority.loadOrCreate({
    dataDir: cfg.dataDir, trustDomain: cfg.trustDomain, workloadTtlMs: cfg.certTtlMs,
    ...(cfg.operatorCa ? { operator: cfg.operatorCa } : {}),
  });
  const tokens = await BootstrapTokens.loadOrCreate(cfg.dataDir);

  const store = new ConfigStore();
  const views = new MeshViewSource(store, { trustDomain: cfg.trustDomain, rootNamespace: cfg.rootNamespace });
  const written = new Set<string>();
  const writeNewTokens = async () => {
    // Every node that runs pods and every waypoint gets a bootstrap token file in <data-dir>/tokens/.
    const callers: Caller[] = [];
    for (const o of store.meshObjects()) {
      if (o.kind === 'Pod' && o.spec.nodeName) callers.push({ type: 'node', node: o.spec.nodeName });
      if (o.kind === 'Node') callers.push({ type: 'node', node: o.metadata.name });
      if (o.kind === 'Gateway' && o.spec.gatewayClassName === WAYPOINT_GATEWAY_CLASS) callers.push({ type: 'waypoint', namespace: o.metadata.namespace!, name: o.metadata.name });
    }
    for (const c of callers) {
      const s = callerSubject(c);
      if (written.has(s)) continue;
      await tokens.writeTokenFile(c).then(() => written.add(s), (err) => log.error({ err: errorMessage(err), caller: s }, 'cannot write bootstrap token'));
    }
  };
  // One writer at a time, in order; "ready" waits for the chain, so every known node's token exists by then.
  let tokensWritten = Promise.resolve();
  const writeTokens = () => (tokensWritten = tokensWritten.then(writeNewTokens));
  store.on('change', () => void writeTokens());
  const updateConfigMetrics = () => {
    metrics.configObjects.reset();
    for (const o of store.list()) metrics.configObjects.inc({ kind: o.object.kind });
    metrics.configRejected.set(store.problems().filter((p) => p.severity === 'error').length);
  };
  // Problems and what nothing enforces: in /debug/configz, and logged once per object and change.
  const report = new ConfigReport(store, views, { trustDomain: cfg.trustDomain, rootNamespace: cfg.rootNamespace }, log, cfg.pushDebounceMs);

  const source = createSource(cfg, log);
  await source.start((events, changedAt, opts) => {
    const change = store.apply(source.name, events, changedAt, opts);
    updateConfigMetrics();
    report.schedule();
    const n = change.added.length + change.updated.length + change.removed.length;
    if (n > 0) log.info({ added: change.added.length, updated: change.updated.length, removed: change.removed.length }, 'configuration changed');
  });
  report.logNew();
  await writeTokens();

  // xDS and CA refusals share one rate-limited log: a flood of bad credentials is one summary line per 10 s.
  const refusalLog = new RateLimitedLog({ logger: log.child({ server: 'grpc' }), level: 'warn', msg: 'request refused', what: 'refused xDS streams and CA calls' });
  const xds = new XdsServer({
    source: views,
    debounceMs: cfg.pushDebounceMs,
    logger: log.child({ server: 'xds' }),
    metrics: metrics.xds(),
    limits: cfg.xdsLimits,
    refusalLog,
    authenticate: (md: grpc.Metadata): CallerPrincipal => {
      const caller = authenticate(tokens, md);
      return { subject: callerSubject(caller), caller };
    },
    authorize: (principal: XdsPrincipal, proxy: ProxyInfo) => authorizeProxy((principal as CallerPrincipal).caller, proxy),
  });
  let identityIndex: IdentityIndex | undefined;
  store.on('change', () => (identityIndex = undefined));
  const caServer = new CaServer({
    ca, tokens, identities: () => (identityIndex ??= new IdentityIndex(store.meshObjects())), maxTtlMs: cfg.certTtlMs, metrics,
    logger: log.child({ server: 'ca' }), refusalLog, firstRequestTimeoutMs: cfg.xdsLimits.firstRequestTimeoutMs, limits: cfg.doorLimits,
  });

  const serving = ca.issueServing({
    dnsNames: ['localhost', 'strait-controller', 'strait-controller.istio-system.svc', 'istiod.istio-system.svc'],
    ips: [...new Set(['127.0.0.1', ...(cfg.xdsAddress.host === '0.0.0.0' || cfg.xdsAddress.host === '::' ? [] : [cfg.xdsAddress.host])])],
  });
  const grpcServer = new grpc.Server({
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.max_receive_message_length': xds.grpcReceiveLimit(),
    // A connection with no call open (e.g. TLS without any credential) is closed; one with calls never is: grpc-js
    // has no per-source connection cap (see README "Limits").
    'grpc.max_connection_idle_ms': cfg.doorLimits.connectionIdleMs,
    'grpc.max_concurrent_streams': cfg.doorLimits.maxCallsPerConnection,
    // The first wraps the transport: every status, the CA interceptor's refusals included, passes through it.
    interceptors: [resetAfterStatusInterceptor(), caServer.interceptor()],
  });
  xds.addTo(grpcServer);
  caServer.addTo(grpcServer);
  const creds = tls13ServerCredentials({ rootPem: ca.rootCertPem, keyPem: serving.keyPem, certChainPem: serving.certChainPem.join('') });
  const xdsPort = await new Promise<number>((resolve, reject) => {
    grpcServer.bindAsync(formatHostPort(cfg.xdsAddress), creds, (err, port) => (err ? reject(err) : resolve(port)));
  }).catch((err) => {
    throw new StraitError('STRAIT_ERR_LISTEN', `cannot listen for xDS on ${formatHostPort(cfg.xdsAddress)}: ${errorMessage(err)} (is another controller running? use --xds-address)`, { cause: err });
  });

  let ready = true;
  const admin = new AdminServer({
    '/ready': async () => ({ status: ready ? 200 : 503, body: { ready } }),
    '/metrics': async () => ({ status: 200, body: await metrics.registry.metrics(), contentType: metrics.registry.contentType }),
    '/debug/syncz': async () => ({ status: 200, body: { generation: views.generation(), proxies: xds.status() } }),
    '/debug/configz': async () => {
      const problems = report.problems();
      return {
        status: 200,
        body: {
          objects: store.list().map((o) => ({ key: o.key, source: o.source, object: o.object })),
          rejected: problems.filter((p) => p.severity === 'error').map((p) => ({ ...p, text: formatProblem(p) })),
          warnings: problems.filter((p) => p.severity === 'warning').map((p) => ({ ...p, text: formatProblem(p) })),
          bindings: views.bindingProblems(),
        },
      };
    },
  }, log.child({ server: 'admin' }));
  let adminAddr: HostPort;
  try {
    adminAddr = await admin.listen(cfg.adminAddress.host, cfg.adminAddress.port);
  } catch (err) {
    grpcServer.forceShutdown();
    throw new StraitError('STRAIT_ERR_LISTEN', `cannot listen for admin on ${formatHostPort(cfg.adminAddress)}: ${errorMessage(err)} (use --admin-address)`, { cause: err });
  }

  // Where proxies and users find the mesh root: the generated root's own file, or a copy of the operator's root.
  let rootCertFile = join(cfg.dataDir, ROOT_CERT_FILE);
  if (cfg.operatorCa) {
    rootCertFile = join(cfg.dataDir, OPERATOR_ROOT_COPY);
    await mkdir(cfg.dataDir, { recursive: true, mode: 0o700 });
    await writeFile(rootCertFile, ca.rootCertPem, { mode: 0o644 });
  }
  const xdsAddress = { host: cfg.xdsAddress.host, port: xdsPort };
  log.info({ xds: formatHostPort(xdsAddress), admin: formatHostPort(adminAddr), rootCert: rootCertFile, objects: store.size }, 'controller ready');

  return {
    xdsAddress,
    adminAddress: adminAddr,
    rootCertPem: ca.rootCertPem,
    rootCertFile,
    async close() {
      ready = false;
      report.close();
      xds.close();
      refusalLog.close();
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => { grpcServer.forceShutdown(); resolve(); }, 2000);
        grpcServer.tryShutdown(() => { clearTimeout(t); resolve(); });
      });
      await admin.close();
      await source.close();
    },
  };
}
