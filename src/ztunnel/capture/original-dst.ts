import { closeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIP, Socket, type Server } from 'node:net';
import { constants as osConstants } from 'node:os';
import { StraitError, bug, errorMessage } from '../../common/errors.js';
import { findPackageFile } from '../../common/package-file.js';

/**
 * The kernel's view of captured sockets (DESIGN §6a), through the project's one native addon
 * (src/ztunnel/capture/native/original_dst.cc, built by node-gyp into build/Release/original_dst.node):
 * - `originalDestination(socket)`: where a connection REDIRECTed to a ztunnel listener was going.
 * - `setMark` / `connectMarked`: the fwmark that the capture rules skip, so the ztunnel's own connections are not
 *   captured again. The NAT decision is made on a connection's first packet, so an outgoing connection must be
 *   marked before it connects: use `connectMarked`; `setMark` marks a socket that already has a file descriptor.
 * - `setTransparent`: IP_TRANSPARENT on a listening socket, so TPROXY can hand it connections addressed to a pod (the
 *   Service-VIP capture: such a connection's local address is the pod's address and port).
 * - `raiseNofileLimit`: RLIMIT_NOFILE's soft limit raised to the hard one (Node has no setrlimit).
 * The addon is loaded lazily: a process that never captures (the local mesh) runs without it.
 */

/** The fwmark on the ztunnel's own sockets that the capture rules skip (Istio's 1337); scripts/iptables default. */
export const DEFAULT_CAPTURE_MARK = 0x539;

export const ADDON_FILE = 'build/Release/original_dst.node';
const BUILD_HINT =
  'build it with `npm run build:native` (or `npm ci`, which runs node-gyp) on Linux with python3, make and a C++ compiler';

export interface OriginalDestination {
  host: string;
  port: number;
}

interface NativeError extends Error {
  errno?: number;
  syscall?: string;
}

interface Addon {
  originalDst(fd: number): { family: 4 | 6; host: string; port: number };
  setMark(fd: number, mark: number): void;
  getMark(fd: number): number;
  markedSocket(family: 4 | 6, mark: number): number;
  setTransparent(fd: number): void;
  raiseNofile(): { before: number; soft: number; hard: number };
}

/** The libuv TCP handle behind a net.Socket (Node internals: `fd` is -1 until the socket is opened). */
interface TcpHandle {
  fd?: number;
  open?: (fd: number) => number;
}

let loaded: { addon: Addon } | { error: string } | undefined;

function load(): { addon: Addon } | { error: string } {
  if (loaded) return loaded;
  if (process.platform !== 'linux') {
    loaded = { error: `the capture addon works only on Linux (this is ${process.platform})` };
    return loaded;
  }
  // From this module (dist/src/ztunnel/capture or src/ztunnel/capture) up to the package root holding build/.
  const file = findPackageFile(import.meta.url, ADDON_FILE);
  if (!file) {
    loaded = { error: `the capture addon (${ADDON_FILE}) is not built: ${BUILD_HINT}` };
    return loaded;
  }
  try {
    loaded = { addon: createRequire(import.meta.url)(file) as Addon };
  } catch (err) {
    loaded = { error: `the capture addon ${file} could not be loaded (${errorMessage(err)}): rebuild it; ${BUILD_HINT}` };
  }
  return loaded;
}

function addon(): Addon {
  const l = load();
  if ('error' in l) throw new StraitError('STRAIT_ERR_CAPTURE', l.error);
  return l.addon;
}

/** True when the native addon is built and loads, i.e. original destinations can be read and sockets marked. */
export function isOriginalDstAvailable(): boolean {
  return 'addon' in load();
}

/** Why the native addon cannot be used (what to do about it), or undefined when it loads. */
export function captureAddonError(): string | undefined {
  const l = load();
  return 'error' in l ? l.error : undefined;
}

function errnoName(errno: number | undefined): string {
  if (errno === undefined) return 'unknown error';
  for (const [name, value] of Object.entries(osConstants.errno)) if (value === errno) return name;
  return `errno ${errno}`;
}

