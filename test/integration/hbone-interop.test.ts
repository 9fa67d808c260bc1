/**
 * HBONE against HTTP/2 stacks that no one here wrote, each with its own defaults, through a real local mesh
 * (`strait up`) or HBONE's real TLS:
 * - python-h2 (Debian python3-h2) as a client of a ztunnel's 15008 (push enabled, 64 KiB windows, 16 KiB frames),
 *   and as the server a ztunnel's HBONE client dials (test/peers/*.py);
 * - nghttp (Debian nghttp2-client) with a client certificate against a ztunnel's 15008;
 * - node:http2 in both roles around HboneServer / HbonePool.
 * A missing peer fails the test under CI=true and is a loud skip elsewhere.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { CertificateAuthority, SpiffeId, createKeyAndCsr } from '../../src/identity/index.js';
import { HbonePool, HboneRefusedError, HboneServer, relay, type WorkloadCert } from '../../src/hbone/index.js';
import { socks5Connect } from '../../src/demo/socks5-client.js';

import { docs, namespace } from '../helpers/manifests.js';
import { TestMesh, appPod, node } from '../helpers/mesh.js';
import { requireOrSkip } from '../helpers/netns.js';
import { PEERS_DIR, PeerProcess, issuePemFiles, nghttpUnavailable, pythonH2, runCommand, type PemFiles } from '../helpers/peers.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';


const ID = (ns: string, sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;
const CLIENT = '127.0.114.1'; // node-a
const SERVER = '127.0.114.2'; // node-b
const GHOST = '127.0.114.9'; // node-x: its ztunnel is stopped and python-h2 takes its HBONE address
const GHOST_REFUSING = '127.0.114.10'; // node-x too
/** Targets the test runs at the server pod's address: one answers only after EOF, one echoes as it reads. */
const AFTER_EOF_PORT = 9001;
const ECHO_PORT = 9002;
/** The identity the independent clients present (a mesh certificate, no pod). */
const INTEROP_ID = ID('apps', 'interop');

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function pythonReason(): string | undefined {
  const p = pythonH2();
  return typeof p === 'string' ? p : undefined;
}

function requirePython(t: TestContext): string | undefined {
  if (!requireOrSkip(t, pythonReason())) return undefined;
  return (pythonH2() as { path: string }).path;
}

async function pythonClient(py: string, pem: PemFiles, connect: string, authority: string, sendBytes: number, seed = 1): Promise<Record<string, any>> {
  const r = await runCommand(py, [join(PEERS_DIR, 'h2_client.py'), '--connect', connect, '--authority', authority,
    '--cert', pem.cert, '--key', pem.key, '--ca', pem.ca, '--send-bytes', String(sendBytes), '--seed', String(seed), '--timeout', '60'], 90_000);
  assert.ok(r.stdout.trim() !== '', `the python-h2 client printed nothing (exit ${r.code}): ${r.stderr}`);
  const out = JSON.parse(r.stdout) as Record<string, any>;
  assert.equal(r.code, 0, `python-h2 client failed: ${out.error ?? r.stderr}`);
  return out;
}

/** The bytes h2_client.py sends for a seed: Python's random.Random(seed).randbytes(n). */
async function pythonPayloadSha(py: string, n: number, seed: number): Promise<string> {
  const r = await runCommand(py, ['-c', `import random,hashlib,sys; print(hashlib.sha256(random.Random(${seed}).randbytes(${n})).hexdigest())`]);
  return r.stdout.trim();
}

function listenTcp(host: string, port: number, onSocket: (s: net.Socket) => void): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    onSocket(s);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

/** Answers with everything it read, but only once the client's side ended. */
const replyAfterEof = (s: net.Socket): void => {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  s.on('end', () => s.end(Buffer.concat(chunks)));
};
const echoAsRead = (s: net.Socket): void => {
  s.pipe(s);
};

