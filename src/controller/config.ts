import { resolve } from 'node:path';
import { StraitError } from '../common/errors.js';
import { parseDurationMs } from '../common/model/duration.js';
import { parseHostPort, type HostPort } from '../common/net.js';
import { parseByteSize } from '../common/byte-size.js';
import { DEFAULT_XDS_LIMITS, XDS_LIMIT_FLAGS, type XdsLimits } from './xds/xds-limits.js';
import { DEFAULT_DOOR_LIMITS, DOOR_LIMIT_FLAGS, DOOR_LIMIT_UNITS, ENV_DOOR_LIMITS, type DoorLimits } from './door-limits.js';
import { parseKubeControllerConfig, type KubeControllerConfig, type KubeControllerFlags } from './kube/kube-config.js';
import type { KubeEnv } from '../common/kube/kubeconfig.js';

export const ENV_CONFIG_DIR = 'STRAIT_CONFIG_DIR';
export const ENV_EXTRA_CONFIG_DIR = 'STRAIT_EXTRA_CONFIG_DIR';
export const ENV_DATA_DIR = 'STRAIT_DATA_DIR';
export const ENV_XDS_ADDRESS = 'STRAIT_XDS_ADDRESS';
export const ENV_ADMIN_ADDRESS = 'STRAIT_ADMIN_ADDRESS';
export const ENV_TRUST_DOMAIN = 'STRAIT_TRUST_DOMAIN';
export const ENV_ROOT_NAMESPACE = 'STRAIT_ROOT_NAMESPACE';
export const ENV_CERT_TTL = 'STRAIT_CERT_TTL';
export const ENV_PUSH_DEBOUNCE = 'STRAIT_PUSH_DEBOUNCE';
export const ENV_CA_CERT = 'STRAIT_CA_CERT';
export const ENV_CA_KEY = 'STRAIT_CA_KEY';
export const ENV_CA_CHAIN = 'STRAIT_CA_CHAIN';
export const ENV_SOURCE = 'STRAIT_SOURCE';
/** kubectl's own variable: a list of kubeconfig files (--kubeconfig wins over it). */
export const ENV_KUBECONFIG = 'KUBECONFIG';
export const ENV_KUBE_CONTEXT = 'STRAIT_KUBE_CONTEXT';

export const CONFIG_SOURCES = ['file', 'kubernetes'] as const;
export type ConfigSourceKind = (typeof CONFIG_SOURCES)[number];
export const DEFAULT_SOURCE: ConfigSourceKind = 'file';

/** Environment variable of each xDS limit (its flag is XDS_LIMIT_FLAGS). */
export const ENV_XDS_LIMITS: Readonly<Record<keyof XdsLimits, string>> = {
  maxStreamsPerCredential: 'STRAIT_XDS_MAX_STREAMS_PER_CREDENTIAL',
  maxStreamsPerConnection: 'STRAIT_XDS_MAX_STREAMS_PER_CONNECTION',
  maxNamesPerRequest: 'STRAIT_XDS_MAX_NAMES_PER_REQUEST',
  maxNamesPerStream: 'STRAIT_XDS_MAX_NAMES_PER_STREAM',
  maxNameBytes: 'STRAIT_XDS_MAX_NAME_LENGTH',
  maxInitialVersions: 'STRAIT_XDS_MAX_INITIAL_VERSIONS',
  maxRequestBytes: 'STRAIT_XDS_MAX_MESSAGE_SIZE',
  maxQueuedBytes: 'STRAIT_XDS_MAX_QUEUED_BYTES',
  maxUnackedResponses: 'STRAIT_XDS_MAX_UNACKED',
  stallTimeoutMs: 'STRAIT_XDS_STALL_TIMEOUT',
  firstRequestTimeoutMs: 'STRAIT_XDS_FIRST_REQUEST_TIMEOUT',
  maxInitialSyncsPerCredential: 'STRAIT_XDS_MAX_INITIAL_SYNCS_PER_CREDENTIAL',
};
/** How each limit is written: a count, a size in bytes (suffixes KiB, MiB), or a duration. */
export const LIMIT_UNITS: Readonly<Record<keyof XdsLimits, 'count' | 'bytes' | 'duration'>> = {
  maxStreamsPerCredential: 'count',
  maxStreamsPerConnection: 'count',
  maxNamesPerRequest: 'count',
  maxNamesPerStream: 'count',
  maxNameBytes: 'bytes',
  maxInitialVersions: 'count',
  maxRequestBytes: 'bytes',
  maxQueuedBytes: 'bytes',
  maxUnackedResponses: 'count',
  stallTimeoutMs: 'duration',
  firstRequestTimeoutMs: 'duration',
  maxInitialSyncsPerCredential: 'count',
};