function describe(socket: Socket): string {
  return `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'} -> ${socket.localAddress ?? '?'}:${socket.localPort ?? '?'}`;
}

function fdOf(socket: Socket, what: string): number {
  const fd = (socket as unknown as { _handle?: TcpHandle | null })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw new StraitError('STRAIT_ERR_CAPTURE', `${what}: the socket has no file descriptor (not connected yet, or already closed)`);
  }
  return fd;
}

const unmapped = (host: string): string => (host.startsWith('::ffff:') && isIP(host.slice(7)) === 4 ? host.slice(7) : host);

/**
 * Where the peer of an accepted, iptables-REDIRECTed connection was connecting to (SO_ORIGINAL_DST for IPv4,
 * IP6T_SO_ORIGINAL_DST for IPv6). Throws STRAIT_ERR_CAPTURE when the connection was not redirected (it reached
 * this listener directly) or the addon is not built.
 */
export function originalDestination(socket: Socket): OriginalDestination {
  const native = addon();
  const fd = fdOf(socket, 'cannot read the original destination');
  let dst: { host: string; port: number };
  try {
    dst = native.originalDst(fd);
  } catch (err) {
    const e = err as NativeError;
    const name = errnoName(e.errno);
    let hint: string;
    switch (name) {
      case 'ENOENT':
        hint = 'the connection was not redirected by iptables (conntrack has no entry for it): only connections that a Strait ' +
          'capture rule REDIRECTed have an original destination; check the pod is enrolled (scripts/iptables/pod-add.sh) ' +
          'and the node chains exist (node-setup.sh)';
        break;
      case 'ENOPROTOOPT':
        hint = 'the kernel answers no SO_ORIGINAL_DST: connection tracking (nf_conntrack) is not loaded in this network namespace';
        break;
      case 'ENOTCONN':
        hint = 'the socket is not connected';
        break;
      default:
        hint = errorMessage(err);
    }
    throw new StraitError('STRAIT_ERR_CAPTURE', `cannot read the original destination of ${describe(socket)} (${name}): ${hint}`, { cause: err });
  }
  // Conntrack also knows connections that were never NATed; their "original" destination is this listener itself.
  if (dst.port === socket.localPort && dst.host === unmapped(socket.localAddress ?? '')) {
    throw new StraitError(
      'STRAIT_ERR_CAPTURE',
      `cannot read the original destination of ${describe(socket)}: the connection was not redirected (it was made to this ` +
        'listener directly); only connections that a Strait capture rule REDIRECTed have an original destination',
    );
  }
  return { host: dst.host, port: dst.port };
}

function markError(err: unknown, what: string, mark: number): StraitError {
  const e = err as NativeError;
  const name = errnoName(e.errno);
  const hint = name === 'EPERM'
    ? 'setting SO_MARK needs CAP_NET_ADMIN: run the ztunnel as root or grant it NET_ADMIN'
    : errorMessage(err);
  return new StraitError('STRAIT_ERR_CAPTURE', `cannot ${what} with mark 0x${mark.toString(16)} (${name}): ${hint}`, { cause: err });
}

function checkMark(mark: number): void {
  if (!Number.isInteger(mark) || mark < 0 || mark > 0xffffffff) {
    throw new StraitError('STRAIT_ERR_CAPTURE', `invalid socket mark ${mark}: expected an integer 0..0xffffffff`);
  }
}

/**
 * Makes a listening server transparent (IP_TRANSPARENT): TPROXY rules may then deliver it connections addressed to
 * other hosts, whose local address (`socket.localAddress`/`localPort`) is where the client was going after any NAT.
 * Needs CAP_NET_ADMIN.
 */
