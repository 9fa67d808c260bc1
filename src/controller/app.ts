/**
 * The controller process: wires the file source, store, views, xDS server, CA service and admin server.
 * The only place concrete controller classes are put together.
 */
import type * as grpc from '@grpc/grpc-js';
import { StraitError, errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { formatHostPort, type HostPort } from '../common/net.js';
import { XdsServer, type XdsPrincipal } from './xds/xds-server.js';
import { RateLimitedLog } from '../common/rate-limited-log.js';
import type { ProxyInfo } from '../common/xds/types.js';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CertificateAuthority, ROOT_CERT_FILE } from '../identity/index.js';
import { controllerAdmin } from './admin.js';
import { CaServer, IdentityIndex, authenticate } from './ca-server.js';
import type { ControllerConfig, KubeConnection } from './config.js';
import type { KubeClient } from '../common/kube/client.js';
import { ControllerMetrics } from './metrics.js';
import { ConfigReport } from './config-report.js';
import { createSources } from './sources/index.js';
import { ConfigStore } from './store.js';
import { startGrpcServer, stopGrpcServer } from './grpc-server.js';
import { TokenFiles } from './token-files.js';
import { BootstrapTokens, callerSubject, type Caller } from './tokens.js';
import { MeshViewSource } from './view-source.js';

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
  const startedAt = Date.now();
  const metrics = new ControllerMetrics();
  const ca = await CertificateAuthority.loadOrCreate({
    dataDir: cfg.dataDir, trustDomain: cfg.trustDomain, workloadTtlMs: cfg.certTtlMs,
    ...(cfg.operatorCa ? { operator: cfg.operatorCa } : {}),
  });
  const tokens = await BootstrapTokens.loadOrCreate(cfg.dataDir);

  const store = new ConfigStore();
  const views = new MeshViewSource(store, { trustDomain: cfg.trustDomain, rootNamespace: cfg.rootNamespace });
  // Every node and waypoint gets its token file as it appears; "ready" waits for the files of those known at start.
  const tokenFiles = new TokenFiles(store, tokens, log);
  store.on('change', () => void tokenFiles.update());
  // Problems and what nothing enforces: in /debug/configz, and logged once per object and change.
  const report = new ConfigReport(store, views, { trustDomain: cfg.trustDomain, rootNamespace: cfg.rootNamespace }, log, cfg.pushDebounceMs);
  // With --source kubernetes: one API client for the process (credentials as kubectl finds them).
  const kube = cfg.kube ? await openKubeClient(cfg.kube, log) : undefined;
  const sources = await createSources(cfg, log, { ...(kube ? { kube } : {}), kubeMetrics: metrics.kube() });
  for (const source of sources) {
    await source.start((events, changedAt, opts) => {
      const change = store.apply(source.name, events, changedAt, opts);
      metrics.countConfig(store);
      report.schedule();
      const n = change.added.length + change.updated.length + change.removed.length;
      if (n > 0) log.info({ added: change.added.length, updated: change.updated.length, removed: change.removed.length }, 'configuration changed');
    });
  }
  report.logNew();
  await tokenFiles.update();

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
  const grpcServer = await startGrpcServer({ address: cfg.xdsAddress, ca, xds, caServer, limits: cfg.doorLimits });

  let ready = true;
  const admin = controllerAdmin({ ready: () => ready, metrics, views, xds, store, report, log: log.child({ server: 'admin' }), self: { sources: sources.map((s) => s.name), startedAt } });
  let adminAddr: HostPort;
  try {
    adminAddr = await admin.listen(cfg.adminAddress.host, cfg.adminAddress.port);
  } catch (err) {
    grpcServer.server.forceShutdown();
    throw new StraitError('STRAIT_ERR_LISTEN', `cannot listen for admin on ${formatHostPort(cfg.adminAddress)}: ${errorMessage(err)} (use --admin-address)`, { cause: err });
  }
  const rootCertFile = await publishRoot(cfg, ca.rootCertPem);
  const xdsAddress = { host: cfg.xdsAddress.host, port: grpcServer.port };
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
      await stopGrpcServer(grpcServer.server);
      await admin.close();
      for (const source of sources) await source.close();
      kube?.close();
    },
  };
}

/** Loads the kubeconfig (or in-cluster credentials) and makes the API client; @kubernetes/client-node loads only here. */
async function openKubeClient(conn: KubeConnection, log: Logger): Promise<KubeClient> {
  const { loadKubeConfig, KubeClient: Client } = await import('../common/kube/index.js');
  const loaded = loadKubeConfig({ ...(conn.kubeconfig ? { kubeconfig: conn.kubeconfig } : {}), ...(conn.context ? { context: conn.context } : {}), env: conn.env });
  log.info({ server: loaded.server, context: loaded.context, from: loaded.source }, 'Kubernetes API server');
  return new Client(loaded, { userAgent: 'strait-controller' });
}

/** Where proxies and users find the mesh root: the generated root's own file, or a copy of the operator's root. */
async function publishRoot(cfg: ControllerConfig, rootCertPem: string): Promise<string> {
  if (!cfg.operatorCa) return join(cfg.dataDir, ROOT_CERT_FILE);
  const file = join(cfg.dataDir, OPERATOR_ROOT_COPY);
  await mkdir(cfg.dataDir, { recursive: true, mode: 0o700 });
  await writeFile(file, rootCertPem, { mode: 0o644 });
  return file;
}
