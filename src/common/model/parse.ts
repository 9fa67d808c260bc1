/**
 * YAML text, files and directories → validated objects and Problems. A bad document, file or object
 * never stops the others from loading; each problem names its file, document, object and field.
 */
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { sep } from 'node:path';
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type Node as YamlNode } from 'yaml';
import type { ErrorCode } from '../errors.js';
import { errorMessage } from '../errors.js';
import { objectKey, type LoadedObject, type ParseResult, type Problem, type Severity, type SourceRef } from './types.js';
import { field, idx, isMapping, keyed } from './fields.js';
import { validateObject, type PriorError } from './validate.js';

const MANIFEST_EXTENSIONS = ['.yaml', '.yml'];

// ---------- text ----------

/** Parses and validates every document of one YAML text; `file` is only used in messages. */
export function parseManifests(text: string, file: string): ParseResult {
  const result = parseText(text, file);
  return sorted(dropDuplicates(result), [file]);
}

function parseText(text: string, file: string): ParseResult {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { uniqueKeys: false, prettyErrors: false, lineCounter });
  const out: ParseResult = { objects: [], problems: [] };
  docs.forEach((doc, i) => {
    const r = parseDocument(doc, { file, doc: i + 1 }, lineCounter);
    out.objects.push(...r.objects);
    out.problems.push(...r.problems);
  });
  return out;
}

function fileProblem(src: SourceRef, severity: Severity, message: string, code: ErrorCode, path = ''): Problem {
  return { severity, file: src.file, doc: src.doc, path, message, code };
}

function parseDocument(doc: Document, src: SourceRef, lines: LineCounter): ParseResult {
  const problems: Problem[] = [];
  const where = (pos: number): string => {
    const { line, col } = lines.linePos(pos);
    return `line ${line}, column ${col}`;
  };
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    const more = doc.errors.length > 1 ? ` (and ${doc.errors.length - 1} more)` : '';
    problems.push(fileProblem(src, 'error', `YAML syntax error at ${where(first.pos[0])}: ${first.message}${more}`, 'STRAIT_ERR_MANIFEST_PARSE'));
    return { objects: [], problems };
  }
  for (const w of doc.warnings) {
    problems.push(fileProblem(src, 'warning', `YAML at ${where(w.pos[0])}: ${w.message}`, 'STRAIT_ERR_MANIFEST_PARSE'));
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    problems.push(fileProblem(src, 'error', `YAML could not be read: ${errorMessage(err)}`, 'STRAIT_ERR_MANIFEST_PARSE'));
    return { objects: [], problems };
  }
  if (value === null || value === undefined) return { objects: [], problems }; // an empty document
  const duplicates = duplicateKeys(doc.contents, '', lines);

  const objects: LoadedObject[] = [];
  const load = (raw: unknown, pathPrefix: string, priorErrors: PriorError[]): void => {
    const r = validateObject(raw, src, { pathPrefix, priorErrors });
    problems.push(...r.problems);
    if (r.object) objects.push({ key: objectKey(r.object), object: r.object, source: src });
  };
  if (isList(value)) {
    const items = value['items'];
    if (!Array.isArray(items)) {
      problems.push(fileProblem(src, 'error', `expected a list of objects, got ${items === undefined || items === null ? 'nothing' : 'a mapping or a value'}`, 'STRAIT_ERR_MANIFEST_INVALID', 'items'));
      return { objects, problems };
    }
    const listLevel = duplicates.filter((d) => !d.path.startsWith('items['));
    for (const d of listLevel) problems.push(fileProblem(src, 'error', d.message, 'STRAIT_ERR_MANIFEST_INVALID', d.path));
    items.forEach((item: unknown, j) => {
      const prefix = idx('items', j);
      const mine = duplicates
        .filter((d) => d.path === prefix || d.path.startsWith(`${prefix}.`) || d.path.startsWith(`${prefix}[`))
        .map((d) => ({ ...d, path: d.path.slice(prefix.length).replace(/^\./, '') }));
      load(item, prefix, mine);
    });
  } else {
    load(value, '', duplicates);
  }
  return { objects, problems };
}

