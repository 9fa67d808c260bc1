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
      state, node: 'n1', mark: 0x539, log, resyncMs: 0, teardown: true,
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
      state, node: 'n1', mark: 0x539, log, resyncMs: 0, teardown: true,
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

  it('a pod with this node\'s own address (a hostNetwork pod) is reported once, never handed to pod-add, and does not hold readiness', async () => {
    const dir = scriptsDir();
    const state = new ProxyState();
    const { log, lines } = logger();
    const capture = new PodCapture({
      state, node: 'n1', mark: 0x539, log, resyncMs: 0, teardown: true, nodeAddresses: () => new Set(['198.19.254.1']),
      scripts: new CaptureScripts({ dir, mark: 0x539, ports: { outbound: 15001, inboundPlaintext: 15006, hbone: 15008 } }),
      counters: { operation: () => undefined },
    });
    await capture.setup();
    state.applyWorkloads([workload('host', '198.19.254.1'), workload('lo', '127.0.0.1'), workload('a', '198.18.10.1')], []);
    capture.follow();
    await eventually(() => {
      assert.deepEqual(capture.snapshot().pods.map((p) => [p.address, p.state]).sort(), [['127.0.0.1', 'unsupported'], ['198.18.10.1', 'present'], ['198.19.254.1', 'unsupported']]);
      return true;
    });
    assert.equal(capture.ready().ready, true, capture.ready().detail);
    assert.match(capture.snapshot().pods.find((p) => p.address === '198.19.254.1')!.lastError ?? '', /this node's own \(a hostNetwork pod\?\)/);
    state.applyWorkloads([workload('host', '198.19.254.1')], []);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(lines.filter((l) => l.reason === 'node_address').length, 1);
    assert.equal(lines.filter((l) => l.reason === 'this_host').length, 1);
    const calls = readFileSync(join(dir, 'calls.log'), 'utf8');
    assert.ok(!calls.includes('198.19.254.1') && !calls.includes('127.0.0.1'), calls);
    await capture.stop();
  });

  it('takes only IP addresses from pod-list.sh: a hand-made tag never becomes a script argument', async () => {
    const dir = scriptsDir();
    writeFileSync(join(dir, 'pod-list.sh'), '#!/bin/sh\nprintf "%s\\n" 198.18.10.9 -rf "x;reboot" 198.18.10.1\n');
    const state = new ProxyState();
    const capture = new PodCapture({
      state, node: 'n1', mark: 0x539, log: logger().log, resyncMs: 0, teardown: true,
      scripts: new CaptureScripts({ dir, mark: 0x539, ports: { outbound: 15001, inboundPlaintext: 15006, hbone: 15008 } }),
      counters: { operation: () => undefined },
    });
    await capture.setup();
    state.applyWorkloads([workload('a', '198.18.10.1')], []);
    capture.follow();
    await eventually(() => { assert.deepEqual(capture.snapshot().pods.map((p) => [p.address, p.state]), [['198.18.10.1', 'present']]); return true; });
    const calls = readFileSync(join(dir, 'calls.log'), 'utf8').split('\n').filter((c) => c.endsWith(' start') && !c.startsWith('node-'));
    assert.deepEqual(calls, ['pod-del.sh 198.18.10.9 start'], 'the stale IP is removed; the rest is left alone; pod a was found in place');
    await capture.stop();
  });

  it('pod-list.sh\'s "incomplete" pods: a wanted one is added again (at start and by the resync), an unwanted one removed; the stop leaves the rules unless teardown', async () => {
    const dir = scriptsDir();
    // The listing: 198.18.10.1 incomplete (wanted), 198.18.10.9 incomplete (stale), 198.18.10.2 complete (wanted).
    writeFileSync(join(dir, 'pod-list.sh'), '#!/bin/sh\nd=$(dirname "$0")\ncat "$d/listing"\n');
    writeFileSync(join(dir, 'listing'), '198.18.10.1 incomplete\n198.18.10.9 incomplete\n198.18.10.2\n198.18.10.3 partial\n');
    const state = new ProxyState();
    const { log, lines } = logger();
    const capture = new PodCapture({
      state, node: 'n1', mark: 0x539, log, resyncMs: 50, teardown: false, nodeAddresses: () => new Set(),
      scripts: new CaptureScripts({ dir, mark: 0x539, ports: { outbound: 15001, inboundPlaintext: 15006, hbone: 15008 } }),
      counters: { operation: () => undefined },
    });
    await capture.setup();
    state.applyWorkloads([workload('a', '198.18.10.1'), workload('b', '198.18.10.2')], []);
    capture.follow();
    const starts = () => readFileSync(join(dir, 'calls.log'), 'utf8').split('\n').filter((c) => c.endsWith(' start') && c.startsWith('pod-'));
    await eventually(() => starts().includes('pod-add.sh 198.18.10.1 start') && starts().includes('pod-del.sh 198.18.10.9 start'));
    assert.ok(!starts().some((c) => c.includes('198.18.10.2') || c.includes('198.18.10.3')), `complete b left alone, the odd line ignored: ${starts().join(', ')}`);
    // Later someone removes part of b's rules: the resync sees it incomplete and adds it again.
    writeFileSync(join(dir, 'listing'), '198.18.10.1\n198.18.10.2 incomplete\n');
    await eventually(() => starts().includes('pod-add.sh 198.18.10.2 start'));
    writeFileSync(join(dir, 'listing'), '198.18.10.1\n198.18.10.2\n');
    await capture.stop();
    assert.ok(!readFileSync(join(dir, 'calls.log'), 'utf8').includes('node-teardown.sh'), 'no teardown without the option');
    assert.ok(lines.some((l) => /^capture rules left in place/.test(l.msg)));
  });

  it('a burst of workload updates while a script runs costs one more reconcile, not one per update', async () => {
    const dir = scriptsDir();
    const state = new ProxyState();
    let passes = 0;
    const local = state.localWorkloads.bind(state);
    state.localWorkloads = (node: string) => { passes++; return local(node); };
    const capture = new PodCapture({
      state, node: 'n1', mark: 0x539, log: logger().log, resyncMs: 0, teardown: true, nodeAddresses: () => new Set(),
      scripts: new CaptureScripts({ dir, mark: 0x539, ports: { outbound: 15001, inboundPlaintext: 15006, hbone: 15008 } }),
      counters: { operation: () => undefined },
    });
    await capture.setup();
    state.applyWorkloads([workload('a', '198.18.10.1')], []);
    capture.follow();
    await eventually(() => { assert.equal(capture.snapshot().pods[0]?.state, 'present'); return true; });
    const before = passes;
    state.applyWorkloads([workload('b', '198.18.10.2')], []); // its pod-add takes 50 ms: the burst below arrives meanwhile
    for (let i = 0; i < 500; i++) state.applyWorkloads([workload(`x${i}`, '198.18.10.3')], [`apps/x${i - 1}`]);
    await eventually(() => { assert.deepEqual(capture.snapshot().pods.map((p) => [p.address, p.state]), [['198.18.10.1', 'present'], ['198.18.10.2', 'present'], ['198.18.10.3', 'present']]); return true; }, 10_000);
    assert.ok(passes - before < 30, `${passes - before} reads of the local workloads for 501 updates`);
    await capture.stop();
  });
});
