/**
 * A copy of the user's manifests with their addresses translated (see address-base.ts): into the local mesh's
 * address base (`strait up --address-base`), or into the lab's 198.18.0.0/15 (`strait lab`). The controller reads the
 * copy, so it hands out the addresses the mesh really uses.
 * Invariants: `dir` holds, for each *.yaml / *.yml file of the source, the file at the same relative path with its
 * addresses moved, and no other manifest; a file is rewritten only when its moved text changed, and by rename, so
 * the controller never reads half a file.
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';

const MANIFEST_RE = /\.ya?ml$/;
/** Not a manifest name: the controller never picks up a file while it is being written. */
const PARTIAL_SUFFIX = '.strait-partial';

export class ManifestMirror {
  readonly dir: string;

  /**
   * `translate`: a manifest's text → the copy's (relocateText, labAddressText). `parent`: where the copy's directory
   * is made (default: the system's temporary directory).
   */
  constructor(private readonly source: string, private readonly translate: (text: string) => string, parent = tmpdir()) {
    this.dir = mkdtempSync(join(parent, 'strait-manifests-'));
  }

  /** Brings the copy up to date; returns whether any file changed. */
  sync(): boolean {
    const want = new Map<string, string>();
    let single = false;
    try { single = !statSync(this.source).isDirectory(); } catch { /* gone: the copy empties */ }
    for (const file of single ? [this.source] : manifestFiles(this.source)) {
      // A single file keeps its name, as a manifest the controller reads in the copy's directory.
      const rel = single ? (MANIFEST_RE.test(file) ? basename(file) : `${basename(file)}.yaml`) : relative(this.source, file);
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        continue; // removed while we looked: the next sync sees it gone
      }
      want.set(rel, this.translate(text));
    }
    let changed = false;
    for (const [rel, text] of want) {
      const to = join(this.dir, rel);
      let current: string | undefined;
      try { current = readFileSync(to, 'utf8'); } catch { current = undefined; }
      if (current === text) continue;
      mkdirSync(dirname(to), { recursive: true });
      writeFileSync(to + PARTIAL_SUFFIX, text);
      renameSync(to + PARTIAL_SUFFIX, to);
      changed = true;
    }
    for (const file of manifestFiles(this.dir)) {
      if (want.has(relative(this.dir, file))) continue;
      rmSync(file, { force: true });
      changed = true;
    }
    return changed;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function manifestFiles(path: string): string[] {
  const out: string[] = [];
  let entries;
  try { entries = readdirSync(path, { withFileTypes: true }); } catch { return []; }
  for (const entry of entries) {
    const p = join(path, entry.name);
    if (entry.isDirectory()) out.push(...manifestFiles(p));
    else if (MANIFEST_RE.test(entry.name)) out.push(p);
  }
  return out.sort();
}