/** `kind: List` (what `kubectl get -o yaml` prints) and typed lists such as PodList. */
function isList(v: unknown): v is Record<string, unknown> {
  return isMapping(v) && typeof v['kind'] === 'string' && v['kind'].endsWith('List') && v['apiVersion'] === 'v1' && 'items' in v;
}

/** Fields whose keys are user data (label names, ports), printed `labels[app]` as validation prints them. */
const MAP_FIELDS = new Set(['labels', 'annotations', 'matchLabels', 'portLevelMtls']);

/** Keys repeated within one YAML mapping: the later one is an error, naming the line of the first. */
function duplicateKeys(node: unknown, path: string, lines: LineCounter, isUserMap = false): PriorError[] {
  if (isSeq(node)) return node.items.flatMap((item, i) => duplicateKeys(item, idx(path, i), lines));
  if (!isMap(node)) return [];
  const out: PriorError[] = [];
  const seen = new Map<string, number | undefined>();
  for (const pair of node.items) {
    if (!isPair(pair)) continue;
    const key = keyText(pair.key);
    const childPath = isUserMap ? keyed(path, key) : field(path, key);
    const pos = (pair.key as YamlNode | null)?.range?.[0];
    if (seen.has(key)) {
      const first = seen.get(key);
      const firstAt = first === undefined ? '' : ` (first set at line ${lines.linePos(first).line})`;
      out.push({ path: childPath, message: `duplicate key ${JSON.stringify(key)}${firstAt}`, code: 'STRAIT_ERR_MANIFEST_INVALID' });
    } else {
      seen.set(key, pos);
    }
    if (!isAlias(pair.value)) out.push(...duplicateKeys(pair.value, childPath, lines, !isUserMap && MAP_FIELDS.has(key)));
  }
  return out;
}

function keyText(key: unknown): string {
  if (isScalar(key)) return String(key.value);
  return String(key);
}

// ---------- duplicates and ordering ----------

/** Keeps the first definition of each Kind/namespace/name and reports later ones. */
export function dropDuplicates(result: ParseResult): ParseResult {
  const first = new Map<string, LoadedObject>();
  const objects: LoadedObject[] = [];
  const problems = [...result.problems];
  for (const o of result.objects) {
    const earlier = first.get(o.key);
    if (!earlier) {
      first.set(o.key, o);
      objects.push(o);
      continue;
    }
    const p: Problem = {
      severity: 'error',
      file: o.source.file,
      doc: o.source.doc,
      kind: o.object.kind,
      name: o.object.metadata.name,
      path: '',
      message: `already defined in ${earlier.source.file} doc ${earlier.source.doc}; this later definition is ignored`,
      code: 'STRAIT_ERR_MANIFEST_INVALID',
    };
    if (o.object.metadata.namespace !== undefined) p.namespace = o.object.metadata.namespace;
    problems.push(p);
  }
  return { objects, problems };
}

/** Problems in input order: by file (in `fileOrder`, others after), then document; stable otherwise. */
function sorted(result: ParseResult, fileOrder: readonly string[]): ParseResult {
  const rank = (f: string): number => {
    const i = fileOrder.indexOf(f);
    return i < 0 ? fileOrder.length : i;
  };
  const problems = result.problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => rank(a.p.file) - rank(b.p.file) || a.p.doc - b.p.doc || a.i - b.i)
    .map(({ p }) => p);
  return { objects: result.objects, problems };
}

// ---------- files and directories ----------

/** "no such file or directory (ENOENT)" from Node's "ENOENT: no such file or directory, open 'x'". */
function osReason(err: unknown): string {
  const msg = errorMessage(err);
  const m = /^([A-Z0-9_]+): ([^,]+)/.exec(msg);
  return m ? `${m[2]} (${m[1]})` : msg;
}

