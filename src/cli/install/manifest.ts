/**
 * What `strait install` applies and `strait uninstall` removes: the objects of the package's daemonset.yaml (the
 * same file `kubectl apply -f` takes), with the image replaced, and the short-lived DaemonSet that removes the capture
 * rules from every node on uninstall. Pure apart from reading daemonset.yaml.
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments, stringify } from 'yaml';
import { StraitError } from '../../common/errors.js';
import { findPackageFile } from '../../common/package-file.js';

export const MANIFEST_FILE = 'daemonset.yaml';
export const SYSTEM_NAMESPACE = 'strait-system';
/** Every object of the install carries this label (uninstall and `kubectl get -l` find them by it). */
export const PART_OF_LABEL = 'app.kubernetes.io/part-of';
export const PART_OF_VALUE = 'strait';
export const IMAGE_REPOSITORY = 'ghcr.io/strait-mesh/strait';
/** The environment variable that gives the controller the image of the waypoints it creates (--waypoint-image). */
export const ENV_IMAGE = 'STRAIT_IMAGE';
export const CLEANUP_NAME = 'strait-node-cleanup';
/** Written by the clean-up container once node-teardown.sh succeeded; its readiness probe looks for it. */
export const CLEANUP_DONE_FILE = '/tmp/strait-node-clean';
/** Where the image keeps the package (Dockerfile WORKDIR). */
export const IMAGE_PACKAGE_DIR = '/opt/strait';

/** A Kubernetes object as the manifests hold it: only what install needs is typed. */
export interface ManifestObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

interface Container { name: string; image?: string; env?: { name: string; value?: string }[]; [k: string]: unknown }
interface PodTemplateOwner { spec: { template: { spec: { containers: Container[]; initContainers?: Container[]; [k: string]: unknown }; [k: string]: unknown }; [k: string]: unknown } }

const fail = (msg: string) => new StraitError('STRAIT_ERR_INSTALL', msg);

