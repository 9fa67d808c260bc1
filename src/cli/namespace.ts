import { Command } from 'commander';
import { kubeOptions, objectOutputOption, type KubeFlags } from './kube/options.js';

export interface NamespaceFlags extends KubeFlags {
  dryRun?: boolean;
  output?: 'json' | 'yaml';
}

/** `strait namespace enroll|unenroll NS...`: the `istio.io/dataplane-mode=ambient` label, as Istio's ambient mode reads it. */
export function namespaceCommand(): Command {
  return new Command('namespace')
    .description('enroll namespaces in the mesh (label istio.io/dataplane-mode=ambient) or take them out, in a cluster')
    .addCommand(labelCommand('enroll', 'enroll namespaces: their pods join the mesh (mTLS, policy) without restarting'))
    .addCommand(labelCommand('unenroll', 'take namespaces out of the mesh: remove their istio.io/dataplane-mode label'));
}

function labelCommand(name: 'enroll' | 'unenroll', description: string): Command {
  const cmd = new Command(name)
    .description(description)
    .argument('<namespace...>', 'namespaces')
    .option('--dry-run', 'say what would change, change nothing')
    .addOption(objectOutputOption());
  for (const o of kubeOptions()) cmd.addOption(o);
  return cmd.action(async (namespaces: string[], flags: NamespaceFlags) => {
    const { connectKube } = await import('./kube/connect.js');
    const { setEnrollment } = await import('./kube/namespace-ops.js');
    const kube = await connectKube(flags, process.env);
    try {
      process.exitCode = await setEnrollment(kube.client, namespaces, name === 'enroll', flags, { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) });
    } finally {
      kube.close();
    }
  });
}
