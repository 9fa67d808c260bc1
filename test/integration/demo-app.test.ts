/**
 * The demo app as `strait up` runs it — a real `strait demo-app` process — asked by real curl (HTTP/1.1 and h2c) and a
 * real @grpc/grpc-js client: per-request statuses, delays, sizes and echo; per-pod faults from its flags (the pod's
 * strait.dev/demo-* annotations); the gRPC Echo service on a gRPC port. Addresses: 127.0.0.1, ports from the kernel.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EchoClient } from '../helpers/echo-grpc.js';
import { StraitProcess, run } from '../helpers/procs.js';

interface Started { proc: StraitProcess; base: string; hostPort: string }

async function startApp(extra: string[] = []): Promise<Started> {
  const proc = StraitProcess.start(['demo-app', '--address', '127.0.0.1', '--port', '0', '--pod', 'echo-v2', '--namespace', 'apps',
    '--app', 'echo', '--version=v2', '--node', 'node-a', ...extra]);
  const line = await proc.waitFor((l) => l.msg === 'demo app listening', 15_000, 'demo app listening');
  const hostPort = String(line['address']);
  return { proc, base: `http://${hostPort}`, hostPort };
}

interface CurlAnswer { exit: number | null; status: number; size: number; timeMs: number; httpVersion: string; text: string; body: any }

async function curl(url: string, extra: string[] = []): Promise<CurlAnswer> {
  const r = await run('curl', ['-sS', '--max-time', '10', '--noproxy', '*', '-w', '\n%{http_code} %{size_download} %{time_total} %{http_version}', ...extra, url]);
  const at = r.stdout.lastIndexOf('\n');
  const [status = '0', size = '0', time = '0', httpVersion = ''] = r.stdout.slice(at + 1).split(' ');
  const text = r.stdout.slice(0, at);
  let body: any;
  try { body = JSON.parse(text); } catch { body = undefined; }
  return { exit: r.code, status: Number(status), size: Number(size), timeMs: Number(time) * 1000, httpVersion, text, body };
}

const H2C = ['--http2-prior-knowledge'];

describe('demo app process: per-request asks', () => {
  let app: Started;
  before(async () => { app = await startApp(); });
  after(async () => { await app?.proc.stop(); });

  it('answers /status/<code> with that status and its usual JSON, over HTTP/1.1 and h2c', async () => {
    for (const [code, flags] of [[418, []], [503, []], [599, H2C], [201, H2C]] as const) {
      const r = await curl(`${app.base}/status/${code}`, [...flags]);
      assert.equal(r.status, code);
      assert.equal(r.httpVersion, flags.length ? '2' : '1.1');
      assert.equal(r.body.status, code);
      assert.equal(r.body.pod, 'echo-v2');
      assert.equal(r.body.version, 'v2');
      assert.equal(r.body.path, `/status/${code}`);
    }
    const empty = await curl(`${app.base}/status/204`);
    assert.equal(empty.status, 204);
    assert.equal(empty.size, 0, '204 carries no body');
  });

  it('answers 400 to a status outside 200-599 and says why', async () => {
    for (const p of ['/status/100', '/status/600', '/status/abc']) {
      const r = await curl(`${app.base}${p}`);
      assert.equal(r.status, 400, p);
      assert.match(r.body.error, /from 200 to 599/);
    }
  });

  it('waits /delay/<ms> (and x-demo-delay-ms on any path) before answering, and refuses more than 30 s', async () => {
    const slow = await curl(`${app.base}/delay/400`);
    assert.equal(slow.status, 200);
    assert.ok(slow.timeMs >= 400, `took ${slow.timeMs} ms`);
    const header = await curl(`${app.base}/api/orders`, [...H2C, '-H', 'x-demo-delay-ms: 300', '-H', 'x-demo-status: 504']);
    assert.equal(header.status, 504);
    assert.ok(header.timeMs >= 300, `took ${header.timeMs} ms`);
    assert.equal(header.body.path, '/api/orders');
    const fast = await curl(`${app.base}/`);
    assert.ok(fast.timeMs < 300, `no delay asked, took ${fast.timeMs} ms`);
    assert.equal((await curl(`${app.base}/delay/30001`)).status, 400);
  });

  it('answers /bytes/<n> with exactly n bytes, and 400 over 64 MiB', async () => {
    for (const n of [0, 1, 70_000, 5 * 1024 * 1024]) {
      const r = await curl(`${app.base}/bytes/${n}`, n === 70_000 ? H2C : []);
      assert.equal(r.status, 200);
      assert.equal(r.size, n);
    }
    assert.equal((await curl(`${app.base}/bytes/${64 * 1024 * 1024 + 1}`)).status, 400);
  });

  it('answers /echo with the method, path, query, headers and body as received', async () => {
    for (const flags of [[], H2C]) {
      const r = await curl(`${app.base}/echo?a=1&a=2&b=x%20y`, [...flags, '-X', 'PUT', '-H', 'X-Custom: Yes', '-H', 'x-forwarded-for: 10.0.0.1', '-H', 'host: orders.shop', '--data-binary', 'hello body']);
      assert.equal(r.status, 200);
      const a = r.body;
      assert.equal(a.method, 'PUT');
      assert.equal(a.path, '/echo');
      assert.deepEqual(a.query, { a: ['1', '2'], b: 'x y' });
      assert.equal(a.headers['x-custom'], 'Yes');
      assert.equal(a.headers['x-forwarded-for'], '10.0.0.1');
      assert.equal(a.authority, 'orders.shop');
      assert.equal(a.protocol, flags.length ? 'HTTP/2' : 'HTTP/1.1');
      assert.equal(a.body, 'hello body');
      assert.equal(a.bodyBytes, 10);
      assert.equal(Object.keys(a.headers).some((k: string) => k.startsWith(':')), false, 'no pseudo-headers');
    }
  });

  it('reads and counts a large request body on any path without echoing it', async () => {
    const r = await run('bash', ['-c', `head -c 3000000 /dev/zero | curl -sS --noproxy '*' --max-time 10 -X POST --data-binary @- ${app.base}/upload`]);
    const a = JSON.parse(r.stdout);
    assert.equal(a.bodyBytes, 3_000_000);
    assert.equal(a.method, 'POST');
    assert.equal(a.body, undefined);
  });

  it('still answers /healthz with ok on both protocols', async () => {
    assert.equal((await curl(`${app.base}/healthz`)).text, 'ok\n');
    assert.equal((await curl(`${app.base}/healthz`, H2C)).text, 'ok\n');
  });
});

describe('demo app process: per-pod faults', () => {
  const apps: Started[] = [];
  after(async () => { await Promise.all(apps.map((a) => a.proc.stop())); });
  const start = async (extra: string[]) => { const a = await startApp(extra); apps.push(a); return a; };

  it('fails the share of requests --fail-ratio gives with --fail-status, never /healthz', async () => {
    const app = await start(['--fail-status', '503', '--fail-ratio', '0.5']);
    const seen: number[] = [];
    for (let i = 0; i < 10; i++) {
      seen.push((await curl(`${app.base}/items`)).status);
      assert.equal((await curl(`${app.base}/healthz`)).status, 200, '/healthz is never failed nor counted');
    }
    assert.deepEqual(seen, [200, 503, 200, 503, 200, 503, 200, 503, 200, 503]);
    const eleventh = await curl(`${app.base}/items`, H2C);
    assert.equal(eleventh.status, 200, 'h2c requests are counted with the rest');
    const again = await curl(`${app.base}/status/201`);
    assert.equal(again.status, 503, 'the pod\'s fault wins over the asked status');
    assert.equal(again.body.pod, 'echo-v2', 'a failed answer still says which pod gave it');
  });

  it('fails the first N requests of each x-request-key value, so a retry with the same key succeeds', async () => {
    const app = await start(['--fail-first', '2', '--fail-status', '500']);
    const with_ = (key: string) => curl(`${app.base}/pay`, ['-H', `x-request-key: ${key}`]);
    const k1 = [await with_('k1'), await with_('k1')];
    const k2 = await with_('k2');
    const k1third = await with_('k1');
    assert.deepEqual(k1.map((r) => r.status), [500, 500]);
    assert.equal(k2.status, 500, 'another key starts its own count');
    assert.equal(k1third.status, 200);
    assert.deepEqual([...k1, k1third].map((r) => r.body.attempt), [1, 2, 3]);
    assert.equal((await curl(`${app.base}/pay`, ['-H', `x-request-key: ${'k'.repeat(257)}`])).status, 400, 'a key over 256 bytes is refused');
  });

  it('fails every request during the first FAIL of every PERIOD of --fail-window, and answers normally after it', async () => {
    const app = await start(['--fail-window', '3s/1h', '--fail-status', '502']);
    const during = await curl(`${app.base}/stock`);
    assert.equal(during.status, 502, 'in the window (the first 3 s of the app)');
    assert.equal(during.body.pod, 'echo-v2');
    assert.equal((await curl(`${app.base}/healthz`)).status, 200, '/healthz never fails');
    await new Promise((r) => setTimeout(r, 3_100));
    assert.equal((await curl(`${app.base}/stock`)).status, 200, 'after the window');
    const bad = StraitProcess.start(['demo-app', '--address', '127.0.0.1', '--port', '0', '--pod', 'p', '--namespace', 'n', '--app', 'a', '--version=v1', '--node', 'x', '--fail-window', '40s/20s']);
    assert.notEqual(await bad.exited, 0);
    assert.match(bad.stderr.join('\n'), /"40s\/20s" is not FAIL\/PERIOD/);
  });

  it('waits --delay-ms before every answer but /healthz', async () => {
    const app = await start(['--delay-ms', '300']);
    const r = await curl(`${app.base}/`);
    assert.equal(r.status, 200);
    assert.ok(r.timeMs >= 300, `took ${r.timeMs} ms`);
    const h = await curl(`${app.base}/healthz`);
    assert.ok(h.timeMs < 300, `/healthz took ${h.timeMs} ms`);
  });

  it('refuses a bad fault flag at start, naming the value and what is allowed', async () => {
    const proc = StraitProcess.start(['demo-app', '--address', '127.0.0.1', '--port', '0', '--pod', 'p', '--namespace', 'n', '--app', 'a', '--version=v1', '--node', 'x', '--fail-ratio', '2']);
    const code = await proc.exited;
    assert.notEqual(code, 0);
    assert.match(proc.stderr.join('\n'), /"2" is not a share from 0 to 1/);
  });
});

describe('demo app process: gRPC Echo on a gRPC port', () => {
  let app: Started;
  let client: EchoClient;
  before(async () => {
    app = await startApp(['--grpc', '--fail-first', '1', '--fail-status', '503']);
    client = new EchoClient(app.hostPort, { authority: 'echo.apps:9090' });
  });
  after(async () => {
    client?.close();
    await app?.proc.stop();
  });

  it('answers Say with the message and who answered, failing the first call of a key with UNAVAILABLE (the pod\'s 503)', async () => {
    const first = await client.say('hi', { metadata: { 'x-request-key': 'g1', 'x-custom': 'yes' } });
    assert.equal(first.code, 14);
    assert.match(first.details, /demo fault: pod echo-v2 fails this call \(HTTP 503\)/);
    const second = await client.say('hi', { metadata: { 'x-request-key': 'g1', 'x-custom': 'yes' } });
    assert.equal(second.code, 0);
    assert.equal(second.reply?.message, 'hi');
    assert.equal(second.reply?.pod, 'echo-v2');
    assert.equal(second.reply?.version, 'v2');
    assert.equal(second.reply?.attempt, 2);
    assert.equal(second.reply?.metadata['x-custom'], 'yes');
  });

  it('ends Fail(code) with that status and message', async () => {
    const r = await client.fail(5, { message: 'no such order', metadata: { 'x-request-key': 'f1-warm' } });
    // The first call of the key fails with the pod's fault; the second reaches Fail.
    assert.equal(r.code, 14);
    const f = await client.fail(5, { message: 'no such order', metadata: { 'x-request-key': 'f1-warm' } });
    assert.equal(f.code, 5);
    assert.equal(f.details, 'no such order');
    assert.equal(f.reply, null);
  });

  it('holds Say for delay_ms, so a shorter deadline ends it with DEADLINE_EXCEEDED', async () => {
    await client.say('warm', { metadata: { 'x-request-key': 'd1' } });
    const r = await client.say('slow', { delayMs: 1000, deadlineMs: 200, metadata: { 'x-request-key': 'd1' } });
    assert.equal(r.code, 4);
    assert.ok(r.durationMs < 900, `ended after ${r.durationMs} ms`);
  });

  it('still answers HTTP/1.1 on the same port: /healthz for strait up, JSON for the rest', async () => {
    assert.equal((await curl(`${app.base}/healthz`)).text, 'ok\n');
    const r = await curl(`${app.base}/x`, ['-H', 'x-request-key: h1']);
    assert.equal(r.status, 503, 'the same pod faults apply');
  });
});
