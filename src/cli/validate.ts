import { Command } from 'commander';

export function validateCommand(): Command {
  return new Command('validate')
    .description('check manifests (files or directories of YAML); prints every problem, exits 1 if any error')
    .argument('<paths...>', 'YAML files or directories')
    .option('-q, --quiet', 'print only errors and the summary')
    .action(async (paths: string[], opts: { quiet?: boolean }) => {
      // Loaded here, not at the top: every strait command (the ztunnel too) loads this file, and the YAML
      // parser costs a long-running proxy several MB it never uses.
      const { validatePaths } = await import('../common/model/parse.js');
      const { formatProblem } = await import('../common/model/types.js');
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
