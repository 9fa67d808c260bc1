import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { statSync, writeFileSync, unlinkSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { XdsClient } from '../../src/common/xds/index.js';
import type { XdsUpdate } from '../../src/common/xds/types.js';
import { TYPE_AUTHORIZATION, TYPE_SERVICE, TYPE_WORKLOAD } from '../../src/common/xds/resources.js';
import { CaClient } from '../../src/identity/ca-client.js';
import { createKeyAndCsr } from '../../src/identity/index.js';
import { startController, type ControllerHandle } from '../helpers/controller.js';
import { docs, namespace, pod, service } from '../helpers/manifests.js';
import { run } from '../helpers/procs.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';

const mesh = docs(
  namespace('shop', { 'istio.io/dataplane-mode': 'ambient' }),
  pod('shop', 'web-1', { node: 'node-a', sa: 'web', ip: '10.0.0.1', labels: { app: 'web' } }),
  pod('shop', 'db-1', { node: 'node-b', sa: 'db', ip: '10.0.0.2', labels: { app: 'db' } }),
  service('shop', 'web', { ip: '10.96.0.1' }),
);
const policyYaml = (ns: string) => docs({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'allow-shop', namespace: 'shop' },
  spec: { action: 'ALLOW', rules: [{ from: [{ source: { namespaces: [ns] } }] }] } });

interface Recorder { client: XdsClient; updates: { type: string; u: XdsUpdate }[]; nacks: string[] }

function xdsClient(c: ControllerHandle, node: string, opts: { nackAuthz?: () => string | undefined; id?: string } = {}): Recorder {
  const updates: Recorder['updates'] = [];
  const nacks: string[] = [];
  const sub = (type: string) => ({
    typeUrl: type,
    apply: (u: XdsUpdate) => {
      const why = type === TYPE_AUTHORIZATION ? opts.nackAuthz?.() : undefined;
      if (why) throw new Error(why);
      updates.push({ type, u });
    },
  });
  const client = new XdsClient({
    address: c.xds, credentials: c.credentials(),
    metadata: () => ({ authorization: `Bearer ${c.token(`node-${node}.token`)}`, 'x-strait-node': node }),
    node: { id: opts.id ?? `ztunnel~${node}`, kind: 'ztunnel', nodeName: node },
    subscriptions: [sub(TYPE_WORKLOAD), sub(TYPE_SERVICE), sub(TYPE_AUTHORIZATION)],
  });
  client.on('nack', (_t, err) => nacks.push(err.message));
  client.start();
  return { client, updates, nacks };
}

