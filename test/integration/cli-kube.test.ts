/**
 * `strait namespace` and `strait waypoint apply|list|delete` through the real CLI against the Kubernetes API server
 * double (real HTTPS, JSON, RBAC with real 403s), the kubeconfig found as kubectl finds it (KUBECONFIG).
 * The test plays the controller where --wait needs one: it sets the Gateway's status as istiod does.
 * Addresses: the double on 127.0.214.50 (port 0).
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { KubeApiServer } from '../helpers/kube-apiserver.js';
import { strait, type CliResult } from '../helpers/cli.js';
import { StraitProcess } from '../helpers/procs.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';

const GW = 'gateway.networking.k8s.io/v1';
type Obj = Record<string, any>;

describe('strait namespace and strait waypoint against a Kubernetes API server', () => {
  const dir = tempDir('cli-kube');
  let api: KubeApiServer;
  let env: Record<string, string>;
  const run = (args: string[], extra: Record<string, string> = {}): Promise<CliResult> => strait(args, { ...env, ...extra });
  const ns = (name: string): Obj | undefined => api.get({ apiVersion: 'v1', kind: 'Namespace', name });
  const gw = (namespace: string, name: string): Obj | undefined => api.get({ apiVersion: GW, kind: 'Gateway', namespace, name });
  const putGateway = (namespace: string, name: string, cls = 'istio-waypoint', labels: Record<string, string> = {}) => api.put({
    apiVersion: GW, kind: 'Gateway', metadata: { name, namespace, labels }, spec: { gatewayClassName: cls, listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
  });
  /** A user whose token may do only what `rules` allow (RBAC on). */
  const limitedUser = (name: string, rules: Obj[]): Record<string, string> => {
    const token = `${name}-token`;
    api.addToken(token, { username: name, groups: ['system:authenticated'] });
    api.put({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name }, rules });
    api.put({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name }, subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name }] });
    return { KUBECONFIG: api.writeKubeconfig(join(dir.path, `${name}.kubeconfig`), { token }) };
  };

  before(async () => {
    api = await KubeApiServer.start({ host: '127.0.214.50', rbac: true, requireCrds: true });
    api.installCrds();
    env = { KUBECONFIG: api.writeKubeconfig(join(dir.path, 'admin.kubeconfig')), HOME: dir.path };
  });
  after(async () => {
    await api?.close();
    dir.remove();
  });
  beforeEach(() => {
    for (const n of ['shop', 'store', 'empty']) api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: n } });
    for (const g of api.list(GW, 'Gateway')) api.delete({ apiVersion: GW, kind: 'Gateway', namespace: g.metadata.namespace, name: g.metadata.name });
  });

  describe('namespace enroll / unenroll', () => {
    it('labels the namespace istio.io/dataplane-mode=ambient, says so when it already is, and removes the label again', async () => {
      const r = await run(['namespace', 'enroll', 'shop']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'namespace/shop enrolled (istio.io/dataplane-mode=ambient)\n');
      assert.equal(ns('shop')!.metadata.labels['istio.io/dataplane-mode'], 'ambient');
      const again = await run(['namespace', 'enroll', 'shop']);
      assert.equal(again.code, 0, 'already enrolled is not an error');
      assert.equal(again.stdout, 'namespace/shop is already enrolled (istio.io/dataplane-mode=ambient)\n');
      const out = await run(['namespace', 'unenroll', 'shop']);
      assert.equal(out.code, 0, out.stderr);
      assert.equal(out.stdout, 'namespace/shop unenrolled (istio.io/dataplane-mode=ambient removed)\n');
      assert.equal(ns('shop')!.metadata.labels?.['istio.io/dataplane-mode'], undefined);
      const not = await run(['namespace', 'unenroll', 'shop']);
      assert.equal(not.code, 0);
      assert.equal(not.stdout, 'namespace/shop is not enrolled (no istio.io/dataplane-mode label)\n');
    });

    it('replaces istio.io/dataplane-mode=none, keeps other labels, and prints the namespace with -o json', async () => {
      api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'store', labels: { team: 'a', 'istio.io/dataplane-mode': 'none' } } });
      const r = await run(['namespace', 'enroll', 'store', '-o', 'json']);
      assert.equal(r.code, 0, r.stderr);
      const printed = JSON.parse(r.stdout) as Obj;
      assert.equal(printed.kind, 'Namespace');
      assert.deepEqual(printed.metadata.labels, { team: 'a', 'istio.io/dataplane-mode': 'ambient' });
      assert.deepEqual(ns('store')!.metadata.labels, { team: 'a', 'istio.io/dataplane-mode': 'ambient' });
    });

    it('--dry-run says what it would do and changes nothing', async () => {
      const before = api.resourceVersion;
      const sent = api.requests.length;
      const r = await run(['namespace', 'enroll', 'shop', '--dry-run']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'namespace/shop enrolled (istio.io/dataplane-mode=ambient) (dry run)\n');
      assert.equal(ns('shop')!.metadata.labels?.['istio.io/dataplane-mode'], undefined);
      assert.equal(api.resourceVersion, before, 'nothing was written');
      assert.deepEqual(api.requests.slice(sent).map((q) => `${q.verb} ${q.resource} ${q.name}`), ['get namespaces shop'], 'only a read');
    });

    it('names a missing namespace and how to create it, and still enrolls the others (exit 1)', async () => {
      const r = await run(['namespace', 'enroll', 'nope', 'store']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /cannot enroll namespace nope: it does not exist \(create it first: kubectl create namespace nope\)/);
      assert.equal(r.stdout, 'namespace/store enrolled (istio.io/dataplane-mode=ambient)\n');
      assert.equal(ns('store')!.metadata.labels['istio.io/dataplane-mode'], 'ambient');
    });

    it('names the verb it lacks when RBAC forbids it: get, then patch', async () => {
      const nothing = limitedUser('viewer-none', []);
      const r1 = await run(['namespace', 'enroll', 'shop'], nothing);
      assert.equal(r1.code, 1);
      assert.match(r1.stderr, /cannot enroll namespace shop: you may not get namespaces \(RBAC verb "get" on "namespaces", cluster scope; the command needs get and patch\)/);
      const getOnly = limitedUser('viewer-get', [{ apiGroups: [''], resources: ['namespaces'], verbs: ['get'] }]);
      const r2 = await run(['namespace', 'enroll', 'shop'], getOnly);
      assert.equal(r2.code, 1);
      assert.match(r2.stderr, /you may not patch namespaces \(RBAC verb "patch" on "namespaces"/);
      assert.equal(ns('shop')!.metadata.labels?.['istio.io/dataplane-mode'], undefined);
      const enough = limitedUser('enroller', [{ apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'patch'] }]);
      const r3 = await run(['namespace', 'enroll', 'shop'], enough);
      assert.equal(r3.code, 0, r3.stderr);
    });

    it('says where it looked when there is no kubeconfig', async () => {
      const r = await strait(['namespace', 'enroll', 'shop'], { KUBECONFIG: '', HOME: dir.path, KUBERNETES_SERVICE_HOST: '' });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /\[STRAIT_ERR_CONFIG\] no Kubernetes credentials found/);
    });
  });

  describe('waypoint apply', () => {
    it('creates the waypoint Gateway Istio makes, then reports unchanged, then updates what --for says', async () => {
      const r = await run(['waypoint', 'apply', '-n', 'shop']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'waypoint shop/waypoint created\n');
      const g = gw('shop', 'waypoint')!;
      assert.equal(g.spec.gatewayClassName, 'istio-waypoint');
      assert.deepEqual(g.spec.listeners, [{ name: 'mesh', port: 15008, protocol: 'HBONE' }]);
      assert.equal(g.metadata.labels['istio.io/waypoint-for'], 'service');
      assert.equal((await run(['waypoint', 'apply', '-n', 'shop'])).stdout, 'waypoint shop/waypoint unchanged\n');
      const upd = await run(['waypoint', 'apply', '-n', 'shop', '--for', 'all']);
      assert.equal(upd.stdout, 'waypoint shop/waypoint configured\n');
      assert.equal(gw('shop', 'waypoint')!.metadata.labels['istio.io/waypoint-for'], 'all');
      assert.equal(gw('shop', 'waypoint')!.metadata.uid, g.metadata.uid, 'updated in place');
      assert.equal(ns('shop')!.metadata.labels?.['istio.io/use-waypoint'], undefined, 'the namespace is left alone without --enroll-namespace');
    });

    it('uses the kubeconfig context\'s namespace without -n, and --name', async () => {
      const kc = { KUBECONFIG: api.writeKubeconfig(join(dir.path, 'store.kubeconfig'), { namespace: 'store' }) };
      const r = await run(['waypoint', 'apply', '--name', 'reviews-wp', '--for', 'workload'], kc);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'waypoint store/reviews-wp created\n');
      assert.equal(gw('store', 'reviews-wp')!.metadata.labels['istio.io/waypoint-for'], 'workload');
    });

    it('--enroll-namespace labels the namespace istio.io/use-waypoint; switching it to another waypoint needs --overwrite and writes nothing without', async () => {
      const r = await run(['waypoint', 'apply', '-n', 'shop', '--enroll-namespace']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'waypoint shop/waypoint created\nnamespace/shop labeled istio.io/use-waypoint=waypoint\n');
      assert.equal(ns('shop')!.metadata.labels['istio.io/use-waypoint'], 'waypoint');
      const refused = await run(['waypoint', 'apply', '-n', 'shop', '--name', 'second', '--enroll-namespace']);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /namespace shop uses waypoint waypoint \(istio\.io\/use-waypoint=waypoint\): pass --overwrite to switch it to second/);
      assert.equal(gw('shop', 'second'), undefined, 'nothing created when the namespace check fails');
      const ok = await run(['waypoint', 'apply', '-n', 'shop', '--name', 'second', '--enroll-namespace', '--overwrite']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, 'waypoint shop/second created\nnamespace/shop labeled istio.io/use-waypoint=second (was waypoint)\n');
      assert.equal(ns('shop')!.metadata.labels['istio.io/use-waypoint'], 'second');
    });

    it('--dry-run -o yaml prints the Gateway it would create and creates nothing', async () => {
      const r = await run(['waypoint', 'apply', '-n', 'shop', '--dry-run', '-o', 'yaml']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^apiVersion: gateway\.networking\.k8s\.io\/v1\nkind: Gateway\nmetadata:\n {2}name: waypoint\n {2}namespace: shop\n/);
      assert.match(r.stdout, /gatewayClassName: istio-waypoint/);
      assert.equal(gw('shop', 'waypoint'), undefined);
    });

    it('refuses to take over a Gateway of another class', async () => {
      putGateway('shop', 'ingress', 'istio');
      const r = await run(['waypoint', 'apply', '-n', 'shop', '--name', 'ingress']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /Gateway shop\/ingress exists and is not a waypoint \(gatewayClassName istio\): choose another --name/);
      assert.equal(gw('shop', 'ingress')!.spec.gatewayClassName, 'istio');
    });

    it('--wait returns once the controller sets Programmed for the current generation, with the address', async () => {
      const p = StraitProcess.start(['waypoint', 'apply', '-n', 'shop', '--wait', '--timeout', '20s'], env);
      const created = await eventually(() => gw('shop', 'waypoint'), 10_000, 'the Gateway is created');
      // First a Programmed=True about an older generation (does not count), then Accepted only, then Programmed.
      const gen = created.metadata.generation as number;
      const status = (conds: Obj[], addresses: Obj[] = []) => api.put({ ...gw('shop', 'waypoint')!, status: { conditions: conds, addresses } });
      status([{ type: 'Programmed', status: 'True', reason: 'Programmed', observedGeneration: gen - 1 }]);
      status([{ type: 'Accepted', status: 'True', reason: 'Accepted', observedGeneration: gen }, { type: 'Programmed', status: 'False', reason: 'Pending', observedGeneration: gen }]);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(p.child.exitCode, null, 'still waiting while Programmed is not True');
      status([{ type: 'Accepted', status: 'True', reason: 'Accepted', observedGeneration: gen }, { type: 'Programmed', status: 'True', reason: 'Programmed', observedGeneration: gen }],
        [{ type: 'IPAddress', value: '10.96.7.7' }]);
      assert.equal(await p.exited, 0, p.stderr.join('\n'));
      assert.deepEqual(p.lines.map((l) => l.msg), ['waypoint shop/waypoint created', 'waypoint shop/waypoint programmed (address 10.96.7.7)']);
      assert.ok(api.requests.some((q) => q.verb === 'watch' && q.resource === 'gateways' && q.namespace === 'shop'), 'waited with a watch');
    });

    it('--wait gives up after --timeout with the Gateway\'s conditions', async () => {
      const r = await run(['waypoint', 'apply', '-n', 'shop', '--wait', '--timeout', '1s']);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, 'waypoint shop/waypoint created\n');
      assert.match(r.stderr, /\[STRAIT_ERR_WAYPOINT_WAIT\] waypoint shop\/waypoint is not Programmed after 1s: the Gateway has no status yet: no controller has picked it up/);
      api.put({ ...gw('shop', 'waypoint')!, status: { conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted' }, { type: 'Programmed', status: 'False', reason: 'NoResources', message: 'the Deployment has no ready replica' }] } });
      const r2 = await run(['waypoint', 'apply', '-n', 'shop', '--wait', '--timeout', '1s']);
      assert.equal(r2.code, 1);
      assert.match(r2.stderr, /not Programmed after 1s: Accepted=True \(Accepted\), Programmed=False \(NoResources: the Deployment has no ready replica\)/);
    });

    it('names the CRD to install when the Gateway API is not installed', async () => {
      api.delete({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name: 'gateways.gateway.networking.k8s.io' });
      try {
        const r = await run(['waypoint', 'apply', '-n', 'shop']);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /install the CustomResourceDefinition gateways\.gateway\.networking\.k8s\.io/);
      } finally {
        api.installCrds(['gateways.gateway.networking.k8s.io']);
      }
    });
  });

  describe('waypoint list / delete', () => {
    it('lists only waypoints, with what they serve, Programmed and address; -A adds the namespace; -o json is a List', async () => {
      putGateway('shop', 'waypoint');
      api.put({ ...gw('shop', 'waypoint')!, status: { addresses: [{ type: 'IPAddress', value: '10.96.0.9' }], conditions: [{ type: 'Programmed', status: 'True', reason: 'Programmed' }] } });
      putGateway('shop', 'other', 'istio-waypoint', { 'istio.io/waypoint-for': 'workload' });
      putGateway('shop', 'ingress', 'istio');
      putGateway('store', 'waypoint');
      const r = await run(['waypoint', 'list', '-n', 'shop']);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trimEnd().split('\n');
      assert.match(lines[0]!, /^NAME\s+FOR\s+PROGRAMMED\s+ADDRESS\s+AGE$/);
      assert.match(lines[1]!, /^other\s+workload\s+Unknown\s+<none>\s+\d+s$/);
      assert.match(lines[2]!, /^waypoint\s+service\s+True\s+10\.96\.0\.9\s+\d+s$/);
      assert.equal(lines.length, 3, 'the istio-class Gateway is not a waypoint');
      const all = await run(['waypoint', 'list', '-A']);
      assert.match(all.stdout, /^NAMESPACE\s+NAME\s+FOR\s+PROGRAMMED\s+ADDRESS\s+AGE\nshop\s+other\s.*\nshop\s+waypoint\s.*\nstore\s+waypoint\s/);
      const json = JSON.parse((await run(['waypoint', 'list', '-A', '-o', 'json'])).stdout) as Obj;
      assert.equal(json.kind, 'List');
      assert.deepEqual(json.items.map((i: Obj) => `${i.kind} ${i.metadata.namespace}/${i.metadata.name}`), ['Gateway shop/other', 'Gateway shop/waypoint', 'Gateway store/waypoint']);
      const none = await run(['waypoint', 'list', '-n', 'empty']);
      assert.equal(none.code, 0);
      assert.equal(none.stdout, '');
      assert.equal(none.stderr, 'No waypoints found in empty namespace.\n');
    });

    it('deletes named waypoints, refuses other Gateways, reports missing ones, and warns about a namespace still bound', async () => {
      putGateway('shop', 'waypoint');
      putGateway('shop', 'ingress', 'istio');
      api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'istio.io/use-waypoint': 'waypoint' } } });
      const r = await run(['waypoint', 'delete', '-n', 'shop', 'waypoint', 'ghost', 'ingress']);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, 'waypoint shop/waypoint deleted\n');
      assert.match(r.stderr, /waypoint shop\/ghost not found/);
      assert.match(r.stderr, /Gateway shop\/ingress is not a waypoint \(gatewayClassName istio\): not deleted/);
      assert.match(r.stderr, /warning: namespace shop still has istio\.io\/use-waypoint=waypoint: remove the label \(kubectl label namespace shop istio\.io\/use-waypoint-\)/);
      assert.equal(gw('shop', 'waypoint'), undefined);
      assert.ok(gw('shop', 'ingress'));
    });

    it('--all deletes every waypoint of the namespace and nothing else', async () => {
      putGateway('shop', 'a');
      putGateway('shop', 'b');
      putGateway('shop', 'ingress', 'istio');
      putGateway('store', 'c');
      const r = await run(['waypoint', 'delete', '-n', 'shop', '--all']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'waypoint shop/a deleted\nwaypoint shop/b deleted\n');
      assert.deepEqual(api.list(GW, 'Gateway').map((g) => `${g.metadata.namespace}/${g.metadata.name}`).sort(), ['shop/ingress', 'store/c']);
      const bad = await run(['waypoint', 'delete', '-n', 'shop']);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /give the names of the waypoints to delete, or --all/);
    });
  });
});
