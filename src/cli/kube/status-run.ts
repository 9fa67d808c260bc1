/**
 * `strait status`: finds the controllers (a local mesh's state file, admin URLs, or the cluster's strait-controller
 * pods), asks each for /debug/proxy-status, prints what they say.
 */
import { existsSync, readFileSync } from 'node:fs';
import { StraitError, errorMessage } from '../../common/errors.js';
import type { ProxyStatusReport } from '../../common/xds/proxy-status.js';
import { defaultUpStateFile, pidAlive } from '../../local/up-state-file.js';
import type { StatusFlags } from '../status.js';
import { formatData } from './output.js';
import { buildStatus, formatStatusTable, type ControllerResult, type ExpectedProxy } from './status-view.js';

export const PROXY_STATUS_PATH = '/debug/proxy-status';
/** A controller's answer larger than this is refused (a mesh of 10,000 proxies answers a few MiB). */
export const MAX_PROXY_STATUS_BYTES = 64 * 1024 * 1024;

/** Prints the status; returns the exit status (1 when a controller could not be asked). */
export async function runStatus(flags: StatusFlags, env: NodeJS.ProcessEnv, write: (s: string) => void): Promise<number> {
  const { results, expected } = await gather(flags, env);
  const status = buildStatus(results, expected);
  write(flags.output === 'table' ? formatStatusTable(status, Date.now()) : formatData(flags.output, status));
  return results.some((r) => r.error !== undefined) ? 1 : 0;
}

async function gather(flags: StatusFlags, env: NodeJS.ProcessEnv): Promise<{ results: ControllerResult[]; expected: ExpectedProxy[] }> {
  if (flags.controllerAdmin && flags.controllerAdmin.length > 0) {
    const results = await Promise.all(flags.controllerAdmin.map((u) => askAdminUrl(adminUrl(u), u, flags.timeout)));
    return { results, expected: [] };
  }
  if (flags.stateFile) return localMesh(flags.stateFile, flags.timeout, true);
  if (!flags.kubeconfig && !flags.context && !flags.kubeContext) {
    const file = defaultUpStateFile();
    if (existsSync(file)) return localMesh(file, flags.timeout, false);
  }
  const { clusterStatus } = await import('./status-cluster.js');
  try {
    return { results: await clusterStatus(flags, env), expected: [] };
  } catch (err) {
    // Neither a local mesh nor a kubeconfig: say both.
    if (err instanceof StraitError && err.code === 'STRAIT_ERR_CONFIG' && !flags.kubeconfig && !flags.context && !flags.kubeContext) {
      throw new StraitError('STRAIT_ERR_STATUS', `no local mesh (no state file at ${defaultUpStateFile()}: start one with strait up, or pass --state-file) and no cluster: ${err.message}`, { cause: err });
    }
    throw err;
  }
}

/** `host:port` or a URL → the admin base URL. */
function adminUrl(u: string): string {
  const base = /^[a-z]+:\/\//i.test(u) ? u : `http://${u}`;
  try {
    return new URL(base).toString().replace(/\/$/, '');
  } catch {
    throw new StraitError('STRAIT_ERR_CONFIG', `--controller-admin ${u} is not a URL: write http://HOST:15014`);
  }
}

interface UpStateFile {
  pid?: number;
  prefix?: string;
  controller?: { admin?: string };
  nodes?: Record<string, { status?: string }>;
  waypoints?: Record<string, { status?: string }>;
}

async function localMesh(file: string, timeoutMs: number, explicit: boolean): Promise<{ results: ControllerResult[]; expected: ExpectedProxy[] }> {
  let state: UpStateFile;
  try {
    state = JSON.parse(readFileSync(file, 'utf8')) as UpStateFile;
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new StraitError('STRAIT_ERR_STATUS', missing
      ? `no local mesh: ${file} does not exist (strait up writes it once the mesh is ready and removes it when it stops)${explicit ? '' : '; for a cluster pass --kubeconfig or --context'}`
      : `cannot read the state file ${file}: ${errorMessage(err)}: pass strait up's --state-file`);
  }
  if (typeof state.prefix === 'string') {
    throw new StraitError('STRAIT_ERR_STATUS', `${file} is a lab's state file: the lab's controller listens inside its own network namespace; ask it there: sudo strait lab exec --node NODE -- curl -s http://CONTROLLER:15014${PROXY_STATUS_PATH}`);
  }
  const admin = state.controller?.admin;
  if (typeof admin !== 'string') throw new StraitError('STRAIT_ERR_STATUS', `${file} is not a state file of strait up (no controller.admin): pass strait up's --state-file`);
  if (typeof state.pid === 'number' && !pidAlive(state.pid)) {
    throw new StraitError('STRAIT_ERR_STATUS', `the local mesh of ${file} is not running (strait up pid ${state.pid} is gone): start it again, or remove the stale file`);
  }
  const result = await askAdminUrl(`http://${admin}`, 'controller', timeoutMs);
  const expected: ExpectedProxy[] = [
    ...Object.entries(state.nodes ?? {}).map(([name, n]) => ({ kind: 'ztunnel' as const, name, state: n.status ?? 'unknown' })),
    ...Object.entries(state.waypoints ?? {}).map(([name, w]) => ({ kind: 'waypoint' as const, name, state: w.status ?? 'unknown' })),
  ];
  return { results: [result], expected };
}

/** GET BASE/debug/proxy-status; a failure is the result's error (the others are still shown). */
export async function askAdminUrl(base: string, name: string, timeoutMs: number): Promise<ControllerResult> {
  const address = base;
  try {
    const res = await fetch(`${base}${PROXY_STATUS_PATH}`, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await readLimited(res, MAX_PROXY_STATUS_BYTES);
    if (text === undefined) return { name, address, error: `${PROXY_STATUS_PATH} answered more than ${MAX_PROXY_STATUS_BYTES} bytes: not a Strait controller's admin endpoint?` };
    if (res.status !== 200) {
      return { name, address, error: `${PROXY_STATUS_PATH} answered ${res.status}${res.status === 404 ? ' (a controller older than this strait, or not a Strait controller)' : `: ${text.slice(0, 200)}`}` };
    }
    return { name, address, ...parseReport(text) };
  } catch (err) {
    return { name, address, error: describeFetchError(err, base, timeoutMs) };
  }
}

/** The body as text, or undefined once it passes `max` bytes (the rest is not read). */
async function readLimited(res: Response, max: number): Promise<string | undefined> {
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > max) {
      await res.body.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The report's fields for a ControllerResult, checked enough that a wrong endpoint says so. */
export function parseReport(text: string): Pick<ControllerResult, 'info' | 'proxies' | 'error'> {
  let body: Partial<ProxyStatusReport>;
  try {
    body = JSON.parse(text) as Partial<ProxyStatusReport>;
  } catch {
    return { error: `${PROXY_STATUS_PATH} did not answer JSON: not a Strait controller's admin endpoint?` };
  }
  if (!body || typeof body.controller !== 'object' || !Array.isArray(body.proxies)) {
    return { error: `${PROXY_STATUS_PATH} answered without controller and proxies: not a Strait controller's admin endpoint?` };
  }
  return { info: body.controller, proxies: body.proxies };
}

function describeFetchError(err: unknown, base: string, timeoutMs: number): string {
  const e = err as { name?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return `no answer from ${base} within ${timeoutMs} ms`;
  const code = e.cause?.code;
  if (code === 'ECONNREFUSED') return `nothing listens at ${base} (is the controller running? its admin address is --admin-address)`;
  return `cannot reach ${base}: ${e.cause?.message ?? errorMessage(err)}`;
}
