/**
 * Where `strait up` writes its state file when no --state-file is given, so that `strait status` finds a local mesh
 * without being told: `<tmpdir>/strait-up-<uid>.json`. One mesh owns it at a time: a `strait up` that finds it held
 * by a live `strait up` (the `pid` in it) leaves it alone and writes none. The file is removed when the mesh stops
 * (nothing is left in the temporary directory), and written whole by rename, never through a link someone planted
 * (writeStateFile).
 */
import { lstatSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function defaultUpStateFile(tmp: string = tmpdir()): string {
  return join(tmp, `strait-up-${process.getuid?.() ?? 'user'}.json`);
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
 * The default state file for this `strait up`, or why it writes none: something else than a file of this user's is
 * there, or a live `strait up` holds the file.
 */
export function claimDefaultUpStateFile(file: string = defaultUpStateFile()): Claim {
  let st;
  try {
    st = lstatSync(file);
  } catch {
    return { file };
  }
  const uid = process.getuid?.();
  if (!st.isFile() || (uid !== undefined && st.uid !== uid)) {
    return { why: `${file} is there and is not a file of this user's (a link, a directory, or another user's): remove it, or pass --state-file` };
  }
  const owner = stateFileOwner(file);
  if (owner !== undefined && owner !== process.pid && pidAlive(owner)) {
    return { why: `another strait up (pid ${owner}) writes ${file}: pass --state-file to this one, and to strait status` };
  }
  return { file };
}

/**
 * Writes a state file whole: into FILE.partial, made afresh (O_EXCL: never through a link or file someone planted,
 * which matters in a shared temporary directory), then renamed over FILE, so a reader never sees half of it.
 */
export function writeStateFile(file: string, text: string): void {
  const partial = `${file}.partial`;
  rmSync(partial, { force: true });
  writeFileSync(partial, text, { flag: 'wx', mode: 0o644 });
  renameSync(partial, file);
}
