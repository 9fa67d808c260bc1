/**
 * daemonset.yaml agrees with the code it runs: selectors pick the pod templates they are meant to, Service ports lead
 * to ports the containers declare, probe and container ports are where the code listens by default (the code's own
 * constants, and the config each command parses from the manifest's own arguments), every container argument is a
 * flag of the real CLI, the projected token is for the controller's audience, every ServiceAccount named exists, and
 * RBAC names only resources the source reads and the controller writes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { controllerCommand } from '../../src/cli/controller.js';
import { ztunnelCommand } from '../../src/cli/ztunnel.js';
import { DEFAULT_ADMIN_ADDRESS, DEFAULT_XDS_ADDRESS, parseConfig as parseControllerConfig } from '../../src/controller/config.js';
import { parseConfig as parseZtunnelConfig, ZTUNNEL_NODE_OPTIONS, PORT_READY, PORT_METRICS, PORT_ADMIN } from '../../src/ztunnel/config.js';
import { parseHostPort } from '../../src/common/net.js';
import { findPackageFile } from '../../src/common/package-file.js';
import { REQUIRED_CRDS } from '../../src/common/model/crds.js';
import { isSupportedKind } from '../../src/common/model/validate.js';
import { defaultImage, IMAGE_PACKAGE_DIR, imageOf, SYSTEM_NAMESPACE, PART_OF_LABEL, PART_OF_VALUE, ENV_IMAGE } from '../../src/cli/install/manifest.js';
import { ROOT_CONFIGMAP } from '../../src/cli/install/uninstall.js';
import { authorize, serviceAccountUser, type RbacObjects } from '../helpers/kube-apiserver/rbac.js';
import { allowedBy, grantsFor, installObjects, rbacOf, type ManifestObject } from '../helpers/install-manifest.js';

// ---- the objects, typed as far as these checks read them ----
interface Port { name?: string; containerPort: number; protocol?: string }
interface Probe { httpGet?: { path: string; port: number | string }; tcpSocket?: { port: number | string }; exec?: { command: string[] } }
interface EnvVar { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }
interface Container {
  name: string; image: string; command?: string[]; args?: string[]; env?: EnvVar[]; ports?: Port[];
  readinessProbe?: Probe; livenessProbe?: Probe; startupProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  volumeMounts?: { name: string; mountPath: string }[];
  securityContext?: Record<string, unknown> & { capabilities?: { add?: string[]; drop?: string[] } };
}
interface Volume { name: string; projected?: { sources: { serviceAccountToken?: { audience: string; expirationSeconds: number; path: string } }[] }; configMap?: { name: string }; emptyDir?: object; hostPath?: { path: string } }
interface PodSpec { containers: Container[]; volumes?: Volume[]; serviceAccountName?: string; hostNetwork?: boolean; terminationGracePeriodSeconds?: number; tolerations?: unknown[]; [k: string]: unknown }
type Workload = ManifestObject & { spec: { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec }; [k: string]: unknown } };
type Service = ManifestObject & { spec: { selector: Record<string, string>; ports: { name: string; port: number; targetPort: string | number }[] } };

const objects = installObjects();
const find = <T extends ManifestObject>(kind: string, name: string): T => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `daemonset.yaml has no ${kind} ${name}`);
  return o as T;
};
const controller = find<Workload>('Deployment', 'strait-controller');
const ztunnel = find<Workload>('DaemonSet', 'strait-ztunnel');
const service = find<Service>('Service', 'strait-controller');
const container = (w: Workload, name: string): Container => {
  const c = w.spec.template.spec.containers.find((x) => x.name === name);
  assert.ok(c, `${w.kind} ${w.metadata.name} has no container ${name}`);
  return c;
};
const controllerContainer = container(controller, 'controller');
const ztunnelContainer = container(ztunnel, 'ztunnel');
const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
/** A probe's or Service's port, by number or by the container's port name. */
const portNumber = (c: Container, port: number | string): number => {
  if (typeof port === 'number') return port;
  const p = c.ports?.find((x) => x.name === port);
  assert.ok(p, `container ${c.name} declares no port named ${port}`);
  return p.containerPort;
};
/** Kubernetes expands $(VAR) in command and args from the container's env; fieldRefs take the given values. */
const expand = (args: string[], c: Container, fields: Record<string, string>) => args.map((a) => a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (_, name: string) => {
  const e = c.env?.find((x) => x.name === name);
  assert.ok(e, `$(${name}) in the args of ${c.name} is not one of its env variables`);
  const v = e.value ?? (e.valueFrom?.fieldRef ? fields[e.valueFrom.fieldRef.fieldPath] : undefined);
  assert.ok(v !== undefined, `env ${name} of ${c.name} has no value this test knows`);
  return v;
}));
const envOf = (c: Container, fields: Record<string, string>): Record<string, string> =>
  Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? fields[e.valueFrom?.fieldRef?.fieldPath ?? ''] ?? '']));