export function packageVersion(): string {
  const file = findPackageFile(import.meta.url, 'package.json');
  if (!file) throw fail('package.json is not in this package: reinstall Strait');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

/** The image this version of Strait installs unless told otherwise. */
export function defaultImage(): string {
  return `${IMAGE_REPOSITORY}:${packageVersion()}`;
}

/** The package's daemonset.yaml. */
export function manifestPath(): string {
  const file = findPackageFile(import.meta.url, MANIFEST_FILE);
  if (!file) throw fail(`${MANIFEST_FILE} is not in this package: reinstall Strait (the image keeps it in ${IMAGE_PACKAGE_DIR})`);
  return file;
}

/** Every document of a multi-document YAML text, in order; empty documents are skipped. */
export function parseManifest(text: string, file: string): ManifestObject[] {
  const out: ManifestObject[] = [];
  parseAllDocuments(text).forEach((doc, i) => {
    if (doc.errors.length > 0) throw fail(`${file}: document ${i + 1}: ${doc.errors[0]!.message}`);
    const obj = doc.toJS() as unknown;
    if (obj === null || obj === undefined) return;
    const o = obj as Partial<ManifestObject>;
    if (typeof o !== 'object' || typeof o.apiVersion !== 'string' || typeof o.kind !== 'string' || typeof o.metadata?.name !== 'string') {
      throw fail(`${file}: document ${i + 1} is not a Kubernetes object (apiVersion, kind and metadata.name)`);
    }
    out.push(o as ManifestObject);
  });
  return out;
}

function templateOwners(objects: readonly ManifestObject[]): (ManifestObject & PodTemplateOwner)[] {
  return objects.filter((o) => ['Deployment', 'DaemonSet'].includes(o.kind) && o.apiVersion === 'apps/v1') as (ManifestObject & PodTemplateOwner)[];
}

function containersOf(o: PodTemplateOwner): Container[] {
  return [...(o.spec.template.spec.initContainers ?? []), ...o.spec.template.spec.containers];
}

/** The image the manifests run (every container's; they must agree). */
export function imageOf(objects: readonly ManifestObject[]): string {
  const images = new Set(templateOwners(objects).flatMap((o) => containersOf(o).map((c) => c.image ?? '')));
  if (images.size !== 1) throw fail(`the manifests' containers name ${images.size === 0 ? 'no image' : `several images (${[...images].join(', ')})`}: every Strait container runs the one image`);
  return [...images][0]!;
}

/** A copy of the objects where every container and STRAIT_IMAGE names `image`. */
export function withImage(objects: readonly ManifestObject[], image: string): ManifestObject[] {
  if (!/^[^\s]+$/.test(image)) throw fail(`--image "${image}" is not an image reference (e.g. ${IMAGE_REPOSITORY}:${packageVersion()} or registry.example/strait@sha256:...)`);
  const copy = structuredClone(objects) as ManifestObject[];
  for (const o of templateOwners(copy)) {
    for (const c of containersOf(o)) {
      c.image = image;
      for (const e of c.env ?? []) if (e.name === ENV_IMAGE) e.value = image;
    }
  }
  return copy;
}

export interface RenderOptions {
  /** Default: the image daemonset.yaml names (ghcr.io/strait-mesh/strait:<version>). */
  image?: string;
  /** Default: the package's daemonset.yaml. */
  file?: string;
}

/** The objects `strait install` applies, in the order they are applied (the file's). */
export function renderInstall(opts: RenderOptions = {}): ManifestObject[] {
  const file = opts.file ?? manifestPath();
  const objects = parseManifest(readFileSync(file, 'utf8'), file);
  return opts.image ? withImage(objects, opts.image) : objects;
}

/**
 * The DaemonSet `strait uninstall` runs once the ztunnels are gone: on every node (the ztunnel's tolerations, host
 * network, NET_ADMIN and NET_RAW, the node's iptables lock), node-teardown.sh removes whatever capture rules are left
 * (a ztunnel killed before it could remove them, or one that never stopped cleanly), then the container marks itself
 * done and waits; its readiness probe reports done, so the DaemonSet's numberReady counts the clean nodes.
 */
export function cleanupDaemonSet(installed: readonly ManifestObject[]): ManifestObject {
  const ztunnel = templateOwners(installed).find((o) => o.kind === 'DaemonSet' && o.metadata.name === 'strait-ztunnel');
  if (!ztunnel) throw fail('the manifests hold no DaemonSet strait-ztunnel: the node clean-up copies its scheduling and capabilities');
  const zt = ztunnel.spec.template.spec;
  const zc = zt.containers.find((c) => c.name === 'ztunnel') ?? zt.containers[0]!;
  // The same iptables backend as the ztunnel's, when it was pinned (STRAIT_IPTABLES / STRAIT_IP6TABLES).
  const env = (zc.env ?? []).filter((e) => e.name === 'STRAIT_IPTABLES' || e.name === 'STRAIT_IP6TABLES');
  const labels = { 'app.kubernetes.io/name': CLEANUP_NAME, [PART_OF_LABEL]: PART_OF_VALUE };
  const lockMount = ((zc['volumeMounts'] as { name: string; mountPath: string }[] | undefined) ?? []).filter((m) => m.name === 'xtables-lock');
  const lockVolume = ((zt['volumes'] as { name: string }[] | undefined) ?? []).filter((v) => v.name === 'xtables-lock');
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: CLEANUP_NAME, namespace: ztunnel.metadata.namespace ?? SYSTEM_NAMESPACE, labels },
    spec: {
      selector: { matchLabels: { 'app.kubernetes.io/name': CLEANUP_NAME } },
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '100%' } },
      template: {
        metadata: { labels },
        spec: {
          automountServiceAccountToken: false,
          hostNetwork: true,
          ...(zt['priorityClassName'] ? { priorityClassName: zt['priorityClassName'] } : {}),
          tolerations: zt['tolerations'] ?? [{ operator: 'Exists' }],
          terminationGracePeriodSeconds: 1,
          containers: [{
            name: 'node-cleanup',
            image: zc.image,
            imagePullPolicy: zc['imagePullPolicy'] ?? 'IfNotPresent',
            command: ['/bin/sh', '-c', `${IMAGE_PACKAGE_DIR}/scripts/iptables/node-teardown.sh && touch ${CLEANUP_DONE_FILE} && exec sleep infinity`],
            ...(env.length ? { env } : {}),
            readinessProbe: { exec: { command: ['test', '-f', CLEANUP_DONE_FILE] }, periodSeconds: 2 },
            resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '64Mi' } },
            securityContext: {
              runAsUser: 0, runAsNonRoot: false, privileged: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true,
              capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] },
            },
            volumeMounts: [...lockMount, { name: 'tmp', mountPath: '/tmp' }],
          }],
          volumes: [...lockVolume, { name: 'tmp', emptyDir: {} }],
        },
      },
    },
  };
}

/** objects as `-o yaml` (documents separated by ---) or `-o json` (a v1 List, as kubectl prints several objects). */
export function formatObjects(objects: readonly unknown[], format: 'yaml' | 'json'): string {
  if (format === 'json') return JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }, null, 2) + '\n';
  return objects.map((o) => stringify(o, { lineWidth: 0 })).join('---\n');
}
