/**
 * The ztunnel through the real local mesh (`strait up`): real processes, real curl and openssl, real TLS.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { writeFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

import { docs, namespace, service } from '../helpers/manifests.js';
import { TestMesh, appPod, node, policy } from '../helpers/mesh.js';
import { run } from '../helpers/procs.js';
import { socks5Connect } from '../../src/demo/socks5-client.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';

const CLIENT = '127.0.111.1';
const SERVER = '127.0.111.2';
const OUTSIDER = '127.0.111.3';
const ID = (ns: string, sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;

const manifests = docs(
  namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
  namespace('other', { 'istio.io/dataplane-mode': 'ambient' }),
  node('node-a', '127.0.101.1'),
  node('node-b', '127.0.101.2'),
  appPod('apps', 'client', 'node-a', CLIENT, 'client'),
  appPod('apps', 'server', 'node-b', SERVER, 'server'),
  appPod('other', 'outsider', 'node-a', OUTSIDER, 'outsider'),
  service('apps', 'server', { ip: '127.0.121.1', selector: { app: 'server' }, ports: [{ port: 80, targetPort: 'http', name: 'http' }] }),
);

describe('ztunnel in the local mesh', () => {
  const dir = tempDir('zt-manifests');
  const policyFile = join(dir.path, 'policy.yaml');
  let mesh: TestMesh;
  const setPolicy = async (...p: unknown[]) => {
    writeFileSync(policyFile, docs(...p));
  };
  const clearPolicy = async (key: string) => {
    try { unlinkSync(policyFile); } catch { /* none */ }
    await mesh.policyOnNode('node-b', key, false);
  };

  before(async () => {
    writeFileSync(join(dir.path, 'mesh.yaml'), manifests);
    mesh = await new TestMesh(dir.path, ['--controller-address', '127.0.101.254']).start();
  });
  after(async () => {
    await mesh?.stop();
    mesh?.cleanup();
    dir.remove();
  });

  it('carries curl through SOCKS5 to a service on another node over mTLS, with the client identity on both sides', async () => {
    const r = await mesh.curl(CLIENT, 'node-a', 'http://server.apps/hello');
    assert.equal(r.code, 0, r.stderr);
    const body = JSON.parse(r.stdout);
    assert.equal(body.pod, 'server');
    assert.equal(body.path, '/hello');
    assert.equal(body.caller.identity, ID('apps', 'client'), 'the server saw the client identity the mesh verified');
    const access = (n: string, dir: string) => mesh.logs(`ztunnel/${n}`).find((l) => l.msg === 'connection complete' && l.direction === dir && l['src.identity'] === ID('apps', 'client'));
    const out = await eventually(() => access('node-a', 'outbound'), 5000, 'source access log');
    const inn = await eventually(() => access('node-b', 'inbound'), 5000, 'destination access log');
    assert.equal(out['dst.identity'], ID('apps', 'server'));
    assert.equal(out['dst.service'], 'server.apps.svc.cluster.local');
    assert.equal(inn['dst.workload'], 'server');
    assert.ok(inn.bytes_recv > 0 && inn.bytes_sent > 0, 'bytes counted both ways');
    const metrics = await mesh.metrics('node-b');
    const line = metrics.split('\n').find((l) => l.startsWith('istio_tcp_connections_opened_total{') && l.includes('reporter="destination"') && l.includes(`source_principal="${ID('apps', 'client')}"`));
    assert.ok(line, 'destination counted the connection');
    assert.match(line, /connection_security_policy="mutual_tls"/);
    assert.match(line, /destination_workload="server"/);
  });

  it('refuses openssl s_client without a client certificate, and with one from another CA', async () => {
    const noCert = await run('openssl', ['s_client', '-connect', `${SERVER}:15008`, '-tls1_3', '-alpn', 'h2', '-ign_eof'], 'GET / HTTP/1.1\r\n\r\n');
    assert.notEqual(noCert.code, 0);
    assert.match(noCert.stdout + noCert.stderr, /certificate required/);
    const tmp = tempDir('foreign-ca');
    try {
      const key = join(tmp.path, 'k.pem');
      const crt = join(tmp.path, 'c.pem');
      const gen = await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', crt, '-days', '1', '-subj', '/CN=foreign', '-addext', 'subjectAltName=URI:spiffe://cluster.local/ns/apps/sa/client']);
      assert.equal(gen.code, 0, gen.stderr);
      const foreign = await run('openssl', ['s_client', '-connect', `${SERVER}:15008`, '-tls1_3', '-alpn', 'h2', '-cert', crt, '-key', key, '-ign_eof'], 'GET / HTTP/1.1\r\n\r\n');
      assert.notEqual(foreign.code, 0, 'a certificate from another CA must not get through');
      // The server drops it: a TLS alert, an EOF or a reset (errno 104), depending on timing; never HTTP/2.
      assert.match(foreign.stdout + foreign.stderr, /alert|unexpected eof|errno=104/i);
      // The ztunnel says why: the client chain does not lead to the mesh root.
      const failures = () => mesh.logs('ztunnel/node-b').filter((l) => l.msg === 'HBONE TLS handshake failed').map((l) => String(l.err));
      await eventually(() => failures().some((e) => /peer did not return a certificate/.test(e)), 5000, 'no-certificate refusal logged');
      await eventually(() => failures().some((e) => /client certificate rejected: (SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER)/.test(e)), 5000, 'foreign-CA refusal logged with its reason');
      // ... and from where: openssl connected from the loopback, never "undefined:undefined"
      const remotes = mesh.logs('ztunnel/node-b').filter((l) => l.msg === 'HBONE TLS handshake failed').map((l) => String(l.remote));
      assert.ok(remotes.length >= 2 && remotes.every((r) => /^127\.\d+\.\d+\.\d+:\d+$/.test(r)), `remote addresses logged: ${remotes.join(', ')}`);
    } finally {
      tmp.remove();
    }
  });

  it('enforces ALLOW by namespace, DENY by principal, ports and ipBlocks', async () => {
    const ok = async (ip: string, n: string) => (await mesh.curl(ip, n, 'http://server.apps/')).code === 0;
    // ALLOW only namespace apps: the outsider (namespace other) is refused, the client allowed.
    await setPolicy(policy('apps', 'only-apps', { selector: { matchLabels: { app: 'server' } }, action: 'ALLOW', rules: [{ from: [{ source: { namespaces: ['apps'] } }] }] }));
    await mesh.policyOnNode('node-b', 'authz/apps/only-apps');
    assert.equal(await ok(CLIENT, 'node-a'), true);
    const refused = await mesh.curl(OUTSIDER, 'node-a', 'http://server.apps/');
    assert.equal(refused.code, 97, 'curl reports the SOCKS5 refusal');
    assert.match(refused.stderr, /SOCKS5/);
    const denyLog = await eventually(() => mesh.logs('ztunnel/node-b').find((l) => l.msg === 'connection refused' && l['src.identity'] === ID('other', 'outsider')), 5000, 'refusal in the destination log');
    assert.match(denyLog.error, /denied: no ALLOW policy matched \(apps\/only-apps\)/);

    // DENY by principal
    await setPolicy(policy('apps', 'deny-client', { action: 'DENY', rules: [{ from: [{ source: { principals: ['cluster.local/ns/apps/sa/client'] } }] }] }));
    await mesh.policyOnNode('node-b', 'authz/apps/deny-client');
    await mesh.policyOnNode('node-b', 'authz/apps/only-apps', false);
    assert.equal(await ok(CLIENT, 'node-a'), false);
    assert.equal(await ok(OUTSIDER, 'node-a'), true);

    // ports: destination port is the pod's (8080)
    await setPolicy(policy('apps', 'ports', { action: 'ALLOW', rules: [{ to: [{ operation: { ports: ['9999'] } }] }] }));
    await mesh.policyOnNode('node-b', 'authz/apps/ports');
    assert.equal(await ok(CLIENT, 'node-a'), false);
    await setPolicy(policy('apps', 'ports', { action: 'ALLOW', rules: [{ to: [{ operation: { ports: ['8080'] } }] }] }));
    await eventually(async () => ok(CLIENT, 'node-a'), 5000, 'port 8080 allowed');

    // ipBlocks: the source pod address as the destination ztunnel saw it
    await setPolicy(policy('apps', 'no-outsider-ip', { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: [`${OUTSIDER}/32`] } }] }] }));
    await mesh.policyOnNode('node-b', 'authz/apps/no-outsider-ip');
    assert.equal(await ok(OUTSIDER, 'node-a'), false);
    assert.equal(await ok(CLIENT, 'node-a'), true);
    await clearPolicy('authz/apps/no-outsider-ip');
  });

  it('closes a live connection that a policy edit now denies, and says why in the access log', async () => {
    const res = await socks5Connect({ proxy: parseHp(mesh.state.nodes['node-a'].socks5), localAddress: CLIENT, target: { host: 'server.apps', port: 80 }, timeoutMs: 5000 });
    assert.ok(res.ok, 'SOCKS5 connect succeeded');
    const sock = res.socket;
    try {
      const first = await httpOnSocket(sock, 'GET /one HTTP/1.1\r\nHost: server\r\n\r\n');
      assert.match(first, /^HTTP\/1\.1 200/);
      const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
      await setPolicy(policy('apps', 'deny-client-now', { action: 'DENY', rules: [{ from: [{ source: { principals: ['cluster.local/ns/apps/sa/client'] } }] }] }));
      await Promise.race([closed, new Promise((_, rej) => setTimeout(() => rej(new Error('connection not closed within 5 s of the policy change')), 5000))]);
      const line = await eventually(() => mesh.logs('ztunnel/node-b').find((l) => l.msg === 'connection complete' && typeof l.error === 'string' && l.error.startsWith('closed by policy change')), 5000, 'access log of the closed connection');
      assert.match(line.error, /denied by DENY policy apps\/deny-client-now/);
      assert.equal(line['src.identity'], ID('apps', 'client'));
    } finally {
      sock.destroy();
      await clearPolicy('authz/apps/deny-client-now');
    }
  });

  it('pools: 50 sequential connections to one destination need at most one new TLS connection', async () => {
    const handshakes = async () => Number(/^strait_ztunnel_hbone_handshakes (\d+)/m.exec(await mesh.metrics('node-a'))?.[1]);
    assert.equal((await mesh.curl(CLIENT, 'node-a', 'http://server.apps/')).code, 0);
    const before = await handshakes();
    for (let i = 0; i < 50; i++) {
      const r = await mesh.curl(CLIENT, 'node-a', 'http://server.apps/');
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal(await handshakes(), before, '50 connections reused the pooled TLS connection');
  });

  it('admin: config_dump shows certificates but never keys, /logging changes the level, /quitquitquit drains', async () => {
    const admin = mesh.state.nodes['node-a'].admin;
    const dumpText = await (await fetch(`http://${admin}/config_dump`)).text();
    assert.doesNotMatch(dumpText, /PRIVATE KEY/);
    const dump = JSON.parse(dumpText);
    const cert = dump.certificates.find((c: { identity: string }) => c.identity === ID('apps', 'client'));
    assert.ok(cert && Date.parse(cert.notAfter) > Date.now(), 'client certificate with its expiry');
    assert.equal((await fetch(`http://${admin}/logging?level=debug`, { method: 'POST' })).status, 200);
    assert.deepEqual(await (await fetch(`http://${admin}/logging`)).json(), { level: 'debug' });
    assert.equal((await fetch(`http://${admin}/logging?level=loud`, { method: 'POST' })).status, 400);

    // A connection open before the drain keeps working; new ones are refused; the process exits after the drain.
    const res = await socks5Connect({ proxy: parseHp(mesh.state.nodes['node-a'].socks5), localAddress: CLIENT, target: { host: 'server.apps', port: 80 }, timeoutMs: 5000 });
    assert.ok(res.ok);
    const sock = res.socket;
    try {
      assert.match(await httpOnSocket(sock, 'GET /before HTTP/1.1\r\nHost: s\r\n\r\n'), /^HTTP\/1\.1 200/);
      const quit = await fetch(`http://${admin}/quitquitquit`, { method: 'POST' });
      assert.equal(quit.status, 200);
      await eventually(async () => (await mesh.curl(CLIENT, 'node-a', 'http://server.apps/')).code !== 0, 3000, 'new connections refused while draining');
      assert.match(await httpOnSocket(sock, 'GET /during HTTP/1.1\r\nHost: s\r\n\r\n'), /^HTTP\/1\.1 200/, 'the open connection still works during the drain');
      const pid = mesh.state.nodes['node-a'].pid;
      await eventually(() => { try { process.kill(pid, 0); return false; } catch { return true; } }, 15_000, 'ztunnel exited after the drain');
    } finally {
      sock.destroy();
    }
  });
});

function parseHp(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
}

function httpOnSocket(sock: net.Socket, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      const end = buf.indexOf('\r\n\r\n');
      const len = /content-length: (\d+)/i.exec(buf);
      if (end >= 0 && len && buf.length >= end + 4 + Number(len[1])) {
        sock.off('data', onData);
        resolve(buf);
      }
    };
    sock.on('data', onData);
    sock.once('error', reject);
    sock.resume();
    sock.write(request);
  });
}
