/**
 * `strait lab down`, and the clean-up `strait lab up` does before it starts over the leftovers of a lab that is gone:
 * ask the `lab up` process to stop (it removes what it made), wait for it, then remove whatever is still there —
 * processes in the lab's namespaces, the namespaces (those the state file names and any with the lab's prefix), the
 * directories it made, the state file. Safe after `lab up` was SIGKILLed, and a no-op the second time.
 */
import { readFileSync, rmSync } from 'node:fs';
import type { Logger } from '../../common/log.js';
import { namespacesWithPrefix, removeNamespaces } from './network.js';
import { isLabUpAlive, readLabState, removeLabDir, stateNamespaces, type LabState } from './state.js';

/** How long `down` waits for `lab up` to stop by itself (its ztunnels drain first). */
export const DOWN_WAIT_MS = 30_000;

export interface DownResult {
  /** False: there was no state file. */
  found: boolean;
  /** Whether the `lab up` process was running (and was asked to stop). */
  wasRunning: boolean;
  /** What could not be removed, with why. */
  left: string[];
}

export async function labDown(stateFile: string, log: Logger, waitMs = DOWN_WAIT_MS): Promise<DownResult> {
  const state = readLabState(stateFile);
  if (!state) return { found: false, wasRunning: false, left: [] };
  const wasRunning = state.pid !== process.pid && isLabUpAlive(state.pid);
  if (wasRunning) {
    log.info({ lab_up_pid: state.pid, prefix: state.prefix }, 'stopping lab up');
    signal(state.pid, 'SIGTERM');
    if (!(await exited(state.pid, waitMs))) {
      log.warn({ lab_up_pid: state.pid, waited_ms: waitMs }, 'lab up did not stop in time: killing it');
      signal(state.pid, 'SIGKILL');
      await exited(state.pid, 5_000);
    }
  }
  const left = await removeLeftovers(state, log);
  rmSync(stateFile, { force: true });
  return { found: true, wasRunning, left };
}

/** Removes what a lab made that is still there (its `lab up` is gone). Returns what could not be removed. */
export async function removeLeftovers(state: LabState, log: Logger): Promise<string[]> {
  // Those that exist: every one with the prefix (the state file may predate the last ones made).
  const listed = await namespacesWithPrefix(state.prefix).catch(() => undefined);
  const names = listed ?? stateNamespaces(state);
  // Pods first, the fabric last: the order they were made in, reversed (as lab up removes them).
  names.sort((a, b) => order(a, state.prefix) - order(b, state.prefix));
  const left = await removeNamespaces(names);
  for (const dir of state.temporaryDirs ?? []) {
    if (typeof dir === 'string' && !removeLabDir(dir, state.id)) left.push(`${dir}: not removed (it does not carry lab ${state.id}'s marker)`);
  }
  if (names.length > 0) log.info({ prefix: state.prefix, namespaces: names.length, left }, 'removed the lab\'s leftovers');
  return left;
}

function order(ns: string, prefix: string): number {
  const role = ns.slice(prefix.length);
  return role.startsWith('p-') ? 0 : role.startsWith('n-') ? 1 : role === 'control' ? 2 : 3;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try { process.kill(pid, sig); } catch { /* gone */ }
}

/** Gone, or a zombie its parent has not reaped yet (it has exited all the same). */
function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

async function exited(pid: number, waitMs: number): Promise<boolean> {
  const until = Date.now() + waitMs;
  while (Date.now() < until) {
    if (isGone(pid)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return isGone(pid);
}