describe('controller process', () => {
  const cfg = tempDir('ctl-cfg');
  const data = tempDir('ctl-data');
  let c: ControllerHandle;

  before(async () => {
    writeFileSync(join(cfg.path, 'mesh.yaml'), mesh);
    writeFileSync(join(cfg.path, 'policy.yaml'), policyYaml('shop'));
    c = await startController(cfg.path, data.path, ['--push-debounce', '50ms']);
  });
  after(async () => {
    await c?.stop();
    cfg.remove();
    data.remove();
  });

  it('persists a generated root with its key at mode 0600 and writes node tokens', () => {
    assert.equal(statSync(join(data.path, 'root-key.pem')).mode & 0o777, 0o600);
    assert.match(readFileSync(join(data.path, 'root-cert.pem'), 'utf8'), /BEGIN CERTIFICATE/);
    assert.equal(statSync(join(data.path, 'tokens', 'node-node-a.token')).mode & 0o777, 0o600);
  });

  it('sends the initial snapshot, then a file change as a delta within 1 s', async () => {
    const r = xdsClient(c, 'node-a');
    try {
      await eventually(() => r.client.held(TYPE_AUTHORIZATION).size === 1 && r.client.held(TYPE_WORKLOAD).size === 2, 5000, 'initial snapshot');
      assert.deepEqual([...r.client.held(TYPE_WORKLOAD).keys()].sort(), ['shop/db-1', 'shop/web-1']);
      assert.deepEqual([...r.client.held(TYPE_SERVICE).keys()], ['shop/web']);
      const before = r.updates.length;
      const t0 = Date.now();
      writeFileSync(join(cfg.path, 'policy.yaml'), policyYaml('front'));
      const upd = await eventually(() => r.updates.slice(before).find((x) => x.type === TYPE_AUTHORIZATION), 3000, 'policy delta');
      const elapsed = Date.now() - t0;
      assert.ok(elapsed < 1000, `change reached the proxy after ${elapsed} ms (goal < 1 s)`);
      assert.deepEqual(upd.u.added.map((a) => a.name), ['authz/shop/allow-shop']);
      assert.deepEqual(upd.u.removed, []);
      const body = upd.u.added[0].body as { rules: { from: { namespaces: string[] }[] }[] };
      assert.deepEqual(body.rules[0].from[0].namespaces, ['front']);
      // only the changed type was pushed
      assert.equal(r.updates.slice(before).filter((x) => x.type !== TYPE_AUTHORIZATION).length, 0);
    } finally {
      r.client.close();
    }
  });

  it('records a NACK and shows it in /debug/syncz', async () => {
    let reject = false;
    const r = xdsClient(c, 'node-b', { id: 'ztunnel~nacker', nackAuthz: () => (reject ? 'policy rules[0] uses an unknown field' : undefined) });
    try {
      await eventually(() => r.client.held(TYPE_AUTHORIZATION).size === 1, 5000, 'snapshot');
      reject = true;
      writeFileSync(join(cfg.path, 'policy.yaml'), policyYaml('nack-me'));
      await eventually(() => r.nacks.length > 0, 3000, 'client NACK');
      const sync = await eventually(async () => {
        const res = await c.get('/debug/syncz');
        const me = res.body.proxies.find((p: any) => p.proxy.id === 'ztunnel~nacker');
        return me?.types[TYPE_AUTHORIZATION]?.lastNack ? me : undefined;
      }, 3000, 'NACK in syncz');
      assert.equal(sync.types[TYPE_AUTHORIZATION].lastNack.message, 'policy rules[0] uses an unknown field');
      assert.equal(sync.proxy.nodeName, 'node-b');
      const metrics = (await c.get('/metrics')).text;
      assert.match(metrics, /pilot_total_xds_rejects\{type="Authorization"\} [1-9]/);
    } finally {
      r.client.close();
    }
  });

  it('after the controller restarts, a proxy that kept its config gets only the difference; the root is reused', async () => {
    const r = xdsClient(c, 'node-a', { id: 'ztunnel~reconnect' });
    try {
      await eventually(() => r.client.held(TYPE_AUTHORIZATION).size === 1 && r.client.held(TYPE_WORKLOAD).size === 2, 5000, 'snapshot');
      const root = c.rootPem;
      const mark = r.updates.length; // everything after this comes over the new stream
      assert.equal(await c.stop(), 0, 'controller exits cleanly on SIGTERM');
      // While the controller is away one pod is added; the policy stays as it was.
      writeFileSync(join(cfg.path, 'mesh.yaml'), mesh + '---\n' + docs(pod('shop', 'web-2', { node: 'node-a', sa: 'web', ip: '10.0.0.3', labels: { app: 'web' } })));
      assert.equal(r.client.held(TYPE_WORKLOAD).size, 2, 'the proxy keeps its config while the controller is away');
      c = await startController(cfg.path, data.path, ['--push-debounce', '50ms'], c.xds);
      assert.equal(c.rootPem, root, 'the persisted root is reused');
      await eventually(() => r.client.held(TYPE_WORKLOAD).size === 3 && r.updates.slice(mark).some((x) => x.type === TYPE_SERVICE), 15_000, 'resync after reconnect');
      const sinceReconnect = r.updates.slice(mark);
      const byType = (t: string) => sinceReconnect.filter((x) => x.type === t).flatMap((x) => x.u.added.map((a) => a.name));
      assert.deepEqual(byType(TYPE_WORKLOAD), ['shop/web-2']);
      assert.deepEqual(byType(TYPE_SERVICE), ['shop/web']); // its endpoints changed
      assert.deepEqual(byType(TYPE_AUTHORIZATION), []); // unchanged: nothing re-sent
    } finally {
      r.client.close();
      writeFileSync(join(cfg.path, 'mesh.yaml'), mesh);
    }
  });

  describe('CA', () => {
    const ca = (token: string, node: string) => new CaClient({ address: c.xds, credentials: c.credentials(), metadata: () => ({ authorization: `Bearer ${token}`, 'x-strait-node': node }) });

    it('issues a certificate that openssl verifies against the root, with the SPIFFE id as URI SAN', async () => {
      const { csrPem } = await createKeyAndCsr();
      const client = ca(c.token('node-node-a.token'), 'node-a');
      try {
        const chain = await client.createCertificate(csrPem, 'spiffe://cluster.local/ns/shop/sa/web');
        const dir = tempDir('ca-rt');
        try {
          writeFileSync(join(dir.path, 'leaf.pem'), chain[0]);
          const v = await run('openssl', ['verify', '-CAfile', c.rootFile, join(dir.path, 'leaf.pem')]);
          assert.equal(v.code, 0, v.stderr + v.stdout);
          assert.match(v.stdout, /leaf\.pem: OK/);
          const t = await run('openssl', ['x509', '-noout', '-text', '-in', join(dir.path, 'leaf.pem')]);
          assert.match(t.stdout, /URI:spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web/);
          assert.doesNotMatch(t.stdout, /DNS:/);
        } finally {
          dir.remove();
        }
      } finally {
        client.close();
      }
    });

    const grpcCode = async (p: Promise<unknown>) => {
      try { await p; } catch (err) { return ((err as { cause?: grpc.ServiceError }).cause?.code); }
      return 'no error';
    };

    it('refuses the identity of a pod on another node with PERMISSION_DENIED', async () => {
      const { csrPem } = await createKeyAndCsr();
      const client = ca(c.token('node-node-a.token'), 'node-a');
      try {
        await assert.rejects(client.createCertificate(csrPem, 'spiffe://cluster.local/ns/shop/sa/db'), /PERMISSION_DENIED: node node-a may not obtain spiffe:\/\/cluster.local\/ns\/shop\/sa\/db: no pod with service account "db"/);
        assert.equal(await grpcCode(client.createCertificate(csrPem, 'spiffe://cluster.local/ns/shop/sa/db')), grpc.status.PERMISSION_DENIED);
      } finally {
        client.close();
      }
    });

    it('refuses a bad token with UNAUTHENTICATED', async () => {
      const { csrPem } = await createKeyAndCsr();
      const wrong = ca(c.token('node-node-b.token'), 'node-a');
      try {
        assert.equal(await grpcCode(wrong.createCertificate(csrPem, 'spiffe://cluster.local/ns/shop/sa/web')), grpc.status.UNAUTHENTICATED);
      } finally {
        wrong.close();
      }
    });

    it('answers a garbage CSR with INVALID_ARGUMENT', async () => {
      const client = ca(c.token('node-node-a.token'), 'node-a');
      try {
        const p = client.createCertificate('-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgY3Ny\n-----END CERTIFICATE REQUEST-----\n', 'spiffe://cluster.local/ns/shop/sa/web');
        assert.equal(await grpcCode(p), grpc.status.INVALID_ARGUMENT);
        const metrics = (await c.get('/metrics')).text;
        assert.match(metrics, /citadel_server_csr_parsing_err_count [1-9]/);
        assert.match(metrics, /citadel_server_success_cert_issuance_count [1-9]/);
      } finally {
        client.close();
      }
    });
  });

  it('reports a bad YAML file, keeps the rest working, and keeps the last good version of a broken object', async () => {
    writeFileSync(join(cfg.path, 'broken.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata: {name: [oops\n');
    writeFileSync(join(cfg.path, 'policy.yaml'), policyYaml('shop').replace('"ALLOW"', '"BLOCK"'));
    const cz = await eventually(async () => {
      const res = await c.get('/debug/configz');
      return res.body.rejected.some((p: any) => p.file === 'broken.yaml') && res.body.rejected.some((p: any) => p.file === 'policy.yaml') ? res.body : undefined;
    }, 3000, 'problems in configz');
    const policyProblem = cz.rejected.find((p: any) => p.file === 'policy.yaml');
    assert.equal(policyProblem.text, 'policy.yaml doc 1 AuthorizationPolicy shop/allow-shop: spec.action: "BLOCK" is not one of ALLOW, DENY, AUDIT, CUSTOM');
    // the last good policy stays in force, and the other objects are untouched
    const kept = cz.objects.find((o: any) => o.key === 'AuthorizationPolicy/shop/allow-shop');
    assert.equal(kept.object.spec.action, 'ALLOW');
    assert.ok(cz.objects.some((o: any) => o.key === 'Pod/shop/web-1'));
    assert.ok(cz.warnings.some((w: any) => /last good version .* stays in force/.test(w.text)));
    assert.equal((await c.get('/ready')).status, 200);
    unlinkSync(join(cfg.path, 'broken.yaml'));
    writeFileSync(join(cfg.path, 'policy.yaml'), policyYaml('shop'));
  });

  it('removes the objects of a deleted file', async () => {
    writeFileSync(join(cfg.path, 'extra.yaml'), docs(namespace('temp')));
    await eventually(async () => (await c.get('/debug/configz')).body.objects.some((o: any) => o.key === 'Namespace//temp'), 3000, 'added');
    unlinkSync(join(cfg.path, 'extra.yaml'));
    await eventually(async () => !(await c.get('/debug/configz')).body.objects.some((o: any) => o.key === 'Namespace//temp'), 3000, 'removed');
  });

});
