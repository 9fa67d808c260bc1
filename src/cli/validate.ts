import { Command } from 'commander';
import { validatePaths } from '../common/model/parse.js';
import { formatProblem } from '../common/model/types.js';

export function validateCommand(): Command {
  return new Command('validate')
    .description('check manifests (files or directories of YAML); prints every problem, exits 1 if any error')
    .argument('<paths...>', 'YAML files or directories')
    .option('-q, --quiet', 'print only errors and the summary')
    .action(async (paths: string[], opts: { quiet?: boolean }) => {
      const { objects, problems } = await validatePaths(paths);
      const errors = problems.filter((p) => p.severity === 'error');
      const warnings = problems.filter((p) => p.severity === 'warning');
      for (const p of problems) {
        if (p.severity === 'warning' && opts.quiet) continue;
        (p.severity === 'error' ? process.stderr : process.stdout).write(formatProblem(p) + '\n');
      }
      process.stdout.write(`${objects.length} object(s) valid, ${errors.length} error(s), ${warnings.length} warning(s)\n`);
      process.exitCode = errors.length > 0 ? 1 : 0;
    });
}
