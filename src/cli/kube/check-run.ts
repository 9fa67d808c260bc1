import type { CheckFlags } from '../check.js';
import type { Finding } from './check-types.js';
import { checkReport, formatCheckTable } from './check-view.js';
import { nodeChecks } from './node-checks.js';
import { formatData } from './output.js';

/** Runs the checks, prints them; returns the exit status (1 when one failed). */
export async function runCheck(flags: CheckFlags, node: { env: NodeJS.ProcessEnv; iptables: string | undefined }, write: (s: string) => void): Promise<number> {
  const findings: Finding[] = [];
  if (flags.only !== 'node') {
    const { kubeChecks } = await import('./kube-checks.js');
    findings.push(...(await kubeChecks(flags, node.env)));
  }
  if (flags.only !== 'kubernetes') findings.push(...(await nodeChecks({ env: node.env, ...(node.iptables ? { iptables: node.iptables } : {}) })));
  const report = checkReport(findings);
  write(flags.output === 'table' ? formatCheckTable(report) : formatData(flags.output, report));
  return report.ok ? 0 : 1;
}
