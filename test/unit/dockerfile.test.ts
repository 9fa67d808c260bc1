/**
 * The Dockerfile, read as Docker reads it (no image registry is reachable in CI, so the image itself is not built
 * here; README "The image" says how it was built once): two stages on the Node 20 Debian images, every file it copies
 * from the build context exists and is not ignored, and the runtime stage holds what `strait` needs at run time —
 * the compiled CLI, its dependencies, the capture addon and scripts where the code looks for them, daemonset.yaml —
 * runs as a non-root user and starts the real CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { findPackageFile } from '../../src/common/package-file.js';
import { ADDON_FILE } from '../../src/ztunnel/capture/original-dst.js';
import { SCRIPTS_DIR } from '../../src/ztunnel/capture/capture-scripts.js';
import { IMAGE_PACKAGE_DIR, MANIFEST_FILE } from '../../src/cli/install/manifest.js';

const root = dirname(findPackageFile(import.meta.url, 'package.json')!);
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string>; scripts: Record<string, string> };

interface Instruction { op: string; args: string }
interface Stage { from: string; name?: string; steps: Instruction[] }

/** Instructions with continuation lines joined and comments dropped; ARGs before the first FROM apart. */
function parseDockerfile(text: string): { globalArgs: Record<string, string>; stages: Stage[] } {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, op, args] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
    assert.ok(op && args !== undefined, `not an instruction: ${line}`);
    const OP = op.toUpperCase();
    if (OP === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args)!;
      stages.push({ from: m[1]!, ...(m[2] ? { name: m[2] } : {}), steps: [] });
    } else if (stages.length === 0) {
      assert.equal(OP, 'ARG', `only ARG may come before FROM: ${line}`);
      const [k, v] = args.split('=');
      globalArgs[k!] = v ?? '';
    } else stages.at(-1)!.steps.push({ op: OP, args });
  }
  return { globalArgs, stages };
}

/** .dockerignore patterns (top-level names here), as a predicate on a context path. */
function ignored(path: string): boolean {
  const patterns = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const first = path.replace(/^\.\//, '').split('/')[0]!;
  return patterns.some((p) => (p.startsWith('*.') ? path.endsWith(p.slice(1)) : p === first));
}

const { globalArgs, stages } = parseDockerfile(readFileSync(join(root, 'Dockerfile'), 'utf8'));
const [build, runtime] = stages;
const copies = (s: Stage) => s.steps.filter((i) => i.op === 'COPY').map((i) => {
  const words = i.args.split(/\s+/);
  const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
  const rest = words.filter((w) => !w.startsWith('--'));
  return { from, sources: rest.slice(0, -1), dest: rest.at(-1)! };
});
const workdir = (s: Stage) => s.steps.filter((i) => i.op === 'WORKDIR').at(-1)?.args;
const resolveIn = (s: Stage, p: string) => (p.startsWith('/') ? p : join(workdir(s) ?? '/', p));

test('two stages: the build on node:20-bookworm, the runtime on node:20-bookworm-slim (build arguments)', () => {
  assert.equal(stages.length, 2);
  assert.equal(build!.name, 'build');
  assert.equal(build!.from, '${BUILD_IMAGE}');
  assert.equal(runtime!.from, '${RUNTIME_IMAGE}');
  assert.deepEqual(globalArgs, { BUILD_IMAGE: 'node:20-bookworm', RUNTIME_IMAGE: 'node:20-bookworm-slim' });
});

test('every file copied from the build context exists and is not excluded by .dockerignore', () => {
  const fromContext = stages.flatMap((s) => copies(s).filter((c) => !c.from).flatMap((c) => c.sources));
  assert.ok(fromContext.length >= 6);
  for (const src of fromContext) {
    assert.ok(existsSync(join(root, src)), `COPY ${src}: not in the repository`);
    assert.ok(!ignored(src), `COPY ${src}: excluded by .dockerignore`);
  }
  // Host-built artefacts never leak into the image: the build stage makes its own.
  for (const p of ['node_modules', 'dist', 'build']) assert.ok(ignored(p), `.dockerignore excludes ${p}`);
  // What npm run build reads is copied into the build stage before it runs.
  const buildCopies = copies(build!).flatMap((c) => c.sources);
  for (const needed of ['package.json', 'package-lock.json', 'binding.gyp', 'tsconfig.json', 'src', 'scripts']) assert.ok(buildCopies.includes(needed), `the build stage copies ${needed}`);
  assert.match(pkg.scripts['build']!, /scripts\/copy-assets\.mjs/);
});

test('the build stage compiles the addon and the TypeScript, and drops the dev dependencies', () => {
  const runs = build!.steps.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
  assert.match(runs, /npm ci\b/);
  assert.match(runs, /npm run build:native/);
  assert.match(pkg.scripts['build:native']!, /node-gyp rebuild/);
  assert.match(runs, /npm run build\b/);
  assert.match(runs, /npm prune --omit=dev/);
});

test('the runtime stage holds what strait reads at run time, where the code looks for it', () => {
  const wd = workdir(runtime!);
  assert.equal(wd, IMAGE_PACKAGE_DIR);
  const fromBuild = copies(runtime!).filter((c) => c.from === 'build').map((c) => ({ src: c.sources[0]!.replace(`${workdir(build!)}/`, ''), dest: resolveIn(runtime!, c.dest) }));
  const fromContext = copies(runtime!).filter((c) => !c.from).map((c) => ({ src: c.sources[0]!, dest: resolveIn(runtime!, c.dest) }));
  const at = (rel: string) => join(IMAGE_PACKAGE_DIR, rel);
  for (const [src, dest] of [
    ['package.json', at('package.json')],
    ['node_modules', at('node_modules')],
    ['dist/src', at('dist/src')],
    [ADDON_FILE, at(ADDON_FILE)],
    [SCRIPTS_DIR, at(SCRIPTS_DIR)],
  ]) assert.ok(fromBuild.some((c) => c.src === src && c.dest === dest), `COPY --from=build ${src} → ${dest}`);
  assert.ok(fromContext.some((c) => c.src === MANIFEST_FILE && c.dest === at(MANIFEST_FILE)), `COPY ${MANIFEST_FILE}`);
  // The package's bin is what the image links as `strait`.
  assert.equal(pkg.bin['strait'], 'dist/src/cli/strait.js');
  const runs = runtime!.steps.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
  assert.ok(runs.includes(`ln -s ${at(pkg.bin['strait'])} /usr/local/bin/strait`), 'strait on PATH');
  assert.match(runs, /apt-get install -y --no-install-recommends iptables nftables iproute2/, "the capture scripts need iptables, nft and ip");
});

test('the runtime runs as the unprivileged user node and starts the real CLI', () => {
  const user = runtime!.steps.filter((i) => i.op === 'USER').at(-1)?.args;
  assert.equal(user, 'node');
  const entrypoint = runtime!.steps.filter((i) => i.op === 'ENTRYPOINT').at(-1)?.args;
  assert.deepEqual(JSON.parse(entrypoint!), ['strait']);
  // Nothing runs as root after USER (a later RUN would need it; the ztunnel gets root from its DaemonSet instead).
  const afterUser = runtime!.steps.slice(runtime!.steps.findIndex((i) => i.op === 'USER'));
  assert.deepEqual(afterUser.map((i) => i.op), ['USER', 'ENTRYPOINT']);
});
