/** One finding of `strait check`: what was checked, the result, what was seen, and how to fix it. */
export const CHECK_RESULTS = ['pass', 'warn', 'fail', 'skip'] as const;
export type CheckResult = (typeof CHECK_RESULTS)[number];
export const CHECK_SECTIONS = ['kubernetes', 'node'] as const;
export type CheckSection = (typeof CHECK_SECTIONS)[number];

export interface Finding {
  section: CheckSection;
  /** Stable name, e.g. `kubernetes-api`, `permissions`, `crds`, `iptables`. */
  check: string;
  result: CheckResult;
  /** What was found. */
  detail: string;
  /** What to do (fail, warn and skip). */
  fix?: string;
}
