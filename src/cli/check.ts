import { Command, Option } from 'commander';
import { DEFAULT_SYSTEM_NAMESPACE, kubeOptions, outputOption, type KubeFlags, type OutputFormat } from './kube/options.js';
import { ENV_IPTABLES } from './lab.js';

export interface CheckFlags extends KubeFlags {
  only?: 'kubernetes' | 'node';
  systemNamespace: string;
  output: OutputFormat;
}

export function checkCommand(): Command {
  const cmd = new Command('check')
    .description('pre-flight: the Kubernetes API answers, you may create what strait install creates, the CRDs Strait reads are installed; this machine can capture (Node.js, iptables nat, the capture rules in a scratch namespace, the SO_ORIGINAL_DST addon). Prints the fix for each finding; exits 1 when a check fails')
    .addOption(new Option('--only <section>', 'run only the kubernetes checks or only the node checks').choices(['kubernetes', 'node']))
    .option('--system-namespace <ns>', 'the namespace strait install uses', DEFAULT_SYSTEM_NAMESPACE)
    .addOption(outputOption());
  for (const o of kubeOptions()) cmd.addOption(o);
  return cmd.action(async (flags: CheckFlags) => {
    const { runCheck } = await import('./kube/check-run.js');
    process.exitCode = await runCheck(flags, { env: process.env, iptables: process.env[ENV_IPTABLES] || undefined }, (s) => process.stdout.write(s));
  });
}
