/**
 * `strait namespace enroll|unenroll`: reads each namespace, then merge-patches its `istio.io/dataplane-mode` label
 * (unless it is already as asked, which is said, not an error). Every namespace is tried; the exit status is 1 when
 * one failed, each failure on stderr naming the namespace and the fix.
 */
import { isKubeApiError, KUBE_TYPES, type KubeClient, type StoredKubeObject } from '../../common/kube/index.js';
import { errorMessage } from '../../common/errors.js';
import type { NamespaceFlags } from '../namespace.js';
import { AMBIENT, DATAPLANE_MODE_LABEL } from './labels.js';
import { asList, formatData } from './output.js';

export interface Writers { out: (s: string) => void; err: (s: string) => void }

export async function setEnrollment(client: KubeClient, namespaces: string[], enroll: boolean, flags: NamespaceFlags, w: Writers): Promise<number> {
  let failed = 0;
  const objects: StoredKubeObject[] = [];
  const dry = flags.dryRun ? ' (dry run)' : '';
  for (const ns of namespaces) {
    try {
      const obj = await client.get(KUBE_TYPES.Namespace, ns);
      const now = obj.metadata.labels?.[DATAPLANE_MODE_LABEL];
      if (enroll ? now === AMBIENT : now === undefined) {
        objects.push(obj);
        if (!flags.output) w.out(enroll ? `namespace/${ns} is already enrolled (${DATAPLANE_MODE_LABEL}=${AMBIENT})\n` : `namespace/${ns} is not enrolled (no ${DATAPLANE_MODE_LABEL} label)\n`);
        continue;
      }
      const was = now === undefined ? '' : `, was ${DATAPLANE_MODE_LABEL}=${now}`;
      if (flags.dryRun) {
        const labels = { ...obj.metadata.labels };
        if (enroll) labels[DATAPLANE_MODE_LABEL] = AMBIENT;
        else delete labels[DATAPLANE_MODE_LABEL];
        objects.push({ ...obj, metadata: { ...obj.metadata, labels } });
      } else {
        objects.push(await client.patch(KUBE_TYPES.Namespace, ns, { metadata: { labels: { [DATAPLANE_MODE_LABEL]: enroll ? AMBIENT : null } } }));
      }
      if (!flags.output) {
        w.out(enroll ? `namespace/${ns} enrolled (${DATAPLANE_MODE_LABEL}=${AMBIENT}${was})${dry}\n` : `namespace/${ns} unenrolled (${DATAPLANE_MODE_LABEL}=${now} removed)${dry}\n`);
      }
    } catch (err) {
      failed++;
      w.err(`strait: ${describeFailure(err, ns, enroll)}\n`);
    }
  }
  if (flags.output && objects.length > 0) w.out(formatData(flags.output, objects.length === 1 ? objects[0] : asList(objects)));
  return failed > 0 ? 1 : 0;
}

/** What went wrong with one namespace, and the fix, in the words of the command. */
export function describeFailure(err: unknown, ns: string, enroll: boolean): string {
  const what = `cannot ${enroll ? 'enroll' : 'unenroll'} namespace ${ns}`;
  if (isKubeApiError(err)) {
    if (err.status === 404 && err.subject?.name !== undefined) {
      return `[${err.code}] ${what}: it does not exist${enroll ? ` (create it first: kubectl create namespace ${ns})` : ''}`;
    }
    if (err.status === 403) {
      const verb = err.subject?.verb ?? 'patch';
      return `[${err.code}] ${what}: you may not ${verb} namespaces (RBAC verb "${verb}" on "namespaces", cluster scope; the command needs get and patch): ask a cluster admin for a ClusterRole granting them`;
    }
    return `[${err.code}] ${what}: ${err.message}`;
  }
  return `${what}: ${errorMessage(err)}`;
}
