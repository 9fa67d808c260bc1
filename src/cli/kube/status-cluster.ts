/**
 * `strait status` of a cluster: every strait-controller pod, asked through the API server's pod proxy
 * (`GET /api/v1/namespaces/NS/pods/POD:15014/proxy/debug/proxy-status`, RBAC: get pods/proxy), since each replica
 * serves the proxies connected to it; the Lease says which one leads.
 */
import { StraitError, errorMessage } from '../../common/errors.js';
import { isKubeApiError, KUBE_TYPES, type KubeObject } from '../../common/kube/index.js';
import type { ProxyStatusReport } from '../../common/xds/proxy-status.js';
import type { StatusFlags } from '../status.js';
import { connectKube } from './connect.js';
import { PROXY_STATUS_PATH, parseReport } from './status-run.js';
import type { ControllerResult } from './status-view.js';

export const CONTROLLER_SELECTOR = 'app.kubernetes.io/name=strait-controller';
export const CONTROLLER_LEASE = 'strait-controller';
export const CONTROLLER_ADMIN_PORT = 15014;

interface PodObject extends KubeObject { status?: { phase?: string; podIP?: string } }
interface LeaseObject extends KubeObject { spec?: { holderIdentity?: string } }

export async function clusterStatus(flags: StatusFlags, env: NodeJS.ProcessEnv): Promise<ControllerResult[]> {
  const kube = await connectKube(flags, env, flags.timeout);
  const ns = flags.systemNamespace;
  try {
    const { items: pods } = await kube.client.listAll<PodObject>(KUBE_TYPES.Pod, { namespace: ns, labelSelector: CONTROLLER_SELECTOR });
    if (pods.length === 0) {
      throw new StraitError('STRAIT_ERR_STATUS', `no strait-controller pod in namespace ${ns} of ${kube.config.server} (label ${CONTROLLER_SELECTOR}): is Strait installed there (strait install)? Another namespace: --system-namespace; a local mesh: --state-file`);
    }
    const holder = await kube.client.get<LeaseObject>(KUBE_TYPES.Lease, CONTROLLER_LEASE, { namespace: ns })
      .then((l) => l.spec?.holderIdentity, () => undefined);
    const results = await Promise.all(pods.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)).map(async (pod): Promise<ControllerResult> => {
      const name = pod.metadata.name;
      const address = `${kube.config.server}/api/v1/namespaces/${ns}/pods/${name}:${CONTROLLER_ADMIN_PORT}/proxy${PROXY_STATUS_PATH}`;
      const base = { name, address, ...(holder !== undefined ? { leaseHolder: holder === name } : {}) };
      if (pod.status?.phase !== 'Running') return { ...base, error: `the pod is ${pod.status?.phase ?? 'not running'}` };
      try {
        const body = await kube.client.get(KUBE_TYPES.Pod, `${name}:${CONTROLLER_ADMIN_PORT}`, { namespace: ns, subresource: `proxy${PROXY_STATUS_PATH}` }) as unknown as ProxyStatusReport;
        return { ...base, ...parseReport(JSON.stringify(body)) };
      } catch (err) {
        if (isKubeApiError(err, 403)) return { ...base, error: `you may not get pods/proxy in namespace ${ns} (RBAC), which strait status uses to reach the controller's admin port: ask for it, or reach the admin port yourself and pass --controller-admin` };
        return { ...base, error: errorMessage(err) };
      }
    }));
    return results;
  } finally {
    kube.close();
  }
}
