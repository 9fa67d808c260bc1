/**
 * What happens when things go wrong: an impostor at a pod's address, the controller going away and coming back.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HboneServer } from '../../src/hbone/index.js';
import { CertificateAuthority, SpiffeId, createKeyAndCsr } from '../../src/identity/index.js';

import { docs, namespace, service } from '../helpers/manifests.js';
import { TestMesh, appPod, node, policy } from '../helpers/mesh.js';
import { StraitProcess } from '../helpers/procs.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';

const ID = (ns: string, sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;

describe('an impostor at a pod address', () => {
  const dir = tempDir('imp-manifests');
  let mesh: TestMesh;
  let impostor: HboneServer | undefined;
  before(async () => {
    writeFileSync(join(dir.path, 'mesh.yaml'), docs(
      namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
      node('node-a', '127.0.102.1'), node('node-x', '127.0.102.3'),
      appPod('apps', 'client', 'node-a', '127.0.112.1', 'client'),
      appPod('apps', 'ghost', 'node-x', '127.0.112.9', 'ghost'),
    ));
    mesh = await new TestMesh(dir.path, ['--controller-address', '127.0.102.254']).start();
  });
  after(async () => {
    await impostor?.close();
    await mesh?.stop();
    mesh?.cleanup();
    dir.remove();
  });

  it('is refused by the client ztunnel: the certificate chains to the mesh root but names another identity', async () => {
    // The real ghost pod answers first...
    const before = await mesh.curl('127.0.112.1', 'node-a', 'http://127.0.112.9:8080/');
    assert.equal(before.code, 0, before.stderr);
    assert.equal(JSON.parse(before.stdout).caller.identity, ID('apps', 'client'));
    // ...then node-x's ztunnel goes away and an impostor takes the pod's HBONE address with a mesh-signed
    // certificate for another service account.
    process.kill(mesh.state.nodes['node-x'].pid, 'SIGTERM');
    await eventually(async () => {
      try { await fetch(`http://${mesh.state.nodes['node-x'].ready}/healthz/ready`); return false; } catch { return true; }
    }, 10_000, 'node-x ztunnel stopped');
    const ca = await CertificateAuthority.loadOrCreate({ dataDir: mesh.dataDir.path });
    const { keyPem, csrPem } = await createKeyAndCsr();
    const { certChainPem } = ca.signWorkload(csrPem, SpiffeId.parse(ID('apps', 'evil')));
    let reached = 0;
    impostor = new HboneServer({ rootPem: ca.rootCertPem, certFor: () => ({ keyPem, certChainPem }), onConnect: (req) => { reached++; req.reject(503, 'impostor'); } });
    await impostor.listen('127.0.112.9', 15008);

    const r = await mesh.curl('127.0.112.1', 'node-a', 'http://127.0.112.9:8080/');
    assert.equal(r.code, 97, 'curl is refused at the SOCKS5 step');
    assert.equal(reached, 0, 'no request reached the impostor');
    const line = await eventually(() => mesh.logs('ztunnel/node-a').find((l) => l.msg === 'connection refused' && /presented/.test(l.error ?? '')), 5000, 'refusal in the source access log');
    assert.match(line.error, /presented spiffe:\/\/cluster\.local\/ns\/apps\/sa\/evil but spiffe:\/\/cluster\.local\/ns\/apps\/sa\/ghost was expected/);
  });
});

describe('controller away and back', () => {
  const dir = tempDir('res-manifests');
  let mesh: TestMesh;
  let controller: StraitProcess | undefined;
  before(async () => {
    writeFileSync(join(dir.path, 'mesh.yaml'), docs(
      namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
      node('node-a', '127.0.103.1'), node('node-b', '127.0.103.2'),
      appPod('apps', 'client', 'node-a', '127.0.113.1', 'client'),
      appPod('apps', 'server', 'node-b', '127.0.113.2', 'server'),
      service('apps', 'server', { ip: '127.0.123.1', selector: { app: 'server' }, ports: [{ port: 80, targetPort: 8080, name: 'http' }] }),
    ));
    mesh = await new TestMesh(dir.path, ['--controller-address', '127.0.103.254', '--cert-ttl', '20s']).start();
  });
  after(async () => {
    await controller?.stop();
    await mesh?.stop();
    mesh?.cleanup();
    dir.remove();
  });

  it('keeps traffic flowing without the controller, converges when it returns, and certificates still rotate', async () => {
    const curl = () => mesh.curl('127.0.113.1', 'node-a', 'http://server.apps/');
    assert.equal((await curl()).code, 0);
    process.kill(mesh.state.controller.pid, 'SIGTERM');
    await eventually(async () => {
      try { await fetch(`http://${mesh.state.controller.admin}/ready`); return false; } catch { return true; }
    }, 10_000, 'controller stopped');
    // Without the controller: the ztunnels serve with their last config and certificates.
    for (let i = 0; i < 5; i++) assert.equal((await curl()).code, 0, 'traffic flows while the controller is away');
    assert.equal((await fetch(`http://${mesh.state.nodes['node-a'].ready}/healthz/ready`)).status, 200, 'still ready');

    // A policy written while the controller is away takes effect once it returns.
    writeFileSync(join(dir.path, 'deny.yaml'), docs(policy('apps', 'deny-client', { action: 'DENY', rules: [{ from: [{ source: { principals: ['cluster.local/ns/apps/sa/client'] } }] }] })));
    controller = StraitProcess.start(['controller', '--config-dir', dir.path, '--data-dir', mesh.dataDir.path,
      '--xds-address', mesh.state.controller.xds, '--admin-address', mesh.state.controller.admin, '--cert-ttl', '20s']);
    await controller.waitFor((l) => l.msg === 'controller ready', 20_000, 'controller ready');
    await eventually(async () => ((await mesh.configDump('node-b')).policies as { key: string }[]).some((p) => p.key === 'authz/apps/deny-client'), 20_000, 'policy reached node-b after the restart');
    assert.notEqual((await curl()).code, 0, 'the new policy is enforced');

    // Certificates keep rotating against the returned controller (20 s lifetime: renewal at 10 s).
    const serial = async () => ((await mesh.configDump('node-a')).certificates as { identity: string; serial: string }[]).find((c) => c.identity === ID('apps', 'client'))?.serial;
    const first = await serial();
    assert.ok(first);
    await eventually(async () => (await serial()) !== first, 20_000, 'certificate rotated after the controller came back');
  });
});
