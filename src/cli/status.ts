import { Command, Option } from 'commander';
import { DEFAULT_SYSTEM_NAMESPACE, durationFlag, kubeOptions, outputOption, type KubeFlags, type OutputFormat } from './kube/options.js';
import { ENV_STATE_FILE } from './up.js';

export const DEFAULT_STATUS_TIMEOUT_MS = 5000;

export interface StatusFlags extends KubeFlags {
  stateFile?: string;
  controllerAdmin?: string[];
  systemNamespace: string;
  output: OutputFormat;
  timeout: number;
}

export function statusCommand(): Command {
  const cmd = new Command('status')
    .description('the controller(s) and every connected proxy: per xDS type SYNCED/STALE/NACKED/NOT SENT with the version ACKed, NACKs with their message (as istioctl proxy-status); of a local mesh (strait up) or a cluster')
    .addOption(new Option('--state-file <file>', `a local mesh: strait up's state file (default: <tmpdir>/strait-<uid>/up.json when it exists, else the cluster)  [env ${ENV_STATE_FILE}]`))
    .option('--controller-admin <url...>', 'ask these controller admin endpoints (http://HOST:15014) instead of a local mesh or the cluster')
    .option('--system-namespace <ns>', 'a cluster: the namespace of the strait-controller pods', DEFAULT_SYSTEM_NAMESPACE)
    .option('--timeout <duration>', `each request to a controller or the API server (default ${DEFAULT_STATUS_TIMEOUT_MS / 1000}s)`, durationFlag, DEFAULT_STATUS_TIMEOUT_MS)
    .addOption(outputOption());
  for (const o of kubeOptions()) cmd.addOption(o);
  return cmd.action(async (flags: StatusFlags) => {
    const { runStatus } = await import('./kube/status-run.js');
    process.exitCode = await runStatus({ ...flags, stateFile: flags.stateFile ?? process.env[ENV_STATE_FILE] }, process.env, (s) => process.stdout.write(s));
  });
}