export function setTransparent(server: Server): void {
  const native = addon();
  const fd = (server as unknown as { _handle?: TcpHandle | null })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new StraitError('STRAIT_ERR_CAPTURE', 'cannot make the listener transparent: it has no file descriptor (not listening)');
  try {
    native.setTransparent(fd);
  } catch (err) {
    const name = errnoName((err as NativeError).errno);
    const hint = name === 'EPERM' ? 'IP_TRANSPARENT needs CAP_NET_ADMIN: run the ztunnel as root or grant it NET_ADMIN' : errorMessage(err);
    throw new StraitError('STRAIT_ERR_CAPTURE', `cannot make the listener transparent (${name}): ${hint}`, { cause: err });
  }
}

/**
 * Sets SO_MARK on a socket that already has a file descriptor (a connected or accepted socket). Packets sent from
 * now on carry the mark; a connection's NAT decision is already made, so to bypass capture use `connectMarked`.
 */
export function setMark(socket: Socket, mark: number): void {
  checkMark(mark);
  const native = addon();
  const fd = fdOf(socket, 'cannot set the socket mark');
  try {
    native.setMark(fd, mark);
  } catch (err) {
    throw markError(err, 'mark the socket', mark);
  }
}

/** The socket's SO_MARK (0 when unmarked). */
export function getMark(socket: Socket): number {
  const native = addon();
  const fd = fdOf(socket, 'cannot read the socket mark');
  try {
    return native.getMark(fd);
  } catch (err) {
    throw new StraitError('STRAIT_ERR_CAPTURE', `cannot read the socket mark (${errnoName((err as NativeError).errno)})`, { cause: err });
  }
}

export interface MarkedConnectOptions {
  /** An IP address (the ztunnel connects to addresses, never names). */
  host: string;
  port: number;
  localAddress?: string;
  localPort?: number;
}

/**
 * Connects a TCP socket whose every packet, the SYN included, carries `mark`, so the capture rules skip it.
 * Works by giving the socket a pre-marked file descriptor between `connect()` (which creates the handle) and the
 * actual connect, which Node performs on the next tick for an IP address.
 */
export function connectMarked(options: MarkedConnectOptions, mark: number): Socket {
  checkMark(mark);
  const family = isIP(options.host);
  if (family !== 4 && family !== 6) {
    throw new StraitError('STRAIT_ERR_CAPTURE', `connectMarked needs an IP address, got "${options.host}"`);
  }
  const native = addon();
  let fd: number;
  try {
    fd = native.markedSocket(family, mark);
  } catch (err) {
    throw markError(err, 'create a socket', mark);
  }
  const socket = new Socket();
  try {
    socket.connect({ host: options.host, port: options.port, localAddress: options.localAddress, localPort: options.localPort, family });
    const handle = (socket as unknown as { _handle?: TcpHandle | null })._handle;
    if (!handle || typeof handle.open !== 'function' || handle.fd !== -1) {
      throw bug('net.Socket internals changed: no fresh TCP handle after connect() to adopt a marked socket');
    }
    const rc = handle.open(fd);
    if (rc !== 0) throw new StraitError('STRAIT_ERR_CAPTURE', `cannot adopt the marked socket (libuv error ${rc})`);
  } catch (err) {
    socket.destroy();
    try { closeSync(fd); } catch { /* already owned and closed by the handle */ }
    throw err;
  }
  return socket;
}

/** RLIMIT_NOFILE values; -1 = unlimited. */
export interface NofileLimit {
  /** The soft limit found (before raising it). */
  before: number;
  soft: number;
  hard: number;
}

/**
 * Raises this process's soft RLIMIT_NOFILE to its hard limit and returns both; `{ error }` when the addon is not
 * there (the caller decides whether that matters: it does not in the local mesh).
 */
export function raiseNofileLimit(): NofileLimit | { error: string } {
  const l = load();
  if ('error' in l) return { error: l.error };
  try {
    return l.addon.raiseNofile();
  } catch (err) {
    return { error: `cannot raise the file descriptor limit (${errnoName((err as NativeError).errno)}): ${errorMessage(err)}` };
  }
}
