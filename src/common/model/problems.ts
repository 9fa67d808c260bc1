/** Turning Problems into what callers act on: a yes/no, or one StraitError that lists them. */
import { StraitError } from '../errors.js';
import { formatProblem, type Problem } from './types.js';

export function hasErrors(problems: readonly Problem[]): boolean {
  return problems.some((p) => p.severity === 'error');
}

/**
 * One StraitError for all error-severity problems (warnings left out), or undefined when there are none.
 * Its code is the first error's (MANIFEST_SOURCE, _PARSE or _INVALID).
 */
export function problemsError(problems: readonly Problem[]): StraitError | undefined {
  const errors = problems.filter((p) => p.severity === 'error');
  const first = errors[0];
  if (!first) return undefined;
  const head = errors.length === 1 ? '1 configuration error' : `${errors.length} configuration errors`;
  return new StraitError(first.code ?? 'STRAIT_ERR_MANIFEST_INVALID', `${head}:\n${errors.map((p) => `  ${formatProblem(p)}`).join('\n')}`);
}
