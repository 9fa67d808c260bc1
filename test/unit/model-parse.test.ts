import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  formatProblem,
  loadManifestPath,
  parseManifests,
  problemsError,
  validatePaths,
  type ParseResult,
} from '../../src/common/model/index.js';

const lines = (r: ParseResult): string[] => r.problems.map(formatProblem);
const keys = (r: ParseResult): string[] => r.objects.map((o) => o.key);

const NS = (name: string): string => `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${name}\n`;
const SVC = (name: string, ns = 'default'): string =>
  `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\n  namespace: ${ns}\nspec:\n  ports:\n  - port: 80\n`;

// ---------- parseManifests ----------

test('loads every document and numbers them from 1, counting empty ones', () => {
  const r = parseManifests(`${NS('a')}---\n---\n# only a comment\n---\n${NS('b')}---\n`, 'ns.yaml');
  assert.deepEqual(lines(r), []);
  assert.deepEqual(keys(r), ['Namespace//a', 'Namespace//b']);
  assert.deepEqual(r.objects.map((o) => o.source), [
    { file: 'ns.yaml', doc: 1 },
    { file: 'ns.yaml', doc: 4 },
  ]);
});

test('an empty text loads nothing and reports nothing', () => {
  assert.deepEqual(parseManifests('', 'empty.yaml'), { objects: [], problems: [] });
  assert.deepEqual(parseManifests('# nothing here\n', 'empty.yaml'), { objects: [], problems: [] });
});

test('a YAML syntax error in doc 2 of 3 is reported for that document only', () => {
  const text = `${NS('a')}---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: [b\n  labels: {}\n---\n${NS('c')}`;
  const r = parseManifests(text, 'ns.yaml');
  assert.deepEqual(keys(r), ['Namespace//a', 'Namespace//c']);
  assert.equal(r.problems.length, 1);
  const p = r.problems[0]!;
  assert.equal(p.doc, 2);
  assert.equal(p.code, 'STRAIT_ERR_MANIFEST_PARSE');
  assert.match(formatProblem(p), /^ns\.yaml doc 2: YAML syntax error at line \d+, column \d+: /);
});

test('an invalid object does not stop the others in the same file', () => {
  const text = `${NS('a')}---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  namespace: a\nspec:\n  action: BLOCK\n---\n${NS('c')}`;
  const r = parseManifests(text, 'mixed.yaml');
  assert.deepEqual(keys(r), ['Namespace//a', 'Namespace//c']);
  assert.deepEqual(lines(r), ['mixed.yaml doc 2 AuthorizationPolicy a/p: spec.action: "BLOCK" is not one of ALLOW, DENY, AUDIT, CUSTOM']);
});

test('a document that is not a mapping is reported', () => {
  const r = parseManifests('just a string\n', 'x.yaml');
  assert.deepEqual(lines(r), ['x.yaml doc 1: expected a mapping with apiVersion, kind and metadata, got "just a string"']);
});

test('kind: List is expanded, with item positions in field paths', () => {
  const text = `apiVersion: v1
kind: List
metadata:
  resourceVersion: ""
items:
- apiVersion: v1
  kind: Namespace
  metadata:
    name: a
- apiVersion: v1
  kind: Service
  metadata:
    name: web
  spec:
    ports:
    - port: 0
- apiVersion: v1
  kind: Namespace
  metadata:
    name: b
`;
  const r = parseManifests(text, 'list.yaml');
  assert.deepEqual(keys(r), ['Namespace//a', 'Namespace//b']);
  assert.deepEqual(lines(r), [
    'list.yaml doc 1 Service default/web: items[1].spec.ports[0].port: 0 is out of range; expected an integer from 1 to 65535',
  ]);
});

