// Runs the benchmarks (compiled to dist/bench/) one after another: every bench/<name>.ts, in name order, or the
// ones named. Each prints its own table (capture, datapath, propagation, same-node, scale, signing and waypoint also write bench/results/<name>.json);
// nothing here times anything.
// Usage: npm run bench [-- name ...]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const all = readdirSync(join(root, 'dist/bench')).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3)).sort();
const wanted = process.argv.slice(2).length ? process.argv.slice(2) : all;
mkdirSync(join(root, 'bench/results'), { recursive: true });
let failed = 0;
for (const name of wanted) {
  const file = join(root, 'dist/bench', `${name}.js`);
  if (!existsSync(file)) {
    console.error(`run-bench: no benchmark ${name} (${file}); known: ${all.join(', ')}`);
    failed++;
    continue;
  }
  console.log(`\n=== ${name} ===`);
  const r = spawnSync(process.execPath, ['--expose-gc', file], { stdio: 'inherit', cwd: root });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
