/**
 * `strait waypoint apply|list|delete`: waypoint Gateways (class istio-waypoint) in a cluster, as istioctl waypoint
 * manages them. The controller turns each into a Deployment and Service and sets its status.
 */
import { Command, Option } from 'commander';
import { durationFlag, kubeOptions, namespaceOption, objectOutputOption, outputOption, type KubeFlags, type OutputFormat } from './kube/options.js';

export const DEFAULT_WAYPOINT_NAME = 'waypoint';
export const DEFAULT_WAIT_TIMEOUT_MS = 60_000;
const WAYPOINT_FOR = ['service', 'workload', 'all', 'none'];

export interface WaypointApplyFlags extends KubeFlags {
  namespace?: string;
  name: string;
  for: 'service' | 'workload' | 'all' | 'none';
  enrollNamespace?: boolean;
  overwrite?: boolean;
  wait?: boolean;
  timeout: number;
  dryRun?: boolean;
  output?: 'json' | 'yaml';
}

export interface WaypointListFlags extends KubeFlags {
  namespace?: string;
  allNamespaces?: boolean;
  output: OutputFormat;
}

export interface WaypointDeleteFlags extends KubeFlags {
  namespace?: string;
  all?: boolean;
}

function withKube(cmd: Command): Command {
  for (const o of kubeOptions()) cmd.addOption(o);
  return cmd;
}

export function waypointApplyCommand(): Command {
  return withKube(new Command('apply')
    .description('create or update a waypoint Gateway (class istio-waypoint, HBONE listener on 15008) in a namespace')
    .addOption(namespaceOption())
    .option('--name <name>', 'the Gateway\'s name', DEFAULT_WAYPOINT_NAME)
    .addOption(new Option('--for <traffic>', 'what it serves: the istio.io/waypoint-for label').choices(WAYPOINT_FOR).default('service'))
    .option('--enroll-namespace', 'also label the namespace istio.io/use-waypoint=NAME, so its services use this waypoint')
    .option('--overwrite', 'with --enroll-namespace: replace another waypoint the namespace uses')
    .option('--wait', 'wait until the Gateway is Programmed (the controller has deployed it and given it an address)')
    .option('--timeout <duration>', `how long --wait waits (default ${DEFAULT_WAIT_TIMEOUT_MS / 1000}s)`, durationFlag, DEFAULT_WAIT_TIMEOUT_MS)
    .option('--dry-run', 'print what would change, change nothing (with -o: the Gateway it would apply)')
    .addOption(objectOutputOption())
    .action(async (flags: WaypointApplyFlags) => {
      const { runWaypoint } = await import('./kube/waypoint-ops.js');
      await runWaypoint(flags, process.env, (kube, w) => kube.apply(flags, w));
    }));
}

export function waypointListCommand(): Command {
  return withKube(new Command('list')
    .description('list waypoint Gateways with what they serve, their address and whether they are Programmed')
    .addOption(namespaceOption())
    .option('-A, --all-namespaces', 'in every namespace')
    .addOption(outputOption())
    .action(async (flags: WaypointListFlags) => {
      const { runWaypoint } = await import('./kube/waypoint-ops.js');
      await runWaypoint(flags, process.env, (kube, w) => kube.list(flags, w));
    }));
}

export function waypointDeleteCommand(): Command {
  return withKube(new Command('delete')
    .description('delete waypoint Gateways by name, or --all of a namespace (the controller removes their Deployments and Services)')
    .argument('[names...]', 'waypoint Gateway names')
    .addOption(namespaceOption())
    .option('--all', 'every waypoint of the namespace')
    .action(async (names: string[], flags: WaypointDeleteFlags) => {
      const { runWaypoint } = await import('./kube/waypoint-ops.js');
      await runWaypoint(flags, process.env, (kube, w) => kube.delete(names, flags, w));
    }));
}
