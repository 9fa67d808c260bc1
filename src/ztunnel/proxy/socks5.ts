/**
 * Server side of SOCKS5 (RFC 1928) for the ztunnel's explicit outbound port (15080).
 *
 * `acceptSocks5(socket)` runs the handshake on a freshly accepted client socket and resolves with the
 * requested CONNECT target; the caller then opens the outgoing connection, calls `reply()` exactly once
 * and pipes `request.socket`. What is supported, and what happens otherwise:
 *
 * - Version 5 only. A SOCKS4/4a client gets the 8-byte SOCKS4 rejection (VN=0, CD=0x5B "request rejected
 *   or failed") so it reports a proxy refusal rather than a hang; any other first byte (for example an
 *   HTTP client's "G" of "GET") gets no reply: the socket is destroyed. Both reject with a StraitError.
 * - Authentication: only NO AUTHENTICATION (0x00). A client that does not offer it gets 0x05 0xFF and is closed.
 * - Commands: CONNECT only. BIND and UDP ASSOCIATE (and unknown commands) get COMMAND_NOT_SUPPORTED.
 * - Address types: IPv4, DOMAINNAME (1..255 printable ASCII bytes; a domain that spells an IP literal is
 *   still reported as kind 'domain') and IPv6 (reported compressed per RFC 5952, e.g. "::1"; an IPv4-mapped
 *   address as "::ffff:1.2.3.4"). An unknown ATYP gets ADDRESS_TYPE_NOT_SUPPORTED.
 * - A malformed request after method negotiation (bad version byte, empty or non-printable domain,
 *   port 0) gets GENERAL_FAILURE. The reserved byte is ignored, as RFC 1928 leaves no reply for it.
 * - Bytes may arrive in any fragmentation; the parser never buffers more than one message (<= 262 bytes)
 *   before acting. Bytes that arrive after the request (a client that pipelines its first payload) are
 *   pushed back onto the socket, which is handed over paused: `pipe()` starts the flow, but a bare 'data'
 *   listener does not (call `resume()` too).
 * - The whole handshake (until the request is parsed) must finish within `handshakeTimeoutMs`
 *   (default 10 s), otherwise the socket is destroyed.
 *
 * Every failure rejects the promise with a StraitError of code STRAIT_ERR_SOCKS5 whose message says what
 * was wrong; the socket is always closed by then (ended after a reply, destroyed otherwise).
 *
 * The socket keeps a no-op 'error' listener after the handshake, so a client reset before the caller has
 * attached its own listeners cannot crash the process; callers should still watch 'error'/'close'.
 */
import * as net from 'node:net';
import { StraitError, bug, errorMessage } from '../../common/errors.js';

export const SOCKS5_REPLY = {
  SUCCEEDED: 0x00,
  GENERAL_FAILURE: 0x01,
  NOT_ALLOWED: 0x02,
  NETWORK_UNREACHABLE: 0x03,
  HOST_UNREACHABLE: 0x04,
  CONNECTION_REFUSED: 0x05,
  TTL_EXPIRED: 0x06,
  COMMAND_NOT_SUPPORTED: 0x07,
  ADDRESS_TYPE_NOT_SUPPORTED: 0x08,
} as const;

export interface Socks5Target {
  kind: 'ip' | 'domain';
  host: string;
  port: number;
}

export interface Socks5Request {
  target: Socks5Target;
  /** The client socket, paused, with any bytes received after the request pushed back (unshift) so the caller can pipe it. */
  socket: net.Socket;
  /**
   * Sends the reply; for success, bind = the local address/port of the outgoing connection (0.0.0.0:0 is fine).
   * After a non-success reply the socket is ended. Call exactly once.
   */
  reply(code: number, bind?: { host: string; port: number }): void;
}

export interface Socks5Options {
  /** Time allowed from the call until the request has been parsed. Default 10 000 ms. */
  handshakeTimeoutMs?: number;
}

