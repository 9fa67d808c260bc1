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
}

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
    ? pino.destination({ dest: opts.destination ?? 1, sync: false, mkdir: true, maxLength: opts.asyncBufferBytes })
    : pino.destination({ dest: opts.destination ?? 1, sync: true, mkdir: true });
  dest.on('drop', () => dropped++);
  return pino(options, dest);
}

/** A logger that drops everything (unit tests, library defaults). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
