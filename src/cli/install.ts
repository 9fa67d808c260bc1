/**
 * `strait install` and `strait uninstall`: daemonset.yaml onto a cluster (kubeconfig as kubectl finds it) and off it
 * again, node capture rules included. See src/cli/install/ for the rendering, the apply and the uninstall plan.
 */
import { Command, Option } from 'commander';
import { StraitError } from '../common/errors.js';
import { parseDurationMs } from '../common/model/duration.js';
import { defaultImage, formatObjects, renderInstall, type ManifestObject } from './install/manifest.js';

export const ENV_INSTALL_IMAGE = 'STRAIT_IMAGE';
export const DEFAULT_UNINSTALL_TIMEOUT_MS = 5 * 60_000;
/** How often uninstall looks whether pods are gone and the node clean-up is done. */
export const UNINSTALL_POLL_MS = 1_000;

interface CommonFlags { dryRun?: boolean; output?: 'yaml' | 'json'; image?: string; kubeconfig?: string; kubeContext?: string }

const fail = (msg: string) => new StraitError('STRAIT_ERR_CONFIG', msg);

function withCommonOptions(cmd: Command, what: string): Command {
  return cmd
    .option('--dry-run', `print what would be ${what}; talk to no cluster`)
    .addOption(new Option('-o, --output <format>', 'with --dry-run: print the objects as yaml or json (a v1 List) instead of one line per object').choices(['yaml', 'json']))
    .option('--image <image>', `the Strait image of every container and of the waypoints (default ${defaultImage()})  [env ${ENV_INSTALL_IMAGE}]`)
    .option('--kubeconfig <file>', 'kubeconfig file (default: as kubectl finds it: KUBECONFIG, ~/.kube/config, in-cluster)')
    .option('--kube-context <name>', 'kubeconfig context (default: its current context)');
}

function render(flags: CommonFlags): ManifestObject[] {
  if (flags.output && !flags.dryRun) throw fail('-o/--output prints the objects of a dry run: add --dry-run (without it, install applies them and prints one line per object)');
  const image = flags.image ?? (process.env[ENV_INSTALL_IMAGE] || undefined);
  return renderInstall(image ? { image } : {});
}

async function connect(flags: CommonFlags) {
  // Loaded on use: @kubernetes/client-node takes a while to load and a dry run needs no cluster.
  const { loadKubeConfig, KubeClient } = await import('../common/kube/index.js');
  const loaded = loadKubeConfig({ kubeconfig: flags.kubeconfig, context: flags.kubeContext, env: process.env });
  return new KubeClient(loaded, { userAgent: 'strait-install' });
}

const print = (line: string) => process.stdout.write(`${line}\n`);

export function installCommand(): Command {
  return withCommonOptions(new Command('install'), 'applied')
    .description('apply daemonset.yaml (namespace strait-system, RBAC, the controller, the ztunnel DaemonSet) to the cluster; running it again changes only what differs')
    .action(async (flags: CommonFlags) => {
      const objects = render(flags);
      if (flags.dryRun) {
        if (flags.output) process.stdout.write(formatObjects(objects, flags.output));
        else {
          const { describeObject } = await import('./install/apply.js');
          for (const o of objects) print(`${describeObject(o)} (dry run)`);
        }
        return;
      }
      const client = await connect(flags);
      try {
        const { applyAll } = await import('./install/apply.js');
        await applyAll(client, objects, print);
      } finally {
        client.close();
      }
    });
}

export function uninstallCommand(): Command {
  return withCommonOptions(new Command('uninstall'), 'removed')
    .description('remove what strait install applied and the capture rules of every node: the ztunnels first, then a clean-up DaemonSet on every node, then the rest')
    .option('--timeout <duration>', 'how long to wait for the ztunnel pods to stop, for the node clean-up on every node, and for the namespace to go (default 5m)')
    .option('--skip-node-cleanup', 'do not run the clean-up DaemonSet (nodes may keep capture rules of ztunnels that were killed)')
    .action(async (flags: CommonFlags & { timeout?: string; skipNodeCleanup?: boolean }) => {
      const timeoutMs = flags.timeout === undefined ? DEFAULT_UNINSTALL_TIMEOUT_MS : parseDurationMs(flags.timeout);
      if (timeoutMs === undefined || timeoutMs <= 0) throw fail(`--timeout: "${flags.timeout}" is not a duration (e.g. 5m, 90s)`);
      const { uninstallPlan, describePlan, planObjects, runUninstall } = await import('./install/uninstall.js');
      const plan = uninstallPlan(render(flags), { nodeCleanup: !flags.skipNodeCleanup });
      if (flags.dryRun) {
        if (flags.output) process.stdout.write(formatObjects(planObjects(plan), flags.output));
        else for (const line of describePlan(plan)) print(line);
        return;
      }
      const client = await connect(flags);
      try {
        await runUninstall(client, plan, { timeoutMs, pollMs: UNINSTALL_POLL_MS }, print);
      } finally {
        client.close();
      }
    });
}