test('a repeated key in one mapping is an error on the later one, naming the first line', () => {
  const text = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: p
  namespace: foo
spec:
  action: ALLOW
  action: DENY
`;
  const r = parseManifests(text, 'dup.yaml');
  assert.deepEqual(keys(r), []);
  assert.deepEqual(lines(r), ['dup.yaml doc 1 AuthorizationPolicy foo/p: spec.action: duplicate key "action" (first set at line 7)']);
});

test('a repeated key inside a List item is reported at the item path', () => {
  const text = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata:
    name: a
    name: b
`;
  const r = parseManifests(text, 'list.yaml');
  assert.deepEqual(lines(r), ['list.yaml doc 1 Namespace b: items[0].metadata.name: duplicate key "name" (first set at line 7)']);
});

test('the same object twice in one text is an error on the later one', () => {
  const r = parseManifests(`${SVC('web')}---\n${NS('x')}---\n${SVC('web')}`, 'svc.yaml');
  assert.deepEqual(keys(r), ['Service/default/web', 'Namespace//x']);
  assert.deepEqual(lines(r), ['svc.yaml doc 3 Service default/web: already defined in svc.yaml doc 1; this later definition is ignored']);
});

test('the same name in different namespaces or kinds is not a duplicate', () => {
  const r = parseManifests(`${SVC('web')}---\n${SVC('web', 'other')}---\n${NS('web')}`, 'svc.yaml');
  assert.deepEqual(lines(r), []);
  assert.equal(r.objects.length, 3);
});

test('problemsError gathers errors into one StraitError with the first code, warnings left out', () => {
  const r = parseManifests(`${NS('a')}  colour: red\n---\nkind: [\n`, 'p.yaml');
  const err = problemsError(r.problems);
  assert.ok(err);
  assert.equal(err.code, 'STRAIT_ERR_MANIFEST_PARSE');
  assert.match(err.message, /^1 configuration error:\n {2}p\.yaml doc 2: YAML syntax error/);
  assert.equal(problemsError(parseManifests(NS('a'), 'ok.yaml').problems), undefined);
});

// ---------- files and directories ----------

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strait-model-'));
  await mkdir(join(dir, 'conf', 'nested'), { recursive: true });
  await mkdir(join(dir, 'conf', '..2024_01_01'), { recursive: true });
  await writeFile(join(dir, 'conf', 'b.yaml'), `${NS('b')}---\n${SVC('web')}`);
  await writeFile(join(dir, 'conf', 'a.yml'), NS('a'));
  await writeFile(join(dir, 'conf', 'notes.txt'), 'not yaml');
  await writeFile(join(dir, 'conf', '.hidden.yaml'), NS('hidden'));
  await writeFile(join(dir, 'conf', '..2024_01_01', 'b.yaml'), NS('configmap-copy'));
  await writeFile(join(dir, 'conf', 'nested', 'c.yaml'), SVC('web'));
  await writeFile(join(dir, 'other.yaml'), `${NS('z')}---\n${SVC('web')}`);
  await writeFile(join(dir, 'broken.yaml'), `${NS('ok')}---\nkind: [\n---\n${NS('ok2')}`);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('a directory is read recursively in sorted order, *.yaml and *.yml only, hidden entries skipped', async () => {
  const conf = join(dir, 'conf');
  const r = await loadManifestPath(conf);
  assert.deepEqual(keys(r), ['Namespace//a', 'Namespace//b', 'Service/default/web']);
  assert.deepEqual(r.objects.map((o) => o.source.file), [join(conf, 'a.yml'), join(conf, 'b.yaml'), join(conf, 'b.yaml')]);
  assert.deepEqual(lines(r), [
    `${join(conf, 'nested', 'c.yaml')} doc 1 Service default/web: already defined in ${join(conf, 'b.yaml')} doc 2; this later definition is ignored`,
  ]);
});

test('file names in problems keep the path as given', async () => {
  const r = await loadManifestPath(`${dir}/conf/`);
  assert.equal(r.problems[0]?.file, `${dir}/conf/nested/c.yaml`);
});

test('a single file loads whatever its extension', async () => {
  const txt = join(dir, 'conf', 'notes.txt');
  const r = await loadManifestPath(txt);
  assert.deepEqual(lines(r), [`${txt} doc 1: expected a mapping with apiVersion, kind and metadata, got "not yaml"`]);
});

