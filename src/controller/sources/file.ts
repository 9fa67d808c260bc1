import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { StraitError, errorMessage } from '../../common/errors.js';
import { silentLogger, type Logger } from '../../common/log.js';
import { parseManifests } from '../../common/model/parse.js';
import { isSupportedKind } from '../../common/model/validate.js';
import type { LoadedObject, Problem } from '../../common/model/types.js';
import { problemKey, type ConfigSource, type SourceEvent, type SourceSink } from '../store.js';

export const DEFAULT_FILE_POLL_MS = 500;
export const DEFAULT_FILE_DEBOUNCE_MS = 50;
/**
 * A reparse that would drop or reject objects a file held is applied only if the file has not changed again this
 * long after it was read: a file being rewritten in place by another process reads empty or cut short for a moment.
 */
export const DEFAULT_FILE_SETTLE_MS = 200;

/** What the source says about one key: a valid version, or the errors of the version it holds. */
interface Offer {
  doc: number;
  object?: LoadedObject;
  warnings: Problem[];
  rejected?: Problem[];
}

interface FileEntry {
  stamp: string; // mtime:size:ino — reparse only when it changes
  offers: Map<string, Offer>;
  /** Problems that name no object this file offers (YAML trouble, ignored kinds, duplicates within the file). */
  loose: Problem[];
}

const DIRECTORY_SCOPE = '(directory)';

/**
 * A directory (or a single file) of YAML manifests, watched, sent to the store as per-object events. Changes take
 * effect within DEFAULT_FILE_POLL_MS at worst (fs.watch usually makes it immediate).
 * Invariants: every key is sent as the first file (sorted by path) that names it offers it — a valid version
 * (upsert) or an invalid one (reject: the store keeps the last good version); a key is deleted only when no file
 * names it any more; a document too broken to name its object (bad YAML, a misspelt kind) stands for the objects
 * that document held before; a reread that would drop or reject what a file held counts only once the file has
 * stopped changing (DEFAULT_FILE_SETTLE_MS), so a file rewritten in place is never seen half-written; the sink gets
 * only what changed since the last batch.
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
  private published: { offers: Map<string, Offer>; scopes: Map<string, Problem[]> } | undefined;
  private sink: SourceSink | undefined;
  private dirProblem: Problem | undefined;

  constructor(
    private readonly path: string,
    private readonly log: Logger = silentLogger(),
    private readonly opts: { pollMs?: number; debounceMs?: number; settleMs?: number } = {},
  ) {
    this.name = `file:${path}`;
  }

  async start(sink: SourceSink): Promise<void> {
    let st;
    try {
      st = await stat(this.path);
    } catch (err) {
      throw new StraitError('STRAIT_ERR_MANIFEST_SOURCE', `config directory ${this.path} cannot be read: ${errorMessage(err)} (check --config-dir)`, { cause: err });
    }
    if (!st.isDirectory() && !st.isFile()) {
      throw new StraitError('STRAIT_ERR_MANIFEST_SOURCE', `config path ${this.path} is neither a directory nor a file (check --config-dir)`);
    }
    this.sink = sink;
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
      this.dirProblem = { severity: 'error', file: this.path, doc: 0, path: '', message: `cannot read config directory (${errorMessage(err)}); keeping the last good configuration`, code: 'STRAIT_ERR_MANIFEST_SOURCE' };
      this.publish(changedAt, true);
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
    if (changed || !this.published) this.publish(changedAt, false);
  }

  /** Reparses `p` if it changed; returns whether its entry changed. */
  private async loadFile(p: string): Promise<boolean> {
    const display = this.displayName(p);
    const prev = this.files.get(p);
    let stamp: string;
    let text: string;
    try {
      const st = await stat(p);
      stamp = stampOf(st);
      if (prev && prev.stamp === stamp) return false;
      const bytes = await readFile(p);
      if (bytes.length !== st.size) {
        this.schedule(); // rewritten while we read it: read it again
        return false;
      }
      text = bytes.toString('utf8');
    } catch (err) {
      if (prev === undefined) return false; // vanished between listing and reading: next scan drops it
      const problem: Problem = { severity: 'error', file: display, doc: 0, path: '', message: `cannot read (${errorMessage(err)}); keeping its last good objects`, code: 'STRAIT_ERR_MANIFEST_SOURCE' };
      const offers = new Map<string, Offer>();
      for (const [key, o] of prev.offers) offers.set(key, { doc: o.doc, warnings: [], rejected: [problem] });
      this.files.set(p, { stamp: 'unreadable', offers, loose: offers.size > 0 ? [] : [problem] });
      return true;
    }
    const parsed = parseManifests(text, display);
    const next = fileOffers(parsed.objects, parsed.problems, prev);
    if (prev && losesObjects(prev, next) && !(await this.settled(p, stamp))) {
      this.schedule(); // read mid-write: keep what the file held, read it again once the writer is done
      return false;
    }
    this.files.set(p, { stamp, ...next });
    return true;
  }

  /** Whether `p` still has `stamp` after the settle time (a writer that truncated it has finished by then). */
  private async settled(p: string, stamp: string): Promise<boolean> {
    await new Promise((r) => setTimeout(r, this.opts.settleMs ?? DEFAULT_FILE_SETTLE_MS));
    try {
      return stampOf(await stat(p)) === stamp;
    } catch {
      return false; // gone: the next scan drops it
    }
  }

  /** Sends what changed since the last batch: per key, the first file's offer; per file, its loose problems. */
  private publish(changedAt: number, keepObjects: boolean): void {
    const offers = new Map<string, Offer>();
    const scopes = new Map<string, Problem[]>();
    if (this.dirProblem) scopes.set(DIRECTORY_SCOPE, [this.dirProblem]);
    if (keepObjects && this.published) {
      for (const [k, o] of this.published.offers) offers.set(k, o);
      for (const [s, ps] of this.published.scopes) if (s !== DIRECTORY_SCOPE) scopes.set(s, ps);
    } else {
      for (const p of [...this.files.keys()].sort()) {
        const entry = this.files.get(p)!;
        const display = this.displayName(p);
        const loose = [...entry.loose];
        for (const [key, o] of entry.offers) {
          const first = offers.get(key);
          if (!first) {
            offers.set(key, o);
            continue;
          }
          if (!o.object) {
            loose.push(...(o.rejected ?? []));
            continue;
          }
          const [kind, ns, name] = key.split('/');
          const firstAt = first.object ? `${first.object.source.file} doc ${first.object.source.doc}` : `${first.rejected?.[0]?.file ?? '?'} doc ${first.doc}`;
          loose.push({
            severity: 'error', file: o.object.source.file, doc: o.object.source.doc, kind: kind!, ...(ns ? { namespace: ns } : {}), name: name!, path: 'metadata.name',
            message: `duplicate: ${key} is already defined in ${firstAt}; this copy is ignored`, code: 'STRAIT_ERR_MANIFEST_INVALID',
          });
        }
        if (loose.length > 0) scopes.set(display, loose);
      }
    }

    const first = this.published === undefined;
    const before = this.published ?? { offers: new Map<string, Offer>(), scopes: new Map<string, Problem[]>() };
    const events: SourceEvent[] = [];
    for (const [key, o] of offers) {
      const was = before.offers.get(key);
      if (!first && was && sameOffer(was, o)) continue;
      events.push(o.object ? { type: 'upsert', object: o.object, warnings: o.warnings } : { type: 'reject', key, problems: o.rejected ?? [] });
    }
    for (const key of before.offers.keys()) if (!offers.has(key)) events.push({ type: 'delete', key });
    for (const [scope, ps] of scopes) if (first || !isDeepStrictEqual(before.scopes.get(scope), ps)) events.push({ type: 'problems', scope, problems: ps });
    for (const scope of before.scopes.keys()) if (!scopes.has(scope)) events.push({ type: 'problems', scope, problems: [] });
    this.published = { offers, scopes };
    if (first || events.length > 0) this.sink?.(events, changedAt, first ? { resync: true } : {});
  }

  private displayName(p: string): string {
    const rel = relative(this.path, p);
    return rel === '' ? p : rel;
  }
}

