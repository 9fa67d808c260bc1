/**
 * The controller's Kubernetes side, put together: leader election, the CA root from its Secret, proxy
 * authentication by TokenReview + node authorization, and the leader's writers (waypoint objects, Gateway status,
 * root ConfigMaps). app.ts calls it with the source's store and the shared client's ports.
 */
import type { Logger } from '../../common/log.js';
import { CertificateAuthority } from '../../identity/index.js';
import type { ControllerMetrics } from '../metrics.js';
import type { ConfigStore } from '../store.js';
import type { BootstrapTokens } from '../tokens.js';
import { WAYPOINT_GATEWAY_CLASS } from '../views.js';
import { caFromSecret, loadOrCreateCaSecret, type SecretApi, type SecretObject } from './ca-secret.js';
import { DEFAULT_ZTUNNEL_SERVICE_ACCOUNT } from './caller-authz.js';
import { KubeAuthenticator, storeLookup } from './kube-authenticator.js';
import { LEASE_NAME, type KubeControllerConfig } from './kube-config.js';
import { LeaderElector, type LeaseApi, type LeaseObject, type LeadershipStatus } from './leader-elector.js';
import type { ObjectApi } from './object-api.js';
import { TokenReviewer, type ReviewCall } from './token-reviewer.js';
import { WaypointReconciler } from './waypoint-reconciler.js';
import type { KubeObject } from './waypoint-objects.js';

export interface KubePorts {
  objects: ObjectApi;
  review: ReviewCall;
}

export interface KubeControlPlaneOptions {
  kube: KubeControllerConfig;
  trustDomain: string;
  certTtlMs: number;
  /** The operator's CA (--ca-cert/--ca-key), which wins over the Secret. */
  operatorCa?: { certFile: string; keyFile: string; chainFile?: string };
  dataDir: string;
  ports: KubePorts;
  store: ConfigStore;
  bootstrap: BootstrapTokens;
  metrics: ControllerMetrics;
  logger: Logger;
}

export function leaseApi(objects: ObjectApi, namespace: string, name: string): LeaseApi {
  return {
    get: () => objects.get<LeaseObject>({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace, name }),
    create: (l) => objects.create(l as unknown as KubeObject) as unknown as Promise<LeaseObject>,
    replace: (l) => objects.replace(l as unknown as KubeObject) as unknown as Promise<LeaseObject>,
  };
}

export function secretApi(objects: ObjectApi): SecretApi {
  return {
    get: (namespace, name) => objects.get<SecretObject>({ apiVersion: 'v1', kind: 'Secret', namespace, name }),
    create: (s) => objects.create(s as unknown as KubeObject) as unknown as Promise<SecretObject>,
  };
}

export class KubeControlPlane {
  readonly ca: CertificateAuthority;
  readonly authenticator: KubeAuthenticator;
  private readonly elector: LeaderElector | undefined;
  private readonly o: KubeControlPlaneOptions;
  private waypoints: WaypointReconciler | undefined;

  private constructor(o: KubeControlPlaneOptions, ca: CertificateAuthority, elector: LeaderElector | undefined) {
    this.o = o;
    this.ca = ca;
    this.elector = elector;
    const reviewer = new TokenReviewer({ review: o.ports.review, audience: o.kube.tokenAudience, onResult: (r) => o.metrics.tokenReviews.inc({ result: r }) });
    this.authenticator = new KubeAuthenticator({
      reviewer, bootstrap: o.bootstrap, lookup: storeLookup(o.store),
      authz: { systemNamespace: o.kube.systemNamespace, ztunnelServiceAccount: DEFAULT_ZTUNNEL_SERVICE_ACCOUNT, waypointGatewayClass: WAYPOINT_GATEWAY_CLASS },
    });
  }

  /** Starts leader election and obtains the CA (operator files, else the Secret: read, or created by the leader). */
  static async start(o: KubeControlPlaneOptions): Promise<KubeControlPlane> {
    const log = o.logger;
    let elector: LeaderElector | undefined;
    if (o.kube.leaderElect) {
      elector = new LeaderElector({
        api: leaseApi(o.ports.objects, o.kube.systemNamespace, LEASE_NAME), name: LEASE_NAME, namespace: o.kube.systemNamespace,
        identity: o.kube.podName, leaseDurationMs: o.kube.leaseDurationMs, renewDeadlineMs: o.kube.renewDeadlineMs, retryPeriodMs: o.kube.retryPeriodMs,
        logger: log.child({ part: 'leader-election' }),
      });
      elector.on('leading', () => o.metrics.leader.set(1));
      elector.on('stopped', () => o.metrics.leader.set(0));
      o.metrics.leader.set(0);
      elector.start();
    } else {
      o.metrics.leader.set(1);
    }
    const isLeader = () => (elector ? elector.isLeader() : true);
    let ca: CertificateAuthority;
    try {
      if (o.operatorCa) {
        ca = await CertificateAuthority.loadOrCreate({ dataDir: o.dataDir, trustDomain: o.trustDomain, workloadTtlMs: o.certTtlMs, operator: o.operatorCa });
      } else {
        const root = await loadOrCreateCaSecret({
          api: secretApi(o.ports.objects), namespace: o.kube.systemNamespace, name: o.kube.caSecret, trustDomain: o.trustDomain,
          mayCreate: isLeader, waitMs: Math.max(60_000, 3 * o.kube.leaseDurationMs), pollMs: Math.min(1000, o.kube.retryPeriodMs), logger: log.child({ part: 'ca' }),
        });
        ca = caFromSecret(root, { namespace: o.kube.systemNamespace, name: o.kube.caSecret, trustDomain: o.trustDomain, workloadTtlMs: o.certTtlMs });
      }
    } catch (err) {
      await elector?.close();
      throw err;
    }
    return new KubeControlPlane(o, ca, elector);
  }

  isLeader(): boolean {
    return this.elector ? this.elector.isLeader() : true;
  }

  leadership(): LeadershipStatus {
    return this.elector?.status() ?? { identity: this.o.kube.podName, leader: true };
  }

  /** Starts the leader's writers (they write only while this replica leads; becoming leader starts a full pass). */
  startWriters(): void {
    this.waypoints = new WaypointReconciler({
      api: this.o.ports.objects, store: this.o.store, isLeader: () => this.isLeader(), gatewayClass: WAYPOINT_GATEWAY_CLASS, rootCertPem: this.ca.rootCertPem,
      render: { image: this.o.kube.waypointImage, systemNamespace: this.o.kube.systemNamespace, trustDomain: this.o.trustDomain, tokenAudience: this.o.kube.tokenAudience },
      logger: this.o.logger.child({ part: 'waypoints' }),
      onWrite: (verb, kind) => this.o.metrics.kubeWrites.inc({ verb, kind }),
    });
    this.elector?.on('leading', () => this.waypoints?.reconcileAll());
    this.waypoints.start();
  }

  /** Stops writing, then releases the Lease (another replica takes over at once). */
  async close(): Promise<void> {
    await this.waypoints?.close();
    await this.elector?.close({ release: true });
  }
}