test('a missing path is a problem with the OS reason, not a crash', async () => {
  const missing = join(dir, 'nope.yaml');
  const r = await loadManifestPath(missing);
  assert.deepEqual(r.objects, []);
  assert.deepEqual(lines(r), [`${missing}: cannot read: no such file or directory (ENOENT)`]);
  assert.equal(r.problems[0]?.code, 'STRAIT_ERR_MANIFEST_SOURCE');
});

test('an unreadable file is reported and the rest of the directory still loads', { skip: process.getuid?.() === 0 ? 'root can read any file' : false }, async () => {
  const d = join(dir, 'perm');
  await mkdir(d);
  await writeFile(join(d, 'a.yaml'), NS('readable'));
  await writeFile(join(d, 'b.yaml'), NS('secret'));
  await chmod(join(d, 'b.yaml'), 0o000);
  const r = await loadManifestPath(d);
  assert.deepEqual(keys(r), ['Namespace//readable']);
  assert.deepEqual(lines(r), [`${join(d, 'b.yaml')}: cannot read: permission denied (EACCES)`]);
});

test('a broken symlink in a directory is reported, not fatal', async () => {
  const d = join(dir, 'links');
  await mkdir(d);
  await writeFile(join(d, 'a.yaml'), NS('linked'));
  await symlink(join(d, 'gone.yaml'), join(d, 'b.yaml'));
  const r = await loadManifestPath(d);
  assert.deepEqual(keys(r), ['Namespace//linked']);
  assert.deepEqual(lines(r), [`${join(d, 'b.yaml')}: cannot follow link: no such file or directory (ENOENT)`]);
});

test('a YAML error in one file leaves the other documents and files loading', async () => {
  const r = await validatePaths([join(dir, 'broken.yaml'), join(dir, 'conf', 'a.yml')]);
  assert.deepEqual(keys(r), ['Namespace//ok', 'Namespace//ok2', 'Namespace//a']);
  assert.equal(r.problems.length, 1);
  assert.equal(r.problems[0]?.doc, 2);
});

test('validatePaths reports an object defined in two files on the later one, naming the first', async () => {
  const conf = join(dir, 'conf');
  const other = join(dir, 'other.yaml');
  const r = await validatePaths([conf, other]);
  assert.deepEqual(keys(r), ['Namespace//a', 'Namespace//b', 'Service/default/web', 'Namespace//z']);
  assert.deepEqual(lines(r), [
    `${join(conf, 'nested', 'c.yaml')} doc 1 Service default/web: already defined in ${join(conf, 'b.yaml')} doc 2; this later definition is ignored`,
    `${other} doc 2 Service default/web: already defined in ${join(conf, 'b.yaml')} doc 2; this later definition is ignored`,
  ]);
});

test('validatePaths keeps going past an unreadable path', async () => {
  const missing = join(dir, 'missing-dir');
  const r = await validatePaths([missing, join(dir, 'other.yaml')]);
  assert.deepEqual(keys(r), ['Namespace//z', 'Service/default/web']);
  assert.deepEqual(lines(r), [`${missing}: cannot read: no such file or directory (ENOENT)`]);
});

test('a directory with no manifests gives a warning', async () => {
  const d = join(dir, 'empty');
  await mkdir(d);
  const r = await loadManifestPath(d);
  assert.deepEqual(lines(r), [`${d}: warning: no *.yaml or *.yml files found`]);
});

test('a path through a regular file is reported with the OS reason', async () => {
  const bad = join(dir, 'other.yaml', 'x.yaml');
  const r = await loadManifestPath(bad);
  assert.deepEqual(lines(r), [`${bad}: cannot read: not a directory (ENOTDIR)`]);
});

test('a repeated label is reported with the same path style as other label problems', () => {
  const r = parseManifests(`${NS('a')}  labels:\n    app: x\n    app: y\n`, 'ns.yaml');
  assert.deepEqual(lines(r), ['ns.yaml doc 1 Namespace a: metadata.labels[app]: duplicate key "app" (first set at line 6)']);
});