/** The files the pod's volumes would hold, written under a temporary root; returns the path each mount path maps to. */
function podFiles(spec: PodSpec, c: Container, content: Record<string, string>): { root: string; map: (path: string) => string } {
  const root = mkdtempSync(join(tmpdir(), 'strait-manifest-'));
  const mounts = c.volumeMounts ?? [];
  for (const m of mounts) {
    const v = spec.volumes?.find((x) => x.name === m.name);
    assert.ok(v, `volumeMount ${m.name} of ${c.name} names no volume of the pod`);
    const dir = join(root, m.mountPath);
    mkdirSync(dir, { recursive: true });
    for (const s of v.projected?.sources ?? []) if (s.serviceAccountToken) writeFileSync(join(dir, s.serviceAccountToken.path), content['token'] ?? '');
    if (v.configMap) for (const [key, value] of Object.entries(content)) if (key.startsWith(`${v.configMap.name}/`)) writeFileSync(join(dir, key.slice(v.configMap.name.length + 1)), value);
  }
  return {
    root,
    map: (path: string) => {
      const m = mounts.find((x) => path.startsWith(`${x.mountPath}/`));
      return m ? join(root, path) : path;
    },
  };
}

/** The options a subcommand's own parser takes from these args; fails on anything it does not know. */
function parseFlags(cmd: ReturnType<typeof controllerCommand>, args: string[]): Record<string, unknown> {
  cmd.exitOverride();
  const { operands, unknown } = cmd.parseOptions(args);
  assert.deepEqual(unknown, [], `strait ${cmd.name()} does not know ${unknown.join(' ')}`);
  assert.deepEqual(operands, [], `strait ${cmd.name()} takes no operands, got ${operands.join(' ')}`);
  return cmd.opts();
}

// The controller's Kubernetes settings (helper D's module): loaded by path, so that this branch builds without it.
async function kubeControllerDefaults(): Promise<Record<string, string>> {
  const file = findPackageFile(import.meta.url, 'dist/src/controller/kube/kube-config.js');
  assert.ok(file, 'src/controller/kube/kube-config.ts (the controller\'s Kubernetes settings) is not built: merge the kube-ctl branch');
  return (await import(file)) as Record<string, string>;
}

