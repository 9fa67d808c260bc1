/**
 * Bench helper: writes a synthetic mesh (namespaces, nodes, pods, services, AuthorizationPolicies) as
 * manifest files into a config directory, the way an operator would lay it out:
 *
 *   00-namespaces.yaml  01-nodes.yaml  pods/<ns>.yaml  services/<ns>.yaml  policies/<ns>/<policy>.yaml
 *
 * Documents are JSON objects separated by `---` (YAML is a superset of JSON). Every address is in
 * 127.0.0.0/8: nodes 127.100.0.0/16, pods 127.64.0.0/16, service VIPs 127.96.0.0/16 (data only; nothing
 * binds them). Shape: pods are spread evenly over namespaces and nodes; every service selects
 * pods/services pods (app=svc-NN) of its namespace; each app has its own service account; each policy
 * selects one app and allows a few namespaces and principals on its port.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface MeshShape {
  pods: number;
  services: number;
  policies: number;
  namespaces: number;
  nodes: number;
}

export const FULL_MESH: MeshShape = { pods: 10_000, services: 2_000, policies: 500, namespaces: 50, nodes: 100 };

export interface PodInfo {
  namespace: string;
  name: string;
  serviceAccount: string;
  node: string;
}

export interface GeneratedMesh {
  dir: string;
  shape: MeshShape;
  nodes: string[];
  pods: PodInfo[];
  podsByNode: Map<string, PodInfo[]>;
  /** Resources each ztunnel should hold. */
  expected: { workloads: number; services: number; authorizations: number };
  files: number;
  bytes: number;
  /** The policy the propagation bench edits: its resource name and file. */
  editTarget: { resourceName: string; file: string; namespace: string; name: string };
  /** Rewrites the edit target with variant 'a' (as generated) or 'b'; returns the marker its body then carries. */
  writeEditVariant(variant: 'a' | 'b'): string;
  /**
   * Rewrites every pod file (or the first `namespaces` of them) with label `rollout: <value>` on every pod in it (as
   * a rolling restart would), so the next push carries those Workloads; returns the number of files written.
   */
  relabelAllPods(value: string, namespaces?: number): number;
}

const docs = (objs: unknown[]): string => objs.map((o) => JSON.stringify(o)).join('\n---\n') + '\n';
const pad = (n: number, width: number) => String(n).padStart(width, '0');
const ip = (second: number, i: number) => `127.${second}.${(i >> 8) & 255}.${i & 255}`;

