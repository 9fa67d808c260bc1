/**
 * The capture addon's absence is a start-up error only in capture mode (issue 11): a package copy without
 * build/Release/original_dst.node runs a local-mode ztunnel as usual and refuses `--capture` saying how to build it.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CertificateAuthority } from '../../src/identity/index.js';
import { spawn } from 'node:child_process';
import { StraitProcess, run } from '../helpers/procs.js';
import { tempDir } from '../helpers/temp-dir.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const dir = tempDir('capture-addon');
after(() => dir.remove());

test('without the native addon: --capture exits 1 naming the build command; local mode starts as usual', async () => {
  const pkg = join(dir.path, 'pkg');
  mkdirSync(pkg);
  cpSync(join(ROOT, 'dist'), join(pkg, 'dist'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
  cpSync(join(ROOT, 'scripts'), join(pkg, 'scripts'), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'));
  const ca = await CertificateAuthority.loadOrCreate({ dataDir: dir.path });
  const root = join(dir.path, 'root.pem');
  writeFileSync(root, ca.rootCertPem);
  const bin = join(pkg, 'dist/src/cli/strait.js');
  const token = join(dir.path, 'token');
  writeFileSync(token, 't');
  const common = ['ztunnel', '--node', 'n1', '--token-file', token, '--root-cert', root, '--xds-address', '127.0.208.99:15012'];

  const refused = await run(process.execPath, [bin, ...common, '--capture']);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /STRAIT_ERR_CAPTURE.*--capture needs the capture addon: the capture addon \(build\/Release\/original_dst\.node\) is not built: build it with `npm run build:native`/);

  const local = new StraitProcess(spawn(process.execPath, [bin, ...common, '--listen-address', '127.0.208.1'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  try {
    const line = await local.waitFor((l) => l.msg === 'ztunnel listening', 15_000);
    assert.equal(line.capture, false);
  } finally {
    await local.stop();
  }
});
