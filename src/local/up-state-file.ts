/**
 * Where `strait up` writes its state file when no --state-file is given, so that `strait status` finds a local mesh
 * without being told: `<tmpdir>/strait-<uid>/up.json`, in a directory only this user can enter. One mesh owns it at
 * a time: a `strait up` that finds it held by a live `strait up` (the `pid` in it) leaves it alone and writes none.
 */
import { lstatSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorMessage } from '../common/errors.js';

export const UP_STATE_FILE_NAME = 'up.json';

export function defaultUpStateFile(tmp: string = tmpdir()): string {
  return join(tmp, `strait-${process.getuid?.() ?? 'user'}`, UP_STATE_FILE_NAME);
}

/** True when a process with this pid exists (signal 0: EPERM still means it exists). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The `strait up` pid a state file names, or undefined (no file, not JSON, no pid). */
export function stateFileOwner(file: string): number | undefined {
  try {
    const pid = (JSON.parse(readFileSync(file, 'utf8')) as { pid?: unknown }).pid;
    return typeof pid === 'number' && Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export type Claim = { file: string } | { file?: undefined; why: string };

/**
 * The default state file for this `strait up`, or why it writes none: the directory is not this user's own (made
 * 0700 if absent), or a live `strait up` holds the file.
 */
export function claimDefaultUpStateFile(file: string = defaultUpStateFile()): Claim {
  const dir = join(file, '..');
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = lstatSync(dir);
    const uid = process.getuid?.();
    if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o077) !== 0) {
      return { why: `${dir} is not a directory that only this user can write (a symlink, another owner, or open permissions): pass --state-file` };
    }
  } catch (err) {
    return { why: `cannot make ${dir}: ${errorMessage(err)}` };
  }
  const owner = stateFileOwner(file);
  if (owner !== undefined && owner !== process.pid && pidAlive(owner)) {
    return { why: `another strait up (pid ${owner}) writes ${file}: pass --state-file to this one, and to strait status` };
  }
  return { file };
}
