import { pino } from 'pino';
import type { Logger } from '../common/log.js';
import { errorMessage } from '../common/errors.js';

/**
 * On SIGINT, SIGTERM or SIGHUP (a closed terminal), or when the process that started this one goes away: run `close`
 * once, then exit 0 (1 if closing failed). A second signal exits at once. Returns the trigger, for other reasons
 * to stop the same way (standard output closed, see onOutputClosed).
 *
 * "The parent goes away": `strait up` starts its children with an IPC channel (src/local/child.ts), which closes
 * when the parent exits, however it exits (SIGKILL included); the child then stops as on SIGTERM. Nothing is sent on
 * the channel, and it does not keep the process alive.
 */
export function onShutdown(log: Logger, close: () => Promise<void>): (reason: string) => void {
  let stopping = false;
  const handler = (reason: string) => {
    if (stopping) {
      log.warn({ signal: reason }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal: reason }, 'shutting down');
    close().then(
      () => process.exit(0),
      (err) => {
        log.error({ err: errorMessage(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, handler);
  if (typeof process.send === 'function') {
    const parentGone = () => {
      dropOutput(log);
      // Already stopping (the parent's SIGTERM came first, then the parent finished): let the drain finish.
      if (!stopping) handler('parent exited');
    };
    if (!process.connected) parentGone(); // it went while this process was starting
    else {
      process.channel?.unref();
      process.once('disconnect', parentGone);
    }
  }
  return handler;
}

/**
 * The parent read this process's standard output (a pipe), and it is gone: drop what is buffered instead of writing
 * it. pino's buffered destination flushes synchronously at exit, and sonic-boom 4 retries a write that fails with
 * EPIPE forever: the process would never exit. pino itself does the same (no-op writes) once it sees an EPIPE.
 */
function dropOutput(log: Logger): void {
  log.level = 'silent';
  const dest = (log as unknown as Record<symbol, { flushSync?: () => void; write?: (s: string) => boolean }>)[pino.symbols.streamSym];
  if (dest && typeof dest.flushSync === 'function') {
    dest.flushSync = () => undefined;
    dest.write = () => true;
  }
}

/**
 * Calls `onClosed` once when standard output stops taking writes (EPIPE: e.g. `strait up | head -3` after head
 * exited), whether the write came through process.stdout or through the root logger; both stop writing after it.
 */
export function onOutputClosed(log: Logger, onClosed: () => void): { closed: () => boolean } {
  let closed = false;
  const fire = (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_DESTROYED') return;
    if (closed) return;
    closed = true;
    log.level = 'silent';
    onClosed();
  };
  process.stdout.on('error', fire);
  // pino's own destination (fd 1): it stops writing on EPIPE by itself; this tells us it happened.
  const dest = (log as unknown as Record<symbol, { on?: (e: string, f: (err: NodeJS.ErrnoException) => void) => void }>)[pino.symbols.streamSym];
  dest?.on?.('error', fire);
  return { closed: () => closed };
}
