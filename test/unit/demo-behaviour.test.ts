// The demo app's per-pod faults and per-request asks, decided without I/O, and how `strait up` turns a pod's
// strait.dev/demo-* annotations and gRPC ports into the app's command line.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_REQUEST_KEYS, PodFaults, requestAsk } from '../../src/demo/behaviour.js';
import { grpcCodeOfHttpStatus } from '../../src/demo/grpc-echo.js';
import { demoBehaviourArgs, demoBehaviourOf, parseDemoFailWindow, parseDemoRatio } from '../../src/local/demo-annotations.js';
import { appSpec } from '../../src/local/components.js';
import { planLocalMesh } from '../../src/local/plan.js';
import { docs, objectsOf } from '../helpers/manifests.js';
import { demoPod, node } from '../helpers/mesh.js';

const failures = (f: PodFaults, n: number, key?: (i: number) => string | undefined) =>
  Array.from({ length: n }, (_, i) => f.decide(key?.(i)).failStatus);

describe('PodFaults', () => {
  it('fails exactly the share of requests the ratio says, spread evenly in arrival order', () => {
    const half = failures(new PodFaults({ failStatus: 503, failRatio: 0.5 }), 10);
    assert.deepEqual(half, [undefined, 503, undefined, 503, undefined, 503, undefined, 503, undefined, 503]);
    for (const r of [0.1, 0.29, 0.333, 0.9]) {
      const got = failures(new PodFaults({ failRatio: r }), 1000).filter((s) => s !== undefined).length;
      assert.equal(got, Math.round(r * 1000), `ratio ${r}`);
    }
    assert.equal(failures(new PodFaults({ failRatio: 0 }), 100).filter(Boolean).length, 0);
  });

  it('fails every request with a status alone, and uses 503 with a ratio alone', () => {
    assert.deepEqual(failures(new PodFaults({ failStatus: 500 }), 3), [500, 500, 500]);
    assert.deepEqual(failures(new PodFaults({ failRatio: 1 }), 2), [503, 503]);
    assert.deepEqual(failures(new PodFaults({}), 3), [undefined, undefined, undefined]);
  });

  it('fails the first N requests of each request key and counts attempts per key', () => {
    const f = new PodFaults({ failFirst: 2, failStatus: 502 });
    const seq = ['a', 'a', 'b', 'a', 'b', 'b', 'a'].map((k) => f.decide(k));
    assert.deepEqual(seq.map((d) => d.failStatus), [502, 502, 502, undefined, 502, undefined, undefined]);
    assert.deepEqual(seq.map((d) => d.attempt), [1, 2, 1, 3, 2, 3, 4]);
    // Without the header, requests share one counter.
    assert.deepEqual(failures(f, 3), [502, 502, undefined]);
  });

  it('fails every request during the first FAIL of every PERIOD of its fail window, counted from its start', () => {
    let now = 1_000_000;
    const f = new PodFaults({ failWindow: { failMs: 20_000, periodMs: 40_000 } }, () => now);
    const at = (ms: number) => { now = 1_000_000 + ms; return f.decide(undefined).failStatus; };
    assert.deepEqual([0, 19_999, 20_000, 39_999, 40_000, 59_999, 60_000, 85_000].map(at), [503, 503, undefined, undefined, 503, 503, undefined, 503]);
    // With a status it fails with that status, and only in the window (a status alone would fail every request).
    const g = new PodFaults({ failWindow: { failMs: 1_000, periodMs: 2_000 }, failStatus: 500 }, () => now);
    now += 1_500;
    assert.equal(g.decide(undefined).failStatus, undefined);
    now += 600;
    assert.equal(g.decide(undefined).failStatus, 500);
  });

  it('counts attempts without failing when the pod has no faults, and forgets the oldest key past its bound', () => {
    const f = new PodFaults({});
    assert.equal(f.decide('k0').attempt, 1);
    assert.equal(f.decide('k0').attempt, 2);
    for (let i = 1; i <= MAX_REQUEST_KEYS; i++) f.decide(`k${i}`);
    // k0 was the least recently used and the table is full: it starts again.
    assert.equal(f.decide('k0').attempt, 1);
    assert.equal(f.decide(`k${MAX_REQUEST_KEYS}`).attempt, 2);
  });
});

