import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { StraitError, errorMessage } from '../common/errors.js';

/** Who a proxy says it is, from its gRPC metadata. */
export type Caller = { type: 'node'; node: string } | { type: 'waypoint'; namespace: string; name: string };

export const HEADER_NODE = 'x-strait-node';
export const HEADER_WAYPOINT = 'x-strait-waypoint';
const SECRET_FILE = 'bootstrap-secret';

export function callerSubject(c: Caller): string {
  return c.type === 'node' ? `node/${c.node}` : `waypoint/${c.namespace}/${c.name}`;
}

/** File name under <dataDir>/tokens/ holding a caller's token. */
export function tokenFileName(c: Caller): string {
  return c.type === 'node' ? `node-${c.node}.token` : `waypoint-${c.namespace}-${c.name}.token`;
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

/** Reads the caller and bearer token from gRPC metadata values; throws STRAIT_ERR_AUTH_TOKEN when absent or malformed. */
export function callerFromHeaders(get: (key: string) => string | undefined): { caller: Caller; token: string } {
  const auth = get('authorization');
  const m = auth ? /^Bearer\s+(\S+)$/i.exec(auth) : null;
  if (!m) throw new StraitError('STRAIT_ERR_AUTH_TOKEN', 'no bootstrap token: send metadata "authorization: Bearer <token>" (the token is in the controller\'s data directory under tokens/)');
  const node = get(HEADER_NODE);
  const wp = get(HEADER_WAYPOINT);
  if (node && !wp) return { caller: { type: 'node', node }, token: m[1] };
  if (wp && !node) {
    const [namespace, name, ...rest] = wp.split('/');
    if (namespace && name && rest.length === 0) return { caller: { type: 'waypoint', namespace, name }, token: m[1] };
    throw new StraitError('STRAIT_ERR_AUTH_TOKEN', `metadata ${HEADER_WAYPOINT} must be "<namespace>/<name>", got "${wp}"`);
  }
  throw new StraitError('STRAIT_ERR_AUTH_TOKEN', `say who is calling with exactly one of the metadata keys ${HEADER_NODE} or ${HEADER_WAYPOINT}`);
}
