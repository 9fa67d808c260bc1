/**
 * The waypoint's resilience through a real `strait up`, with real curl clients (HTTP/1.1 and h2c): retries as Istio
 * counts them, per-try and overall timeouts, fault injection, connection-pool overflow and outlier detection — what
 * an Istio user expects from the VirtualService, HTTPRoute and DestinationRule they wrote, checked against what the
 * demo app saw (its `attempt` count per x-request-key), the waypoint's access log, /config_dump and /metrics.
 * Addresses: 127.0.204.0/24 (pods .1-.49, VIPs .101-.120, nodes .201-.202, the waypoint .210, the controller .254).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { docs } from '../helpers/manifests.js';
import { TestMesh, demoPod, node, type CurlJsonResult } from '../helpers/mesh.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';

const NS = 'res';
const CLIENT = '127.0.204.1';
const WAYPOINT = 'waypoint/res/waypoint';

const namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' } } };
const gateway = {
  apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: NS },
  spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }], addresses: [{ type: 'IPAddress', value: '127.0.204.210' }] },
};
/** A pod whose app is not running: nothing listens on its port, so its ztunnel cannot connect (connect-failure). */
const deadPod = (name: string, ip: string, app: string) => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS, labels: { app } },
  spec: { nodeName: 'node-b', serviceAccountName: app, containers: [{ name: 'app', image: 'example/not-run', ports: [{ name: 'http', containerPort: 8080 }] }] },
  status: { podIP: ip },
});
const service = (name: string, ip: string, app = name) => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS },
  spec: { clusterIP: ip, selector: { app }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
});
const vs = (name: string, http: unknown[]) => ({
  apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace: NS }, spec: { hosts: [name], http },
});
const dr = (name: string, trafficPolicy: unknown) => ({
  apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name, namespace: NS }, spec: { host: name, trafficPolicy },
});
const prefix = (p: string) => [{ uri: { prefix: p } }];
const to = (host: string) => [{ destination: { host } }];

