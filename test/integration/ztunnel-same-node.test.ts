/**
 * The same-node fast path (issue 14), against the HBONE path it replaces: two real controllers and two real ztunnel
 * processes, each serving one node where client and server pods share the node; one ztunnel with the fast path (the
 * default), the other with --no-same-node-fast-path. The test plays the pods' applications on their addresses and
 * connects through each ztunnel's SOCKS5 port. Every case runs on both, and the two must agree: what the client sees,
 * the refusals, the access-log lines and the metrics. Addresses: fast 127.0.215.x, HBONE 127.0.216.x.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { docs, namespace, pod, service } from '../helpers/manifests.js';
import { policy } from '../helpers/mesh.js';
import { eventually } from '../helpers/eventually.js';
import { ZtunnelNode } from '../helpers/ztunnel.js';
import type { LogLine } from '../helpers/procs.js';

const SOCKS_NOT_ALLOWED = 0x02;
const SOCKS_CONNECTION_REFUSED = 0x05;
const APP_PORT = 8080;
const ID = (sa: string) => `spiffe://cluster.local/ns/apps/sa/${sa}`;

/** Last octets of the pods (the third octet is the path's). */
const POD = { client: 10, server: 11, denied: 12, allowOnly: 13, strict: 14, down: 15, late: 16, ctl: 17, vip: 100 } as const;

/** How the `ctl` pod's application treats its next connection (half-close and reset cases). */
type CtlMode = 'reply-after-client-fin' | 'fin-first' | 'reset-on-data' | 'record';

/** One node with its ztunnel, its pods' applications, and the path it takes for same-node traffic. */
class SameNodeMesh {
  readonly zt: ZtunnelNode;
  readonly servers: net.Server[] = [];
  readonly sockets = new Set<net.Socket>();
  ctlMode: CtlMode = 'record';
  /** What the `ctl` application saw of each connection, in order: the bytes, and how it ended. */
  readonly ctlSeen: Promise<{ data: string; ended: boolean; error?: string }>[] = [];

  constructor(readonly name: 'fast' | 'hbone', readonly octet: number) {
    const node = `node-${name}`;
    const p = (n: string, last: number, labels: Record<string, string> = {}) => pod('apps', n, { node, ip: this.ip(last), sa: n, labels: { app: n, ...labels }, ports: { http: APP_PORT } });
    this.zt = new ZtunnelNode(node, this.ip(1), [
      namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
      p('client', POD.client), p('server', POD.server), p('denied', POD.denied), p('allow-only', POD.allowOnly),
      p('strict', POD.strict), p('down', POD.down), p('late', POD.late), p('ctl', POD.ctl),
      service('apps', 'server', { ip: this.ip(POD.vip), selector: { app: 'server' }, ports: [{ port: 80, targetPort: APP_PORT, name: 'http' }] }),
      policy('apps', 'deny-client', { selector: { matchLabels: { app: 'denied' } }, action: 'DENY', rules: [{ from: [{ source: { principals: ['cluster.local/ns/apps/sa/client'] } }] }] }),
      policy('apps', 'allow-other', { selector: { matchLabels: { app: 'allow-only' } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/apps/sa/other'] } }] }] }),
      { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'strict', namespace: 'apps' }, spec: { selector: { matchLabels: { app: 'strict' } }, mtls: { mode: 'STRICT' } } },
    ]);
  }

  ip(last: number): string {
    return `127.0.${this.octet}.${last}`;
  }

  async start(): Promise<void> {
    for (const last of [POD.server, POD.denied, POD.allowOnly, POD.strict, POD.late]) await this.listen(last, (s) => s.pipe(s));
    await this.listen(POD.ctl, (s) => this.ctl(s));
    await this.zt.start(this.name === 'hbone' ? ['--no-same-node-fast-path'] : []);
  }

  async stop(): Promise<void> {
    await this.zt.stop();
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
  }

  /** A SOCKS5 connection from the client pod; asserts it was accepted. */
  async open(last: number, port = APP_PORT): Promise<net.Socket> {
    const r = await this.zt.connect(this.ip(POD.client), this.ip(last), port);
    assert.ok(r.ok, `${this.name}: SOCKS5 connect to ${this.ip(last)}:${port}: ${r.ok ? '' : r.message}`);
    r.socket.on('error', () => undefined);
    r.socket.allowHalfOpen = true; // the pod's application: its write side stays open after the peer's FIN
    return r.socket;
  }

  /** Access-log lines since `from` (an index into the ztunnel's log lines). */
  accessLines(from: number): LogLine[] {
    return this.zt.proc.lines.slice(from).filter((l) => l.msg === 'connection complete' || l.msg === 'connection refused');
  }

  /** Adds a manifest file to the controller's directory and waits until this ztunnel holds the policy. */
  async push(file: string, obj: unknown, key: string): Promise<void> {
    writeFileSync(join(this.zt.dir.path, file), docs(obj));
    await eventually(async () => ((await this.zt.configDump()).policies as { key: string }[]).some((p) => p.key.endsWith(key)), 10_000, `${key} on ${this.name}`);
  }

  private async listen(last: number, onSocket: (s: net.Socket) => void): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      this.sockets.add(s);
      s.on('error', () => undefined); // resets are part of the cases; ctl records them itself
      s.on('close', () => this.sockets.delete(s));
      onSocket(s);
    });
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(APP_PORT, this.ip(last), resolve); });
    this.servers.push(server);
  }

  private ctl(s: net.Socket): void {
    const mode = this.ctlMode;
    let data = '';
    s.setEncoding('utf8');
    this.ctlSeen.push(new Promise((resolve) => {
      let ended = false;
      let error: string | undefined;
      s.on('data', (d: string) => {
        data += d;
        if (mode === 'reset-on-data') s.resetAndDestroy();
      });
      s.on('end', () => {
        ended = true;
        if (mode === 'reply-after-client-fin') s.end(`got ${data.length} bytes after your FIN`);
      });
      s.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
      s.on('close', () => resolve({ data, ended, ...(error ? { error } : {}) }));
    }));
    if (mode === 'fin-first') s.end('hello, and goodbye from the server');
    if (mode === 'record' || mode === 'fin-first') s.on('end', () => s.end());
  }
}