describe('requestAsk', () => {
  it('reads /status, /delay, /bytes and /echo, and the x-demo-* headers on any path', () => {
    assert.deepEqual(requestAsk('/status/418', {}), { kind: 'answer', status: 418, delayMs: 0, echo: false });
    assert.deepEqual(requestAsk('/delay/250', {}), { kind: 'answer', status: 200, delayMs: 250, echo: false });
    assert.deepEqual(requestAsk('/bytes/1024', {}), { kind: 'bytes', n: 1024, delayMs: 0 });
    assert.deepEqual(requestAsk('/echo', {}), { kind: 'answer', status: 200, delayMs: 0, echo: true });
    assert.deepEqual(requestAsk('/api/orders', { 'x-demo-status': '503', 'x-demo-delay-ms': '10' }), { kind: 'answer', status: 503, delayMs: 10, echo: false });
    assert.deepEqual(requestAsk('/status/x/y', {}), { kind: 'answer', status: 200, delayMs: 0, echo: false }, 'deeper paths are plain paths');
  });

  it('refuses statuses outside 200-599, delays over 30 s and sizes over the cap, saying which', () => {
    for (const p of ['/status/100', '/status/199', '/status/600', '/status/abc', '/status/', '/status/2000']) {
      const a = requestAsk(p, {});
      assert.equal(a.kind, 'bad', p);
      assert.match(a.kind === 'bad' ? a.error : '', /from 200 to 599/);
    }
    assert.equal(requestAsk('/status/200', {}).kind, 'answer');
    assert.equal(requestAsk('/status/599', {}).kind, 'answer');
    assert.match(JSON.stringify(requestAsk('/delay/30001', {})), /from 0 to 30000/);
    assert.match(JSON.stringify(requestAsk('/delay/-1', {})), /from 0 to 30000/);
    assert.match(JSON.stringify(requestAsk('/bytes/1e3', {})), /whole bytes/);
    assert.match(JSON.stringify(requestAsk('/bytes/67108865', {})), /whole bytes/);
    assert.deepEqual(requestAsk('/', { 'x-demo-status': '99' }), { kind: 'bad', error: 'x-demo-status: "99" is not a status from 200 to 599' });
  });
});

describe('demo annotations', () => {
  it('reads every annotation and names a bad value, its annotation and what is allowed', () => {
    assert.deepEqual(demoBehaviourOf({
      'strait.dev/demo-fail-status': '503', 'strait.dev/demo-fail-ratio': '0.5', 'strait.dev/demo-fail-first': '2', 'strait.dev/demo-delay-ms': '100',
    }, 'Pod a/b'), { behaviour: { failStatus: 503, failRatio: 0.5, failFirst: 2, delayMs: 100 }, errors: [] });
    const bad = demoBehaviourOf({ 'strait.dev/demo-fail-status': '700', 'strait.dev/demo-fail-ratio': '1.5', 'strait.dev/demo-delay-ms': 'soon' }, 'Pod a/b');
    assert.deepEqual(bad.errors, [
      'Pod a/b: annotation strait.dev/demo-fail-status: "700" is not an HTTP status from 200 to 599 (e.g. "503"); fix or remove the annotation',
      'Pod a/b: annotation strait.dev/demo-fail-ratio: "1.5" is not a share from 0 to 1 (e.g. "0.5"; "1" fails every request); fix or remove the annotation',
      'Pod a/b: annotation strait.dev/demo-delay-ms: "soon" is not milliseconds from 0 to 30000 (e.g. "250"); fix or remove the annotation',
    ]);
    assert.equal(parseDemoRatio('1e-7'), 1e-7, 'what String(ratio) writes on the command line reads back');
  });

  it('reads a fail window as FAIL/PERIOD durations and hands it to the app in milliseconds', () => {
    const w = demoBehaviourOf({ 'strait.dev/demo-fail-window': '20s/40s', 'strait.dev/demo-fail-status': '503' }, 'Pod store/inventory-2');
    assert.deepEqual(w, { behaviour: { failStatus: 503, failWindow: { failMs: 20_000, periodMs: 40_000 } }, errors: [] });
    assert.deepEqual(demoBehaviourArgs(w.behaviour), ['--fail-status', '503', '--fail-window', '20000ms/40000ms']);
    assert.deepEqual(parseDemoFailWindow('20000ms/40000ms'), { failMs: 20_000, periodMs: 40_000 }, 'the flag reads back');
    assert.deepEqual(parseDemoFailWindow('1m/1m'), { failMs: 60_000, periodMs: 60_000 }, 'FAIL = PERIOD: always');
    for (const bad of ['40s/20s', '0s/10s', '20s', '20s/', '5ms/50ms', '1s/25h', 'a/b', '1.5ns/1s', '1s/2s/3s']) assert.equal(parseDemoFailWindow(bad), undefined, bad);
    assert.deepEqual(demoBehaviourOf({ 'strait.dev/demo-fail-window': '40s/20s' }, 'Pod a/b').errors, [
      'Pod a/b: annotation strait.dev/demo-fail-window: "40s/20s" is not FAIL/PERIOD, two durations with 0 < FAIL ≤ PERIOD and PERIOD from 100ms to 24h (e.g. "20s/40s": failing 20 s of every 40 s); fix or remove the annotation',
    ]);
    assert.equal(parseDemoRatio('0x1'), undefined);
  });

  it('maps HTTP fail statuses to gRPC codes as gRPC\'s table does', () => {
    assert.deepEqual([503, 502, 504, 429, 404, 403, 401, 400, 500, 200].map(grpcCodeOfHttpStatus), [14, 14, 14, 14, 12, 7, 16, 13, 2, 0]);
  });
});

