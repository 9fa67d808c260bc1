/**
 * The mesh CA root kept in a Secret (`--ca-secret`, keys ca-cert.pem and ca-key.pem, type Opaque) so that every
 * controller replica signs with the same root and a restart keeps it. At start each replica reads the Secret; when it
 * is absent the leader creates it (POST: a 409 AlreadyExists means another replica won, and its root is read
 * instead) while the others wait for it, for a bounded time, saying so in the log. The Secret is never overwritten.
 */
import { StraitError, errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { CertificateAuthority } from '../../identity/index.js';
import { isConflict, withTimeout } from './kube-errors.js';

export const CA_SECRET_CERT_KEY = 'ca-cert.pem';
export const CA_SECRET_KEY_KEY = 'ca-key.pem';

export interface SecretObject {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: { name: string; namespace: string; labels?: Record<string, string>; [k: string]: unknown };
  type?: string;
  data?: Record<string, string>;
}

export interface SecretApi {
  /** Undefined when absent (404). */
  get(namespace: string, name: string): Promise<SecretObject | undefined>;
  /** POST; fails with status 409 when it exists. */
  create(secret: SecretObject): Promise<SecretObject>;
}

export interface CaSecretOptions {
  api: SecretApi;
  namespace: string;
  name: string;
  trustDomain: string;
  /** Whether this replica may create the Secret now (the leader, or every replica without leader election). */
  mayCreate: () => boolean;
  /** How long a replica waits for the Secret before giving up. */
  waitMs: number;
  /** Between two reads while waiting. */
  pollMs: number;
  logger: Logger;
  /** Between waiting log lines. */
  logEveryMs?: number;
}

export interface CaRootPem {
  certPem: string;
  keyPem: string;
  /** Whether this replica created the Secret. */
  created: boolean;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function decode(secret: SecretObject, where: string): { certPem: string; keyPem: string } {
  const read = (key: string) => {
    const b64 = secret.data?.[key];
    if (!b64) throw new StraitError('STRAIT_ERR_CA_ROOT', `${where} has no key "${key}": it must hold ${CA_SECRET_CERT_KEY} and ${CA_SECRET_KEY_KEY} (PEM). Restore them, or delete the Secret to generate a new root (which re-keys the mesh)`);
    return Buffer.from(b64, 'base64').toString('utf8');
  };
  return { certPem: read(CA_SECRET_CERT_KEY), keyPem: read(CA_SECRET_KEY_KEY) };
}

/** Reads the root from the Secret, creating it when absent and allowed; throws STRAIT_ERR_CA_ROOT after waitMs. */
export async function loadOrCreateCaSecret(o: CaSecretOptions): Promise<CaRootPem> {
  const where = `Secret ${o.namespace}/${o.name}`;
  const started = Date.now();
  const callTimeoutMs = Math.max(1000, Math.min(10_000, o.waitMs));
  let lastLog = 0;
  let lastError: string | undefined;
  for (;;) {
    try {
      const existing = await withTimeout(o.api.get(o.namespace, o.name), callTimeoutMs, `reading ${where}`);
      if (existing) return { ...decode(existing, where), created: false };
      if (o.mayCreate()) {
        const { certPem, keyPem } = await CertificateAuthority.generateRootPem({ trustDomain: o.trustDomain });
        const secret: SecretObject = {
          apiVersion: 'v1', kind: 'Secret', type: 'Opaque',
          metadata: { name: o.name, namespace: o.namespace, labels: { 'app.kubernetes.io/managed-by': 'strait-controller' } },
          data: { [CA_SECRET_CERT_KEY]: Buffer.from(certPem).toString('base64'), [CA_SECRET_KEY_KEY]: Buffer.from(keyPem).toString('base64') },
        };
        try {
          await withTimeout(o.api.create(secret), callTimeoutMs, `creating ${where}`);
          o.logger.info({ secret: where }, 'generated the mesh CA root and stored it in a Secret');
          return { certPem, keyPem, created: true };
        } catch (err) {
          // Another replica created it first: read theirs on the next turn, at once.
          if (isConflict(err)) continue;
          throw err;
        }
      }
      lastError = undefined;
    } catch (err) {
      if (err instanceof StraitError && err.code === 'STRAIT_ERR_CA_ROOT') throw err;
      lastError = errorMessage(err);
    }
    const waited = Date.now() - started;
    if (waited >= o.waitMs) {
      throw new StraitError('STRAIT_ERR_CA_ROOT', lastError
        ? `cannot read the mesh CA root from ${where} after ${Math.round(waited / 1000)} s: ${lastError}`
        : `no mesh CA root in ${where} after ${Math.round(waited / 1000)} s: the leader creates it; check that one controller replica holds the Lease (kubectl get lease -n ${o.namespace}) and can create Secrets`);
    }
    if (Date.now() - lastLog >= (o.logEveryMs ?? 5000)) {
      lastLog = Date.now();
      o.logger.info({ secret: where, waitedMs: waited, ...(lastError ? { err: lastError } : {}) }, lastError ? 'waiting for the CA Secret: the API server is not answering' : 'waiting for the leader to create the CA Secret');
    }
    await sleep(o.pollMs);
  }
}

/** The CA of the Secret's root (no files). */
export function caFromSecret(root: CaRootPem, o: { namespace: string; name: string; trustDomain: string; workloadTtlMs: number }): CertificateAuthority {
  return CertificateAuthority.fromRootPem({ certPem: root.certPem, keyPem: root.keyPem, where: `Secret ${o.namespace}/${o.name}`, trustDomain: o.trustDomain, workloadTtlMs: o.workloadTtlMs });
}
