import { StraitError } from '../../common/errors.js';
import type { StatusFlags } from '../status.js';
import type { ControllerResult } from './status-view.js';

/** The cluster's controllers through the API server (built on src/common/kube/ once it lands). */
export async function clusterStatus(_flags: StatusFlags): Promise<ControllerResult[]> {
  throw new StraitError('STRAIT_ERR_STATUS', 'no local mesh found and the cluster path is not built yet');
}