export const DEFAULT_XDS_ADDRESS = '127.0.0.1:15012';
export const DEFAULT_ADMIN_ADDRESS = '127.0.0.1:15014';
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';
export const DEFAULT_ROOT_NAMESPACE = 'istio-system';
export const DEFAULT_CERT_TTL_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_PUSH_DEBOUNCE_MS = 100;
/** Shortest certificate lifetime accepted: rotation at half life must leave time to reach the CA. */
export const MIN_CERT_TTL_MS = 10_000;

/** How the Kubernetes source finds the API server (kubeconfig as kubectl finds it; see src/common/kube). */
export interface KubeConnection {
  /** --kubeconfig: an explicit file; else KUBECONFIG, ~/.kube/config, in-cluster. */
  kubeconfig?: string;
  context?: string;
  /** The variables kubectl looks at, copied from the environment here (nothing below reads process.env). */
  env: KubeEnv;
}

/** Timings of the Kubernetes source; set only by code that embeds the controller (tests), never by flags. */
export interface KubeSourceTuning {
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  crdRetryMs?: number;
  watchTimeoutSeconds?: number;
}

export interface ControllerConfig {
  /** Where the configuration comes from: a directory of manifests, or the Kubernetes API. */
  source: ConfigSourceKind;
  /** The manifest directory (file source only; '' with the Kubernetes source). */
  configDir: string;
  /** With source "kubernetes". */
  kube?: KubeConnection;
  kubeSourceTuning?: KubeSourceTuning;
  /**
   * More manifests, watched the same way, that the platform rather than the user writes: the local mesh puts the
   * pods of the waypoints it runs here (their addresses), as Kubernetes would create waypoint pods.
   */
  extraConfigDir?: string;
  dataDir: string;
  xdsAddress: HostPort;
  adminAddress: HostPort;
  trustDomain: string;
  rootNamespace: string;
  certTtlMs: number;
  pushDebounceMs: number;
  /** Per-peer xDS (and CA) limits; see README "Limits". */
  xdsLimits: XdsLimits;
  /** Connections, calls per connection, and the CA per credential; see README "Limits". */
  doorLimits: DoorLimits;
  operatorCa?: { certFile: string; keyFile: string; chainFile?: string };
  /** Running on Kubernetes: leader election, the CA Secret, token review, waypoints (see README "Controller on Kubernetes"). */
  kubeControl: KubeControllerConfig;
}

/** Flag values as the CLI received them (strings); a flag wins over its environment variable. */
export interface ControllerFlags {
  source?: string;
  kubeconfig?: string;
  kubeContext?: string;
  configDir?: string;
  extraConfigDir?: string;
  dataDir?: string;
  xdsAddress?: string;
  adminAddress?: string;
  trustDomain?: string;
  rootNamespace?: string;
  certTtl?: string;
  pushDebounce?: string;
  caCert?: string;
  caKey?: string;
  caChain?: string;
  /** xDS limits by XdsLimits key, as given on the command line. */
  xdsLimits?: Partial<Record<keyof XdsLimits, string>>;
  /** Listener and CA limits by DoorLimits key, as given on the command line. */
  doorLimits?: Partial<Record<keyof DoorLimits, string>>;
  /** Leader election, CA Secret, token audience, waypoint image. */
  kubeControl?: KubeControllerFlags;
}

