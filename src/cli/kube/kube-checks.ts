import type { CheckFlags } from '../check.js';
import type { Finding } from './check-types.js';

/** The Kubernetes checks (built on src/common/kube/ once it lands). */
export async function kubeChecks(_flags: CheckFlags): Promise<Finding[]> {
  return [{ section: 'kubernetes', check: 'kubernetes-api', result: 'skip', detail: 'not built yet' }];
}
