/**
 * The lab's state file as root reads and writes it (src/local/lab/state.ts): `lab up` writes it without following a
 * link someone planted next to it, and `lab down` trusts of a state file only what cannot hurt: the pid it signals must
 * be a `strait lab up`, and a directory it names is removed only where nobody else could have swapped it for another.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isLabUpCommandLine, markLabDir, removeLabDir, unsafeToRemove, writeLabState, type LabState } from '../../src/local/lab/state.js';
import { requireOrSkip } from '../helpers/netns.js';

const made: string[] = [];
after(() => { for (const d of made) rmSync(d, { recursive: true, force: true }); });
const tmp = (label: string) => {
  const d = mkdtempSync(join(tmpdir(), `strait-labstate-${label}-`));
  made.push(d);
  return d;
};
const asRoot = () => (process.getuid?.() === 0 ? undefined : 'needs root (chown to another user; the lab runs as root)');

const STATE = { pid: 1, id: 'lab0000', prefix: 'strait-lab0000-' } as unknown as LabState;

describe('writeLabState', () => {
  it('never writes through a symlink planted at FILE.partial: the link is replaced, its target left as it was', () => {
    const dir = tmp('w');
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious\n');
    symlinkSync(victim, join(dir, 'lab.json.partial'));
    writeLabState(join(dir, 'lab.json'), STATE);
    assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
    assert.equal(JSON.parse(readFileSync(join(dir, 'lab.json'), 'utf8')).prefix, 'strait-lab0000-');
    assert.equal(existsSync(join(dir, 'lab.json.partial')), false);
  });
});

describe('writeLabState exclusive (the first write of a lab up)', () => {
  it('creates the file when it is absent, and refuses (EEXIST) leaving it intact when another lab up wrote it first', () => {
    const dir = tmp('x');
    const file = join(dir, 'lab.json');
    writeLabState(file, STATE, { exclusive: true });
    const other = { ...STATE, prefix: 'strait-lab1111-' } as LabState;
    assert.throws(() => writeLabState(file, other, { exclusive: true }), (err: NodeJS.ErrnoException) => err.code === 'EEXIST');
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).prefix, 'strait-lab0000-');
    assert.equal(existsSync(`${file}.partial`), false);
    writeLabState(file, other);
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).prefix, 'strait-lab1111-', 'later writes replace it');
  });
});

describe('isLabUpCommandLine: which pid a state file may make `lab down` signal', () => {
  const rows: [string[], boolean][] = [
    [['node', '/opt/strait/dist/src/cli/strait.js', 'lab', 'up', 'examples/demo'], true],
    [['node', '/usr/lib/node_modules/.bin/strait', '--log-level', 'debug', 'lab', 'up', '--state-file', '/tmp/x.json'], true],
    [['/usr/bin/node', 'strait.js', 'lab', 'up'], true],
    [['node', '/opt/strait/dist/src/cli/strait.js', 'lab', 'down'], false],
    [['node', '/opt/strait/dist/src/cli/strait.js', 'lab', 'exec', 'a/b', '--', 'up'], false],
    [['docker', 'compose', '-f', 'lab', 'up'], false],
    [['node', '-e', 'setInterval(() => {}, 1000)', 'lab', 'up'], false],
    [['node', '/home/u/not-strait.js', 'lab', 'up'], false],
    [[''], false],
  ];
  for (const [argv, want] of rows) {
    it(`${want ? 'is' : 'is not'} a lab up: ${argv.join(' ')}`, () => assert.equal(isLabUpCommandLine(argv), want));
  }
});

describe('removeLabDir from a state file (untrusted)', () => {
  it('removes a directory of the lab\'s own making (root\'s, in sticky /tmp) that carries its marker', (t) => {
    if (!requireOrSkip(t, asRoot())) return;
    const dir = tmp('own');
    markLabDir(dir, 'lab0000');
    assert.equal(unsafeToRemove(dir), undefined);
    assert.equal(removeLabDir(dir, 'lab0000', true), true);
    assert.equal(existsSync(dir), false);
  });

  it('leaves a marked directory inside one another user owns (they could swap it for a link between check and removal)', (t) => {
    if (!requireOrSkip(t, asRoot())) return;
    const base = tmp('other');
    const theirs = join(base, 'home');
    mkdirSync(theirs);
    const dir = join(theirs, 'data');
    mkdirSync(dir);
    markLabDir(dir, 'lab0000');
    chownSync(theirs, 65534, 65534);
    assert.match(unsafeToRemove(dir) ?? '', /belongs to uid 65534/);
    assert.equal(removeLabDir(dir, 'lab0000', true), false);
    assert.equal(existsSync(join(dir, '.strait-lab')), true);
    // The lab's own stop (trusted: it made the directory in this run) still removes it.
    assert.equal(removeLabDir(dir, 'lab0000'), true);
  });

  it('leaves a marked directory below a world-writable, non-sticky directory, and one reached through a symlink', (t) => {
    if (!requireOrSkip(t, asRoot())) return;
    const base = tmp('open');
    const open = join(base, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const dir = join(open, 'data');
    mkdirSync(dir);
    markLabDir(dir, 'lab0000');
    assert.match(unsafeToRemove(dir) ?? '', /writable by others/);
    assert.equal(removeLabDir(dir, 'lab0000', true), false);
    const real = join(base, 'real');
    mkdirSync(real);
    markLabDir(real, 'lab0000');
    symlinkSync(real, join(base, 'link'));
    assert.match(unsafeToRemove(join(base, 'link')) ?? '', /not a directory/);
    assert.equal(removeLabDir(join(base, 'link'), 'lab0000', true), false);
    assert.equal(existsSync(join(real, '.strait-lab')), true);
    assert.match(unsafeToRemove('relative/dir') ?? '', /absolute/);
    assert.match(unsafeToRemove('/tmp/../etc') ?? '', /absolute, normalised/);
  });
});