async function readAll(s: Duplex): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('independent HTTP/2 peers through a real mesh', () => {
  const dir = tempDir('interop-manifests');
  const certs = tempDir('interop-certs');
  let mesh: TestMesh;
  let pem: PemFiles;
  const targets: net.Server[] = [];

  before(async () => {
    writeFileSync(join(dir.path, 'mesh.yaml'), docs(
      namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
      node('node-a', '127.0.104.1'), node('node-b', '127.0.104.2'), node('node-x', '127.0.104.3'),
      appPod('apps', 'client', 'node-a', CLIENT, 'client'),
      appPod('apps', 'server', 'node-b', SERVER, 'server'),
      appPod('apps', 'ghost', 'node-x', GHOST, 'ghost'),
      appPod('apps', 'ghost-refusing', 'node-x', GHOST_REFUSING, 'ghost-refusing'),
    ));
    mesh = await new TestMesh(dir.path, ['--controller-address', '127.0.104.254']).start();
    pem = await issuePemFiles(mesh.dataDir.path, INTEROP_ID, certs.path, 'interop');
    targets.push(await listenTcp(SERVER, AFTER_EOF_PORT, replyAfterEof), await listenTcp(SERVER, ECHO_PORT, echoAsRead));
  });
  after(async () => {
    for (const t of targets) t.close();
    await mesh?.stop();
    mesh?.cleanup();
    dir.remove();
    certs.remove();
  });

  it('python-h2 as a client (push enabled, default windows) tunnels through the ztunnel: data both ways, the reply after its END_STREAM', async (t) => {
    const py = requirePython(t);
    if (py === undefined) return;
    const size = 256 * 1024;
    const out = await pythonClient(py, pem, `${SERVER}:15008`, `${SERVER}:${AFTER_EOF_PORT}`, size);
    assert.equal(out.tls_version, 'TLSv1.3');
    assert.equal(out.alpn, 'h2');
    assert.deepEqual(out.peer_sans, [ID('apps', 'server')], 'the pod address presents the pod\'s own certificate');
    assert.equal(out.local_settings.ENABLE_PUSH, 1, 'python-h2 kept its default: push enabled');
    assert.equal(out.local_settings.INITIAL_WINDOW_SIZE, 65_535);
    assert.equal(out.status, 200);
    assert.equal(out.goaway, null, `no GOAWAY: ${JSON.stringify(out.goaway)}`);
    assert.equal(out.reset, null);
    assert.equal(out.sent_sha256, await pythonPayloadSha(py, size, 1));
    assert.equal(out.received_bytes, size);
    assert.equal(out.received_sha256, out.sent_sha256, 'every byte came back unchanged');
    assert.equal(out.received_after_end_stream, size, 'the whole reply arrived after the client ended its side (half-close)');
    assert.ok(out.ended_remote, 'the ztunnel ended its side once the target did');
    const line = await eventually(() => mesh.logs('ztunnel/node-b').find((l) => l.msg === 'connection complete' && l.direction === 'inbound' && l['src.identity'] === INTEROP_ID), 5000, 'inbound access log line');
    assert.equal(line['dst.workload'], 'server');
    assert.equal(line.bytes_sent, size);
    assert.equal(line.bytes_recv, size);
  });

  it('python-h2 moves 8 MiB each way through one CONNECT stream with its 64 KiB windows (flow control both ways)', async (t) => {
    const py = requirePython(t);
    if (py === undefined) return;
    const size = 8 * 1024 * 1024;
    const out = await pythonClient(py, pem, `${SERVER}:15008`, `${SERVER}:${ECHO_PORT}`, size, 7);
    assert.equal(out.status, 200);
    assert.equal(out.goaway, null, `no GOAWAY: ${JSON.stringify(out.goaway)}`);
    assert.equal(out.reset, null);
    assert.equal(out.received_bytes, size);
    assert.equal(out.received_sha256, out.sent_sha256);
    assert.equal(out.sent_sha256, await pythonPayloadSha(py, size, 7));
    assert.ok(out.max_data_frame <= 16_384, `DATA frames fit python-h2's default SETTINGS_MAX_FRAME_SIZE (largest ${out.max_data_frame})`);
    assert.equal(out.remote_settings.INITIAL_WINDOW_SIZE, 4 * 1024 * 1024, 'the ztunnel announced its 4 MiB stream window');
  });

  it('python-h2 gets 400 with a reason, not a protocol error, for a target that is not on that node', async (t) => {
    const py = requirePython(t);
    if (py === undefined) return;
    const out = await pythonClient(py, pem, `${SERVER}:15008`, `${CLIENT}:8080`, 0);
    assert.equal(out.status, 400);
    assert.match(out.response_headers['x-strait-reason'], /is not an enrolled workload on node node-b/);
    assert.equal(out.goaway, null);
    assert.ok(out.ended_remote, 'the refusal ends the stream');
  });

  it('nghttp with a client certificate: preface, settings, GETs and a POST with a body get well-formed answers, never a protocol error', async (t) => {
    if (!requireOrSkip(t, nghttpUnavailable())) return;
    const body = join(certs.path, 'body.bin');
    writeFileSync(body, randomBytes(100_000));
    const url = (p: string) => `https://${SERVER}:15008${p}`;
    const runs = [
      ['-v', '-n', url('/'), url('/second')], // two streams, nghttp's PRIORITY tree on idle streams first
      ['-v', '-n', '-m', '20', url('/many')], // twenty streams on one connection
      ['-v', '-n', '-d', body, url('/upload')], // a request body: DATA after our END_STREAM answer
      ['-v', '-n', '-w', '20', '-W', '24', url('/windows')], // other window sizes
    ];
    for (const args of runs) {
      const r = await runCommand('nghttp', [...args, '--cert', pem.cert, '--key', pem.key], 30_000);
      const text = r.stdout + r.stderr;
      assert.equal(r.code, 0, text);
      assert.match(text, /The negotiated protocol: h2/);
      const statuses = [...text.matchAll(/recv \(stream_id=\d+\) :status: (\d+)/g)].map((m) => m[1]);
      const expected = args.includes('-m') ? 20 : args.filter((a) => a.startsWith('https://')).length;
      assert.deepEqual(statuses, Array(expected).fill('405'), `every request answered 405 (HBONE is CONNECT only): ${text.slice(-2000)}`);
      assert.match(text, /x-strait-reason: HBONE accepts only CONNECT/);
      const goaways = [...text.matchAll(/recv GOAWAY frame[^\n]*\n\s*\(last_stream_id=\d+, error_code=([A-Z_]+)/g)].map((m) => m[1]);
      assert.deepEqual(goaways.filter((c) => c !== 'NO_ERROR'), [], `no GOAWAY with an error: ${text.slice(-2000)}`);
      assert.doesNotMatch(text, /recv RST_STREAM[^\n]*\n\s*\(error_code=(?!NO_ERROR|CANCEL)/, 'no stream error');
      assert.doesNotMatch(text, /PROTOCOL_ERROR|FRAME_SIZE_ERROR|COMPRESSION_ERROR|FLOW_CONTROL_ERROR/);
    }
    // and without a client certificate nothing reaches HTTP/2
    const anon = await runCommand('nghttp', ['-v', '-n', url('/')], 30_000);
    assert.doesNotMatch(anon.stdout, /:status:/);
  });

  describe('python-h2 as the server behind a pod address', () => {
    let echo: PeerProcess | undefined;
    let refusing: PeerProcess | undefined;

    before(async () => {
      if (pythonReason() !== undefined) return;
      const py = (pythonH2() as { path: string }).path;
      // node-x's ztunnel goes away; python-h2 takes its two pods' HBONE addresses with their own certificates.
      process.kill(mesh.state.nodes['node-x'].pid, 'SIGTERM');
      await eventually(async () => {
        try { await fetch(`http://${mesh.state.nodes['node-x'].ready}/healthz/ready`); return false; } catch { return true; }
      }, 10_000, 'node-x ztunnel stopped');
      const ghost = await issuePemFiles(mesh.dataDir.path, ID('apps', 'ghost'), certs.path, 'ghost');
      const ghostRefusing = await issuePemFiles(mesh.dataDir.path, ID('apps', 'ghost-refusing'), certs.path, 'ghost-refusing');
      const start = (addr: string, files: PemFiles, extra: string[]) => PeerProcess.start(py, [join(PEERS_DIR, 'h2_server.py'),
        '--listen', `${addr}:15008`, '--cert', files.cert, '--key', files.key, '--ca', files.ca, ...extra]);
      echo = start(GHOST, ghost, ['--mode', 'echo']);
      refusing = start(GHOST_REFUSING, ghostRefusing, ['--mode', 'refuse', '--status', '403', '--reason', 'python-h2 says no']);
      await echo.waitFor((l) => l.event === 'listening', 10_000, 'python-h2 echo server listening');
      await refusing.waitFor((l) => l.event === 'listening', 10_000, 'python-h2 refusing server listening');
    });
    after(async () => {
      await echo?.stop();
      await refusing?.stop();
    });

    const viaSocks = (target: string, port: number) => socks5Connect({ proxy: { host: '127.0.104.1', port: 15080 }, localAddress: CLIENT, target: { host: target, port }, timeoutMs: 10_000 });

    it('carries a SOCKS5 client\'s bytes over HBONE to a python-h2 server and back, both identities verified', async (t) => {
      if (requirePython(t) === undefined) return;
      assert.equal(mesh.state.nodes['node-a'].socks5, '127.0.104.1:15080');
      const r = await viaSocks(GHOST, 7000);
      assert.ok(r.ok, `SOCKS5 refused: ${r.ok ? '' : r.message}`);
      const data = randomBytes(4 * 1024 * 1024);
      r.socket.resume();
      const back = readAll(r.socket);
      r.socket.end(data);
      const got = await back;
      assert.equal(got.length, data.length);
      assert.equal(sha(got), sha(data), 'the python-h2 server echoed every byte');

      const conn = await echo!.waitFor((l) => l.event === 'connection', 5000, 'TLS connection at python-h2');
      assert.equal(conn.tls_version, 'TLSv1.3');
      assert.equal(conn.alpn, 'h2');
      assert.deepEqual(conn.peer_sans, [ID('apps', 'client')], 'the ztunnel presented the source pod\'s certificate');
      const settings = await echo!.waitFor((l) => l.event === 'settings', 5000, 'ztunnel SETTINGS');
      assert.equal(settings.settings.ENABLE_PUSH, 0);
      assert.equal(settings.settings.INITIAL_WINDOW_SIZE, 4 * 1024 * 1024);
      const req = await echo!.waitFor((l) => l.event === 'request', 5000, 'CONNECT at python-h2');
      const headers = req.headers as Array<[string, string]>;
      assert.deepEqual(headers.slice(0, 2), [[':method', 'CONNECT'], [':authority', `${GHOST}:7000`]]);
      assert.deepEqual(headers.filter(([n]) => n.startsWith(':')).map(([n]) => n), [':method', ':authority'], 'no :scheme or :path on CONNECT (RFC 9113 §8.5)');
      assert.equal(Object.fromEntries(headers).forwarded, `for="${CLIENT}"`);
      const closed = await echo!.waitFor((l) => l.event === 'stream_closed', 5000, 'stream closed at python-h2');
      assert.equal(closed.echoed, data.length);
      assert.deepEqual(echo!.lines.filter((l) => l.event === 'error'), []);
      const line = await eventually(() => mesh.logs('ztunnel/node-a').find((l) => l.msg === 'connection complete' && l['dst.addr'] === `${GHOST}:7000`), 5000, 'outbound access log line');
      assert.equal(line['dst.identity'], ID('apps', 'ghost'));
      assert.equal(line.bytes_sent, data.length);
      assert.equal(line.bytes_recv, data.length);
    });

    it('passes a python-h2 server\'s 403 and its reason to the SOCKS5 client as a refusal', async (t) => {
      if (requirePython(t) === undefined) return;
      const r = await viaSocks(GHOST_REFUSING, 7000);
      assert.equal(r.ok, false, 'the SOCKS5 client is refused');
      if (r.ok) return;
      assert.equal(r.reply, 0x02, 'a 403 is "connection not allowed by ruleset"');
      await refusing!.waitFor((l) => l.event === 'request', 5000, 'CONNECT at the refusing python-h2');
      const line = await eventually(() => mesh.logs('ztunnel/node-a').find((l) => l.msg === 'connection refused' && /python-h2 says no/.test(String(l.error))), 5000, 'refusal in the source access log');
      assert.match(line.error, /status 403/);
    });
  });
});

// ---- node:http2 in both roles, through HBONE's TLS ----------------------------------------------------------

describe('node:http2 in both roles around HboneServer and HbonePool', () => {
  const WEB = ID('shop', 'web');
  const FRONTEND = ID('shop', 'frontend');
  const dataDir = tempDir('interop-node');
  let ca: CertificateAuthority;
  let web: WorkloadCert;
  let frontend: WorkloadCert;
  const cleanups: Array<() => unknown> = [];

  const issue = async (id: string): Promise<WorkloadCert> => {
    const { keyPem, csrPem } = await createKeyAndCsr();
    return { keyPem, certChainPem: ca.signWorkload(csrPem, SpiffeId.parse(id)).certChainPem };
  };

  before(async () => {
    ca = await CertificateAuthority.loadOrCreate({ dataDir: dataDir.path });
    web = await issue(WEB);
    frontend = await issue(FRONTEND);
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
    dataDir.remove();
  });

  it('node:http2 as a client (its defaults) through HboneServer\'s mTLS: CONNECT, 4 MiB, half-close, identities both ways', async () => {
    const target = await listenTcp('127.0.0.1', 0, replyAfterEof);
    cleanups.push(() => target.close());
    const targetPort = (target.address() as net.AddressInfo).port;
    const seen: string[] = [];
    const server = new HboneServer({
      rootPem: ca.rootCertPem,
      certFor: () => web,
      onConnect: (req) => {
        seen.push(req.peerIdentity);
        const up = net.connect(req.targetPort, req.targetHost, () => void relay(req.accept(), up));
        up.once('error', (err) => req.reject(503, err.message));
      },
    });
    cleanups.push(() => server.close());
    const { port } = await server.listen('127.0.0.1', 0);

    const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.rootCertPem, key: frontend.keyPem, cert: frontend.certChainPem.join('\n'), ALPNProtocols: ['h2'], minVersion: 'TLSv1.3', checkServerIdentity: () => undefined });
    await once(socket, 'secureConnect');
    assert.match(socket.getPeerCertificate().subjectaltname ?? '', new RegExp(`URI:${WEB}`));
    const session = http2.connect(`https://127.0.0.1:${port}`, { createConnection: () => socket });
    cleanups.push(() => session.destroy());
    session.on('error', () => undefined);
    const req = session.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${targetPort}` });
    const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
    assert.equal(headers[':status'], 200);
    const data = randomBytes(4 * 1024 * 1024);
    let endedAt = 0;
    let firstByteAt = 0;
    req.once('data', () => { firstByteAt = Date.now(); });
    const back = readAll(req);
    req.end(data, () => { endedAt = Date.now(); });
    const got = await back;
    assert.equal(sha(got), sha(data));
    assert.ok(endedAt > 0 && firstByteAt >= endedAt, 'the reply came after the client ended its side (half-close)');
    assert.deepEqual(seen, [FRONTEND], 'the server saw the client\'s verified SPIFFE id');
  });

  it('HbonePool against node:http2\'s mTLS server: CONNECT answered 200, 4 MiB echoed, the server saw our identity and headers', async () => {
    const streams: Array<{ headers: http2.IncomingHttpHeaders; peer: string }> = [];
    const server = http2.createSecureServer({
      key: web.keyPem, cert: web.certChainPem.join('\n'), ca: ca.rootCertPem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3',
    });
    server.on('stream', (stream, headers) => {
      const peer = (stream.session?.socket as tls.TLSSocket).getPeerCertificate().subjectaltname ?? '';
      streams.push({ headers, peer });
      stream.on('error', () => undefined);
      stream.respond({ ':status': 200 });
      stream.pipe(stream);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => server.close());
    const port = (server.address() as net.AddressInfo).port;
    const pool = new HbonePool({ rootPem: ca.rootCertPem });
    cleanups.push(() => pool.close());
    const { stream, peerIdentity } = await pool.connect({
      key: 'node-http2', address: { host: '127.0.0.1', port }, cert: frontend, expectedPeerSans: [WEB],
      authority: '10.0.0.5:8080', headers: { forwarded: 'for="10.0.0.9"' },
    });
    assert.equal(peerIdentity, WEB);
    const data = randomBytes(4 * 1024 * 1024);
    const back = readAll(stream);
    stream.end(data);
    assert.equal(sha(await back), sha(data));
    assert.equal(streams.length, 1);
    const h = streams[0]!.headers;
    assert.equal(h[':method'], 'CONNECT');
    assert.equal(h[':authority'], '10.0.0.5:8080');
    assert.equal(h.forwarded, 'for="10.0.0.9"');
    assert.equal(h[':path'], undefined);
    assert.equal(h[':scheme'], undefined);
    assert.match(streams[0]!.peer, new RegExp(`URI:${FRONTEND}`));
  });

  it('HbonePool gets node:http2\'s refusal (403 with a reason) as an HboneRefusedError', async () => {
    const server = http2.createSecureServer({ key: web.keyPem, cert: web.certChainPem.join('\n'), ca: ca.rootCertPem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' });
    server.on('stream', (stream) => {
      stream.on('error', () => undefined);
      stream.respond({ ':status': 403, 'x-strait-reason': 'node:http2 says no' }, { endStream: true });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => server.close());
    const port = (server.address() as net.AddressInfo).port;
    const pool = new HbonePool({ rootPem: ca.rootCertPem });
    cleanups.push(() => pool.close());
    await assert.rejects(
      pool.connect({ key: 'node-http2-403', address: { host: '127.0.0.1', port }, cert: frontend, expectedPeerSans: [WEB], authority: '10.0.0.5:8080' }),
      (err: unknown) => {
        assert.ok(err instanceof HboneRefusedError, String(err));
        assert.equal(err.status, 403);
        assert.equal(err.reason, 'node:http2 says no');
        return true;
      },
    );
  });
});
