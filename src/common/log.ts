import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';
export type LogFormat = 'json' | 'pretty';
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface RootLoggerOptions {
  /** Component name, e.g. "controller", "ztunnel", "waypoint"; stamped on every line. */
  component: string;
  level?: LogLevel;
  format?: LogFormat;
  /** Extra fields on every line (node name, ...). */
  base?: Record<string, unknown>;
  /** Write to this file descriptor or path instead of stdout. */
  destination?: number | string;
  /**
   * Write asynchronously through a buffer of at most this many bytes instead of synchronously. A synchronous write
   * to a pipe whose reader falls behind blocks the whole process (a proxy stops accepting); past the buffer, lines
   * are dropped and counted (droppedLogLines()). Flushed synchronously when the process exits. JSON format only.
   */
  asyncBufferBytes?: number;
  /**
   * With asyncBufferBytes: gather lines until this many bytes before writing (one write for many lines rather than
   * one per line), flushed at least every LOG_FLUSH_INTERVAL_MS and at exit. For per-request access logs.
   */
  asyncMinBytes?: number;
  /**
   * Other processes write to the same standard output (data-plane workers): with asyncBufferBytes, each write is at
   * most PIPE_BUF bytes of whole lines, which the kernel keeps in one piece on a pipe, so lines never interleave.
   */
  sharedOutput?: boolean;
}

/** The largest write a pipe keeps atomic on Linux (POSIX PIPE_BUF). */
export const PIPE_BUF_BYTES = 4096;

/** How long a gathered log line may wait for its write (see asyncMinBytes). */
export const LOG_FLUSH_INTERVAL_MS = 100;

let dropped = 0;

/** Log lines dropped because the asynchronous buffer was full (see RootLoggerOptions.asyncBufferBytes). */
export function droppedLogLines(): number {
  return dropped;
}

/**
 * Makes the process's one root logger. Only each component's app.ts (and the CLI) calls this; everything
 * else receives a child logger.
 */
export function createRootLogger(opts: RootLoggerOptions): Logger {
  const options: LoggerOptions = {
    level: opts.level ?? 'info',
    base: { component: opts.component, pid: process.pid, ...(opts.base ?? {}) },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  if (opts.format === 'pretty') {
    return pino({
      ...options,
      transport: {
        target: 'pino-pretty',
        options: { colorize: process.stdout.isTTY ?? false, destination: opts.destination ?? 1, sync: true },
      },
    });
  }
  const dest = opts.asyncBufferBytes
    ? pino.destination({
      dest: opts.destination ?? 1, sync: false, mkdir: true, maxLength: opts.asyncBufferBytes,
      // Shared output: batches stay under PIPE_BUF (sonic-boom needs minLength < maxWrite).
      ...(opts.asyncMinBytes ? { minLength: opts.sharedOutput ? Math.min(opts.asyncMinBytes, PIPE_BUF_BYTES / 2) : opts.asyncMinBytes } : {}),
      ...(opts.sharedOutput ? { maxWrite: PIPE_BUF_BYTES } : {}),
    })
    : pino.destination({ dest: opts.destination ?? 1, sync: true, mkdir: true });
  dest.on('drop', () => dropped++);
  if (opts.asyncBufferBytes && opts.asyncMinBytes) {
    const timer = setInterval(() => { try { dest.flush(); } catch { /* nothing gathered, or the stream is closing */ } }, LOG_FLUSH_INTERVAL_MS);
    timer.unref();
    dest.once('close', () => clearInterval(timer));
  }
  return pino(options, dest);
}

/** A logger that drops everything (unit tests, library defaults). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
