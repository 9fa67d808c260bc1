import type { Finding } from './check-types.js';
import { formatTable } from './output.js';

export interface CheckReport {
  /** False when any check failed (the exit status is then 1). */
  ok: boolean;
  findings: Finding[];
}

export function checkReport(findings: Finding[]): CheckReport {
  return { ok: !findings.some((f) => f.result === 'fail'), findings };
}

/** The table of findings, then the fix of every one that is not a pass, then one summary line. */
export function formatCheckTable(r: CheckReport): string {
  const out = [formatTable(['SECTION', 'CHECK', 'RESULT', 'DETAIL'], r.findings.map((f) => [f.section, f.check, f.result.toUpperCase(), f.detail]))];
  const fixes = r.findings.filter((f) => f.result !== 'pass' && f.fix);
  if (fixes.length > 0) {
    out.push('\nTo fix:\n');
    for (const f of fixes) out.push(`  ${f.check} (${f.result}): ${f.fix}\n`);
  }
  const n = (k: Finding['result']) => r.findings.filter((f) => f.result === k).length;
  out.push(`\n${r.ok ? 'OK' : 'FAILED'}: ${n('pass')} passed, ${n('fail')} failed, ${n('warn')} warning(s), ${n('skip')} skipped\n`);
  return out.join('');
}
