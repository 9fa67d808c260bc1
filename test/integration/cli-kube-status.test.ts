/**
 * `strait status` and `strait check` of a cluster through the real CLI against the API server double: the status of
 * every strait-controller pod through the API server's pod proxy to a real controller, the Lease holder as leader;
 * check's kubeconfig, API, permission (SelfSubjectAccessReview) and CRD findings.
 * Addresses: the double on 127.0.214.51; controller-0 on 127.0.214.60 (admin 15014), controller-1's pod IP
 * 127.0.214.61 (nothing listens there); 127.0.214.253: nothing listens.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { XdsClient } from '../../src/common/xds/index.js';
import { TYPE_AUTHORIZATION, TYPE_SERVICE, TYPE_WORKLOAD } from '../../src/common/xds/resources.js';
import { KubeApiServer } from '../helpers/kube-apiserver.js';
import { startController, type ControllerHandle } from '../helpers/controller.js';
import { docs, namespace, pod } from '../helpers/manifests.js';
import { strait } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';

type Obj = Record<string, any>;
const SYS = 'strait-system';
const controllerPod = (name: string, ip: string, phase = 'Running') => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: SYS, labels: { 'app.kubernetes.io/name': 'strait-controller' } },
  spec: { containers: [{ name: 'controller', image: 'strait' }] }, status: { phase, podIP: ip },
});

describe('strait status of a cluster', () => {
  const dir = tempDir('cli-kube-status');
  const cfg = tempDir('cli-kube-status-cfg');
  const data = tempDir('cli-kube-status-data');
  let api: KubeApiServer;
  let c: ControllerHandle;
  let client: XdsClient;
  let kubeconfig: string;

  before(async () => {
    writeFileSync(join(cfg.path, 'mesh.yaml'), docs(namespace('shop', { 'istio.io/dataplane-mode': 'ambient' }), pod('shop', 'web-1', { node: 'node-a', ip: '10.0.0.1' })));
    c = await startController(cfg.path, data.path, ['--admin-address', '127.0.214.60:15014'], '127.0.214.60:0');
    client = new XdsClient({
      address: c.xds, credentials: c.credentials(),
      metadata: () => ({ authorization: `Bearer ${c.token('node-node-a.token')}`, 'x-strait-node': 'node-a' }),
      node: { id: 'ztunnel~node-a~status-test', kind: 'ztunnel', nodeName: 'node-a' },
      subscriptions: [TYPE_WORKLOAD, TYPE_SERVICE, TYPE_AUTHORIZATION].map((typeUrl) => ({ typeUrl, apply: () => undefined })),
    });
    client.start();
    api = await KubeApiServer.start({ host: '127.0.214.51', rbac: true });
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: SYS } });
    api.put(controllerPod('strait-controller-0', '127.0.214.60'));
    api.put(controllerPod('strait-controller-1', '127.0.214.61'));
    api.put({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'strait-controller', namespace: SYS }, spec: { holderIdentity: 'strait-controller-0', leaseDurationSeconds: 15 } });
    kubeconfig = api.writeKubeconfig(join(dir.path, 'admin.kubeconfig'));
  });
  after(async () => {
    client?.close();
    await c?.stop();
    await api?.close();
    for (const d of [dir, cfg, data]) d.remove();
  });

  it('asks every controller pod through the API server, marks the Lease holder, and fails naming the one that does not answer', async () => {
    await eventually(async () => (await c.get('/debug/proxy-status')).body.proxies.length === 1, 10_000, 'the proxy is connected');
    const r = await strait(['status', '--kubeconfig', kubeconfig]);
    assert.equal(r.code, 1, 'one controller could not be asked');
    const lines = r.stdout.split('\n');
    assert.match(lines[1]!, /^strait-controller-0\s+\S+\s+yes\s+\S+\s+\d+\s+1\s+https:\/\/127\.0\.214\.51:\d+\/api\/v1\/namespaces\/strait-system\/pods\/strait-controller-0:15014\/proxy\/debug\/proxy-status$/);
    assert.match(lines[2]!, /^strait-controller-1\s+<unknown>\s+<unknown>\s/);
    assert.match(r.stdout, /\nNAME\s+KIND\s+WORKLOAD\s+SERVICE\s+AUTHORIZATION\s+CONTROLLER\s+CONNECTED\nnode-a\s+ztunnel\s+SYNCED \(\d+\)\s+SYNCED \(\d+\)\s+SYNCED \(\d+\)\s+strait-controller-0\s+\S+\n/);
    assert.match(r.stdout, /\nController strait-controller-1 could not be asked: .*503.*error trying to reach service: dial tcp 127\.0\.214\.61:15014/);
    assert.ok(api.requests.some((q) => q.verb === 'get' && q.resource === 'pods' && q.subresource === 'proxy' && q.name === 'strait-controller-0:15014'), 'through the pod proxy');

    api.put(controllerPod('strait-controller-1', '127.0.214.61', 'Pending'));
    const pending = await strait(['status', '--kubeconfig', kubeconfig, '-o', 'json']);
    const s = JSON.parse(pending.stdout) as { controllers: Obj[]; proxies: Obj[] };
    assert.deepEqual(s.controllers.map((x) => [x.name, x.isLeader, x.error]), [['strait-controller-0', true, undefined], ['strait-controller-1', false, 'the pod is Pending']]);
    assert.equal(s.proxies[0]!.controller, 'strait-controller-0');

    api.delete({ apiVersion: 'v1', kind: 'Pod', namespace: SYS, name: 'strait-controller-1' });
    const ok = await strait(['status', '--kubeconfig', kubeconfig]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  });

  it('says when the user may not use the pod proxy, and when no controller pod exists', async () => {
    const token = 'no-proxy-token';
    api.addToken(token, { username: 'reader', groups: ['system:authenticated'] });
    api.put({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'reader' }, rules: [{ apiGroups: ['', 'coordination.k8s.io'], resources: ['pods', 'leases'], verbs: ['get', 'list'] }] });
    api.put({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'reader' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'reader' }, subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'reader' }] });
    const r = await strait(['status', '--kubeconfig', api.writeKubeconfig(join(dir.path, 'reader.kubeconfig'), { token })]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /Controller strait-controller-0 could not be asked: you may not get pods\/proxy in namespace strait-system \(RBAC\).*pass --controller-admin/);
    const none = await strait(['status', '--kubeconfig', kubeconfig, '--system-namespace', 'elsewhere']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /\[STRAIT_ERR_STATUS\] no strait-controller pod in namespace elsewhere of https:\/\/127\.0\.214\.51:\d+ \(label app\.kubernetes\.io\/name=strait-controller\)/);
  });

  it('without a local mesh or a kubeconfig, says both', async () => {
    const r = await strait(['status'], { KUBECONFIG: '', HOME: dir.path, TMPDIR: dir.path, KUBERNETES_SERVICE_HOST: '' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\[STRAIT_ERR_STATUS\] no local mesh \(no state file at \S*strait-up-\d+\.json: start one with strait up, or pass --state-file\) and no cluster: no Kubernetes credentials found/);
  });
});

describe('strait check of a cluster', () => {
  const dir = tempDir('cli-kube-check');
  let api: KubeApiServer;
  let kubeconfig: string;
  interface Report { ok: boolean; findings: { check: string; result: string; detail: string; fix?: string }[] }
  const check = async (args: string[], env: Record<string, string> = {}) => {
    const r = await strait(['check', '--only', 'kubernetes', '-o', 'json', ...args], env);
    return { code: r.code, report: JSON.parse(r.stdout) as Report };
  };
  const find = (r: Report, name: string) => r.findings.find((f) => f.check === name)!;

  before(async () => {
    api = await KubeApiServer.start({ host: '127.0.214.52', rbac: true, requireCrds: true });
    kubeconfig = api.writeKubeconfig(join(dir.path, 'admin.kubeconfig'));
  });
  after(async () => {
    await api?.close();
    dir.remove();
  });

  it('fails on missing CRDs, naming each and where they come from, then passes once they are installed', async () => {
    const r = await check(['--kubeconfig', kubeconfig]);
    assert.equal(r.code, 1);
    assert.deepEqual(r.report.findings.map((f) => [f.check, f.result]), [['kubeconfig', 'pass'], ['kubernetes-api', 'pass'], ['permissions', 'pass'], ['crds', 'fail']]);
    const crds = find(r.report, 'crds');
    assert.equal(crds.detail, 'missing: authorizationpolicies.security.istio.io, destinationrules.networking.istio.io, gateways.gateway.networking.k8s.io, httproutes.gateway.networking.k8s.io, peerauthentications.security.istio.io, telemetries.telemetry.istio.io, virtualservices.networking.istio.io');
    assert.match(crds.fix!, /^install Gateway API \(standard channel\) CRDs \(release v1\.4\.0: kubectl apply --server-side -f \S+standard-install\.yaml; README "Install on Kubernetes"\) and Istio CRDs \(release 1\.28\.0: kubectl apply --server-side -f \S+crd-all\.gen\.yaml; /);
    api.installCrds();
    const ok = await check(['--kubeconfig', kubeconfig]);
    assert.equal(ok.code, 0, JSON.stringify(ok.report));
    assert.equal(find(ok.report, 'crds').result, 'pass');
    const table = await strait(['check', '--only', 'kubernetes', '--kubeconfig', kubeconfig]);
    assert.match(table.stdout, /^SECTION\s+CHECK\s+RESULT\s+DETAIL\nkubernetes\s+kubeconfig\s+PASS\s+context double/);
    assert.match(table.stdout, /\nOK: 4 passed, 0 failed, 0 warning\(s\), 0 skipped\n$/);
  });

  it('names a CRD that does not serve the version Strait reads', async () => {
    const crd = api.crdObject('gateways.gateway.networking.k8s.io') as Obj;
    api.put({ ...crd, spec: { ...crd.spec, versions: crd.spec.versions.filter((v: Obj) => v.name !== 'v1') } });
    try {
      const r = await check(['--kubeconfig', kubeconfig]);
      assert.equal(r.code, 1);
      assert.equal(find(r.report, 'crds').detail, 'gateways.gateway.networking.k8s.io serves v1beta1, not v1');
    } finally {
      api.installCrds(['gateways.gateway.networking.k8s.io']);
    }
  });

  it('lists what a user without the rights of strait install may not create', async () => {
    const token = 'dev-token';
    api.addToken(token, { username: 'dev', groups: ['system:authenticated'] });
    api.put({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'dev', namespace: 'strait-system' }, rules: [{ apiGroups: ['', 'apps'], resources: ['services', 'serviceaccounts', 'deployments', 'daemonsets'], verbs: ['create'] }] });
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'strait-system' } });
    api.put({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'dev', namespace: 'strait-system' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'dev' }, subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'dev' }] });
    const r = await check(['--kubeconfig', api.writeKubeconfig(join(dir.path, 'dev.kubeconfig'), { token })]);
    assert.equal(r.code, 1);
    const p = find(r.report, 'permissions');
    assert.equal(p.result, 'fail');
    assert.equal(p.detail, 'you may not create clusterrolebindings.rbac.authorization.k8s.io, create clusterroles.rbac.authorization.k8s.io, create namespaces, create poddisruptionbudgets.policy in strait-system, create rolebindings.rbac.authorization.k8s.io in strait-system, create roles.rbac.authorization.k8s.io in strait-system');
    assert.match(p.fix!, /run it as a cluster admin/);
    assert.equal(find(r.report, 'crds').result, 'warn', 'a user who may not read CRDs gets a warning, not a failure');
  });

  it('fails on an API server that does not answer and skips what needs it; fails without a kubeconfig', async () => {
    const dead = join(dir.path, 'dead.kubeconfig');
    writeFileSync(dead, api.kubeconfig().replace(/server: https:\/\/[^\n]+/, 'server: https://127.0.214.253:6443'));
    const r = await check(['--kubeconfig', dead]);
    assert.equal(r.code, 1);
    assert.deepEqual(r.report.findings.map((f) => [f.check, f.result]), [['kubeconfig', 'pass'], ['kubernetes-api', 'fail'], ['permissions', 'skip'], ['crds', 'skip']]);
    assert.match(find(r.report, 'kubernetes-api').detail, /cannot reach the Kubernetes API server at https:\/\/127\.0\.214\.253:6443/);
    const none = await check([], { KUBECONFIG: '', HOME: dir.path, KUBERNETES_SERVICE_HOST: '' });
    assert.equal(none.code, 1);
    assert.equal(find(none.report, 'kubeconfig').result, 'fail');
    assert.match(find(none.report, 'kubeconfig').detail, /no Kubernetes credentials found/);
  });
});