/** `p`, or a failure naming `what` after `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => { t = setTimeout(() => reject(new Error(`timed out after ${ms}ms: ${what}`)), ms); })]).finally(() => clearTimeout(t));
}

/** Everything a client socket sees until it closes: the bytes, whether the peer's FIN arrived, an error code. */
function observe(s: net.Socket): Promise<{ data: string; ended: boolean; error?: string }> {
  return new Promise((resolve) => {
    let data = '';
    let ended = false;
    let error: string | undefined;
    s.setEncoding('utf8');
    s.on('data', (d: string) => (data += d));
    s.on('end', () => (ended = true));
    s.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
    s.on('close', () => resolve({ data, ended, ...(error ? { error } : {}) }));
    s.resume();
  });
}

async function echoOnce(s: net.Socket, text: string): Promise<void> {
  s.setEncoding('utf8');
  const got = new Promise<string>((resolve) => {
    let buf = '';
    const onData = (d: string) => {
      buf += d;
      if (buf.length >= text.length) { s.off('data', onData); resolve(buf); }
    };
    s.on('data', onData);
  });
  s.resume();
  s.write(text);
  assert.equal(await got, text);
}

/** An access-log line with the path's own addresses made comparable, and the fields that differ by nature dropped. */
function comparable(l: LogLine, octet: number): Record<string, unknown> {
  const { time: _t, pid: _p, hostname: _h, duration_ms: _d, node: _n, error: _e, ...rest } = l as Record<string, unknown>;
  return JSON.parse(JSON.stringify(rest).replaceAll(`127.0.${octet}.`, '127.0.X.'));
}

/** The istio_tcp_* and denial series of a metrics text, addresses made comparable. */
function tcpSeries(text: string): string[] {
  return text.split('\n').filter((l) => /^(istio_tcp_|strait_ztunnel_connections_denied_total)/.test(l)).sort();
}

/** Established TCP connections that have `address:15008` at one end (an HBONE session to that pod). */
function hboneSessionsTo(address: string): number {
  const out = execFileSync('ss', ['-Htn', 'state', 'established'], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes(`${address}:15008`)).length;
}