const VERSION = 0x05;
const METHOD_NO_AUTH = 0x00;
const METHOD_NONE_ACCEPTABLE = 0xff;
const CMD_CONNECT = 0x01;
const CMD_BIND = 0x02;
const CMD_UDP_ASSOCIATE = 0x03;
const ATYP_IPV4 = 0x01;
const ATYP_DOMAIN = 0x03;
const ATYP_IPV6 = 0x04;
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** After a failure reply the socket is ended; if the client never closes its side, it is destroyed after this. */
const LINGER_AFTER_FAILURE_MS = 2_000;
/** SOCKS4 reply: VN=0, CD=0x5B (request rejected or failed), DSTPORT and DSTIP ignored. */
const SOCKS4_REJECTION = Buffer.from([0x00, 0x5b, 0, 0, 0, 0, 0, 0]);

function commandName(cmd: number): string {
  if (cmd === CMD_BIND) return 'BIND';
  if (cmd === CMD_UDP_ASSOCIATE) return 'UDP ASSOCIATE';
  return `unknown command 0x${hex(cmd)}`;
}

function hex(b: number): string {
  return b.toString(16).padStart(2, '0');
}

function socksError(message: string, cause?: unknown): StraitError {
  return new StraitError('STRAIT_ERR_SOCKS5', message, cause === undefined ? undefined : { cause });
}

/** Formats 16 bytes as an IPv6 address compressed per RFC 5952 (lowercase, longest zero run as "::"). */
export function formatIPv6(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw bug(`formatIPv6 needs 16 bytes, got ${bytes.length}`);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // IPv4-mapped (::ffff:a.b.c.d) is written with the dotted quad, as Node reports such addresses.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const text = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestLen < 2) return text(groups); // a single zero group is not compressed (RFC 5952 4.2.2)
  return `${text(groups.slice(0, bestStart))}::${text(groups.slice(bestStart + bestLen))}`;
}

/** Parses a textual IPv6 address (any valid form, optional %zone) into 16 bytes; undefined if it is not one. */
export function parseIPv6(host: string): Buffer | undefined {
  const addr = host.replace(/%.*$/, '');
  if (net.isIPv6(addr) === false) return undefined;
  const parseGroups = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const piece of part.split(':')) {
      if (piece.includes('.')) {
        const q = piece.split('.').map(Number);
        out.push((q[0]! << 8) | q[1]!, (q[2]! << 8) | q[3]!);
      } else {
        out.push(parseInt(piece, 16));
      }
    }
    return out;
  };
  const halves = addr.split('::');
  const head = parseGroups(halves[0]!);
  const tail = halves.length > 1 ? parseGroups(halves[1]!) : [];
  const groups = halves.length > 1 ? [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail] : head;
  if (groups.length !== 8) return undefined;
  const buf = Buffer.alloc(16);
  groups.forEach((g, i) => buf.writeUInt16BE(g, i * 2));
  return buf;
}

/** Encodes a reply: VER REP RSV ATYP BND.ADDR BND.PORT. The address type follows the bind host. */
export function encodeReply(code: number, bind: { host: string; port: number } = { host: '0.0.0.0', port: 0 }): Buffer {
  if (!Number.isInteger(code) || code < 0 || code > 0xff) throw bug(`SOCKS5 reply code must be a byte, got ${code}`);
  if (!Number.isInteger(bind.port) || bind.port < 0 || bind.port > 0xffff) throw bug(`SOCKS5 bind port must be 0..65535, got ${bind.port}`);
  let addr: Buffer;
  if (net.isIPv4(bind.host)) {
    addr = Buffer.concat([Buffer.from([ATYP_IPV4]), Buffer.from(bind.host.split('.').map(Number))]);
  } else {
    const v6 = parseIPv6(bind.host);
    if (v6) {
      addr = Buffer.concat([Buffer.from([ATYP_IPV6]), v6]);
    } else {
      const name = Buffer.from(bind.host, 'ascii');
      if (name.length < 1 || name.length > 255) throw bug(`SOCKS5 bind host must be an IP or a 1..255 byte name, got ${JSON.stringify(bind.host)}`);
      addr = Buffer.concat([Buffer.from([ATYP_DOMAIN, name.length]), name]);
    }
  }
  const port = Buffer.alloc(2);
  port.writeUInt16BE(bind.port);
  return Buffer.concat([Buffer.from([VERSION, code, 0x00]), addr, port]);
}

