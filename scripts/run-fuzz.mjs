// The long fuzz run: every property of dist/test/fuzz/*.test.js with FUZZ_RUNS inputs (properties on real
// sockets take a tenth). Usage: npm run fuzz [-- RUNS]   (default 50000; FUZZ_RUNS in the environment works too)
// Replay a failure: FUZZ_SEED=<seed printed> FUZZ_PATH=<path from the report> npm run fuzz -- <same RUNS>
import { readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const runs = process.argv[2] ?? process.env.FUZZ_RUNS ?? '50000';
if (!/^[1-9]\d*$/.test(runs)) {
  console.error(`run-fuzz: the number of runs must be a positive integer, got "${runs}"`);
  process.exit(2);
}
const dir = join(root, 'dist/test/fuzz');
let files;
try {
  files = readdirSync(dir).filter((f) => f.endsWith('.test.js')).sort().map((f) => join(dir, f));
} catch {
  files = [];
}
if (files.length === 0) {
  console.error(`run-fuzz: no compiled fuzz tests under ${dir} - did \`npm run build\` run?`);
  process.exit(1);
}
const seed = process.env.FUZZ_SEED ?? String((Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) | 0);
console.error(`run-fuzz: FUZZ_RUNS=${runs} FUZZ_SEED=${seed} (${files.length} files)`);
const started = Date.now();
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...files], {
  stdio: 'inherit',
  cwd: root,
  env: { ...process.env, FUZZ_RUNS: runs, FUZZ_SEED: seed },
});
console.error(`run-fuzz: done in ${((Date.now() - started) / 1000).toFixed(0)} s, exit ${r.status}; replay with FUZZ_SEED=${seed} FUZZ_RUNS=${runs}`);
process.exit(r.status ?? 1);