test('selectors pick exactly their own pod templates, and the Service and PodDisruptionBudget select the controller', () => {
  const workloads = objects.filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet') as Workload[];
  for (const w of workloads) {
    assert.ok(matches(w.spec.selector.matchLabels, w.spec.template.metadata.labels), `${w.kind} ${w.metadata.name}: selector does not match its template`);
    for (const other of workloads) if (other !== w) assert.ok(!matches(w.spec.selector.matchLabels, other.spec.template.metadata.labels), `${w.kind} ${w.metadata.name} also selects ${other.metadata.name}'s pods`);
  }
  const selecting = (sel: Record<string, string>) => workloads.filter((w) => matches(sel, w.spec.template.metadata.labels)).map((w) => w.metadata.name);
  assert.deepEqual(selecting(service.spec.selector), ['strait-controller']);
  const pdb = find<ManifestObject & { spec: { selector: { matchLabels: Record<string, string> } } }>('PodDisruptionBudget', 'strait-controller');
  assert.deepEqual(selecting(pdb.spec.selector.matchLabels), ['strait-controller']);
  for (const o of objects) assert.equal(o.metadata.labels?.[PART_OF_LABEL], PART_OF_VALUE, `${o.kind} ${o.metadata.name} lacks ${PART_OF_LABEL}: ${PART_OF_VALUE} (uninstall finds objects by it)`);
  for (const o of objects) if (o.kind !== 'ClusterRole' && o.kind !== 'ClusterRoleBinding' && o.kind !== 'Namespace') assert.equal(o.metadata.namespace, SYSTEM_NAMESPACE, `${o.kind} ${o.metadata.name}`);
});

test('the Service leads to the ports the controller listens on by default, and its probes ask /ready there', () => {
  const expected: Record<string, number> = { 'grpc-xds': parseHostPort(DEFAULT_XDS_ADDRESS, 'xds').port, 'http-monitoring': parseHostPort(DEFAULT_ADMIN_ADDRESS, 'admin').port };
  assert.deepEqual(Object.fromEntries(service.spec.ports.map((p) => [p.name, p.port])), expected);
  for (const p of service.spec.ports) assert.equal(portNumber(controllerContainer, p.targetPort), p.port, `Service port ${p.name}`);
  for (const probe of [controllerContainer.readinessProbe, controllerContainer.livenessProbe, controllerContainer.startupProbe]) {
    assert.equal(probe?.httpGet?.path, '/ready');
    assert.equal(portNumber(controllerContainer, probe.httpGet.port), expected['http-monitoring']);
  }
});

test('the controller\'s arguments are flags of `strait controller` and make it listen where the Service and probes point', () => {
  assert.equal(controllerContainer.command, undefined, 'the controller runs the image\'s ENTRYPOINT (strait)');
  const [sub, ...rest] = controllerContainer.args ?? [];
  assert.equal(sub, 'controller');
  const flags = parseFlags(controllerCommand(), rest);
  assert.equal(flags['source'], 'kubernetes');
  const fields = { 'metadata.name': 'strait-controller-7d9f-abcde', 'metadata.namespace': SYSTEM_NAMESPACE };
  const config = parseControllerConfig(envOf(controllerContainer, fields), { ...(flags as object), xdsLimits: {}, doorLimits: {} }) as unknown as { xdsAddress: { host: string; port: number }; adminAddress: { host: string; port: number } };
  assert.deepEqual(config.xdsAddress, { host: '0.0.0.0', port: portNumber(controllerContainer, 'grpc-xds') });
  assert.deepEqual(config.adminAddress, { host: '0.0.0.0', port: portNumber(controllerContainer, 'http-monitoring') });
});

