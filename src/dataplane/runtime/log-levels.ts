/**
 * The process's loggers, so that the admin `/logging` endpoint changes the level of every one of them.
 * Invariant: every logger handed out by child() is in `loggers`, and all share one level.
 */
import type { AdminRoute } from '../../common/admin.js';
import type { Logger, LogLevel } from '../../common/log.js';

const LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export class LogLevels {
  private readonly loggers: Logger[];

  /** `onChange`: told every level set through /logging (the primary passes it on to its data-plane workers). */
  constructor(private readonly root: Logger, private readonly onChange?: (level: LogLevel) => void) {
    this.loggers = [root];
  }

  /** Sets the level of every logger (a data-plane worker, told by its primary). Ignores what is not a level. */
  set(level: string): void {
    if (!LEVELS.includes(level as LogLevel)) return;
    for (const l of this.loggers) l.level = level;
  }

  /** A child logger of the root whose level follows /logging. */
  child(bindings: Record<string, unknown>): Logger {
    const l = this.root.child(bindings);
    this.loggers.push(l);
    return l;
  }

  /** GET: the level; POST ?level=L: sets it on every logger. */
  route(): AdminRoute {
    return {
      GET: async () => ({ status: 200, body: { level: this.root.level } }),
      POST: async (_req, url) => {
        const level = url.searchParams.get('level') as LogLevel | null;
        if (!level || !LEVELS.includes(level)) return { status: 400, body: { error: `give ?level= one of ${LEVELS.join(', ')}` } };
        for (const l of this.loggers) l.level = level;
        this.onChange?.(level);
        this.root.info({ level }, 'log level changed');
        return { status: 200, body: { level } };
      },
    };
  }
}
