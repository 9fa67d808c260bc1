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
  const dest = pino.destination({ dest: opts.destination ?? 1, sync: true, mkdir: true });
  return pino(options, dest);
}

/** A logger that drops everything (unit tests, library defaults). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