describe('same-node traffic: the fast path behaves as the HBONE path', () => {
  const fast = new SameNodeMesh('fast', 215);
  const hbone = new SameNodeMesh('hbone', 216);
  const paths = [fast, hbone];

  before(async () => {
    await Promise.all(paths.map((m) => m.start()));
  });
  after(async () => {
    await Promise.all(paths.map((m) => m.stop()));
  });

  it('carries same-node traffic in-process with the fast path (no HBONE session, no TLS handshake) and over HBONE with it off', async () => {
    for (const m of paths) {
      const s = await m.open(POD.server);
      await echoOnce(s, 'hello over the same-node path');
      const sessions = hboneSessionsTo(m.ip(POD.server));
      const handshakes = await m.zt.metric('strait_ztunnel_hbone_handshakes');
      const viaFast = await m.zt.metric('strait_ztunnel_same_node_connections_total', 'path="fast"');
      const viaHbone = await m.zt.metric('strait_ztunnel_same_node_connections_total', 'path="hbone"');
      if (m === fast) {
        assert.equal(sessions, 0, 'no TCP connection to the pod\'s 15008: the HBONE server never sees it');
        assert.equal(handshakes, 0, 'no TLS handshake');
        assert.ok(viaFast >= 1 && viaHbone === 0, `same-node connections: fast ${viaFast}, hbone ${viaHbone}`);
      } else {
        assert.ok(sessions >= 2, `both ends of the HBONE session to ${m.ip(POD.server)}:15008 are established (saw ${sessions})`);
        assert.ok(handshakes >= 1, 'the ztunnel made a TLS handshake to itself');
        assert.ok(viaHbone >= 1 && viaFast === 0, `same-node connections: fast ${viaFast}, hbone ${viaHbone}`);
      }
      s.end();
      await observe(s);
    }
  });

  /** Policy and PeerAuthentication cases: what the client sees and the reason each ztunnel side logs. */
  const cases: { name: string; to: number; port?: number; expect: { reply: number; outbound: string; inbound: string } }[] = [
    { name: 'an allowed pod', to: POD.server, expect: { reply: 0, outbound: 'complete', inbound: 'complete' } },
    { name: 'a service VIP with its endpoint on this node', to: POD.vip, port: 80, expect: { reply: 0, outbound: 'complete', inbound: 'complete' } },
    { name: 'a DENY policy on the source principal', to: POD.denied, expect: { reply: SOCKS_NOT_ALLOWED, outbound: 'policy_denied', inbound: 'policy_denied' } },
    { name: 'an ALLOW policy for another principal only', to: POD.allowOnly, expect: { reply: SOCKS_NOT_ALLOWED, outbound: 'policy_denied', inbound: 'policy_denied' } },
    { name: 'a STRICT PeerAuthentication (the source is a mesh identity)', to: POD.strict, expect: { reply: 0, outbound: 'complete', inbound: 'complete' } },
    { name: 'a pod whose application does not listen', to: POD.down, expect: { reply: SOCKS_CONNECTION_REFUSED, outbound: 'connect_failed', inbound: 'connect_failed' } },
  ];
  for (const c of cases) {
    it(`gives the same outcome on both paths: ${c.name}`, async () => {
      const seen: Record<string, { reply: number; outbound: string; inbound: string; lines: Record<string, unknown>[] }> = {};
      for (const m of paths) {
        const from = m.zt.proc.lines.length;
        const r = await m.zt.connect(m.ip(POD.client), m.ip(c.to), c.port ?? APP_PORT);
        const text = `case ${c.name}`;
        if (r.ok) {
          r.socket.on('error', () => undefined);
          await echoOnce(r.socket, text);
          r.socket.end();
          await observe(r.socket);
        }
        // This connection's lines (an earlier test's may still be written after `from`): by its byte count.
        const ours = (l: LogLine) => l.bytes_recv === (r.ok ? text.length : 0);
        const [out, inn] = await eventually(() => {
          const lines = m.accessLines(from).filter(ours);
          const o = lines.find((l) => l.direction === 'outbound');
          const i = lines.find((l) => l.direction === 'inbound');
          return o && i ? [o, i] as const : undefined;
        }, 10_000, `${m.name}: both access-log lines`);
        const outcome = (l: LogLine) => (l.msg === 'connection complete' ? 'complete' : String(l.reason));
        seen[m.name] = { reply: r.ok ? 0 : r.reply, outbound: outcome(out), inbound: outcome(inn), lines: [comparable(out, m.octet), comparable(inn, m.octet)] };
      }
      for (const m of paths) {
        const { lines: _l, ...got } = seen[m.name]!;
        assert.deepEqual(got, c.expect, `${m.name} path`);
      }
      assert.deepEqual(seen.fast!.lines, seen.hbone!.lines, 'the same access-log lines, field for field (addresses made comparable; the error text aside)');
    });
  }

  it('writes the same identities and labels into the metrics on both paths (connection_security_policy mutual_tls, as Istio\'s node-local fast path)', async () => {
    const texts = await Promise.all(paths.map(async (m) => tcpSeries((await (await fetch(`http://${m.ip(1)}:15020/metrics`)).text()))));
    assert.ok(texts[0]!.length > 0, 'series to compare');
    assert.deepEqual(texts[0], texts[1]);
    const opened = texts[0]!.filter((l) => l.startsWith('istio_tcp_connections_opened_total{'));
    for (const reporter of ['source', 'destination']) {
      const line = opened.find((l) => l.includes(`reporter="${reporter}"`) && l.includes('destination_workload="server"'));
      assert.ok(line, `a ${reporter} series for the server`);
      assert.match(line, new RegExp(`source_principal="${ID('client')}"`));
      assert.match(line, new RegExp(`destination_principal="${ID('server')}"`));
      assert.match(line, /connection_security_policy="mutual_tls"/);
    }
  });

  const halfCloses: { name: string; mode: CtlMode; run: (s: net.Socket) => Promise<unknown>; expect: unknown }[] = [
    {
      name: 'the client half-closes: the server still answers after the client\'s FIN, and its reply arrives',
      mode: 'reply-after-client-fin',
      run: async (s) => { const seen = observe(s); s.end('twelve bytes'); return seen; },
      expect: { data: 'got 12 bytes after your FIN', ended: true },
    },
    {
      name: 'the server half-closes first: the client gets its FIN and can still send',
      mode: 'fin-first',
      run: async (s) => {
        const seen = observe(s);
        await new Promise((r) => s.once('end', r));
        s.end('still talking');
        return seen;
      },
      expect: { data: 'hello, and goodbye from the server', ended: true },
    },
    {
      name: 'the server resets: the client sees a reset, not an orderly close',
      mode: 'reset-on-data',
      run: async (s) => { const seen = observe(s); s.write('x'); const r = await seen; return { error: r.error }; },
      expect: { error: 'ECONNRESET' },
    },
  ];
  for (const h of halfCloses) {
    it(`propagates as the HBONE path does: ${h.name}`, async () => {
      for (const m of paths) {
        m.ctlMode = h.mode;
        const at = m.ctlSeen.length;
        const s = await m.open(POD.ctl);
        assert.deepEqual(await within(h.run(s), 5000, `${m.name}: the client side`), h.expect, `${m.name} path, client side`);
        const { server } = await eventually(() => (m.ctlSeen.length > at ? { server: m.ctlSeen[at]! } : undefined), 5000, 'the server saw the connection');
        const seen = await within(server, 5000, `${m.name}: the server side closes`);
        if (h.mode === 'fin-first') assert.deepEqual(seen, { data: 'still talking', ended: true }, `${m.name} path, server side`);
        if (h.mode === 'reply-after-client-fin') assert.deepEqual(seen, { data: 'twelve bytes', ended: true }, `${m.name} path, server side`);
      }
    });
  }

  it('propagates a client reset to the server as a reset on both paths', async () => {
    for (const m of paths) {
      m.ctlMode = 'record';
      const at = m.ctlSeen.length;
      const s = await m.open(POD.ctl);
      s.write('before the reset');
      const { server } = await eventually(() => (m.ctlSeen.length > at ? { server: m.ctlSeen[at]! } : undefined), 5000, 'the server saw the connection');
      await eventually(() => m.sockets.size > 0, 5000, 'server socket');
      await new Promise((r) => setTimeout(r, 50)); // let the bytes reach the server before the reset
      s.resetAndDestroy();
      const seen = await within(server, 5000, `${m.name}: the server side closes`);
      assert.equal(seen.error, 'ECONNRESET', `${m.name} path: ${JSON.stringify(seen)}`);
      assert.equal(seen.data, 'before the reset');
    }
  });

  it('re-checks live connections on a policy change on both paths: a new DENY closes them, a STRICT PeerAuthentication does not', async () => {
    const live = await Promise.all(paths.map(async (m) => {
      const denied = await m.open(POD.late);
      await echoOnce(denied, 'before the policy');
      const kept = await m.open(POD.server);
      await echoOnce(kept, 'before the policy');
      return { m, denied, kept, deniedSeen: observe(denied), from: m.zt.proc.lines.length };
    }));
    for (const m of paths) {
      await m.push('strict-all.yaml', { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'strict-all', namespace: 'apps' }, spec: { mtls: { mode: 'STRICT' } } }, '/apps/strict-all');
      await m.push('deny-late.yaml', policy('apps', 'deny-late', { selector: { matchLabels: { app: 'late' } }, action: 'DENY', rules: [{ from: [{ source: { principals: ['cluster.local/ns/apps/sa/client'] } }] }] }), '/apps/deny-late');
    }
    for (const { m, kept, deniedSeen, from } of live) {
      const seen = await within(deniedSeen, 5000, `${m.name}: the denied connection closes`);
      assert.equal(seen.error, 'ECONNRESET', `${m.name} path: the denied connection is reset (${JSON.stringify(seen)})`);
      const closed = await eventually(() => m.accessLines(from).find((l) => l.direction === 'inbound' && /closed by policy change/.test(String(l.error))), 5000, `${m.name}: inbound line`);
      assert.match(String(closed.error), /deny-late/);
      await echoOnce(kept, 'after the policy: mTLS (or the fast path) satisfies STRICT');
      kept.end();
      await observe(kept);
    }
  });
});
