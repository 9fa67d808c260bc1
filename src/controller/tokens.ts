import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { StraitError, errorMessage } from '../common/errors.js';

/**
 * Who a caller says it is, from its gRPC metadata. `debug` is the operator's read-only xDS credential (any view, no
 * certificates); it is never written to a file: `strait token --debug` prints it.
 */
export type Caller = { type: 'node'; node: string } | { type: 'waypoint'; namespace: string; name: string } | { type: 'debug' };

export const HEADER_NODE = 'x-strait-node';
export const HEADER_WAYPOINT = 'x-strait-waypoint';
export const HEADER_DEBUG = 'x-strait-debug';
const SECRET_FILE = 'bootstrap-secret';

export function callerSubject(c: Caller): string {
  return c.type === 'node' ? `node/${c.node}` : c.type === 'waypoint' ? `waypoint/${c.namespace}/${c.name}` : 'debug';
}

/** File name under <dataDir>/tokens/ holding a caller's token. */
export function tokenFileName(c: Caller): string {
  return c.type === 'node' ? `node-${c.node}.token` : c.type === 'waypoint' ? `waypoint-${c.namespace}-${c.name}.token` : 'debug.token';
}

/** A refused credential; `reason` is the metric label (strait_auth_refused_total{reason}). */
export class CredentialError extends StraitError {
  constructor(
    readonly reason: 'no_token' | 'bad_caller' | 'wrong_token' | 'wrong_audience' | 'expired_token',
    message: string,
  ) {
    super('STRAIT_ERR_AUTH_TOKEN', message);
  }
}

/**
 * Local bootstrap tokens (until Kubernetes token review): token = HMAC-SHA256(secret, subject), so every node
 * or waypoint the controller will ever know has a token without a registry; the secret lives in the data
 * directory (mode 0600) and survives restarts.
 */
export class BootstrapTokens {
  private constructor(private readonly secret: Buffer, private readonly dir: string) {}

  static async loadOrCreate(dataDir: string, create = true): Promise<BootstrapTokens> {
    const file = join(dataDir, SECRET_FILE);
    let secret: Buffer;
    try {
      secret = Buffer.from((await readFile(file, 'utf8')).trim(), 'hex');
      if (secret.length < 32) throw new Error('shorter than 32 bytes');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !create) {
        throw new StraitError('STRAIT_ERR_CONFIG', `no bootstrap secret in ${dataDir}: is it the data directory of a controller that has started once?`);
      }
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new StraitError('STRAIT_ERR_CONFIG', `bootstrap secret ${file} is unusable (${errorMessage(err)}); remove it to generate a new one (all issued tokens change)`);
      }
      secret = randomBytes(32);
      await mkdir(dataDir, { recursive: true, mode: 0o700 });
      await writeFile(file, secret.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
    }
    return new BootstrapTokens(secret, join(dataDir, 'tokens'));
  }

  tokenFor(c: Caller): string {
    return createHmac('sha256', this.secret).update(callerSubject(c)).digest('base64url');
  }

  verify(c: Caller, token: string): boolean {
    const want = Buffer.from(this.tokenFor(c));
    const got = Buffer.from(token);
    return want.length === got.length && timingSafeEqual(want, got);
  }

  /** Writes <dataDir>/tokens/<file> (mode 0600) for a caller; returns the path. */
  async writeTokenFile(c: Caller): Promise<string> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const p = join(this.dir, tokenFileName(c));
    await writeFile(p, this.tokenFor(c) + '\n', { mode: 0o600 });
    await chmod(p, 0o600);
    return p;
  }
}

/** Longest authorization header read for a bootstrap token (a Kubernetes projected token is longer: see MAX_KUBE_TOKEN_BYTES). */
export const MAX_BOOTSTRAP_AUTH_BYTES = 1024;

/** Reads the caller and bearer token from gRPC metadata values; throws STRAIT_ERR_AUTH_TOKEN when absent or malformed. */
export function callerFromHeaders(get: (key: string) => string | undefined, maxAuthBytes = MAX_BOOTSTRAP_AUTH_BYTES): { caller: Caller; token: string } {
  const auth = get('authorization');
  const m = auth && auth.length <= maxAuthBytes ? /^Bearer\s+(\S+)$/i.exec(auth) : null;
  if (!m) throw new CredentialError('no_token', 'no bootstrap token: send metadata "authorization: Bearer <token>" (the token is in the controller\'s data directory under tokens/)');
  const node = get(HEADER_NODE);
  const wp = get(HEADER_WAYPOINT);
  const debug = get(HEADER_DEBUG);
  const given = [node, wp, debug].filter((v) => v !== undefined).length;
  if (given === 1 && node) return { caller: { type: 'node', node }, token: m[1] };
  if (given === 1 && debug) return { caller: { type: 'debug' }, token: m[1] };
  if (given === 1 && wp) {
    const [namespace, name, ...rest] = wp.split('/');
    if (namespace && name && rest.length === 0) return { caller: { type: 'waypoint', namespace, name }, token: m[1] };
    throw new CredentialError('bad_caller', `metadata ${HEADER_WAYPOINT} must be "<namespace>/<name>", got "${wp.slice(0, 100)}"`);
  }
  throw new CredentialError('bad_caller', `say who is calling with exactly one of the metadata keys ${HEADER_NODE}, ${HEADER_WAYPOINT} or ${HEADER_DEBUG}`);
}
