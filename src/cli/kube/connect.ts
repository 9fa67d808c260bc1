/**
 * The cluster commands' Kubernetes client: the kubeconfig as kubectl finds it (--kubeconfig, KUBECONFIG,
 * ~/.kube/config, in-cluster), its context (--context), and the namespace a command works in when -n is not given
 * (the context's, else `default`, as kubectl).
 */
import type { KubeClient, LoadedKubeConfig } from '../../common/kube/index.js';
import type { KubeFlags } from './options.js';

export interface KubeConnection {
  client: KubeClient;
  config: LoadedKubeConfig;
  /** -n, else the context's namespace, else "default". */
  namespace(flag: string | undefined): string;
  close(): void;
}

export async function connectKube(flags: KubeFlags, env: NodeJS.ProcessEnv, requestTimeoutMs?: number): Promise<KubeConnection> {
  const { KubeClient, loadKubeConfig } = await import('../../common/kube/index.js');
  const context = flags.context ?? flags.kubeContext;
  const config = loadKubeConfig({
    ...(flags.kubeconfig !== undefined ? { kubeconfig: flags.kubeconfig } : {}),
    ...(context !== undefined ? { context } : {}),
    env: { KUBECONFIG: env.KUBECONFIG, HOME: env.HOME, KUBERNETES_SERVICE_HOST: env.KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT: env.KUBERNETES_SERVICE_PORT },
  });
  const client = new KubeClient(config, { userAgent: 'strait-cli', ...(requestTimeoutMs !== undefined ? { requestTimeoutMs } : {}) });
  return {
    client,
    config,
    namespace: (flag) => flag ?? config.namespace ?? 'default',
    close: () => client.close(),
  };
}
