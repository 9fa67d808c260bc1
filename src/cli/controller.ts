import { Command } from 'commander';
import { createRootLogger, type LogFormat, type LogLevel } from '../common/log.js';
import { parseConfig, formatLimit, DEFAULT_ADMIN_ADDRESS, DEFAULT_XDS_ADDRESS, ENV_XDS_LIMITS, LIMIT_UNITS, type ControllerFlags } from '../controller/config.js';
import { DEFAULT_DOOR_LIMITS, DOOR_LIMIT_FLAGS, DOOR_LIMIT_HELP, DOOR_LIMIT_UNITS, ENV_DOOR_LIMITS, type DoorLimits } from '../controller/door-limits.js';
import { DEFAULT_XDS_LIMITS, XDS_LIMIT_FLAGS, type XdsLimits } from '../controller/xds/xds-limits.js';

/** Help text of each limit flag (README "Limits" has the full table). */
const LIMIT_HELP: Record<keyof XdsLimits, [string, string]> = {
  maxStreamsPerCredential: ['<n>', 'xDS streams open at once per node/waypoint token'],
  maxStreamsPerConnection: ['<n>', 'xDS streams open at once per HTTP/2 connection'],
  maxNamesPerRequest: ['<n>', 'resource names (subscribe + unsubscribe) per request'],
  maxNamesPerStream: ['<n>', 'explicitly subscribed resource names per stream'],
  maxNameBytes: ['<bytes>', 'bytes of a resource name, version or node field'],
  maxInitialVersions: ['<n>', 'initial_resource_versions entries per request'],
  maxRequestBytes: ['<bytes>', 'bytes of one request message'],
  maxQueuedBytes: ['<bytes>', 'bytes queued to one stream before pushes to it are coalesced'],
  maxUnackedResponses: ['<n>', 'unanswered responses per type before pushes are coalesced'],
  stallTimeoutMs: ['<duration>', 'disconnect a stream that has not read or answered for this long'],
  firstRequestTimeoutMs: ['<duration>', 'close a stream (or CA call) that sends no request for this long'],
  maxInitialSyncsPerCredential: ['<n>', 'large initial xDS responses one node/waypoint token may have in flight at once'],
};
/** Commander's attribute name for a flag: --xds-max-unacked → xdsMaxUnacked. */
const camel = (flag: string) => flag.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
import { onShutdown } from './shutdown.js';
import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import {
  DEFAULT_CA_SECRET, DEFAULT_LEASE_DURATION_MS, DEFAULT_RENEW_DEADLINE_MS, DEFAULT_RETRY_PERIOD_MS, DEFAULT_SYSTEM_NAMESPACE, DEFAULT_TOKEN_AUDIENCE,
  IMAGE_REPOSITORY, type KubeControllerFlags,
} from '../controller/kube/kube-config.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export function controllerCommand(): Command {
  const cmd = new Command('controller')
    .description('run the control plane: config source, CA (gRPC CreateCertificate) and xDS push, over TLS')
    .option('--source <source>', 'where configuration comes from: file (--config-dir) or kubernetes (list+watch of the API server) (default file)  [env STRAIT_SOURCE]')
    .option('--kubeconfig <file>', 'with --source kubernetes: kubeconfig file (default: as kubectl finds it: KUBECONFIG, ~/.kube/config, in-cluster ServiceAccount)  [env KUBECONFIG]')
    .option('--kube-context <name>', 'with --source kubernetes: kubeconfig context (default: its current-context)  [env STRAIT_KUBE_CONTEXT]')
    .option('--config-dir <dir>', 'with --source file: directory (or file) of YAML manifests, watched  [env STRAIT_CONFIG_DIR]')
    .option('--extra-config-dir <dir>', 'a second directory of manifests, watched, that the platform writes (the local mesh puts its waypoints\' pods there)  [env STRAIT_EXTRA_CONFIG_DIR]')
    .option('--data-dir <dir>', 'where the CA root and bootstrap tokens are kept  [env STRAIT_DATA_DIR]')
    .option('--xds-address <host:port>', `xDS + CA gRPC listener (default ${DEFAULT_XDS_ADDRESS})  [env STRAIT_XDS_ADDRESS]`)
    .option('--admin-address <host:port>', `admin HTTP listener: /ready /metrics /debug/syncz /debug/configz (default ${DEFAULT_ADMIN_ADDRESS})  [env STRAIT_ADMIN_ADDRESS]`)
    .option('--trust-domain <td>', 'SPIFFE trust domain (default cluster.local)  [env STRAIT_TRUST_DOMAIN]')
    .option('--root-namespace <ns>', 'namespace whose selector-less policies are mesh-wide (default istio-system)  [env STRAIT_ROOT_NAMESPACE]')
    .option('--cert-ttl <duration>', 'workload certificate lifetime (default 24h)  [env STRAIT_CERT_TTL]')
    .option('--push-debounce <duration>', 'coalesce config changes for this long before pushing (default 100ms)  [env STRAIT_PUSH_DEBOUNCE]')
    .option('--ca-cert <file>', 'operator-provided root or intermediate certificate (PEM)  [env STRAIT_CA_CERT]')
    .option('--ca-key <file>', 'its private key (PEM)  [env STRAIT_CA_KEY]')
    .option('--ca-chain <file>', 'certificates from --ca-cert up to the root (PEM)  [env STRAIT_CA_CHAIN]')
    .option('--system-namespace <ns>', `namespace the controller runs in: its Lease, CA Secret and root ConfigMap (default ${DEFAULT_SYSTEM_NAMESPACE})  [env STRAIT_SYSTEM_NAMESPACE, or POD_NAMESPACE]`)
    .option('--pod-name <name>', 'this replica\'s name, the Lease holder identity (default: the host name)  [env POD_NAME]')
    .option('--leader-elect <bool>', 'elect one writer among the replicas through a Lease (default true; false: this replica writes alone)  [env STRAIT_LEADER_ELECT]')
    .option('--lease-duration <duration>', `how long a Lease lasts unrenewed before another replica may take it (default ${DEFAULT_LEASE_DURATION_MS / 1000}s)  [env STRAIT_LEASE_DURATION]`)
    .option('--renew-deadline <duration>', `a leader that has not renewed for this long stops writing (default ${DEFAULT_RENEW_DEADLINE_MS / 1000}s)  [env STRAIT_RENEW_DEADLINE]`)
    .option('--retry-period <duration>', `between two tries to acquire or renew the Lease (default ${DEFAULT_RETRY_PERIOD_MS / 1000}s)  [env STRAIT_RETRY_PERIOD]`)
    .option('--ca-secret <name>', `Secret (in the system namespace) holding the mesh CA root, created by the leader if absent (default ${DEFAULT_CA_SECRET})  [env STRAIT_CA_SECRET]`)
    .option('--token-audience <aud>', `audience proxies' projected ServiceAccount tokens must carry (default ${DEFAULT_TOKEN_AUDIENCE})  [env STRAIT_TOKEN_AUDIENCE]`)
    .option('--waypoint-image <image>', `image of the waypoint Deployments the leader creates (default ${IMAGE_REPOSITORY}:${VERSION})  [env STRAIT_IMAGE]`)
    .action(async (flags: ControllerFlags & Record<string, string | undefined>, cmd: Command) => {
      const globals = cmd.optsWithGlobals() as { logLevel: LogLevel; logFormat: LogFormat };
      const xdsLimits: Partial<Record<keyof XdsLimits, string>> = {};
      for (const key of Object.keys(XDS_LIMIT_FLAGS) as (keyof XdsLimits)[]) {
        const v = flags[camel(XDS_LIMIT_FLAGS[key])];
        if (v !== undefined) xdsLimits[key] = v;
      }
      const doorLimits: Partial<Record<keyof DoorLimits, string>> = {};
      for (const key of Object.keys(DOOR_LIMIT_FLAGS) as (keyof DoorLimits)[]) {
        const v = flags[camel(DOOR_LIMIT_FLAGS[key])];
        if (v !== undefined) doorLimits[key] = v;
      }
      const kubeControl: KubeControllerFlags = {};
      for (const k of ['systemNamespace', 'podName', 'leaderElect', 'leaseDuration', 'renewDeadline', 'retryPeriod', 'caSecret', 'tokenAudience', 'waypointImage'] as const) {
        if (flags[k] !== undefined) kubeControl[k] = flags[k];
      }
      const config = parseConfig(process.env, { ...flags, xdsLimits, doorLimits, kubeControl }, { hostname: hostname(), version: VERSION });
      const log = createRootLogger({ component: 'controller', level: globals.logLevel, format: globals.logFormat });
      // Loaded on use: each command pulls in only its own component.
      const { startController } = await import('../controller/app.js');
      const running = await startController(config, log);
      onShutdown(log, () => running.close());
    });
  for (const key of Object.keys(XDS_LIMIT_FLAGS) as (keyof XdsLimits)[]) {
    const [arg, help] = LIMIT_HELP[key];
    cmd.option(`${XDS_LIMIT_FLAGS[key]} ${arg}`, `${help} (default ${formatLimit(LIMIT_UNITS[key], DEFAULT_XDS_LIMITS[key])})  [env ${ENV_XDS_LIMITS[key]}]`);
  }
  for (const key of Object.keys(DOOR_LIMIT_FLAGS) as (keyof DoorLimits)[]) {
    const [arg, help] = DOOR_LIMIT_HELP[key];
    cmd.option(`${DOOR_LIMIT_FLAGS[key]} ${arg}`, `${help} (default ${formatLimit(DOOR_LIMIT_UNITS[key], DEFAULT_DOOR_LIMITS[key])})  [env ${ENV_DOOR_LIMITS[key]}]`);
  }
  return cmd;
}