function stampOf(st: { mtimeMs: number; size: number; ino: number }): string {
  return `${st.mtimeMs}:${st.size}:${st.ino}`;
}

/** Whether a reparse drops an object the file offered, or turns a valid one into a rejection. */
function losesObjects(prev: Pick<FileEntry, 'offers'>, next: Pick<FileEntry, 'offers'>): boolean {
  for (const [key, o] of prev.offers) {
    const n = next.offers.get(key);
    if (!n || (o.object && !n.object)) return true;
  }
  return false;
}

function sameOffer(a: Offer, b: Offer): boolean {
  return isDeepStrictEqual(a.object, b.object) && isDeepStrictEqual(a.warnings, b.warnings) && isDeepStrictEqual(a.rejected, b.rejected);
}

/**
 * One file's parse as offers by key. A document whose errors name a supported kind rejects that object; one whose
 * errors name none (bad YAML, a misspelt kind, no name) rejects what the same document held before, if anything.
 */
function fileOffers(objects: readonly LoadedObject[], problems: readonly Problem[], prev: FileEntry | undefined): Omit<FileEntry, 'stamp'> {
  const offers = new Map<string, Offer>();
  for (const o of objects) offers.set(o.key, { doc: o.source.doc, object: o, warnings: [] });
  const rejected = new Map<string, { doc: number; problems: Problem[] }>();
  for (const p of problems) {
    const key = problemKey(p);
    if (p.severity === 'error' && key && !offers.has(key) && isSupportedKind(p.kind!)) {
      const r = rejected.get(key) ?? rejected.set(key, { doc: p.doc, problems: [] }).get(key)!;
      r.problems.push(p);
    }
  }
  const unnamed = new Map<number, Problem[]>(); // doc → errors of a document that names no usable object
  const loose: Problem[] = [];
  for (const p of problems) {
    const key = problemKey(p);
    const own = key ? offers.get(key) : undefined;
    if (own && own.doc === p.doc && p.severity === 'warning') own.warnings.push(p);
    else if (key && rejected.get(key)?.doc === p.doc) {
      if (p.severity === 'warning') rejected.get(key)!.problems.push(p);
    } else if (p.severity === 'error' && p.doc > 0 && !(key && offers.has(key))) {
      (unnamed.get(p.doc) ?? unnamed.set(p.doc, []).get(p.doc)!).push(p);
    } else loose.push(p);
  }
  for (const [key, r] of rejected) offers.set(key, { doc: r.doc, warnings: [], rejected: r.problems });
  for (const [doc, ps] of unnamed) {
    const heldBefore = [...(prev?.offers ?? [])].filter(([key, o]) => o.doc === doc && !offers.has(key));
    for (const [key] of heldBefore) offers.set(key, { doc, warnings: [], rejected: ps });
    if (heldBefore.length === 0) loose.push(...ps);
  }
  return { offers, loose };
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
