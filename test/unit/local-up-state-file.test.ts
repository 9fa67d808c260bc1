import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { claimDefaultUpStateFile, defaultUpStateFile, writeStateFile } from '../../src/local/up-state-file.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('strait up\'s default state file', () => {
  const tmp = tempDir('up-state-file');
  after(() => tmp.remove());
  const deadPid = () => Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString());

  it('is a file of this user\'s name in the temporary directory, free while nobody holds it', () => {
    const file = defaultUpStateFile(tmp.path);
    assert.equal(file, join(tmp.path, `strait-up-${process.getuid!()}.json`));
    assert.deepEqual(claimDefaultUpStateFile(file), { file });
  });

  it('is left to a live strait up that holds it, and taken over from one that is gone', () => {
    const file = join(tmp.path, 'held.json');
    writeFileSync(file, JSON.stringify({ pid: process.ppid }));
    const held = claimDefaultUpStateFile(file);
    assert.equal(held.file, undefined);
    assert.match('why' in held ? held.why : '', new RegExp(`another strait up \\(pid ${process.ppid}\\) writes .*held\\.json: pass --state-file`));
    writeFileSync(file, JSON.stringify({ pid: deadPid() }));
    assert.deepEqual(claimDefaultUpStateFile(file), { file });
    writeFileSync(file, 'not json');
    assert.deepEqual(claimDefaultUpStateFile(file), { file }, 'a file that names no pid is no owner');
  });

  it('is not used when a link or a directory is there', () => {
    const link = join(tmp.path, 'link.json');
    symlinkSync(join(tmp.path, 'elsewhere'), link);
    assert.match((claimDefaultUpStateFile(link) as { why: string }).why, /is there and is not a file of this user's/);
    const dir = join(tmp.path, 'dir.json');
    mkdirSync(dir);
    assert.match((claimDefaultUpStateFile(dir) as { why: string }).why, /is not a file of this user's/);
  });

  it('is written whole by rename, replacing a planted link rather than writing through it', () => {
    const target = join(tmp.path, 'victim');
    writeFileSync(target, 'keep');
    const file = join(tmp.path, 'state.json');
    symlinkSync(target, file);
    writeFileSync(`${file}.partial`, 'left over');
    writeStateFile(file, '{"pid":1}\n');
    assert.equal(readFileSync(target, 'utf8'), 'keep');
    assert.equal(readFileSync(file, 'utf8'), '{"pid":1}\n');
    assert.equal(existsSync(`${file}.partial`), false);
  });
});
