/**
 * The root logger's asynchronous mode (the ztunnel's): a reader of standard output that falls behind must not stop
 * the process; past the buffer, lines are dropped and counted. Each case is a child process whose standard output
 * is a pipe this test never reads.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

const LOG_MODULE = new URL('../../src/common/log.js', import.meta.url).href;

/** Runs a child that logs 5,000 lines of ~250 bytes to an unread stdout; resolves with what it said on stderr, or 'blocked'. */
function logToUnreadPipe(asyncBufferBytes: number | undefined, waitMs: number): Promise<string> {
  const script = `
    const { createRootLogger, droppedLogLines } = await import(${JSON.stringify(LOG_MODULE)});
    const log = createRootLogger({ component: 'test', ${asyncBufferBytes ? `asyncBufferBytes: ${asyncBufferBytes}` : ''} });
    for (let i = 0; i < 5000; i++) log.info({ i, pad: 'x'.repeat(200) }, 'a line nobody reads');
    process.stderr.write('dropped ' + droppedLogLines() + '\\n');
    process.exit(0);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pause(); // never read: the pipe fills after 64 KiB
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  return new Promise((resolve) => {
    const t = setTimeout(() => { child.kill('SIGKILL'); resolve('blocked'); }, waitMs);
    child.on('exit', () => { clearTimeout(t); resolve(err.trim()); });
  });
}

describe('root logger and a reader that does not keep up', () => {
  it('with a buffer: drops (and counts) the lines past it and goes on', async () => {
    const said = await logToUnreadPipe(64 * 1024, 10_000);
    const m = /^dropped (\d+)$/.exec(said);
    assert.ok(m, `the child finished: ${said}`);
    assert.ok(Number(m[1]) > 1_000, `lines past the pipe and the 64 KiB buffer were dropped (${m[1]})`);
  });

  it('without one (synchronous writes): the process stops until someone reads', async () => {
    assert.equal(await logToUnreadPipe(undefined, 1_500), 'blocked');
  });
});