test('the ztunnel\'s command line is the CLI under node with the ztunnel\'s V8 options, in the image\'s package directory', () => {
  assert.deepEqual(ztunnelContainer.command, ['node', ...ZTUNNEL_NODE_OPTIONS, `${IMAGE_PACKAGE_DIR}/dist/src/cli/strait.js`]);
  // node itself accepts them (a misspelt V8 flag stops node before any code runs).
  const r = spawnSync(process.execPath, [...ZTUNNEL_NODE_OPTIONS, '-e', '0'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  // The Dockerfile puts the package there, with the compiled CLI, the addon and the capture scripts.
  const dockerfile = readFileSync(findPackageFile(import.meta.url, 'Dockerfile')!, 'utf8');
  assert.match(dockerfile, new RegExp(`^WORKDIR ${IMAGE_PACKAGE_DIR}$`, 'm'));
});

test('the ztunnel\'s arguments are flags of `strait ztunnel`; parsed, they capture, listen on the declared ports and reach the controller\'s Service', async (t) => {
  const [sub, ...rest] = ztunnelContainer.args ?? [];
  assert.equal(sub, 'ztunnel');
  const args = expand(rest, ztunnelContainer, { 'spec.nodeName': 'node-1' });
  const flags = parseFlags(ztunnelCommand(), args) as Record<string, string>;
  const root = '-----BEGIN CERTIFICATE-----\nMIIB (the mesh root, as the controller writes it)\n-----END CERTIFICATE-----\n';
  const files = podFiles(ztunnel.spec.template.spec, ztunnelContainer, { token: 'projected-token', 'strait-ca-root/root-cert.pem': root });
  t.after(() => rmSync(files.root, { recursive: true, force: true }));
  const cfg = parseZtunnelConfig(envOf(ztunnelContainer, { 'spec.nodeName': 'node-1' }), { ...flags, tokenFile: files.map(flags['tokenFile']!), rootCert: files.map(flags['rootCert']!) });
  assert.equal(cfg.nodeName, 'node-1');
  assert.equal(cfg.token, 'projected-token', '--token-file is the projected token\'s path');
  assert.equal(cfg.rootCertPem, root, '--root-cert is the root ConfigMap\'s key');
  assert.ok(cfg.capture, 'the DaemonSet runs with --capture');
  assert.equal(cfg.listenAddress, '0.0.0.0');
  assert.equal(cfg.adminAddress, '127.0.0.1', 'admin (/quitquitquit) stays on the node\'s loopback');
  assert.deepEqual(cfg.xdsAddress, { host: `${service.metadata.name}.${service.metadata.namespace}.svc`, port: service.spec.ports.find((p) => p.name === 'grpc-xds')!.port });
  // Declared ports are the ones it listens on (hostNetwork: they are the node's ports).
  const declared = Object.fromEntries((ztunnelContainer.ports ?? []).map((p) => [p.containerPort, p.name]));
  for (const port of [cfg.ports.outbound, cfg.ports.inboundPlaintext, cfg.ports.hbone, cfg.ports.metrics, cfg.ports.ready]) assert.ok(declared[port], `port ${port} is not declared`);
  assert.equal(cfg.ports.ready, PORT_READY);
  assert.equal(cfg.ports.metrics, PORT_METRICS);
  assert.equal(cfg.ports.admin, PORT_ADMIN);
  assert.equal(ztunnelContainer.readinessProbe?.httpGet?.path, '/healthz/ready');
  assert.equal(portNumber(ztunnelContainer, ztunnelContainer.readinessProbe!.httpGet!.port), cfg.ports.ready);
  assert.equal(portNumber(ztunnelContainer, ztunnelContainer.livenessProbe!.tcpSocket!.port), cfg.ports.ready);
  // Drain: the preStop hook POSTs /quitquitquit to the admin address and waits less than the grace period, which
  // is longer than the drain.
  const preStop = ztunnelContainer.lifecycle?.preStop?.exec?.command ?? [];
  assert.equal(preStop[0], 'node');
  const script = preStop.at(-1)!;
  assert.match(script, new RegExp(`host: '${cfg.adminAddress.replace(/\./g, '\\.')}', port: ${cfg.ports.admin}\\b`));
  assert.match(script, /'POST', '\/quitquitquit'/);
  const waitMs = Number(/Date\.now\(\) \+ (\d+)/.exec(script)?.[1]);
  const graceMs = (ztunnel.spec.template.spec.terminationGracePeriodSeconds ?? 30) * 1000;
  assert.ok(cfg.drainMs < waitMs && waitMs < graceMs, `--drain ${cfg.drainMs} ms < preStop wait ${waitMs} ms < grace ${graceMs} ms`);
});

test('the ztunnel pod: host network, NET_ADMIN and NET_RAW without privilege, every node, rolling one node at a time', () => {
  const spec = ztunnel.spec.template.spec;
  assert.equal(spec.hostNetwork, true);
  assert.equal(spec['dnsPolicy'], 'ClusterFirstWithHostNet', 'the host network still resolves the controller\'s Service name');
  const sc = ztunnelContainer.securityContext!;
  assert.equal(sc['privileged'], false);
  assert.deepEqual(sc.capabilities, { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] });
  assert.deepEqual(ztunnel.spec['updateStrategy'], { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
  const tolerations = spec.tolerations as { operator: string; effect?: string; key?: string }[];
  for (const effect of ['NoSchedule', 'NoExecute']) assert.ok(tolerations.some((t) => t.operator === 'Exists' && t.effect === effect && !t.key), `tolerates every ${effect} taint`);
  assert.equal(spec['automountServiceAccountToken'], false, 'the ztunnel needs no API token, only the projected one');
});

test('the projected token is for the controller\'s default audience, and the Lease, CA Secret and root ConfigMap names are the controller\'s defaults', async () => {
  const d = await kubeControllerDefaults();
  const token = ztunnel.spec.template.spec.volumes!.flatMap((v) => v.projected?.sources ?? []).map((s) => s.serviceAccountToken).find(Boolean)!;
  assert.equal(token.audience, d['DEFAULT_TOKEN_AUDIENCE']);
  assert.ok(token.expirationSeconds >= 600, 'Kubernetes requires at least 10 minutes');
  const role = rbacOf(objects).roles.find((r) => r.kind === 'Role')!;
  const namesOf = (resource: string) => role.rules.filter((r) => r.resources.includes(resource)).flatMap((r) => r.resourceNames ?? []);
  assert.deepEqual(namesOf('leases'), [d['LEASE_NAME']]);
  assert.deepEqual(namesOf('secrets'), [d['DEFAULT_CA_SECRET']]);
  assert.equal(role.namespace, d['DEFAULT_SYSTEM_NAMESPACE']);
  const rootVolume = ztunnel.spec.template.spec.volumes!.find((v) => v.configMap)!;
  const waypointObjects = (await import(findPackageFile(import.meta.url, 'dist/src/controller/kube/waypoint-objects.js')!)) as Record<string, string>;
  assert.equal(rootVolume.configMap!.name, waypointObjects['ROOT_CONFIGMAP']);
  assert.equal(ROOT_CONFIGMAP, waypointObjects['ROOT_CONFIGMAP'], 'uninstall deletes the root ConfigMaps by the controller\'s name');
  assert.equal(d['ENV_WAYPOINT_IMAGE'], ENV_IMAGE);
  assert.ok(defaultImage().startsWith(`${d['IMAGE_REPOSITORY']}:`));
});

test('every ServiceAccount a pod or binding names exists, and only the controller is bound to any role', () => {
  const accounts = new Set(objects.filter((o) => o.kind === 'ServiceAccount').map((o) => `${o.metadata.namespace}/${o.metadata.name}`));
  for (const w of [controller, ztunnel]) assert.ok(accounts.has(`${w.metadata.namespace}/${w.spec.template.spec.serviceAccountName}`), `${w.metadata.name} runs as a ServiceAccount that exists`);
  const rbac = rbacOf(objects);
  for (const b of rbac.bindings) {
    for (const s of b.subjects) assert.ok(s.kind === 'ServiceAccount' && accounts.has(`${s.namespace}/${s.name}`), `${b.kind} ${b.name} binds ${s.kind} ${s.namespace}/${s.name}, which the install does not create`);
    assert.ok(rbac.roles.some((r) => r.kind === b.roleRef.kind && r.name === b.roleRef.name), `${b.kind} ${b.name} refers to ${b.roleRef.kind} ${b.roleRef.name}, which does not exist`);
  }
  assert.deepEqual(grantsFor(rbac, { namespace: SYSTEM_NAMESPACE, name: 'strait-ztunnel' }), [], 'the ztunnel asks nothing of the API server');
});

test('RBAC: list/watch exactly the kinds the source reads (the config model\'s, Nodes, and EndpointSlices for selector-less Services), writes only what the controller writes', () => {
  const grants = grantsFor(rbacOf(objects), { namespace: SYSTEM_NAMESPACE, name: 'strait-controller' });
  const readable = new Set(grants.filter((g) => g.verbs.includes('list') && g.verbs.includes('watch') && !g.namespace).flatMap((g) => g.apiGroups.flatMap((grp) => g.resources.map((r) => `${r}.${grp}`))));
  // Core kinds of the config model, as the API names their resources, plus what the source needs to place pods and endpoints.
  const modelCore = ['Namespace', 'Pod', 'Service', 'ConfigMap', 'Node'];
  for (const kind of modelCore) assert.ok(isSupportedKind(kind), `${kind} is a kind of the config model`);
  assert.ok(isSupportedKind('EndpointSlice'), 'EndpointSlice is a kind of the config model');
  const expected = new Set([
    ...modelCore.map((k) => `${k.toLowerCase()}s.`),
    'endpointslices.discovery.k8s.io',
    ...REQUIRED_CRDS.map((c) => c.name),
  ]);
  for (const c of REQUIRED_CRDS) assert.ok(isSupportedKind(c.kind), `${c.kind} is a kind of the config model`);
  assert.deepEqual([...readable].sort(), [...expected].sort());
  // No wildcard anywhere, and no verb outside Kubernetes' own.
  const verbs = new Set(['get', 'list', 'watch', 'create', 'update', 'patch', 'delete']);
  for (const g of grants) {
    for (const field of [g.apiGroups, g.resources, g.verbs]) assert.ok(!field.includes('*'), `${g.from}: no wildcards`);
    for (const v of g.verbs) assert.ok(verbs.has(v), `${g.from}: verb ${v}`);
  }
  // Secrets: only create, and get of the CA Secret, in strait-system; never list or watch.
  const sa = { verb: 'get', group: '', resource: 'secrets' };
  assert.ok(allowedBy(grants, { ...sa, namespace: SYSTEM_NAMESPACE, name: 'strait-ca' }));
  assert.equal(allowedBy(grants, { ...sa, namespace: SYSTEM_NAMESPACE, name: 'other' }), undefined);
  assert.equal(allowedBy(grants, { ...sa, namespace: 'default', name: 'strait-ca' }), undefined);
  assert.equal(allowedBy(grants, { verb: 'list', group: '', resource: 'secrets', namespace: SYSTEM_NAMESPACE }), undefined);
  // What the leader writes.
  for (const req of [
    { verb: 'update', group: 'gateway.networking.k8s.io', resource: 'gateways', subresource: 'status', namespace: 'shop', name: 'waypoint' },
    { verb: 'create', group: 'apps', resource: 'deployments', namespace: 'shop' },
    { verb: 'delete', group: '', resource: 'services', namespace: 'shop', name: 'waypoint' },
    { verb: 'create', group: '', resource: 'serviceaccounts', namespace: 'shop' },
    { verb: 'update', group: '', resource: 'configmaps', namespace: 'shop', name: 'strait-ca-root' },
    { verb: 'create', group: 'authentication.k8s.io', resource: 'tokenreviews' },
    { verb: 'update', group: 'coordination.k8s.io', resource: 'leases', namespace: SYSTEM_NAMESPACE, name: 'strait-controller' },
  ]) assert.ok(allowedBy(grants, req), `the controller may ${req.verb} ${req.resource}${req.subresource ? `/${req.subresource}` : ''}`);
  // ... and not the Gateways themselves, nor Leases elsewhere.
  assert.equal(allowedBy(grants, { verb: 'update', group: 'gateway.networking.k8s.io', resource: 'gateways', namespace: 'shop', name: 'waypoint' }), undefined);
  assert.equal(allowedBy(grants, { verb: 'update', group: 'coordination.k8s.io', resource: 'leases', namespace: 'kube-system', name: 'strait-controller' }), undefined);
});

test('RBAC list/watch is exactly what the Kubernetes source watches (its watchedKinds, every version it tries)', async () => {
  const file = findPackageFile(import.meta.url, 'dist/src/controller/sources/kube/kinds.js');
  assert.ok(file, 'src/controller/sources/kube/kinds.ts (what the Kubernetes source watches) is not built: merge the kube-src branch');
  const { watchedKinds } = (await import(file)) as { watchedKinds: (rootNamespace: string) => { types: { group: string; resource: string }[]; namespace?: string }[] };
  const grants = grantsFor(rbacOf(objects), { namespace: SYSTEM_NAMESPACE, name: 'strait-controller' });
  const watched = new Set<string>();
  for (const k of watchedKinds('istio-system')) {
    for (const t of k.types) {
      watched.add(`${t.resource}.${t.group}`);
      for (const verb of ['list', 'watch']) assert.ok(allowedBy(grants, { verb, group: t.group, resource: t.resource, ...(k.namespace ? { namespace: k.namespace } : {}) }), `the source ${verb}es ${t.resource}.${t.group}, which RBAC does not grant`);
    }
  }
  const granted = grants.filter((g) => g.verbs.includes('list') || g.verbs.includes('watch')).flatMap((g) => g.apiGroups.flatMap((grp) => g.resources.map((r) => `${r}.${grp}`)));
  assert.deepEqual(granted.filter((r) => !watched.has(r)), [], 'RBAC grants list/watch of kinds the source never reads');
});

test('the RBAC reader of test/helpers agrees with the API server double\'s authorizer on the controller\'s requests', () => {
  const rbac = rbacOf(objects);
  const grants = grantsFor(rbac, { namespace: SYSTEM_NAMESPACE, name: 'strait-controller' });
  const store: RbacObjects = {
    clusterRoles: () => objects.filter((o) => o.kind === 'ClusterRole') as never,
    roles: (ns) => objects.filter((o) => o.kind === 'Role' && o.metadata.namespace === ns) as never,
    clusterRoleBindings: () => objects.filter((o) => o.kind === 'ClusterRoleBinding') as never,
    roleBindings: (ns) => objects.filter((o) => o.kind === 'RoleBinding' && o.metadata.namespace === ns) as never,
  };
  const user = serviceAccountUser(SYSTEM_NAMESPACE, 'strait-controller');
  const cases = [];
  for (const verb of ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete']) {
    for (const [group, resource, subresource] of [['', 'pods'], ['', 'secrets'], ['', 'configmaps'], ['coordination.k8s.io', 'leases'], ['gateway.networking.k8s.io', 'gateways'], ['gateway.networking.k8s.io', 'gateways', 'status'], ['apps', 'deployments'], ['discovery.k8s.io', 'endpointslices'], ['authentication.k8s.io', 'tokenreviews']] as const) {
      for (const namespace of [SYSTEM_NAMESPACE, 'shop', undefined]) {
        for (const name of ['strait-ca', 'strait-controller', 'other', undefined]) {
          const req = { verb, group, resource, ...(subresource ? { subresource } : {}), ...(namespace ? { namespace } : {}), ...(name ? { name } : {}) };
          cases.push(req);
          assert.equal(allowedBy(grants, req) !== undefined, authorize(store, user, req).allowed, JSON.stringify(req));
        }
      }
    }
  }
  assert.ok(cases.length > 500);
});

test('every container runs the image daemonset.yaml names, which is this version\'s, and STRAIT_IMAGE names the same', () => {
  assert.equal(imageOf(objects), defaultImage());
  assert.equal(controllerContainer.env?.find((e) => e.name === ENV_IMAGE)?.value, defaultImage());
});