export function generateMesh(dir: string, shape: MeshShape, trustDomain = 'cluster.local'): GeneratedMesh {
  const nsName = (n: number) => `ns-${pad(n, 2)}`;
  const nodeName = (n: number) => `node-${pad(n, 3)}`;
  const svcPerNs = Math.ceil(shape.services / shape.namespaces);
  const podsPerNs = Math.ceil(shape.pods / shape.namespaces);
  const polPerNs = Math.ceil(shape.policies / shape.namespaces);
  const podsPerSvc = Math.max(1, Math.floor(podsPerNs / svcPerNs));
  let files = 0;
  let bytes = 0;
  const write = (rel: string, text: string) => {
    const p = join(dir, rel);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, text);
    files++;
    bytes += Buffer.byteLength(text);
    return p;
  };

  const namespaces = Array.from({ length: shape.namespaces }, (_, n) => nsName(n));
  write('00-namespaces.yaml', docs(namespaces.map((name) => ({
    apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'istio.io/dataplane-mode': 'ambient' } },
  }))));
  const nodes = Array.from({ length: shape.nodes }, (_, n) => nodeName(n));
  write('01-nodes.yaml', docs(nodes.map((name, n) => ({
    apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name } },
    status: { addresses: [{ type: 'InternalIP', address: ip(100, n + 1) }, { type: 'Hostname', address: name }] },
  }))));

  // Pods: namespace-major; pod k of a namespace belongs to app svc-(k / podsPerSvc); nodes round-robin over all pods.
  const pods: PodInfo[] = [];
  const podFiles: { rel: string; docs: { metadata: { labels: Record<string, string> } }[] }[] = [];
  const podsByNode = new Map<string, PodInfo[]>(nodes.map((n) => [n, []]));
  let podIndex = 0;
  let svcIndex = 0;
  let services = 0;
  for (let n = 0; n < shape.namespaces; n++) {
    const ns = nsName(n);
    const podDocs: unknown[] = [];
    const svcDocs: unknown[] = [];
    for (let k = 0; k < podsPerNs && podIndex < shape.pods; k++, podIndex++) {
      const app = `svc-${pad(Math.min(svcPerNs - 1, Math.floor(k / podsPerSvc)), 3)}`;
      const name = `${app}-${pad(k, 4)}`;
      const node = nodes[podIndex % nodes.length]!;
      const info = { namespace: ns, name, serviceAccount: app, node };
      pods.push(info);
      podsByNode.get(node)!.push(info);
      const podIp = ip(64, podIndex + 1);
      podDocs.push({
        apiVersion: 'v1', kind: 'Pod',
        metadata: { name, namespace: ns, labels: { app, version: k % 2 === 0 ? 'v1' : 'v2', 'pod-template-hash': `h${pad(k % 7, 2)}` } },
        spec: {
          nodeName: node, serviceAccountName: app,
          containers: [{ name: 'app', image: `registry.example/${app}:1.0`, ports: [{ name: 'http', containerPort: 8080 }, { name: 'grpc', containerPort: 9090 }] }],
        },
        status: { phase: 'Running', podIP: podIp, podIPs: [{ ip: podIp }] },
      });
    }
    for (let s = 0; s < svcPerNs && services < shape.services; s++, services++, svcIndex++) {
      const name = `svc-${pad(s, 3)}`;
      svcDocs.push({
        apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns, labels: { app: name } },
        spec: {
          selector: { app: name }, clusterIP: ip(96, svcIndex + 1),
          ports: [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'grpc', port: 9090, targetPort: 'grpc', appProtocol: 'grpc' }],
        },
      });
    }
    write(`pods/${ns}.yaml`, docs(podDocs));
    podFiles.push({ rel: `pods/${ns}.yaml`, docs: podDocs as { metadata: { labels: Record<string, string> } }[] });
    write(`services/${ns}.yaml`, docs(svcDocs));
  }

  let policies = 0;
  let editTarget: GeneratedMesh['editTarget'] | undefined;
  const policyDoc = (ns: number, p: number, variant: 'a' | 'b') => {
    const namespace = nsName(ns);
    const app = `svc-${pad(p % svcPerNs, 3)}`;
    const deny = p % 10 === 9;
    const callers = [nsName((ns + 1) % shape.namespaces), nsName((ns + 7) % shape.namespaces)];
    return {
      apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy',
      metadata: { name: `${deny ? 'deny' : 'allow'}-${app}`, namespace },
      spec: deny
        ? { selector: { matchLabels: { app } }, action: 'DENY', rules: [{ from: [{ source: { notNamespaces: [namespace, ...callers] } }] }] }
        : {
            selector: { matchLabels: { app } },
            action: 'ALLOW',
            rules: [
              { from: [{ source: { namespaces: [namespace, ...callers] } }], to: [{ operation: { ports: ['8080'] } }] },
              {
                from: [{ source: { principals: [`${trustDomain}/ns/${callers[0]}/sa/svc-000`, `${trustDomain}/ns/${namespace}/sa/edit-${variant}`] } }],
                to: [{ operation: { ports: ['9090'] } }],
              },
            ],
          },
    };
  };
  const policyPath = (ns: number, name: string) => `policies/${nsName(ns)}/${name}.yaml`;
  for (let n = 0; n < shape.namespaces; n++) {
    for (let p = 0; p < polPerNs && policies < shape.policies; p++, policies++) {
      const doc = policyDoc(n, p, 'a');
      const file = write(policyPath(n, doc.metadata.name), docs([doc]));
      // The edit target: an ALLOW policy in the middle namespace.
      if (n === Math.floor(shape.namespaces / 2) && p === 3) {
        editTarget = { resourceName: `authz/${nsName(n)}/${doc.metadata.name}`, file, namespace: nsName(n), name: doc.metadata.name };
      }
    }
  }
  if (!editTarget) throw new Error('mesh too small to have an edit target');
  const target = editTarget;
  const targetNs = Math.floor(shape.namespaces / 2);

  return {
    dir,
    shape,
    nodes,
    pods,
    podsByNode,
    expected: { workloads: pods.length, services, authorizations: policies },
    files,
    bytes,
    editTarget: target,
    writeEditVariant(variant) {
      writeFileSync(target.file, docs([policyDoc(targetNs, 3, variant)]));
      return `/sa/edit-${variant}`;
    },
    relabelAllPods(value, namespaces = podFiles.length) {
      for (const f of podFiles.slice(0, namespaces)) {
        for (const d of f.docs) d.metadata.labels['rollout'] = value;
        writeFileSync(join(dir, f.rel), docs(f.docs));
      }
      return Math.min(namespaces, podFiles.length);
    },
  };
}