/** What the environment cannot say: this host's name (the default replica name) and Strait's version (the image tag). */
export interface ControllerDefaults {
  hostname: string;
  version: string;
}

const fail = (msg: string) => new StraitError('STRAIT_ERR_CONFIG', msg);

/** Pure: flags + environment → validated config, or a StraitError naming the setting and the fix. */
export function parseConfig(env: Record<string, string | undefined>, flags: ControllerFlags = {}, defaults: ControllerDefaults = { hostname: 'strait-controller', version: 'latest' }): ControllerConfig {
  const pick = (flag: string | undefined, envName: string) => flag ?? (env[envName] || undefined);
  const source = pick(flags.source, ENV_SOURCE) ?? DEFAULT_SOURCE;
  if (!(CONFIG_SOURCES as readonly string[]).includes(source)) throw fail(`--source / ${ENV_SOURCE}: "${source}" is not one of ${CONFIG_SOURCES.join(', ')}`);
  const configDir = pick(flags.configDir, ENV_CONFIG_DIR);
  if (source === 'file' && !configDir) throw fail(`no config directory: pass --config-dir DIR or set ${ENV_CONFIG_DIR} (or read the Kubernetes API with --source kubernetes)`);
  if (source === 'kubernetes' && flags.configDir !== undefined) throw fail('--config-dir is for --source file; the Kubernetes source reads the API server (leave --config-dir out)');
  if (source === 'file' && (flags.kubeconfig !== undefined || flags.kubeContext !== undefined)) throw fail('--kubeconfig and --kube-context are for --source kubernetes');
  const kubeContext = pick(flags.kubeContext, ENV_KUBE_CONTEXT);
  const kube: KubeConnection | undefined =
    source === 'kubernetes'
      ? {
          ...(flags.kubeconfig !== undefined ? { kubeconfig: resolve(flags.kubeconfig) } : {}),
          ...(kubeContext ? { context: kubeContext } : {}),
          env: { KUBECONFIG: env[ENV_KUBECONFIG], HOME: env['HOME'], KUBERNETES_SERVICE_HOST: env['KUBERNETES_SERVICE_HOST'], KUBERNETES_SERVICE_PORT: env['KUBERNETES_SERVICE_PORT'] },
        }
      : undefined;
  const dataDir = pick(flags.dataDir, ENV_DATA_DIR);
  if (!dataDir) throw fail(`no data directory (where the CA root and bootstrap tokens live): pass --data-dir DIR or set ${ENV_DATA_DIR}`);
  const duration = (raw: string | undefined, what: string, dflt: number, min: number) => {
    if (raw === undefined) return dflt;
    const ms = parseDurationMs(raw);
    if (ms === undefined) throw fail(`${what}: "${raw}" is not a duration (use forms like 100ms, 30s, 12h)`);
    if (ms < min) throw fail(`${what}: ${raw} is shorter than the minimum ${min}ms`);
    return ms;
  };
  const trustDomain = pick(flags.trustDomain, ENV_TRUST_DOMAIN) ?? DEFAULT_TRUST_DOMAIN;
  if (!/^[a-z0-9._-]+$/.test(trustDomain)) throw fail(`--trust-domain: "${trustDomain}" may contain only lowercase letters, digits, ".", "-" and "_"`);
  const caCert = pick(flags.caCert, ENV_CA_CERT);
  const caKey = pick(flags.caKey, ENV_CA_KEY);
  const caChain = pick(flags.caChain, ENV_CA_CHAIN);
  if ((caCert === undefined) !== (caKey === undefined)) throw fail('--ca-cert and --ca-key go together: give both (an operator-provided root or intermediate) or neither (a generated root)');
  if (caChain && !caCert) throw fail('--ca-chain needs --ca-cert and --ca-key');
  const xdsLimits = parseLimits({ ...DEFAULT_XDS_LIMITS }, flags.xdsLimits, XDS_LIMIT_FLAGS, ENV_XDS_LIMITS, LIMIT_UNITS, pick);
  const doorLimits = parseLimits({ ...DEFAULT_DOOR_LIMITS }, flags.doorLimits, DOOR_LIMIT_FLAGS, ENV_DOOR_LIMITS, DOOR_LIMIT_UNITS, pick);
  return {
    source: source as ConfigSourceKind,
    configDir: source === 'file' ? resolve(configDir!) : '',
    ...(kube ? { kube } : {}),
    ...(pick(flags.extraConfigDir, ENV_EXTRA_CONFIG_DIR) ? { extraConfigDir: resolve(pick(flags.extraConfigDir, ENV_EXTRA_CONFIG_DIR)!) } : {}),
    dataDir: resolve(dataDir),
    xdsAddress: parseHostPort(pick(flags.xdsAddress, ENV_XDS_ADDRESS) ?? DEFAULT_XDS_ADDRESS, '--xds-address'),
    adminAddress: parseHostPort(pick(flags.adminAddress, ENV_ADMIN_ADDRESS) ?? DEFAULT_ADMIN_ADDRESS, '--admin-address'),
    trustDomain,
    rootNamespace: pick(flags.rootNamespace, ENV_ROOT_NAMESPACE) ?? DEFAULT_ROOT_NAMESPACE,
    certTtlMs: duration(pick(flags.certTtl, ENV_CERT_TTL), '--cert-ttl', DEFAULT_CERT_TTL_MS, MIN_CERT_TTL_MS),
    pushDebounceMs: duration(pick(flags.pushDebounce, ENV_PUSH_DEBOUNCE), '--push-debounce', DEFAULT_PUSH_DEBOUNCE_MS, 0),
    xdsLimits,
    doorLimits,
    ...(caCert && caKey ? { operatorCa: { certFile: resolve(caCert), keyFile: resolve(caKey), ...(caChain ? { chainFile: resolve(caChain) } : {}) } } : {}),
    kubeControl: parseKubeControllerConfig(env, flags.kubeControl ?? {}, defaults),
  };
}

