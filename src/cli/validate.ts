import { Command } from 'commander';

export function validateCommand(): Command {
  return new Command('validate')
    .description('check manifests (files or directories of YAML); prints every problem and what nothing would enforce, exits 1 if any error')
    .argument('<paths...>', 'YAML files or directories')
    .option('-q, --quiet', 'print only errors and the summary')
    .option('--root-namespace <ns>', 'Istio root namespace: policies there without a selector apply mesh-wide', 'istio-system')
    .action(async (paths: string[], opts: { quiet?: boolean; rootNamespace: string }) => {
      // Loaded here, not at the top: every strait command (the ztunnel too) loads this file, and the YAML
      // parser costs a long-running proxy several MB it never uses.
      const { validatePaths } = await import('../common/model/parse.js');
      const { formatProblem } = await import('../common/model/types.js');
      const { computeViews } = await import('../controller/views.js');
      const { enforcementWarnings } = await import('../controller/enforcement.js');
      const { objects, problems: found, files } = await validatePaths(paths);
      // What the controller would enforce of these objects, and what nothing would (DESIGN §3).
      const viewOpts = { trustDomain: 'cluster.local', rootNamespace: opts.rootNamespace };
      const unenforced = enforcementWarnings(objects, computeViews(objects.map((o) => o.object), viewOpts), viewOpts);
      const rank = (f: string) => files.indexOf(f);
      const problems = [...found, ...unenforced].map((p, i) => ({ p, i }))
        .sort((a, b) => rank(a.p.file) - rank(b.p.file) || a.p.doc - b.p.doc || a.i - b.i)
        .map(({ p }) => p);
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
