import type { Logger } from '../common/log.js';
import { formatProblem, type Problem } from '../common/model/types.js';
import { enforcementWarnings, type EnforcementOptions } from './enforcement.js';
import { problemKey, type ConfigStore } from './store.js';

/** Lines one report logs at most; the rest are counted in one line that points to /debug/configz. */
export const MAX_REPORT_LINES = 50;
import type { MeshViewSource } from './view-source.js';

/**
 * Everything wrong with the configuration in force — the store's problems (rejected versions, the last good
 * versions kept, warnings, ignored kinds) and what nothing enforces — and its log: each problem is logged once per
 * object and change, not per push.
 * Invariant: a line is logged when its (object, the object's revision in the store, text) was not in the set logged
 * last time; lines that went away are forgotten, so a problem that comes back is logged again. One report logs at
 * most MAX_REPORT_LINES lines and counts the rest in one more, and reports run at most once per `delayMs`.
 */
export class ConfigReport {
  private logged = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: ConfigStore,
    private readonly views: MeshViewSource,
    private readonly opts: EnforcementOptions,
    private readonly log: Logger,
    /** How long after a change the report is logged (changes in between are logged together). */
    private readonly delayMs: number,
  ) {}

  /** The current problems, errors and warnings, by file and document. */
  problems(): Problem[] {
    return [...this.store.problems(), ...enforcementWarnings(this.store.list(), this.views.views(), this.opts)]
      .sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.doc - b.doc));
  }

  /** Logs what is new, after `delayMs` (coalesced). */
  schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.logNew();
    }, this.delayMs);
    this.timer.unref();
  }

  /** Logs every problem not logged before for its object's current revision. */
  logNew(): void {
    const next = new Set<string>();
    let fresh = 0;
    const unsaid = { error: 0, warning: 0 };
    for (const p of this.problems()) {
      const object = problemKey(p);
      const text = formatProblem(p);
      const id = `${object ?? `${p.file}#${p.doc}`}\n${object ? this.store.revision(object) : 0}\n${text}`;
      if (next.has(id)) continue;
      next.add(id);
      if (this.logged.has(id)) continue;
      if (++fresh > MAX_REPORT_LINES) {
        unsaid[p.severity]++;
        continue;
      }
      this.log.warn({ severity: p.severity, code: p.code, ...(object ? { object } : {}), file: p.file, doc: p.doc }, text);
    }
    if (unsaid.error + unsaid.warning > 0) {
      this.log.warn({ errors: unsaid.error, warnings: unsaid.warning }, `${unsaid.error + unsaid.warning} more configuration problems (${unsaid.error} errors, ${unsaid.warning} warnings) not logged one by one: see /debug/configz on the admin address`);
    }
    this.logged = next;
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