/** A limit's value as its flag takes it: sizes in MiB/KiB where whole (4MiB, not 4194304), durations in s or ms. */
export function formatLimit(unit: 'count' | 'bytes' | 'duration', value: number): string {
  if (unit === 'duration') return value % 1000 === 0 ? `${value / 1000}s` : `${value}ms`;
  if (unit === 'bytes') {
    if (value >= 1024 ** 2 && value % 1024 ** 2 === 0) return `${value / 1024 ** 2}MiB`;
    if (value >= 64 * 1024 && value % 1024 === 0) return `${value / 1024}KiB`;
  }
  return String(value);
}

/** Fills `out` from flags (or their environment variables): each value a count, size or duration of at least 1. */
function parseLimits<K extends string>(
  out: Record<K, number>,
  given: Partial<Record<K, string>> | undefined,
  flagNames: Readonly<Record<K, string>>,
  envNames: Readonly<Record<K, string>>,
  units: Readonly<Record<K, 'count' | 'bytes' | 'duration'>>,
  pick: (flag: string | undefined, envName: string) => string | undefined,
): Record<K, number> {
  for (const key of Object.keys(envNames) as K[]) {
    const raw = pick(given?.[key], envNames[key]);
    if (raw === undefined) continue;
    const what = `${flagNames[key]} / ${envNames[key]}`;
    const unit = units[key];
    const value = unit === 'duration' ? parseDurationMs(raw) : unit === 'bytes' ? parseByteSize(raw) : /^\d+$/.test(raw.trim()) ? Number(raw) : undefined;
    const form = unit === 'duration' ? 'a duration like 500ms or 30s' : unit === 'bytes' ? 'a size like 1024, 512KiB or 4MiB' : 'a whole number';
    if (value === undefined || !Number.isSafeInteger(value) || value < 1) throw fail(`${what}: "${raw}" is not ${form} of at least 1`);
    out[key] = value;
  }
  return out;
}
