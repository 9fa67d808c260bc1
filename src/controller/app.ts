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
import { CaServer, IdentityIndex, authenticate, type CallerAuthenticator } from './ca-server.js';
import type { ControllerConfig, KubeConnection } from './config.js';
import type { KubeClient } from '../common/kube/client.js';
import { ControllerMetrics } from './metrics.js';
import { ConfigReport } from './config-report.js';
import { createSources } from './sources/index.js';
import { ConfigStore } from './store.js';
import { servingNamesFor, startGrpcServer, stopGrpcServer } from './grpc-server.js';
import { KubeControlPlane, type KubePorts } from './kube/kube-control-plane.js';
import { kubePorts } from './kube/kube-client-ports.js';
import type { LeadershipStatus } from './kube/leader-elector.js';
import { TokenFiles } from './token-files.js';
import { BootstrapTokens, callerSubject, type Caller } from './tokens.js';
import { MeshViewSource } from './view-source.js';

/** With an operator-provided CA or the root from the CA Secret, the mesh root is copied here (inside the data directory) for proxies and users. */
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

/** What the controller needs from outside besides its config (tests give their own). */
export interface ControllerDeps {
  /** The Kubernetes API (the source's client): with it, the controller runs as on Kubernetes (see KubeControlPlane). */
  kubePorts?: KubePorts;
}