describe('waypoint resilience through strait up (retries, timeouts, faults, pool limits, outlier detection)', () => {
  const dir = tempDir('waypoint-resilience');
  let mesh: TestMesh;

  before(async () => {
    writeFileSync(join(dir.path, 'mesh.yaml'), docs(
      namespace, gateway, node('node-a', '127.0.204.201'), node('node-b', '127.0.204.202'),
      demoPod(NS, 'client', 'node-a', CLIENT, 'client'),
      // flaky: the first request of each x-request-key fails with 503, later ones succeed.
      demoPod(NS, 'flaky', 'node-b', '127.0.204.11', 'flaky', { annotations: { 'strait.dev/demo-fail-first': '1' } }),
      demoPod(NS, 'plain', 'node-b', '127.0.204.12', 'plain'),
      demoPod(NS, 'pool', 'node-b', '127.0.204.14', 'pool'),
      deadPod('ghost', '127.0.204.31', 'ghost'),
      deadPod('mixed-dead', '127.0.204.32', 'mixed'),
      demoPod(NS, 'mixed-live', 'node-b', '127.0.204.33', 'mixed', { labels: { app: 'mixed' } }),
      demoPod(NS, 'outlier-good', 'node-b', '127.0.204.41', 'outlier', { labels: { app: 'outlier' } }),
      demoPod(NS, 'outlier-bad', 'node-b', '127.0.204.42', 'outlier', { labels: { app: 'outlier' }, annotations: { 'strait.dev/demo-fail-status': '503' } }),
      demoPod(NS, 'both-bad-1', 'node-b', '127.0.204.43', 'bothbad', { labels: { app: 'bothbad' }, annotations: { 'strait.dev/demo-fail-status': '503' } }),
      demoPod(NS, 'both-bad-2', 'node-b', '127.0.204.44', 'bothbad', { labels: { app: 'bothbad' }, annotations: { 'strait.dev/demo-fail-status': '503' } }),
      service('flaky', '127.0.204.101'), service('plain', '127.0.204.102'), service('ghost', '127.0.204.103'),
      service('mixed', '127.0.204.104'), service('pool', '127.0.204.105'), service('pool-conn', '127.0.204.106', 'pool'),
      service('outlier', '127.0.204.107'), service('bothbad', '127.0.204.108'),
      service('hr', '127.0.204.109', 'plain'), service('hr-flaky', '127.0.204.110', 'flaky'), service('empty', '127.0.204.111', 'no-such-app'),
      service('budget', '127.0.204.112', 'flaky'), service('patience', '127.0.204.113', 'plain'),
      vs('flaky', [
        { match: prefix('/retry5xx'), route: to('flaky'), retries: { attempts: 2, retryOn: '5xx' } },
        { match: prefix('/gw'), route: to('flaky'), retries: { attempts: 2, retryOn: 'gateway-error' } },
        { match: prefix('/none'), route: to('flaky'), retries: { attempts: 0 } },
      ]),
      // plain: answers as asked (x-demo-status, x-demo-delay-ms), from its first try on.
      vs('plain', [
        { match: prefix('/gw'), route: to('plain'), retries: { attempts: 2, retryOn: 'gateway-error' } },
        { match: prefix('/codes'), route: to('plain'), retries: { attempts: 2, retryOn: 'retriable-status-codes,418' } },
        { match: prefix('/pertry'), route: to('plain'), retries: { attempts: 2, perTryTimeout: '200ms', retryOn: '5xx' } },
        { match: prefix('/overall'), route: to('plain'), timeout: '300ms', retries: { attempts: 5, perTryTimeout: '2s', retryOn: '5xx' } },
        { match: prefix('/fault-delay'), route: to('plain'), fault: { delay: { fixedDelay: '300ms', percentage: { value: 100 } } } },
        { match: prefix('/abort-all'), route: to('plain'), fault: { abort: { httpStatus: 418, percentage: { value: 100 } } } },
        { match: prefix('/abort-half'), route: to('plain'), fault: { abort: { httpStatus: 503, percentage: { value: 50 } } } },
        { route: to('plain') },
      ]),
      vs('budget', [{ route: to('budget'), retries: { attempts: 2, retryOn: '5xx' } }]),
      vs('ghost', [{ route: to('ghost'), retries: { attempts: 2, retryOn: 'connect-failure' } }]),
      vs('mixed', [{ route: to('mixed'), retries: { attempts: 2, retryOn: 'connect-failure' } }]),
      {
        apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'hr', namespace: NS },
        spec: {
          parentRefs: [{ group: '', kind: 'Service', name: 'hr', port: 80 }],
          rules: [
            { matches: [{ path: { type: 'PathPrefix', value: '/req' } }], timeouts: { request: '300ms' }, backendRefs: [{ name: 'hr', port: 80 }] },
            { matches: [{ path: { type: 'PathPrefix', value: '/backend' } }], timeouts: { request: '3s', backendRequest: '200ms' }, backendRefs: [{ name: 'hr', port: 80 }] },
          ],
        },
      },
      {
        apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'hr-flaky', namespace: NS },
        spec: {
          parentRefs: [{ group: '', kind: 'Service', name: 'hr-flaky', port: 80 }],
          rules: [{ retry: { attempts: 2, codes: [503] }, backendRefs: [{ name: 'hr-flaky', port: 80 }] }],
        },
      },
      // maxRetries 0 is Istio's "unset": it limits nothing, so the retries above still happen.
      dr('flaky', { connectionPool: { http: { maxRetries: 0 } } }),
      // The dead endpoint of mixed: ejected after 2 gateway errors (connect failures) in a row.
      dr('mixed', { outlierDetection: { consecutiveGatewayErrors: 2, consecutive5xxErrors: 0, interval: '1s', baseEjectionTime: '30s', maxEjectionPercent: 50 } }),
      // One endpoint, ejected after 2 gateway errors in a row (at most all of them).
      dr('patience', { outlierDetection: { consecutiveGatewayErrors: 2, consecutive5xxErrors: 0, interval: '1s', baseEjectionTime: '30s', maxEjectionPercent: 100 } }),
      dr('budget', { connectionPool: { http: { maxRetries: 1 } } }),
      dr('pool', { connectionPool: { http: { http2MaxRequests: 1 } } }),
      dr('pool-conn', { connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } } }),
      dr('outlier', { loadBalancer: { simple: 'ROUND_ROBIN' }, outlierDetection: { consecutive5xxErrors: 3, interval: '1s', baseEjectionTime: '2s', maxEjectionPercent: 100 } }),
      dr('bothbad', { loadBalancer: { simple: 'ROUND_ROBIN' }, outlierDetection: { consecutive5xxErrors: 2, interval: '1s', baseEjectionTime: '30s', maxEjectionPercent: 50 } }),
    ));
    mesh = await new TestMesh(dir.path, ['--controller-address', '127.0.204.254']).start();
  });
  after(async () => {
    await mesh?.stop();
    mesh?.cleanup();
    dir.remove();
  });

  const wp = () => (mesh.readState() as unknown as { waypoints: Record<string, { admin: string; metrics: string }> }).waypoints['res/waypoint']!;
  /** One request with its own x-request-key and x-request-id; its access-log line once the waypoint wrote it. */
  const call = async (url: string, o: { h2?: boolean; headers?: Record<string, string>; data?: string } = {}) => {
    const id = randomUUID();
    const headers = { 'x-request-key': id, 'x-request-id': id, ...o.headers };
    const r = await mesh.curlJson(CLIENT, 'node-a', url, [
      ...(o.h2 ? ['--http2-prior-knowledge'] : []), ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]),
      ...(o.data !== undefined ? ['--data-binary', o.data] : []),
    ]);
    assert.equal(r.exit, 0, `curl ${url}: ${r.stderr}`);
    const line = await eventually(() => accessLines().find((l) => l.request_id === id), 3000, `access-log line of ${url} (answered ${r.status} ${r.text.slice(0, 200)})`);
    return { ...r, log: line };
  };
  const accessLines = () => mesh.logs(WAYPOINT).filter((l) => l.msg === 'request complete');
  const flags = (r: { log: Record<string, any> }) => r.log.response_flags as string;

  describe('retries', () => {
    it('turns a first-try 503 into a 200 with retries {attempts: 2, retryOn: 5xx}: the app saw 2 tries, x-envoy-attempt-count 2, access log attempts 2', async () => {
      for (const h2 of [false, true]) {
        const r = await call('http://flaky.res/retry5xx', { h2 });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.body.attempt, 2, 'the app saw the failed first try and the retry');
        assert.equal(r.body.headers['x-envoy-attempt-count'], '2', 'the retry says it is the second try');
        assert.equal(r.log.attempts, 2);
        assert.equal(flags(r), '-');
        assert.equal(r.log.status, 200);
      }
    });

    it('sends a request body again on a retry, and does not retry one longer than the retry buffer (64 KiB)', async () => {
      const small = await call('http://flaky.res/retry5xx', { headers: { 'content-type': 'text/plain' }, data: 'payload' });
      assert.equal(small.status, 200);
      assert.equal(small.body.attempt, 2);
      assert.equal(small.body.bodyBytes, 7, 'the retry carried the body');
      const big = await call('http://flaky.res/retry5xx', { h2: true, data: 'x'.repeat(100 * 1024) });
      assert.equal(big.status, 503, 'a streamed body cannot be sent twice');
      assert.equal(big.body.attempt, 1);
      assert.equal(big.body.bodyBytes, 100 * 1024);
      assert.equal(big.log.attempts, 1);
    });

    it('returns the last 503 with flag URX once the 2 retries are spent (3 tries: attempts counts retries after the first)', async () => {
      const r = await call('http://flaky.res/retry5xx', { headers: { 'x-demo-status': '503' } });
      assert.equal(r.status, 503);
      assert.equal(r.body?.attempt, 3, `the app's answer to the third try is returned: ${r.text}`);
      assert.equal(r.body.headers['x-envoy-attempt-count'], '3');
      assert.equal(r.log.attempts, 3);
      assert.equal(flags(r), 'URX');
    });

    it('does not retry a 500 under retryOn gateway-error, but retries a 503', async () => {
      const r500 = await call('http://plain.res/gw', { headers: { 'x-demo-status': '500' } });
      assert.equal(r500.status, 500);
      assert.equal(r500.body.attempt, 1, 'a 500 is no gateway error');
      assert.equal(r500.log.attempts, 1);
      assert.equal(flags(r500), '-');
      for (const status of ['502', '503', '504']) {
        const r = await call('http://plain.res/gw', { headers: { 'x-demo-status': status } });
        assert.equal(r.status, Number(status));
        assert.equal(r.body.attempt, 3, `${status} is a gateway error`);
        assert.equal(flags(r), 'URX');
      }
      const first503 = await call('http://flaky.res/gw');
      assert.equal(first503.status, 200, 'the first try\'s 503 was retried');
      assert.equal(first503.body.attempt, 2);
    });

    it('retries a status listed with retriable-status-codes, and no other', async () => {
      const listed = await call('http://plain.res/codes', { h2: true, headers: { 'x-demo-status': '418' } });
      assert.equal(listed.status, 418);
      assert.equal(listed.body.attempt, 3);
      assert.equal(flags(listed), 'URX');
      const other = await call('http://plain.res/codes', { headers: { 'x-demo-status': '500' } });
      assert.equal(other.status, 500);
      assert.equal(other.body.attempt, 1);
    });

    it('does not retry at all with attempts: 0', async () => {
      const r = await call('http://flaky.res/none');
      assert.equal(r.status, 503);
      assert.equal(r.body.attempt, 1);
      assert.equal(r.log.attempts, 1);
    });

    it('retries a connect failure (an endpoint whose app is not running) on another endpoint, and flags UF,URX when none is left', async () => {
      const results = await Promise.all(Array.from({ length: 8 }, () => call('http://mixed.res/')));
      assert.deepEqual(results.map((r) => r.status), Array(8).fill(200), 'every request ended on the live endpoint');
      assert.ok(results.some((r) => r.log.attempts === 2), 'some requests met the dead endpoint first and were retried');
      assert.ok(results.every((r) => r.body.pod === 'mixed-live'));
      // Its connect failures are gateway errors: outlier detection ejects it, and requests stop meeting it.
      await eventually(async () => {
        await call('http://mixed.res/');
        return mesh.logs(WAYPOINT).find((l) => l.msg === 'endpoint ejected (outlier detection)' && l.endpoint === '127.0.204.32:8080');
      }, 5000, 'the dead endpoint ejected after consecutiveGatewayErrors');
      const after = await Promise.all(Array.from({ length: 6 }, () => call('http://mixed.res/')));
      assert.deepEqual(after.map((r) => r.log.attempts), Array(6).fill(1), 'no request meets the ejected endpoint');
      const dead = await call('http://ghost.res/');
      assert.equal(dead.status, 503);
      assert.equal(dead.log.attempts, 3);
      assert.equal(flags(dead), 'UF,URX');
    });

    it('holds a maxRetries slot for the whole retried try, as Envoy: a second request\'s retry meanwhile overflows (UO)', async () => {
      assert.equal((await call('http://budget.res/warm-up')).status, 200, 'connections up before timing anything');
      // Both of A's tries take 1 s (the first fails, the retry succeeds): A's retry is in flight from ~1 s to ~2 s;
      // B's first try fails at once at ~1.4 s, so its retry would be the second in flight at once.
      const a = call('http://budget.res/a', { headers: { 'x-demo-delay-ms': '1000' } });
      await new Promise((r) => setTimeout(r, 1400));
      const b = await call('http://budget.res/b');
      const both = [await a, b];
      const refused = both.filter((r) => r.status === 503);
      assert.equal(refused.length, 1, `one retry was refused: ${both.map((r) => `${r.status} ${flags(r)}`).join(', ')}`);
      assert.equal(flags(refused[0]!), 'UO');
      assert.equal(refused[0]!.body.attempt, 1, 'its first try\'s answer');
      const served = both.find((r) => r.status === 200)!;
      assert.equal(served.body.attempt, 2);
      assert.equal(b.status, 503, 'B is the one refused');
      const dump = await (await fetch(`http://${wp().admin}/config_dump`)).json() as { clusters: { name: string; circuitBreaker: { overflows: { retries: number }; active: { retries: number } } }[] };
      const cl = dump.clusters.find((c) => c.name === 'res/budget:80');
      assert.equal(cl?.circuitBreaker.overflows.retries, 1);
      assert.equal(cl?.circuitBreaker.active.retries, 0, 'every slot given back');
    });

    it('retries as an HTTPRoute rule\'s retry {attempts: 2, codes: [503]} says', async () => {
      const r = await call('http://hr-flaky.res/x', { h2: true });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.attempt, 2);
      assert.equal(r.log.attempts, 2);
      assert.match(r.log.route, /^HTTPRoute\/res\/hr-flaky\/rules\[0\]/);
      const spent = await call('http://hr-flaky.res/x', { headers: { 'x-demo-status': '503' } });
      assert.equal(spent.status, 503);
      assert.equal(spent.body.attempt, 3, 'attempts: 2 retries after the first try, as Istio converts it');
      assert.equal(flags(spent), 'URX');
    });
  });

  describe('upstream connections', () => {
    it('does not reuse a keep-alive connection the app closed while idle (the demo app closes after 5 s, its socket after 6)', async () => {
      const first = await call('http://plain.res/before-idle');
      assert.equal(first.status, 200);
      await new Promise((r) => setTimeout(r, 6500));
      const r = await mesh.curlJson(CLIENT, 'node-a', 'http://plain.res/after-idle', ['--max-time', '3']);
      assert.equal(r.exit, 0, `the request after the idle close was answered: ${r.stderr}`);
      assert.equal(r.status, 200);
    });
  });

  describe('no endpoint', () => {
    it('answers 503 UH for a service with no ready endpoint', async () => {
      const r = await call('http://empty.res/');
      assert.equal(r.status, 503);
      assert.equal(flags(r), 'UH');
      assert.equal(r.log.attempts, 0);
    });
  });

  describe('timeouts', () => {
    it('retries a try that outlives perTryTimeout, then answers 504 UT,URX', async () => {
      const r = await call('http://plain.res/pertry', { headers: { 'x-demo-delay-ms': '1000' } });
      assert.equal(r.status, 504);
      assert.equal(r.text, 'upstream request timeout');
      assert.equal(r.log.attempts, 3);
      assert.equal(flags(r), 'UT,URX');
      assert.ok(r.timeMs >= 600 && r.timeMs < 1500, `three tries of 200 ms (${r.timeMs} ms)`);
    });

    it('answers 504 UT when the VirtualService timeout expires, whatever the retries left', async () => {
      const r = await call('http://plain.res/overall', { headers: { 'x-demo-delay-ms': '2000' } });
      assert.equal(r.status, 504);
      assert.equal(flags(r), 'UT');
      assert.ok(r.timeMs >= 280 && r.timeMs < 900, `within the 300 ms bound (${r.timeMs} ms)`);
      const fast = await call('http://plain.res/overall', { h2: true });
      assert.equal(fast.status, 200);
    });

    it('answers 504 UT at an HTTPRoute timeouts.request, and retries nothing past timeouts.backendRequest', async () => {
      const req = await call('http://hr.res/req', { headers: { 'x-demo-delay-ms': '2000' } });
      assert.equal(req.status, 504);
      assert.equal(flags(req), 'UT');
      assert.ok(req.timeMs >= 280 && req.timeMs < 900, `timeouts.request 300 ms (${req.timeMs} ms)`);
      const backend = await call('http://hr.res/backend', { h2: true, headers: { 'x-demo-delay-ms': '2000' } });
      assert.equal(backend.status, 504);
      assert.ok(backend.timeMs >= 180 && backend.timeMs < 900, `timeouts.backendRequest 200 ms (${backend.timeMs} ms)`);
      assert.equal(backend.log.attempts, 1, 'Istio\'s default retry policy does not retry a timeout');
      assert.equal(flags(backend), 'UT');
    });
  });

  describe('fault injection', () => {
    it('delays by fixedDelay (flag DI) and then forwards', async () => {
      const r = await call('http://plain.res/fault-delay', { h2: true });
      assert.equal(r.status, 200);
      assert.ok(r.timeMs >= 300, `took at least the 300 ms delay (${r.timeMs} ms)`);
      assert.equal(flags(r), 'DI');
      assert.equal(r.log.attempts, 1);
    });

    it('aborts every request with the configured status at 100 % (flag FI), none reaching the app', async () => {
      const r = await call('http://plain.res/abort-all');
      assert.equal(r.status, 418);
      assert.equal(r.text, 'fault filter abort');
      assert.equal(flags(r), 'FI');
      assert.equal(r.log.attempts, 0);
      const h2 = await call('http://plain.res/abort-all', { h2: true });
      assert.equal(h2.status, 418);
    });

    it('aborts about half of 400 requests at 50 %', async () => {
      const batch = await mesh.curlBatch(CLIENT, 'node-a', 'http://plain.res/abort-half', 400, { parallel: 25 });
      assert.equal((batch.statuses[200] ?? 0) + (batch.statuses[503] ?? 0), 400, JSON.stringify(batch.statuses));
      // Binomial(400, 0.5): standard deviation 10, so ±50 is five of them.
      assert.ok(Math.abs((batch.statuses[503] ?? 0) - 200) <= 50, `503s: ${batch.statuses[503]}`);
      // Access-log lines are written in batches (at most 100 ms late).
      const aborted = await eventually(() => {
        const lines = accessLines().filter((l) => l.path === '/abort-half' && l.status === 503);
        return lines.length >= (batch.statuses[503] ?? 0) ? lines : undefined;
      }, 3000, 'the aborted requests\' access-log lines');
      assert.ok(aborted.every((l) => l.response_flags === 'FI'));
    });
  });

  describe('connection-pool limits', () => {
    /** `n` requests at once, each its own curl process (curl --parallel would wait for the first to finish). */
    const concurrently = (n: number, url: string) => Promise.all(Array.from({ length: n }, () => call(url)));
    const tally = (rs: { status: number }[]) => rs.reduce<Record<number, number>>((t, r) => ({ ...t, [r.status]: (t[r.status] ?? 0) + 1 }), {});

    it('answers 503 UO past http2MaxRequests 1 while a slow request is in flight, and counts them in config_dump', async () => {
      const rs = await concurrently(6, 'http://pool.res/delay/500');
      const t = tally(rs);
      assert.equal((t[200] ?? 0) + (t[503] ?? 0), 6, JSON.stringify(t));
      assert.ok((t[200] ?? 0) >= 1 && (t[503] ?? 0) >= 3, JSON.stringify(t));
      for (const r of rs.filter((x) => x.status === 503)) {
        assert.equal(flags(r), 'UO');
        assert.equal(r.log.attempts, 0, 'an overflow never went upstream');
      }
      const dump = await (await fetch(`http://${wp().admin}/config_dump`)).json() as { clusters: { name: string; circuitBreaker: { limits: { requests: number }; overflows: { requests: number } } }[] };
      const cl = dump.clusters.find((c) => c.name === 'res/pool:80');
      assert.ok(cl, JSON.stringify(dump.clusters.map((c) => c.name)));
      assert.equal(cl.circuitBreaker.limits.requests, 1);
      assert.equal(cl.circuitBreaker.overflows.requests, t[503]);
    });

    it('cancels the upstream try of a client that went away, so its pool slot is free at once', async () => {
      const gone = await mesh.curlJson(CLIENT, 'node-a', 'http://pool.res/delay/2000', ['--max-time', '0.3']);
      assert.equal(gone.exit, 28, 'the client gave up');
      await new Promise((r) => setTimeout(r, 200));
      const next = await call('http://pool.res/after-gone');
      assert.equal(next.status, 200, `the slot was free (${flags(next)})`);
      const line = await eventually(() => accessLines().find((l) => l.path === '/delay/2000' && l.authority === 'pool.res' && /DC/.test(l.response_flags)), 3000, 'the abandoned request\'s access-log line');
      assert.ok(line.duration_ms < 1500, `recorded when the client left, not when the backend answered (${line.duration_ms} ms)`);
    });

    it('queues HTTP/1.1 requests past maxConnections 1 up to http1MaxPendingRequests, and answers 503 UO beyond', async () => {
      const rs = await concurrently(5, 'http://pool-conn.res/delay/500');
      // One on the connection, one waiting for it (served after the first), the rest overflow at once.
      assert.deepEqual(tally(rs), { 200: 2, 503: 3 });
      // By when the waypoint finished each (its access-log line's time): the queued one can start upstream only once
      // the first has freed the connection, then takes the backend's 500 ms. (Each curl's own time would depend on
      // when its process started, which a loaded machine staggers by tens of milliseconds.)
      const ends = rs.filter((r) => r.status === 200).map((r) => Date.parse(String(r.log.time))).sort((a, b) => a - b);
      assert.ok(ends.every((t) => Number.isFinite(t)), `access-log times: ${ends.join(', ')}`);
      assert.ok(ends[1]! - ends[0]! >= 450, `the queued request waited for the connection (finished ${ends[1]! - ends[0]!} ms after the first)`);
      for (const r of rs.filter((x) => x.status === 503)) assert.equal(flags(r), 'UO');
      const dump = await (await fetch(`http://${wp().admin}/config_dump`)).json() as { clusters: { name: string; circuitBreaker: { overflows: { pending: number } } }[] };
      assert.equal(dump.clusters.find((c) => c.name === 'res/pool-conn:80')?.circuitBreaker.overflows.pending, 3);
    });
  });

  describe('outlier detection', () => {
    it('ejects an endpoint after consecutive5xxErrors, sends traffic to the healthy one, and readmits it after baseEjectionTime', async () => {
      const bad = '127.0.204.42:8080';
      // Round robin between the two: the bad one's third 503 in a row ejects it.
      const seen: CurlJsonResult[] = [];
      await eventually(async () => {
        seen.push(await mesh.curlJson(CLIENT, 'node-a', 'http://outlier.res/'));
        return mesh.logs(WAYPOINT).find((l) => l.msg === 'endpoint ejected (outlier detection)' && l.endpoint === bad);
      }, 10_000, 'the bad endpoint ejected');
      assert.equal(seen.filter((r) => r.status === 503).length, 3, 'ejected at its third consecutive 503');
      const ejectedAt = Date.now();
      const during = await Promise.all(Array.from({ length: 10 }, () => mesh.curlJson(CLIENT, 'node-a', 'http://outlier.res/')));
      if (Date.now() - ejectedAt < 1900) {
        assert.deepEqual(during.map((r) => r.status), Array(10).fill(200), `only the healthy endpoint serves while the other is ejected: ${JSON.stringify(during.filter((r) => r.status !== 200).map((r) => [r.exit, r.stderr, r.text, r.httpVersion, r.timeMs]))}`);
        assert.ok(during.every((r) => r.body.pod === 'outlier-good'));
      }
      const metrics = await (await fetch(`http://${wp().metrics}/metrics`)).text();
      assert.match(metrics, /strait_waypoint_outlier_ejections_total\{cluster="res\/outlier:80"\} 1\b/);
      assert.match(metrics, /strait_waypoint_outlier_ejected\{cluster="res\/outlier:80"\} 1\b/);
      // baseEjectionTime 2 s, swept every 1 s: back within ~3 s, and it gets traffic again.
      await eventually(() => mesh.logs(WAYPOINT).find((l) => l.msg === 'endpoint readmitted (outlier detection)' && l.endpoint === bad), 5000, 'readmitted');
      const readmittedAfter = Date.now() - ejectedAt;
      assert.ok(readmittedAfter >= 1500, `not before baseEjectionTime (${readmittedAfter} ms)`);
      const back = await Promise.all(Array.from({ length: 4 }, () => mesh.curlJson(CLIENT, 'node-a', 'http://outlier.res/')));
      assert.ok(back.some((r) => r.status === 503 && r.body?.pod === 'outlier-bad'), 'the readmitted endpoint gets traffic again');
      // Still failing: ejected again, for twice the base ejection time.
      const again = await eventually(async () => {
        await mesh.curlJson(CLIENT, 'node-a', 'http://outlier.res/');
        const ejections = mesh.logs(WAYPOINT).filter((l) => l.msg === 'endpoint ejected (outlier detection)' && l.endpoint === bad);
        return ejections.length >= 2 ? ejections[1] : undefined;
      }, 5000, 'ejected a second time');
      const lasts = Date.parse(again.until) - Date.parse(again.time);
      assert.ok(lasts >= 3900 && lasts <= 4100, `the second ejection lasts 2 × baseEjectionTime (${lasts} ms)`);
    });

    it('does not count a client that went away against the endpoint it was waiting for', async () => {
      const answers: string[] = [];
      for (let i = 0; i < 3; i++) {
        const gone = await mesh.curlJson(CLIENT, 'node-a', 'http://patience.res/delay/1500', ['--max-time', '0.3']);
        answers.push(gone.exit === 28 ? 'gave up' : `${gone.status} ${gone.text.trim()}`);
      }
      assert.deepEqual(answers, ['gave up', 'gave up', 'gave up'], 'each client waited for the endpoint and gave up');
      const r = await call('http://patience.res/after');
      assert.equal(r.status, 200, `the endpoint is still in service (${flags(r)})`);
      assert.ok(!mesh.logs(WAYPOINT).some((l) => l.msg === 'endpoint ejected (outlier detection)' && l.cluster === 'res/patience:80'));
    });

    it('ejects at most maxEjectionPercent of the endpoints: with 2 always failing and 50 %, only one', async () => {
      const batch = await mesh.curlBatch(CLIENT, 'node-a', 'http://bothbad.res/', 12, { parallel: 1 });
      assert.equal(batch.statuses[503], 12);
      const dump = await (await fetch(`http://${wp().admin}/config_dump`)).json() as { clusters: { name: string; outlier?: { ejected: unknown[]; ejectionsOverflow: number } }[] };
      const o = dump.clusters.find((c) => c.name === 'res/bothbad:80')?.outlier;
      assert.ok(o, 'the cluster has outlier detection');
      assert.equal(o.ejected.length, 1, 'one of two at 50 %');
      assert.ok(o.ejectionsOverflow >= 1, 'the second ejection was refused');
    });
  });
});
