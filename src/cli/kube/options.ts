/**
 * Options the cluster commands share (namespace, waypoint, status, check), kept light: every `strait` command loads
 * this file, the work is loaded on use.
 */
import { InvalidArgumentError, Option } from 'commander';
import { parseDurationMs } from '../../common/model/duration.js';

export const OUTPUT_FORMATS = ['table', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Strait's own namespace (controller, ztunnel DaemonSet, CA Secret, Lease). */
export const DEFAULT_SYSTEM_NAMESPACE = 'strait-system';

/** `-o, --output table|json|yaml` (default table). */
export function outputOption(): Option {
  return new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS).default('table');
}

export interface KubeFlags {
  kubeconfig?: string;
  context?: string;
  /** --kube-context, the controller's name for --context (accepted too). */
  kubeContext?: string;
}

/** `--kubeconfig FILE` and `--context NAME`: without them, the kubeconfig as kubectl finds it (KUBECONFIG, ~/.kube/config, in-cluster). */
export function kubeOptions(): Option[] {
  return [
    new Option('--kubeconfig <file>', 'kubeconfig file (default: as kubectl finds it: KUBECONFIG, ~/.kube/config, in-cluster)'),
    new Option('--context <name>', 'kubeconfig context (default: its current-context)'),
    new Option('--kube-context <name>', 'the same as --context (the controller\'s name for it)').hideHelp(),
  ];
}

/** Namespaced commands: `-n, --namespace NS` (default: the kubeconfig context's namespace, else default). */
export function namespaceOption(): Option {
  return new Option('-n, --namespace <ns>', 'namespace (default: the kubeconfig context\'s, else default)');
}

/** `-o json|yaml` for commands whose plain output is a message per object (as kubectl label, apply, delete). */
export function objectOutputOption(): Option {
  return new Option('-o, --output <format>', 'print the resulting objects instead of a message').choices(['json', 'yaml']);
}

/** Commander parser of a duration flag (`30s`, `2m`). */
export function durationFlag(v: string): number {
  const ms = parseDurationMs(v);
  if (ms === undefined || ms <= 0) throw new InvalidArgumentError(`"${v}" is not a duration (write e.g. 30s or 2m)`);
  return ms;
}
