/**
 * The controller's settings for running on Kubernetes (leader election, CA Secret, token review, waypoints), from
 * flags and the environment that config.ts hands over. Pure.
 */
import { StraitError } from '../../common/errors.js';
import { parseDurationMs } from '../../common/model/duration.js';

export const ENV_SYSTEM_NAMESPACE = 'STRAIT_SYSTEM_NAMESPACE';
/** Set from the downward API (metadata.namespace) in the controller's Deployment. */
export const ENV_POD_NAMESPACE = 'POD_NAMESPACE';
export const ENV_POD_NAME = 'POD_NAME';
export const ENV_LEADER_ELECT = 'STRAIT_LEADER_ELECT';
export const ENV_LEASE_DURATION = 'STRAIT_LEASE_DURATION';
export const ENV_RENEW_DEADLINE = 'STRAIT_RENEW_DEADLINE';
export const ENV_RETRY_PERIOD = 'STRAIT_RETRY_PERIOD';
export const ENV_CA_SECRET = 'STRAIT_CA_SECRET';
export const ENV_TOKEN_AUDIENCE = 'STRAIT_TOKEN_AUDIENCE';
export const ENV_WAYPOINT_IMAGE = 'STRAIT_IMAGE';

export const DEFAULT_SYSTEM_NAMESPACE = 'strait-system';
export const DEFAULT_LEASE_DURATION_MS = 15_000;
export const DEFAULT_RENEW_DEADLINE_MS = 10_000;
export const DEFAULT_RETRY_PERIOD_MS = 2_000;
export const DEFAULT_CA_SECRET = 'strait-ca';
export const DEFAULT_TOKEN_AUDIENCE = 'strait-controller';
export const LEASE_NAME = 'strait-controller';
export const IMAGE_REPOSITORY = 'ghcr.io/strait-mesh/strait';

export interface KubeControllerConfig {
  systemNamespace: string;
  /** This replica's name: the Lease's holderIdentity. */
  podName: string;
  leaderElect: boolean;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  caSecret: string;
  tokenAudience: string;
  waypointImage: string;
}

export interface KubeControllerFlags {
  systemNamespace?: string;
  podName?: string;
  leaderElect?: string | boolean;
  leaseDuration?: string;
  renewDeadline?: string;
  retryPeriod?: string;
  caSecret?: string;
  tokenAudience?: string;
  waypointImage?: string;
}

const fail = (msg: string) => new StraitError('STRAIT_ERR_CONFIG', msg);
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** `defaults.hostname` names the replica when neither --pod-name nor POD_NAME does; `defaults.version` tags the image. */
export function parseKubeControllerConfig(
  env: Record<string, string | undefined>,
  flags: KubeControllerFlags,
  defaults: { hostname: string; version: string },
): KubeControllerConfig {
  const pick = (flag: string | undefined, ...envNames: string[]) => flag ?? envNames.map((n) => env[n] || undefined).find((v) => v !== undefined);
  const duration = (flag: string | undefined, envName: string, what: string, dflt: number) => {
    const raw = pick(flag, envName);
    if (raw === undefined) return dflt;
    const ms = parseDurationMs(raw);
    if (ms === undefined || ms < 100) throw fail(`${what} / ${envName}: "${raw}" is not a duration of at least 100ms (e.g. 15s)`);
    return ms;
  };
  const systemNamespace = pick(flags.systemNamespace, ENV_SYSTEM_NAMESPACE, ENV_POD_NAMESPACE) ?? DEFAULT_SYSTEM_NAMESPACE;
  if (!DNS1123_LABEL.test(systemNamespace)) throw fail(`--system-namespace: "${systemNamespace}" is not a namespace name (lowercase letters, digits and "-")`);
  const podName = pick(flags.podName, ENV_POD_NAME) ?? defaults.hostname;
  if (!podName) throw fail(`no replica name for the Lease: pass --pod-name NAME or set ${ENV_POD_NAME} (from the downward API, metadata.name)`);
  const electRaw = flags.leaderElect === true ? 'true' : pick(flags.leaderElect === false ? 'false' : flags.leaderElect, ENV_LEADER_ELECT) ?? 'true';
  if (electRaw !== 'true' && electRaw !== 'false') throw fail(`--leader-elect / ${ENV_LEADER_ELECT}: "${electRaw}" must be true or false`);
  const leaseDurationMs = duration(flags.leaseDuration, ENV_LEASE_DURATION, '--lease-duration', DEFAULT_LEASE_DURATION_MS);
  const renewDeadlineMs = duration(flags.renewDeadline, ENV_RENEW_DEADLINE, '--renew-deadline', DEFAULT_RENEW_DEADLINE_MS);
  const retryPeriodMs = duration(flags.retryPeriod, ENV_RETRY_PERIOD, '--retry-period', DEFAULT_RETRY_PERIOD_MS);
  if (!(leaseDurationMs > renewDeadlineMs)) throw fail(`--lease-duration (${leaseDurationMs}ms) must be longer than --renew-deadline (${renewDeadlineMs}ms): a leader that cannot renew must stop writing before another replica may take over`);
  if (!(renewDeadlineMs > retryPeriodMs)) throw fail(`--renew-deadline (${renewDeadlineMs}ms) must be longer than --retry-period (${retryPeriodMs}ms): a leader must get more than one try to renew`);
  const caSecret = pick(flags.caSecret, ENV_CA_SECRET) ?? DEFAULT_CA_SECRET;
  if (!DNS1123_SUBDOMAIN.test(caSecret)) throw fail(`--ca-secret: "${caSecret}" is not a Secret name`);
  const tokenAudience = pick(flags.tokenAudience, ENV_TOKEN_AUDIENCE) ?? DEFAULT_TOKEN_AUDIENCE;
  if (!tokenAudience.trim()) throw fail('--token-audience must not be empty');
  const waypointImage = pick(flags.waypointImage, ENV_WAYPOINT_IMAGE) ?? `${IMAGE_REPOSITORY}:${defaults.version}`;
  return { systemNamespace, podName, leaderElect: electRaw === 'true', leaseDurationMs, renewDeadlineMs, retryPeriodMs, caSecret, tokenAudience, waypointImage };
}
