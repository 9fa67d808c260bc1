import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { StraitError, errorMessage } from '../../common/errors.js';
import { silentLogger, type Logger } from '../../common/log.js';
import { parseManifests } from '../../common/model/parse.js';
import { formatProblem, type LoadedObject, type Problem } from '../../common/model/types.js';
import type { ConfigSource, SourceState } from '../store.js';

export const DEFAULT_FILE_POLL_MS = 500;
export const DEFAULT_FILE_DEBOUNCE_MS = 50;

interface FileEntry {
  stamp: string; // mtime:size:ino — reparse only when it changes
  objects: LoadedObject[];
  problems: Problem[];
}

/**
 * A directory (or a single file) of YAML manifests, watched. Changes take effect within
 * DEFAULT_FILE_POLL_MS at worst (fs.watch usually makes it immediate).
 * Invariants: a document that fails validation never removes the last good version of the object it
 * names; deleting a file removes its objects; the first file (sorted by path) to define a key owns it.
 */
export class FileSource implements ConfigSource {
  readonly name: string;
  private readonly files = new Map<string, FileEntry>();
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private rescanQueued = false;
  private closed = false;
  private lastState: SourceState | undefined;
  private sink: ((s: SourceState, changedAt: number) => void) | undefined;
  private dirProblem: Problem | undefined;

  constructor(
    private readonly path: string,
    private readonly log: Logger = silentLogger(),
    private readonly opts: { pollMs?: number; debounceMs?: number } = {},
  ) {
    this.name = `file:${path}`;
  }

  async start(update: (state: SourceState, changedAt: number) => void): Promise<void> {
    let st;
    try {
      st = await stat(this.path);
    } catch (err) {
      throw new StraitError('STRAIT_ERR_MANIFEST_SOURCE', `config directory ${this.path} cannot be read: ${errorMessage(err)} (check --config-dir)`, { cause: err });
    }
    if (!st.isDirectory() && !st.isFile()) {
      throw new StraitError('STRAIT_ERR_MANIFEST_SOURCE', `config path ${this.path} is neither a directory nor a file (check --config-dir)`);
    }
    this.sink = update;
    await this.scan(Date.now());
    try {
      this.watcher = watch(this.path, { recursive: st.isDirectory(), persistent: false }, () => this.schedule());
      this.watcher.on('error', (err) => this.log.warn({ err: errorMessage(err) }, 'file watch failed; falling back to polling'));
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'file watch unavailable; polling only');
    }
    this.poll = setInterval(() => this.schedule(0), this.opts.pollMs ?? DEFAULT_FILE_POLL_MS);
    this.poll.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.close();
    clearInterval(this.poll);
    clearTimeout(this.debounce);
    await this.scanning;
  }

  private schedule(delay = this.opts.debounceMs ?? DEFAULT_FILE_DEBOUNCE_MS): void {
    if (this.closed) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.rescan(), delay);
  }

  private async rescan(): Promise<void> {
    if (this.scanning) {
      this.rescanQueued = true;
      return;
    }
    const changedAt = Date.now();
    this.scanning = this.scan(changedAt).catch((err) => this.log.error({ err: errorMessage(err) }, 'scanning the config directory failed'));
    await this.scanning;
    this.scanning = undefined;
    if (this.rescanQueued && !this.closed) {
      this.rescanQueued = false;
      await this.rescan();
    }
  }

  private async scan(changedAt: number): Promise<void> {
    let paths: string[];
    try {
      paths = await listYaml(this.path);
      this.dirProblem = undefined;
    } catch (err) {
      // The directory itself went away or became unreadable: keep everything as it was, say so.
      this.dirProblem = { severity: 'error', file: this.path, doc: 0, path: '', message: `cannot read config directory (${errorMessage(err)}); keeping the last good configuration` };
      this.publish(changedAt);
      return;
    }
    const seen = new Set(paths);
    let changed = false;
    for (const p of [...this.files.keys()]) {
      if (!seen.has(p)) {
        this.files.delete(p);
        changed = true;
      }
    }
    for (const p of paths) {
      if (await this.loadFile(p)) changed = true;
    }
    if (changed || !this.lastState) this.publish(changedAt);
  }

  /** Reparses `p` if it changed; returns whether its entry changed. */
  private async loadFile(p: string): Promise<boolean> {
    const display = this.displayName(p);
    const prev = this.files.get(p);
    let stamp: string;
    let text: string;
    try {
      const st = await stat(p);
      stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
      if (prev && prev.stamp === stamp) return false;
      text = await readFile(p, 'utf8');
    } catch (err) {
      if (prev === undefined) return false; // vanished between listing and reading: next scan drops it
      const problem: Problem = { severity: 'error', file: display, doc: 0, path: '', message: `cannot read (${errorMessage(err)}); keeping its last good objects` };
      this.files.set(p, { stamp: 'unreadable', objects: prev.objects, problems: [problem] });
      return true;
    }
    const result = parseManifests(text, display);
    const objects = [...result.objects];
    const problems = [...result.problems];
    if (prev) {
      const have = new Set(objects.map((o) => o.key));
      const keep = (o: LoadedObject, why: Problem) => {
        if (have.has(o.key)) return;
        have.add(o.key);
        objects.push(o);
        problems.push({ ...why, severity: 'warning', path: '', message: `the last good version (loaded from ${o.source.file} doc ${o.source.doc}) stays in force until this document is fixed` });
      };
      for (const pr of result.problems) {
        if (pr.severity !== 'error') continue;
        if (pr.kind && pr.name) {
          const key = `${pr.kind}/${pr.namespace ?? ''}/${pr.name}`;
          const old = prev.objects.find((o) => o.key === key);
          if (old) keep(old, pr);
        } else {
          for (const old of prev.objects) if (old.source.doc === pr.doc) keep(old, pr);
        }
      }
    }
    for (const pr of problems) {
      if (pr.severity === 'error') this.log.warn({ file: display }, formatProblem(pr));
    }
    this.files.set(p, { stamp, objects, problems });
    return true;
  }

  private publish(changedAt: number): void {
    const owners = new Map<string, LoadedObject>();
    const objects: LoadedObject[] = [];
    const problems: Problem[] = this.dirProblem ? [this.dirProblem] : [];
    for (const p of [...this.files.keys()].sort()) {
      const entry = this.files.get(p)!;
      problems.push(...entry.problems);
      for (const o of entry.objects) {
        const first = owners.get(o.key);
        if (first) {
          const [kind, ns, name] = o.key.split('/');
          problems.push({
            severity: 'error', file: o.source.file, doc: o.source.doc, kind, ...(ns ? { namespace: ns } : {}), name, path: 'metadata.name',
            message: `duplicate: ${o.key} is already defined in ${first.source.file} doc ${first.source.doc}; this copy is ignored`,
          });
          continue;
        }
        owners.set(o.key, o);
        objects.push(o);
      }
    }
    this.lastState = { objects, problems };
    this.sink?.(this.lastState, changedAt);
  }

  private displayName(p: string): string {
    const rel = relative(this.path, p);
    return rel === '' ? p : rel;
  }
}

async function listYaml(root: string): Promise<string[]> {
  const st = await stat(root);
  if (st.isFile()) return [root];
  const out: string[] = [];
  const walk = async (dir: string) => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue; // editors' swap files, hidden dirs
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() && /\.ya?ml$/i.test(e.name)) out.push(p);
    }
  };
  await walk(root);
  return out.sort();
}