/** Runs the SOCKS5 server handshake on `socket` and resolves with the CONNECT request. See the file comment. */
export function acceptSocks5(socket: net.Socket, opts: Socks5Options = {}): Promise<Socks5Request> {
  const timeoutMs = opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  return new Promise<Socks5Request>((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let stage: 'greeting' | 'request' = 'greeting';
    let settled = false;
    const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;

    const quiet = () => {};
    socket.on('error', quiet);

    const timer = setTimeout(() => {
      fail(socksError(`SOCKS5 handshake from ${peer} timed out after ${timeoutMs} ms waiting for the ${stage} (${buf.length} byte(s) of it received)`));
    }, timeoutMs);

    const detach = () => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onClose);
      socket.removeListener('error', onError);
    };

    /** Rejects; with `replyBytes` the socket is ended after writing them, otherwise destroyed. */
    function fail(err: StraitError, replyBytes?: Buffer): void {
      if (settled) return;
      settled = true;
      detach();
      if (replyBytes && !socket.destroyed && socket.writable) {
        socket.end(replyBytes);
        socket.resume(); // discard anything else the client sends
        const linger = setTimeout(() => socket.destroy(), LINGER_AFTER_FAILURE_MS);
        linger.unref();
        socket.once('close', () => clearTimeout(linger));
      } else {
        socket.destroy();
      }
      reject(err);
    }

    function onEnd(): void {
      fail(socksError(`SOCKS5 client ${peer} closed the connection during the ${stage} (${buf.length} byte(s) of it received)`));
    }
    function onClose(): void {
      fail(socksError(`SOCKS5 client ${peer} connection closed during the ${stage}`));
    }
    function onError(err: Error): void {
      fail(socksError(`SOCKS5 client ${peer} socket failed during the ${stage}: ${errorMessage(err)}`, err));
    }

    function onData(chunk: Buffer): void {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      try {
        step();
      } catch (err) {
        fail(err instanceof StraitError ? err : socksError(`SOCKS5 handshake with ${peer} failed: ${errorMessage(err)}`, err));
      }
    }

    const requestFailure = (code: number, message: string) => fail(socksError(message), encodeReply(code));

    function step(): void {
      if (stage === 'greeting') {
        // VER NMETHODS METHODS[NMETHODS]
        if (buf.length < 1) return;
        const ver = buf[0]!;
        if (ver === 0x04) {
          return fail(socksError(`client ${peer} speaks SOCKS version 4; only SOCKS5 is supported (sent the SOCKS4 rejection 0x5B)`), SOCKS4_REJECTION);
        }
        if (ver !== VERSION) {
          return fail(socksError(`client ${peer} sent version byte 0x${hex(ver)} in the SOCKS5 greeting; expected 0x05 (is this client speaking SOCKS5?)`));
        }
        if (buf.length < 2) return;
        const n = buf[1]!;
        if (buf.length < 2 + n) return;
        const methods = buf.subarray(2, 2 + n);
        buf = buf.subarray(2 + n);
        if (!methods.includes(METHOD_NO_AUTH)) {
          const offered = n === 0 ? 'none' : [...methods].map((m) => `0x${hex(m)}`).join(', ');
          return fail(
            socksError(`SOCKS5 client ${peer} offered no acceptable authentication method (offered: ${offered}; only 0x00 NO AUTHENTICATION is supported)`),
            Buffer.from([VERSION, METHOD_NONE_ACCEPTABLE]),
          );
        }
        socket.write(Buffer.from([VERSION, METHOD_NO_AUTH]));
        stage = 'request';
      }

      // VER CMD RSV ATYP DST.ADDR DST.PORT
      if (buf.length < 1) return;
      if (buf[0] !== VERSION) {
        return requestFailure(SOCKS5_REPLY.GENERAL_FAILURE, `SOCKS5 client ${peer} sent version byte 0x${hex(buf[0]!)} in the request; expected 0x05`);
      }
      if (buf.length < 2) return;
      const cmd = buf[1]!;
      if (cmd !== CMD_CONNECT) {
        return requestFailure(SOCKS5_REPLY.COMMAND_NOT_SUPPORTED, `SOCKS5 client ${peer} asked for ${commandName(cmd)}; only CONNECT is supported`);
      }
      if (buf.length < 4) return;
      const atyp = buf[3]!;
      let addrEnd: number;
      if (atyp === ATYP_IPV4) addrEnd = 4 + 4;
      else if (atyp === ATYP_IPV6) addrEnd = 4 + 16;
      else if (atyp === ATYP_DOMAIN) {
        if (buf.length < 5) return;
        const len = buf[4]!;
        if (len === 0) return requestFailure(SOCKS5_REPLY.GENERAL_FAILURE, `SOCKS5 client ${peer} sent an empty domain name (length 0) in the request`);
        addrEnd = 5 + len;
      } else {
        return requestFailure(SOCKS5_REPLY.ADDRESS_TYPE_NOT_SUPPORTED, `SOCKS5 client ${peer} sent unknown address type 0x${hex(atyp)} (supported: 0x01 IPv4, 0x03 domain name, 0x04 IPv6)`);
      }
      if (buf.length < addrEnd + 2) return;

      let target: Socks5Target;
      const port = buf.readUInt16BE(addrEnd);
      if (atyp === ATYP_IPV4) {
        target = { kind: 'ip', host: [...buf.subarray(4, 8)].join('.'), port };
      } else if (atyp === ATYP_IPV6) {
        target = { kind: 'ip', host: formatIPv6(buf.subarray(4, 20)), port };
      } else {
        const name = buf.subarray(5, addrEnd);
        const bad = name.findIndex((b) => b < 0x21 || b > 0x7e);
        if (bad >= 0) {
          return requestFailure(SOCKS5_REPLY.GENERAL_FAILURE, `SOCKS5 client ${peer} sent a domain name with a non-printable or non-ASCII byte 0x${hex(name[bad]!)} at offset ${bad}`);
        }
        target = { kind: 'domain', host: name.toString('ascii'), port };
      }
      if (port === 0) {
        return requestFailure(SOCKS5_REPLY.GENERAL_FAILURE, `SOCKS5 client ${peer} asked to CONNECT to ${target.host} port 0`);
      }

      const rest = buf.subarray(addrEnd + 2);
      buf = Buffer.alloc(0);
      settled = true;
      detach();
      socket.pause();
      if (rest.length > 0) socket.unshift(rest);
      // `quiet` stays attached: see the file comment.
      let replied = false;
      resolve({
        target,
        socket,
        reply(code: number, bind?: { host: string; port: number }): void {
          if (replied) throw bug(`SOCKS5 reply sent twice for ${peer} -> ${target.host}:${target.port}`);
          const bytes = encodeReply(code, bind);
          replied = true;
          if (socket.destroyed || !socket.writable) return;
          if (code === SOCKS5_REPLY.SUCCEEDED) {
            socket.write(bytes);
          } else {
            socket.end(bytes);
            socket.resume();
            const linger = setTimeout(() => socket.destroy(), LINGER_AFTER_FAILURE_MS);
            linger.unref();
            socket.once('close', () => clearTimeout(linger));
          }
        },
      });
    }

    if (socket.destroyed) {
      fail(socksError(`SOCKS5 client ${peer} socket was already closed before the handshake began`));
      return;
    }
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onClose);
    socket.on('error', onError);
  });
}