export async function startController(cfg: ControllerConfig, log: Logger, deps: ControllerDeps = {}): Promise<RunningController> {
  const startedAt = Date.now();
  const metrics = new ControllerMetrics();
  const tokens = await BootstrapTokens.loadOrCreate(cfg.dataDir);
  const store = new ConfigStore();
  // With --source kubernetes: one API client for the process (credentials as kubectl finds them).
  const kubeClient = cfg.kube ? await openKubeClient(cfg.kube, log) : undefined;
  const ports = deps.kubePorts ?? (kubeClient ? kubePorts(kubeClient) : undefined);
  // On Kubernetes: leader election, then the CA root from its Secret (the operator's CA still wins), token review.
  const controlPlane = ports
    ? await KubeControlPlane.start({
      kube: cfg.kubeControl, trustDomain: cfg.trustDomain, certTtlMs: cfg.certTtlMs, dataDir: cfg.dataDir, ports, store, bootstrap: tokens, metrics,
      logger: log.child({ part: 'kubernetes' }), ...(cfg.operatorCa ? { operatorCa: cfg.operatorCa } : {}),
    }).catch((err) => {
      kubeClient?.close();
      throw err;
    })
    : undefined;
  const ca = controlPlane?.ca ?? await CertificateAuthority.loadOrCreate({
    dataDir: cfg.dataDir, trustDomain: cfg.trustDomain, workloadTtlMs: cfg.certTtlMs,
    ...(cfg.operatorCa ? { operator: cfg.operatorCa } : {}),
  });
  if (!controlPlane) metrics.leader.set(1);
  const views = new MeshViewSource(store, { trustDomain: cfg.trustDomain, rootNamespace: cfg.rootNamespace });
  // Locally every node and waypoint gets its token file as it appears; "ready" waits for the files of those known at
  // start. On Kubernetes proxies present their projected ServiceAccount tokens instead.
  const tokenFiles = controlPlane ? undefined : new TokenFiles(store, tokens, log);
  if (tokenFiles) store.on('change', () => void tokenFiles.update());
  // Problems and what nothing enforces: in /debug/configz, and logged once per object and change.
  const report = new ConfigReport(store, views, { trustDomain: cfg.trustDomain, rootNamespace: cfg.rootNamespace }, log, cfg.pushDebounceMs);
  const sources = await createSources(cfg, log, { ...(kubeClient ? { kube: kubeClient } : {}), kubeMetrics: metrics.kube() });
  try {
    for (const source of sources) {
      await source.start((events, changedAt, opts) => {
        const change = store.apply(source.name, events, changedAt, opts);
        metrics.countConfig(store);
        report.schedule();
        const n = change.added.length + change.updated.length + change.removed.length;
        if (n > 0) log.info({ added: change.added.length, updated: change.updated.length, removed: change.removed.length }, 'configuration changed');
      });
    }
  } catch (err) {
    await controlPlane?.close();
    kubeClient?.close();
    throw err;
  }
  report.logNew();
  await tokenFiles?.update();

  const authenticateCaller: CallerAuthenticator = controlPlane ? (md) => controlPlane.authenticator.authenticate(md) : (md) => authenticate(tokens, md);

  // xDS and CA refusals share one rate-limited log: a flood of bad credentials is one summary line per 10 s.
  const refusalLog = new RateLimitedLog({ logger: log.child({ server: 'grpc' }), level: 'warn', msg: 'request refused', what: 'refused xDS streams and CA calls' });
  const xds = new XdsServer({
    source: views,
    debounceMs: cfg.pushDebounceMs,
    logger: log.child({ server: 'xds' }),
    metrics: metrics.xds(),
    limits: cfg.xdsLimits,
    refusalLog,
    authenticate: (md: grpc.Metadata): CallerPrincipal | Promise<CallerPrincipal> => {
      const principal = (caller: Caller): CallerPrincipal => ({ subject: callerSubject(caller), caller });
      const answer = authenticateCaller(md);
      return answer instanceof Promise ? answer.then(principal) : principal(answer);
    },
    authorize: (principal: XdsPrincipal, proxy: ProxyInfo) => authorizeProxy((principal as CallerPrincipal).caller, proxy),
  });
  let identityIndex: IdentityIndex | undefined;
  store.on('change', () => (identityIndex = undefined));
  const caServer = new CaServer({
    ca, authenticate: authenticateCaller, identities: () => (identityIndex ??= new IdentityIndex(store.meshObjects())), maxTtlMs: cfg.certTtlMs, metrics,
    logger: log.child({ server: 'ca' }), refusalLog, firstRequestTimeoutMs: cfg.xdsLimits.firstRequestTimeoutMs, limits: cfg.doorLimits,
  });
  const grpcServer = await startGrpcServer({ address: cfg.xdsAddress, ca, xds, caServer, limits: cfg.doorLimits, dnsNames: servingNamesFor(cfg.kubeControl.systemNamespace) });

  let ready = true;
  const leadership = (): LeadershipStatus => controlPlane?.leadership() ?? { identity: cfg.kubeControl.podName, leader: true };
  const admin = controllerAdmin({ ready: () => ready, metrics, views, xds, store, report, leadership, log: log.child({ server: 'admin' }),
    self: {
      sources: sources.map((s) => s.name), startedAt, identity: cfg.kubeControl.podName,
      leader: () => {
        if (!controlPlane) return { election: 'none' };
        const l = leadership();
        return { election: 'lease', leader: l.leader, holder: l.holder === undefined || l.holder === '' ? null : l.holder };
      },
    } });
  let adminAddr: HostPort;
  try {
    adminAddr = await admin.listen(cfg.adminAddress.host, cfg.adminAddress.port);
  } catch (err) {
    grpcServer.server.forceShutdown();
    await controlPlane?.close();
    kubeClient?.close();
    throw new StraitError('STRAIT_ERR_LISTEN', `cannot listen for admin on ${formatHostPort(cfg.adminAddress)}: ${errorMessage(err)} (use --admin-address)`, { cause: err });
  }
  const rootCertFile = await publishRoot(cfg, ca.rootCertPem, !controlPlane);
  // Every replica serves xDS and the CA; only the leader writes to the cluster.
  controlPlane?.startWriters();
  const xdsAddress = { host: cfg.xdsAddress.host, port: grpcServer.port };
  log.info({ xds: formatHostPort(xdsAddress), admin: formatHostPort(adminAddr), rootCert: rootCertFile, objects: store.size }, 'controller ready');

  return {
    xdsAddress,
    adminAddress: adminAddr,
    rootCertPem: ca.rootCertPem,
    rootCertFile,
    async close() {
      ready = false;
      await controlPlane?.close();
      report.close();
      xds.close();
      refusalLog.close();
      await stopGrpcServer(grpcServer.server);
      await admin.close();
      for (const source of sources) await source.close();
      kubeClient?.close();
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

/**
 * Where proxies and users find the mesh root: the root's own file when generated into the data directory, else a
 * copy there (of the operator's root, or of the root kept in the CA Secret).
 */
async function publishRoot(cfg: ControllerConfig, rootCertPem: string, rootInDataDir: boolean): Promise<string> {
  if (!cfg.operatorCa && rootInDataDir) return join(cfg.dataDir, ROOT_CERT_FILE);
  const file = join(cfg.dataDir, OPERATOR_ROOT_COPY);
  await mkdir(cfg.dataDir, { recursive: true, mode: 0o700 });
  await writeFile(file, rootCertPem, { mode: 0o644 });
  return file;
}
