/**
 * The lab's state file (lab contract §3): where everything of a running `strait lab up` is, for `strait lab exec`,
 * `status` and `down` and for tests. Written whole by rename (a reader never sees half a file), rewritten on every
 * change, removed at stop. Also what `down` trusts to remove a lab whose `lab up` is gone: only namespaces with the
 * lab's own prefix, and only directories holding the lab's marker file.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { StraitError, errorMessage } from '../../common/errors.js';
import type { ComponentStatus } from '../supervisor.js';

export const DEFAULT_LAB_STATE_FILE = '/run/strait/lab.json';
/** `strait-lab1a2b-`: what every namespace of one lab starts with. */
export const LAB_PREFIX_RE = /^strait-lab[0-9a-f]{4}-$/;
/** In each directory a lab made (and removes at stop): the lab's id, so `down` removes only what a lab made. */
export const LAB_MARKER_FILE = '.strait-lab';

export interface ProcessState {
  /** null while it does not run. */
  pid: number | null;
  status: ComponentStatus;
  restarts: number;
}

export interface LabState {
  /** The `strait lab up` process. */
  pid: number;
  id: string;
  prefix: string;
  manifestDir: string;
  dataDir: string;
  rootCert: string;
  fabric: { netns: string };
  controller: ProcessState & { netns: string; address: string; xds: string; admin: string };
  nodes: Record<string, { netns: string; address: string; gateway: string; fabricInterface: string; ztunnel: ProcessState }>;
  pods: Record<string, { netns: string; node: string; address: string; hostInterface: string; process: null | (ProcessState & { command: string }) }>;
  waypoints: Record<string, ProcessState & { netns: string; node: string; address: string }>;
  services: Record<string, { clusterIP: string; ports: { port: number; targetPort: number | string }[]; endpoints: string[] }>;
  /** Directories the lab made (each with LAB_MARKER_FILE), removed at stop. */
  temporaryDirs: string[];
}

export function writeLabState(file: string, state: LabState): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  const partial = `${file}.partial`;
  writeFileSync(partial, JSON.stringify(state, null, 2) + '\n', { mode: 0o644 });
  renameSync(partial, file);
}

/** The state, or undefined when there is no file. A file that is not a lab's state is an error naming it. */
export function readLabState(file: string): LabState | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StraitError('STRAIT_ERR_LAB', `cannot read the lab's state file ${file}: ${errorMessage(err)}`);
  }
  let state: LabState;
  try {
    state = JSON.parse(text) as LabState;
  } catch (err) {
    throw new StraitError('STRAIT_ERR_LAB', `${file} is not a lab's state file (${errorMessage(err)}): pass the right --state-file, or remove it`);
  }
  if (typeof state?.prefix !== 'string' || !LAB_PREFIX_RE.test(state.prefix) || typeof state.pid !== 'number') {
    throw new StraitError('STRAIT_ERR_LAB', `${file} is not a lab's state file (no lab prefix or pid): pass the right --state-file, or remove it`);
  }
  return state;
}

/** Whether `pid` is a live `strait lab up` (not just any process that got the pid of one that died). */
export function isLabUpAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const lab = argv.indexOf('lab');
    return lab >= 0 && argv.slice(lab + 1).includes('up');
  } catch {
    return false;
  }
}

/** Every namespace a state file names (only those with its prefix). */
export function stateNamespaces(state: LabState): string[] {
  const names = [state.fabric?.netns, state.controller?.netns, ...Object.values(state.nodes ?? {}).map((n) => n.netns),
    ...Object.values(state.pods ?? {}).map((p) => p.netns), ...Object.values(state.waypoints ?? {}).map((w) => w.netns)];
  return [...new Set(names.filter((n): n is string => typeof n === 'string' && n.startsWith(state.prefix)))];
}

/** Makes `dir` a directory the lab removes at stop (and `down` after a lab that is gone). */
export function markLabDir(dir: string, id: string): void {
  writeFileSync(join(dir, LAB_MARKER_FILE), `${id}\n`);
}

/** Removes `dir` if it carries lab `id`'s marker (a state file cannot make `down` remove anything else). */
export function removeLabDir(dir: string, id: string): boolean {
  try {
    if (readFileSync(join(dir, LAB_MARKER_FILE), 'utf8').trim() !== id) return false;
  } catch {
    return !existsSync(dir);
  }
  rmSync(dir, { recursive: true, force: true });
  return true;
}

/** Who to run `lab exec` in: a pod ("ns/name"), a waypoint ("ns/gateway") or a node (--node). */
export function execTarget(state: LabState, target: { pod?: string; node?: string }): { netns: string } | { error: string } {
  if (target.node !== undefined) {
    const n = state.nodes[target.node];
    if (n) return { netns: n.netns };
    return { error: `no node ${target.node} in the lab; its nodes: ${Object.keys(state.nodes).join(', ') || 'none'}` };
  }
  const key = target.pod ?? '';
  const p = state.pods[key] ?? state.waypoints[key];
  if (p) return { netns: p.netns };
  return { error: `no pod ${key || '(none given)'} in the lab (write <namespace>/<pod>, or --node NAME); its pods: ${Object.keys(state.pods).join(', ') || 'none'}`
    + (Object.keys(state.waypoints).length ? `; waypoints: ${Object.keys(state.waypoints).join(', ')}` : '') };
}
