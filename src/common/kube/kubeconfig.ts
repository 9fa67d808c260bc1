/**
 * Finds the Kubernetes credentials as kubectl does: an explicit file, else $KUBECONFIG (a list of files, merged,
 * the first one's current-context wins), else ~/.kube/config, else the pod's in-cluster ServiceAccount. Reads no
 * environment itself: callers pass the variables from their config.ts / CLI parsing.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { StraitError, errorMessage } from '../errors.js';

export const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The environment variables kubectl looks at. */
export interface KubeEnv {
  KUBECONFIG?: string | undefined;
  HOME?: string | undefined;
  KUBERNETES_SERVICE_HOST?: string | undefined;
  KUBERNETES_SERVICE_PORT?: string | undefined;
}

export interface LoadKubeConfigOptions {
  /** An explicit kubeconfig file (--kubeconfig); it must exist. */
  kubeconfig?: string | undefined;
  /** A context of the kubeconfig (--kube-context) instead of its current-context. */
  context?: string | undefined;
  /** KUBECONFIG, HOME, KUBERNETES_SERVICE_HOST/PORT; pass process.env from the CLI. Without it only `kubeconfig` and ~ (os.homedir()) are tried. */
  env?: KubeEnv;
  /** Where the in-cluster ServiceAccount files are (tests); default IN_CLUSTER_DIR. */
  inClusterDir?: string;
}

export type KubeConfigSource = 'flag' | 'KUBECONFIG' | 'home' | 'in-cluster';

export interface LoadedKubeConfig {
  kubeConfig: KubeConfig;
  source: KubeConfigSource;
  /** The file(s) read, or the in-cluster directory. */
  paths: string[];
  context: string;
  /** The API server URL of the context's cluster. */
  server: string;
  /** The context's namespace (in-cluster: the pod's), if any. */
  namespace: string | undefined;
}

export function loadKubeConfig(opts: LoadKubeConfigOptions = {}): LoadedKubeConfig {
  const env = opts.env ?? {};
  const kc = new KubeConfig();
  let source: KubeConfigSource;
  let paths: string[];
  if (opts.kubeconfig !== undefined) {
    if (!existsSync(opts.kubeconfig)) throw configError(`the kubeconfig file ${opts.kubeconfig} (--kubeconfig) does not exist: give the path of a kubeconfig (as kubectl uses), or leave the flag out to use KUBECONFIG, ~/.kube/config or the in-cluster ServiceAccount`);
    loadFiles(kc, [opts.kubeconfig]);
    source = 'flag';
    paths = [opts.kubeconfig];
  } else if (env.KUBECONFIG) {
    const listed = env.KUBECONFIG.split(delimiter).filter((p) => p !== '');
    paths = listed.filter((p) => existsSync(p));
    if (paths.length === 0) throw configError(`none of the files in KUBECONFIG (${listed.join(delimiter)}) exists: fix KUBECONFIG or pass --kubeconfig`);
    loadFiles(kc, paths);
    source = 'KUBECONFIG';
  } else {
    const home = join(env.HOME || homedir(), '.kube', 'config');
    const dir = opts.inClusterDir ?? IN_CLUSTER_DIR;
    if (existsSync(home)) {
      loadFiles(kc, [home]);
      source = 'home';
      paths = [home];
    } else if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT && existsSync(join(dir, 'token'))) {
      loadInCluster(kc, env.KUBERNETES_SERVICE_HOST, env.KUBERNETES_SERVICE_PORT, dir);
      source = 'in-cluster';
      paths = [dir];
    } else {
      throw configError(
        `no Kubernetes credentials found: no --kubeconfig, KUBECONFIG is unset, ${home} does not exist, and this is not a pod ` +
          `(KUBERNETES_SERVICE_HOST/PORT unset or no token in ${dir}). Point --kubeconfig (or KUBECONFIG) at a kubeconfig, as for kubectl`,
      );
    }
  }
  if (opts.context !== undefined) {
    if (!kc.getContextObject(opts.context)) {
      const known = kc.getContexts().map((c) => c.name);
      throw configError(`the kubeconfig (${paths.join(', ')}) has no context "${opts.context}" (--kube-context); it has: ${known.join(', ') || 'none'}`);
    }
    kc.setCurrentContext(opts.context);
  }
  const context = kc.getCurrentContext();
  if (!context || !kc.getContextObject(context)) {
    throw configError(`the kubeconfig (${paths.join(', ')}) has no current-context${context ? ` named "${context}"` : ''}: pass --kube-context NAME or run \`kubectl config use-context NAME\``);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) throw configError(`the context "${context}" of the kubeconfig (${paths.join(', ')}) names no cluster with a server address: fix the kubeconfig`);
  if (!kc.getCurrentUser()) throw configError(`the context "${context}" of the kubeconfig (${paths.join(', ')}) names no user: fix the kubeconfig`);
  return { kubeConfig: kc, source, paths, context, server: cluster.server, namespace: kc.getContextObject(context)?.namespace };
}

function loadFiles(kc: KubeConfig, files: string[]): void {
  for (const [i, file] of files.entries()) {
    try {
      if (i === 0) {
        kc.loadFromFile(file);
      } else {
        const more = new KubeConfig();
        more.loadFromFile(file);
        // Like kubectl: the first file that sets a value wins, so entries already known are kept.
        mergeMissing(kc, more);
      }
    } catch (err) {
      throw configError(`cannot read the kubeconfig ${file}: ${errorMessage(err)}: fix the file (kubectl config view shows what kubectl makes of it)`, err);
    }
  }
}

function mergeMissing(into: KubeConfig, from: KubeConfig): void {
  const merged = {
    clusters: [...into.getClusters(), ...from.getClusters().filter((c) => !into.getCluster(c.name))],
    users: [...into.getUsers(), ...from.getUsers().filter((u) => !into.getUser(u.name))],
    contexts: [...into.getContexts(), ...from.getContexts().filter((c) => !into.getContextObject(c.name))],
    currentContext: into.getCurrentContext() || from.getCurrentContext(),
  };
  into.loadFromOptions(merged);
}

function loadInCluster(kc: KubeConfig, host: string, port: string, dir: string): void {
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const namespaceFile = join(dir, 'namespace');
  kc.loadFromOptions({
    clusters: [{ name: 'in-cluster', server, caFile: join(dir, 'ca.crt'), skipTLSVerify: false }],
    // client-node's file token authenticator re-reads the (projected, rotated) token file every minute.
    users: [{ name: 'in-cluster', authProvider: { name: 'tokenFile', config: { tokenFile: join(dir, 'token') } } }],
    contexts: [{ name: 'in-cluster', cluster: 'in-cluster', user: 'in-cluster', ...(existsSync(namespaceFile) ? { namespace: readTrimmed(namespaceFile) } : {}) }],
    currentContext: 'in-cluster',
  });
}

function readTrimmed(file: string): string {
  return readFileSync(file, 'utf8').trim();
}

function configError(message: string, cause?: unknown): StraitError {
  return new StraitError('STRAIT_ERR_CONFIG', message, cause === undefined ? undefined : { cause });
}
