/**
 * PodCapture's own logic against scripts run as real processes: a scripts directory (what --capture-scripts points
 * at) whose pod-add.sh fails a given number of times, records every call and checks that no two scripts overlap.
 * The real iptables scripts are exercised in test/lab (ztunnel-capture, capture); here the failures are chosen.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { WorkloadResource } from '../../src/common/xds/resources.js';
import { ProxyState } from '../../src/dataplane/state/proxy-state.js';
import { CaptureScripts } from '../../src/ztunnel/capture/capture-scripts.js';
import { PodCapture } from '../../src/ztunnel/capture/pod-capture.js';
import { eventually } from '../helpers/eventually.js';

const dirs: string[] = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

/** Scripts that append "<name> <args> start|end" to calls.log; `pod-add.sh ADDR` fails while fail-ADDR holds a count > 0. */
function scriptsDir(failAdds: Record<string, number> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'strait-podcap-'));
  dirs.push(dir);
  for (const [address, n] of Object.entries(failAdds)) writeFileSync(join(dir, `fail-${address}`), String(n));
  const body = (name: string, extra = '') => `#!/bin/sh
set -eu
d=$(dirname "$0")
if [ -e "$d/busy" ]; then echo overlap >> "$d/calls.log"; fi
touch "$d/busy"
echo "${name} $* start" >> "$d/calls.log"
sleep 0.05
${extra}
rm -f "$d/busy"
echo "${name} $* end" >> "$d/calls.log"
`;
  const failing = `n=$(cat "$d/fail-$1" 2>/dev/null || echo 0); if [ "$n" -gt 0 ]; then echo $((n - 1)) > "$d/fail-$1"; rm -f "$d/busy"; echo "strait pod-add: chain STRAIT_OUTBOUND is missing in the nat table: run node-setup.sh first (as root)" >&2; exit 1; fi`;
  for (const s of ['node-setup.sh', 'node-teardown.sh', 'pod-del.sh']) writeFileSync(join(dir, s), body(s));
  writeFileSync(join(dir, 'pod-add.sh'), body('pod-add.sh', failing));
  writeFileSync(join(dir, 'pod-list.sh'), '#!/bin/sh\n');
  return dir;
}

function workload(name: string, ip: string): WorkloadResource {
  return {
    uid: `apps/${name}`, name, namespace: 'apps', node: 'n1', serviceAccount: name, identity: `spiffe://cluster.local/ns/apps/sa/${name}`,
    addresses: [ip], labels: {}, protocol: 'HBONE', healthy: true, canonicalName: name, canonicalRevision: 'latest', namedPorts: {}, services: [],
  };
}

function logger() {
  const lines: Record<string, any>[] = [];
  const stream = new Writable({ write(chunk, _enc, cb) { lines.push(JSON.parse(String(chunk))); cb(); } });
  return { log: pino({ level: 'info' }, stream), lines };
}

describe('PodCapture', () => {
  it('a failing pod-add is logged with the reason, retried with a growing delay after re-running node-setup, and never throws', async () => {
    const dir = scriptsDir({ '198.18.10.1': 2 });
    const state = new ProxyState();
    const { log, lines } = logger();
    const ops: string[] = [];
    const capture = new PodCapture({
      state, node: 'n1', mark: 0x539, log, resyncMs: 0,
      scripts: new CaptureScripts({ dir, mark: 0x539, ports: { outbound: 15001, inboundPlaintext: 15006, hbone: 15008 } }),
      counters: { operation: (o, r) => ops.push(`${o}:${r}`) },
    });
    await capture.setup();
    state.applyWorkloads([workload('a', '198.18.10.1'), workload('b', '198.18.10.2')], []);
    capture.follow();
    await eventually(() => {
      const pods = capture.snapshot().pods;
      assert.deepEqual(pods.map((p) => [p.address, p.state]), [['198.18.10.1', 'present'], ['198.18.10.2', 'present']]);
      return true;
    }, 10_000);
    const failures = lines.filter((l) => l.msg === 'capture rules failed');
    assert.equal(failures.length, 2);
    assert.match(failures[0]!.err, /pod-add\.sh 198\.18\.10\.1 failed: strait pod-add: chain STRAIT_OUTBOUND is missing/);
    assert.deepEqual(failures.map((f) => f.retry_in_ms), [500, 1000], 'the delay doubles');
    assert.deepEqual(failures.map((f) => f.attempts), [1, 2]);
    const calls = readFileSync(join(dir, 'calls.log'), 'utf8').split('\n').filter(Boolean);
    assert.ok(!calls.includes('overlap'), `scripts ran one at a time: ${calls.join(' | ')}`);
    const starts = calls.filter((c) => c.endsWith('start')).map((c) => c.replace(/ +start$/, ''));
    // setup; a fails; b is added; (retry:) setup again, a fails; (retry:) setup again, a is added.
    assert.deepEqual(starts, ['node-setup.sh', 'pod-add.sh 198.18.10.1', 'pod-add.sh 198.18.10.2', 'node-setup.sh', 'pod-add.sh 198.18.10.1', 'node-setup.sh', 'pod-add.sh 198.18.10.1']);
    assert.deepEqual(capture.ready(), { ready: true, detail: 'ok' });

    state.applyWorkloads([], ['apps/b']);
    await eventually(() => { assert.deepEqual(capture.snapshot().pods.map((p) => p.address), ['198.18.10.1']); return true; });
    await capture.stop();
    const last = readFileSync(join(dir, 'calls.log'), 'utf8').split('\n').filter((c) => c.endsWith('start')).slice(-2);
    assert.deepEqual(last, ['pod-del.sh 198.18.10.2 start', 'node-teardown.sh  start']);
    assert.ok(ops.includes('add:error') && ops.includes('remove:ok') && ops.includes('teardown:ok'));
  });

  it('an IPv6 pod address is reported as unsupported once and never handed to the scripts', async () => {
    const dir = scriptsDir();
    const state = new ProxyState();
    const { log, lines } = logger();
    const capture = new PodCapture({
      state, node: 'n1', mark: 0x539, log, resyncMs: 0,
      scripts: new CaptureScripts({ dir, mark: 0x539, ports: { outbound: 15001, inboundPlaintext: 15006, hbone: 15008 } }),
      counters: { operation: () => undefined },
    });
    await capture.setup();
    state.applyWorkloads([workload('v6', 'fd00::7')], []);
    capture.follow();
    await eventually(() => { assert.deepEqual(capture.snapshot().pods.map((p) => [p.address, p.state]), [['fd00::7', 'unsupported']]); return true; });
    state.applyWorkloads([workload('v6', 'fd00::7')], []);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(lines.filter((l) => /IPv6/.test(l.msg)).length, 1);
    assert.ok(!readFileSync(join(dir, 'calls.log'), 'utf8').includes('fd00'));
    await capture.stop();
  });
});
