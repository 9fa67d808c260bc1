/**
 * The lab's supervised processes by name ("controller", "ztunnel/<node>", "waypoint/<ns>/<gw>", "pod/<ns>/<pod>" for a
 * lab-command, "app/<ns>/<pod>/<container>:<port>" for a demo app), each kept running by a Supervisor as `strait up`
 * keeps its own.
 * Invariants: one Supervisor per name from add() until remove() or stopAll(); nothing is added once stopAll() began;
 * stopAll() stops in the reverse of start order (pods, waypoints, ztunnels, the controller).
 */
import { StraitError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { MeshChild } from '../child.js';
import { Supervisor, type ComponentSpec } from '../supervisor.js';
import type { ProcessState } from './state.js';

const READY_TIMEOUT_MS = 30_000;

export interface LabProcessesOptions {
  logLevel: string;
  logDir?: string;
  /** Where output lines go without a log directory. */
  write: (line: string) => void;
  log: Logger;
  /** After every change of a process's status or pid. */
  onChange: () => void;
}

export class LabProcesses {
  private readonly supervisors = new Map<string, Supervisor>();
  private stopping = false;

  constructor(private readonly opts: LabProcessesOptions) {}

  has(name: string): boolean { return this.supervisors.has(name); }
  get(name: string): Supervisor | undefined { return this.supervisors.get(name); }
  names(): string[] { return [...this.supervisors.keys()]; }

  /** pid, status and restarts of `name` (stopped when there is no such process). */
  state(name: string): ProcessState {
    const s = this.supervisors.get(name);
    return s ? { pid: s.pid, status: s.status, restarts: s.restarts } : { pid: null, status: 'stopped', restarts: 0 };
  }

  /** Starts it and resolves once it is ready; `fatal`: throws when it does not get ready, else retries with backoff. */
  async add(spec: ComponentSpec, fatal: boolean): Promise<void> {
    if (this.stopping) throw new StraitError('STRAIT_ERR_LAB', `not starting ${spec.what}: the lab is stopping`);
    const s = new Supervisor(spec, {
      spawn: (c) => MeshChild.spawn(c, this.opts.logLevel, { ...(this.opts.logDir ? { logDir: this.opts.logDir } : {}), write: this.opts.write }),
      log: this.opts.log, onChange: this.opts.onChange, readyTimeoutMs: READY_TIMEOUT_MS,
      conflictHint: 'Something else in its namespace holds the address; see its log lines.',
    });
    this.supervisors.set(spec.name, s);
    await s.start(fatal);
  }

  async remove(name: string): Promise<void> {
    const s = this.supervisors.get(name);
    if (!s) return;
    await s.stop();
    this.supervisors.delete(name);
  }

  /** Stops every process, in the reverse of start order; those added by a start in progress are stopped by a later call. */
  async stopAll(): Promise<void> {
    this.stopping = true;
    const all = [...this.supervisors.values()];
    for (const r of [0, 1, 2, 3]) await Promise.all(all.filter((s) => rank(s.name) === r).map((s) => s.stop()));
  }
}

/** Stop order: pods' processes, waypoints, ztunnels, the controller (the reverse of start). */
function rank(name: string): number {
  return name.startsWith('app/') || name.startsWith('pod/') ? 0 : name.startsWith('waypoint/') ? 1 : name.startsWith('ztunnel/') ? 2 : 3;
}