function sourceProblem(file: string, message: string, severity: Severity = 'error'): Problem {
  return { severity, file, doc: 0, path: '', message, code: 'STRAIT_ERR_MANIFEST_SOURCE' };
}

const joinPath = (dir: string, name: string): string => (dir.endsWith('/') || dir.endsWith(sep) ? `${dir}${name}` : `${dir}${sep}${name}`);

/**
 * Manifest files under `dir`, recursively, sorted. Entries whose name starts with "." are skipped:
 * hidden files, and the "..data" links Kubernetes puts in mounted ConfigMaps (which would repeat every file).
 */
async function listDirectory(dir: string, problems: Problem[], visited: Set<string>): Promise<string[]> {
  let real: string;
  let entries;
  try {
    real = await realpath(dir);
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    problems.push(sourceProblem(dir, `cannot read directory: ${osReason(err)}`));
    return [];
  }
  if (visited.has(real)) return []; // a symlink loop
  visited.add(real);
  const files: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const p = joinPath(dir, e.name);
    let isDir = e.isDirectory();
    let isFile = e.isFile();
    if (e.isSymbolicLink()) {
      try {
        const s = await stat(p);
        isDir = s.isDirectory();
        isFile = s.isFile();
      } catch (err) {
        problems.push(sourceProblem(p, `cannot follow link: ${osReason(err)}`));
        continue;
      }
    }
    if (isDir) files.push(...(await listDirectory(p, problems, visited)));
    else if (isFile && MANIFEST_EXTENSIONS.some((ext) => e.name.endsWith(ext))) files.push(p);
  }
  return files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The files `path` stands for: itself when a file (any extension), its manifests when a directory. */
async function manifestFiles(path: string, problems: Problem[]): Promise<string[]> {
  let s;
  try {
    s = await stat(path);
  } catch (err) {
    problems.push(sourceProblem(path, `cannot read: ${osReason(err)}`));
    return [];
  }
  if (!s.isDirectory()) return [path];
  const files = await listDirectory(path, problems, new Set());
  if (files.length === 0 && problems.length === 0) {
    problems.push(sourceProblem(path, `no ${MANIFEST_EXTENSIONS.map((e) => `*${e}`).join(' or ')} files found`, 'warning'));
  }
  return files;
}

async function loadUnchecked(path: string): Promise<{ result: ParseResult; files: string[] }> {
  const problems: Problem[] = [];
  const files = await manifestFiles(path, problems);
  const result: ParseResult = { objects: [], problems };
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      result.problems.push(sourceProblem(file, `cannot read: ${osReason(err)}`));
      continue;
    }
    const r = parseText(text, file);
    result.objects.push(...r.objects);
    result.problems.push(...r.problems);
  }
  return { result, files: [path, ...files] };
}

/**
 * Loads a manifest file, or every *.yaml / *.yml file under a directory (recursively, in sorted order).
 * File names in problems are built from `path` as given. Never throws for bad input or unreadable paths.
 */
export async function loadManifestPath(path: string): Promise<ParseResult> {
  const { result, files } = await loadUnchecked(path);
  return sorted(dropDuplicates(result), files);
}

/**
 * Loads several paths as one configuration; an object defined twice (in any files) is an error on the later one.
 * `files` lists every path and file read, in the order problems are sorted by.
 */
export async function validatePaths(paths: readonly string[]): Promise<ParseResult & { files: string[] }> {
  const combined: ParseResult = { objects: [], problems: [] };
  const order: string[] = [];
  for (const path of paths) {
    const { result, files } = await loadUnchecked(path);
    combined.objects.push(...result.objects);
    combined.problems.push(...result.problems);
    order.push(...files);
  }
  return { ...sorted(dropDuplicates(combined), order), files: order };
}
