/**
 * `strait check` through the real CLI. Node checks: on this machine (root in CI) the shipped capture scripts run in a
 * scratch network namespace; a kernel without the REDIRECT target (an iptables that answers as such a kernel makes it
 * answer), a missing iptables and a user without root each give their finding and fix.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { strait } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { STRAIT_BIN, run } from '../helpers/procs.js';

interface Report { ok: boolean; findings: { section: string; check: string; result: string; detail: string; fix?: string }[] }
const isRoot = process.getuid?.() === 0;

async function checkJson(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; report: Report; stderr: string }> {
  const r = await strait(['check', ...args, '-o', 'json'], env);
  return { code: r.code, report: JSON.parse(r.stdout) as Report, stderr: r.stderr };
}
const find = (r: Report, check: string) => r.findings.find((f) => f.check === check);

describe('strait check on this node', () => {
  const dir = tempDir('cli-check');
  after(() => dir.remove());

  it('passes every node check as root, trying the real capture scripts in a scratch network namespace', { skip: !isRoot && !process.env.CI ? 'needs root (CI runs as root)' : false }, async () => {
    assert.ok(isRoot, 'CI must run this as root');
    const { code, report } = await checkJson(['--only', 'node']);
    assert.deepEqual(report.findings.map((f) => [f.check, f.result]), [['node-version', 'pass'], ['original-dst-addon', 'pass'], ['iptables', 'pass'], ['capture-rules', 'pass']], JSON.stringify(report.findings, null, 2));
    assert.equal(code, 0);
    assert.equal(report.ok, true);
    // The rules went into the scratch namespace only: this namespace's nat table has no rule for the scratch pod.
    const nat = await run('iptables', ['-w', '-t', 'nat', '-S']);
    assert.equal(nat.code, 0, nat.stderr);
    assert.doesNotMatch(nat.stdout, /198\.51\.100\.7/);

    const table = await strait(['check', '--only', 'node']);
    assert.match(table.stdout, /^SECTION\s+CHECK\s+RESULT\s+DETAIL\n/);
    assert.match(table.stdout, /\nnode\s+capture-rules\s+PASS\s+node-setup\.sh and pod-add\.sh work with iptables-\w+/);
    assert.match(table.stdout, /\nOK: 4 passed, 0 failed, 0 warning\(s\), 0 skipped\n$/);
  });

  it('fails the capture rules with the modules to load when the kernel has no REDIRECT target', { skip: !isRoot && !process.env.CI ? 'needs root (CI runs as root)' : false }, async () => {
    // What iptables-legacy prints on a kernel without xt_REDIRECT; everything else goes to the real binary.
    const fake = join(dir.path, 'iptables-legacy-noredirect');
    writeFileSync(fake, `#!/bin/sh\nfor a in "$@"; do if [ "$a" = REDIRECT ]; then echo "iptables v1.8.9 (legacy): Couldn't load target \\\`REDIRECT':No such file or directory" >&2; exit 2; fi; done\nexec iptables "$@"\n`);
    chmodSync(fake, 0o755);
    const { code, report } = await checkJson(['--only', 'node'], { STRAIT_IPTABLES: fake });
    assert.equal(code, 1);
    assert.equal(report.ok, false);
    const f = find(report, 'capture-rules')!;
    assert.equal(f.result, 'fail');
    assert.match(f.detail, /Couldn't load target `REDIRECT'/);
    assert.match(f.fix!, /modprobe -a iptable_nat nf_nat xt_REDIRECT/);
    const table = await strait(['check', '--only', 'node'], { STRAIT_IPTABLES: fake });
    assert.equal(table.code, 1);
    assert.match(table.stdout, /\nTo fix:\n {2}capture-rules \(fail\): load the modules the rules use: modprobe -a iptable_nat/);
    assert.match(table.stdout, /\nFAILED: 3 passed, 1 failed/);
  });

  it('fails when the iptables binary is missing, naming the package to install', async () => {
    const { code, report } = await checkJson(['--only', 'node'], { STRAIT_IPTABLES: join(dir.path, 'no-such-iptables') });
    assert.equal(code, 1);
    const f = find(report, 'iptables')!;
    assert.equal(f.result, 'fail');
    assert.match(f.detail, /no-such-iptables not found \(STRAIT_IPTABLES\)/);
    assert.match(f.fix!, /set STRAIT_IPTABLES to an iptables binary/);
    assert.equal(find(report, 'capture-rules')!.result, 'skip');
  });

  it('skips the checks that need root, saying so, and still passes without root', { skip: !isRoot && !process.env.CI ? 'needs root to drop to another user' : false }, async () => {
    // As nobody: setpriv (util-linux) drops to uid/gid 65534 for the real CLI.
    const r = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', process.execPath, STRAIT_BIN, 'check', '--only', 'node', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as Report;
    assert.equal(find(report, 'iptables')!.result, 'skip');
    assert.match(find(report, 'iptables')!.fix!, /run strait check as root on the node/);
    assert.equal(find(report, 'capture-rules')!.result, 'skip');
    assert.equal(find(report, 'node-version')!.result, 'pass');
  });
});
