/**
 * The lab's state file (lab contract §3): where everything of a running `strait lab up` is, for `strait lab exec`,
 * `status` and `down` and for tests. Written whole by rename (a reader never sees half a file), rewritten on every
 * change, removed at stop. Also what `down` trusts to remove a lab whose `lab up` is gone: only namespaces with the
 * lab's own prefix, and only directories holding the lab's marker file.
 */
import { existsSync, linkSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, normalize } from 'node:path';
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

/**
 * Writes the state whole: into FILE.partial, created afresh (O_EXCL: never through a symlink or file someone planted
 * there, which `lab up`, as root, would otherwise write through), then renamed over FILE. `exclusive`: FILE must not
 * exist yet (throws EEXIST, leaving it as it was).
 */
export function writeLabState(file: string, state: LabState, o: { exclusive?: boolean } = {}): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  const partial = `${file}.partial`;
  rmSync(partial, { force: true });
  writeFileSync(partial, JSON.stringify(state, null, 2) + '\n', { mode: 0o644, flag: 'wx' });
  if (!o.exclusive) return renameSync(partial, file);
  // The first write of a lab: FILE must not exist (another `lab up` that started at the same moment took it).
  try {
    linkSync(partial, file);
  } finally {
    rmSync(partial, { force: true });
  }
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

/**
 * Whether `argv` (a /proc cmdline) is a `strait lab up`: the strait program (`strait`, `strait.js`), then, after its
 * global options, `lab` immediately followed by `up`. Not any command line that merely holds the words `lab` and `up`.
 */
export function isLabUpCommandLine(argv: readonly string[]): boolean {
  const program = argv.findIndex((a) => /^strait(\.js)?$/.test(basename(a)));
  if (program < 0) return false;
  const lab = argv.indexOf('lab', program + 1);
  return lab > program && argv[lab + 1] === 'up';
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
    return isLabUpCommandLine(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'));
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

/**
 * Why `dir` cannot be removed safely as root, or undefined: it must be an absolute, normalised path whose every
 * component is a real directory (no symlink) owned by this user, the directories above it writable by no one else
 * unless sticky (as /tmp: others cannot rename what is ours there), and `dir` itself writable by no one else. Otherwise
 * whoever can write one of them could swap a component for a symlink between the marker check and the removal, and
 * have root remove a directory of their choice.
 */
export function unsafeToRemove(dir: string): string | undefined {
  if (!isAbsolute(dir) || normalize(dir) !== dir || dir === '/') return 'not an absolute, normalised path';
  const uid = process.getuid?.() ?? 0;
  const parts = dir.split('/').filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const path = '/' + parts.slice(0, i).join('/');
    let st;
    try {
      st = lstatSync(path);
    } catch {
      return `${path} cannot be read`;
    }
    if (!st.isDirectory()) return `${path} is not a directory (a symlink?)`;
    if (st.uid !== uid && !(i === 0 && st.uid === 0)) return `${path} belongs to uid ${st.uid}`;
    const othersWrite = (st.mode & 0o022) !== 0;
    if (othersWrite && (i === parts.length || (st.mode & 0o1000) === 0)) return `${path} is writable by others`;
  }
  return undefined;
}

/**
 * Removes `dir` if it carries lab `id`'s marker (a state file cannot make `down` remove anything else). `untrusted`:
 * `dir` comes from a state file, which anyone who can write it may have edited: removed only when unsafeToRemove
 * finds nothing (returns false otherwise).
 */
export function removeLabDir(dir: string, id: string, untrusted = false): boolean {
  if (untrusted && existsSync(dir) && unsafeToRemove(dir) !== undefined) return false;
  try {
    if (readFileSync(join(dir, LAB_MARKER_FILE), 'utf8').trim() !== id) return false;
  } catch {
    return !existsSync(dir);
  }
  rmSync(dir, { recursive: true, force: true });
  return true;
}

/**
 * Who to run `lab exec` in: a pod ("ns/name"), a waypoint ("ns/gateway") or a node (--node). Only a namespace of the
 * lab (its prefix): an edited state file cannot send the command into another namespace of the machine.
 */
export function execTarget(state: LabState, target: { pod?: string; node?: string }): { netns: string } | { error: string } {
  const own = (netns: string) => (typeof netns === 'string' && netns.startsWith(state.prefix) ? { netns }
    : { error: `the state file names namespace ${netns} for it, which is not one of the lab's (${state.prefix}*): is the state file intact?` });
  if (target.node !== undefined) {
    const n = state.nodes[target.node];
    if (n) return own(n.netns);
    return { error: `no node ${target.node} in the lab; its nodes: ${Object.keys(state.nodes).join(', ') || 'none'}` };
  }
  const key = target.pod ?? '';
  const p = state.pods[key] ?? state.waypoints[key];
  if (p) return own(p.netns);
  return { error: `no pod ${key || '(none given)'} in the lab (write <namespace>/<pod>, or --node NAME); its pods: ${Object.keys(state.pods).join(', ') || 'none'}`
    + (Object.keys(state.waypoints).length ? `; waypoints: ${Object.keys(state.waypoints).join(', ')}` : '') };
}