describe('planning demo apps', () => {
  const plan = (...objs: unknown[]) => planLocalMesh(objectsOf(docs(...objs)));

  it('passes a pod\'s demo annotations and gRPC ports to its apps\' command lines', () => {
    const p = plan(node('node-a', '127.0.100.1'), demoPod('apps', 'echo', 'node-a', '127.0.10.5', 'echo', {
      annotations: { 'strait.dev/demo-fail-status': '503', 'strait.dev/demo-fail-first': '2', 'strait.dev/demo-delay-ms': '20' },
      ports: [{ name: 'http', containerPort: 8080 }, { name: 'grpc', containerPort: 9090 }, { name: 'grpc-web', containerPort: 9091 }, { name: 'grpcx', containerPort: 9092 }],
    }));
    assert.deepEqual(p.errors, []);
    assert.deepEqual(p.apps.map((a) => [a.port, a.grpc]), [[8080, false], [9090, true], [9091, true], [9092, false]]);
    const args = appSpec(p.apps[1]!, p.nodes[0]).args;
    assert.deepEqual(args.slice(args.indexOf('--fail-status')), ['--fail-status', '503', '--fail-first', '2', '--delay-ms', '20', '--grpc']);
    assert.equal(appSpec(p.apps[0]!, p.nodes[0]).args.includes('--grpc'), false);
  });

  it('serves gRPC on a port a selecting Service marks appProtocol grpc, by number or by name', () => {
    const svc = (name: string, selector: Record<string, string>, port: Record<string, unknown>) => ({
      apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'apps' }, spec: { clusterIP: '127.0.10.200', selector, ports: [port] },
    });
    const p = plan(node('node-a', '127.0.100.1'),
      demoPod('apps', 'echo', 'node-a', '127.0.10.5', 'echo', { ports: [{ name: 'rpc', containerPort: 7000 }, { name: 'api', containerPort: 7001 }, { containerPort: 7002 }] }),
      svc('by-number', { app: 'echo' }, { port: 80, targetPort: 7000, appProtocol: 'grpc' }),
      svc('by-name', { app: 'echo' }, { port: 81, targetPort: 'api', appProtocol: 'grpc' }),
      svc('other-pods', { app: 'nope' }, { port: 82, targetPort: 7002, appProtocol: 'grpc' }));
    assert.deepEqual(p.apps.map((a) => [a.port, a.grpc]), [[7000, true], [7001, true], [7002, false]]);
  });

  it('refuses a pod with a bad demo annotation and plans no app for it', () => {
    const p = plan(node('node-a', '127.0.100.1'), demoPod('apps', 'bad', 'node-a', '127.0.10.5', 'bad', { annotations: { 'strait.dev/demo-fail-first': 'two' } }),
      demoPod('apps', 'good', 'node-a', '127.0.10.6', 'good'));
    assert.deepEqual(p.errors, ['Pod apps/bad: annotation strait.dev/demo-fail-first: "two" is not a count from 0 to 1000000 (e.g. "2"); fix or remove the annotation']);
    assert.deepEqual(p.apps.map((a) => a.pod), ['good']);
  });
});
