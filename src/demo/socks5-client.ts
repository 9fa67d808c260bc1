/**
 * The client side of SOCKS5 (RFC 1928), as much as the demo's traffic needs: connect from a pod's address
 * to its node's ztunnel (15080), offer NO AUTHENTICATION, CONNECT to a host name (ATYP DOMAINNAME) and port.
 *
 * A refusal by the proxy is an answer, not a failure: it resolves `{ ok: false, reply }` with the RFC 1928
 * reply code (0x02 "connection not allowed by ruleset" is how the ztunnel says "denied by policy").
 * Transport failures (cannot reach the proxy, closed mid-handshake, timeout, bytes that are not SOCKS5)
 * reject with an Error saying which.
 */
import { connect, type Socket } from 'node:net';

export const SOCKS5_REPLY_MESSAGES: Readonly<Record<number, string>> = {
  0x00: 'succeeded',
  0x01: 'general SOCKS server failure',
  0x02: 'connection not allowed by ruleset',
  0x03: 'network unreachable',
  0x04: 'host unreachable',
  0x05: 'connection refused',
  0x06: 'TTL expired',
  0x07: 'command not supported',
  0x08: 'address type not supported',
};

export interface Socks5ConnectOptions {
  /** The SOCKS5 server ("the node's ztunnel"). */
  proxy: { host: string; port: number };
  /** Source address of the connection to the proxy: the pod's IP, which is how the ztunnel knows who is calling. */
  localAddress?: string;
  /** Where to CONNECT: a host name (sent as DOMAINNAME) and port. */
  target: { host: string; port: number };
  timeoutMs: number;
}

export type Socks5ConnectResult =
  | { ok: true; socket: Socket; bound: { host: string; port: number } }
  | { ok: false; reply: number; message: string };

const VERSION = 0x05;
const NO_AUTH = 0x00;
const CMD_CONNECT = 0x01;
const ATYP_IPV4 = 0x01;
const ATYP_DOMAIN = 0x03;
const ATYP_IPV6 = 0x04;

export function socks5ReplyMessage(code: number): string {
  return SOCKS5_REPLY_MESSAGES[code] ?? `unknown reply 0x${code.toString(16).padStart(2, '0')}`;
}

/** The CONNECT request for a host name (RFC 1928 §4). */
export function encodeConnectRequest(host: string, port: number): Buffer {
  const name = Buffer.from(host, 'ascii');
  if (name.length === 0 || name.length > 255) throw new Error(`SOCKS5 host name must be 1 to 255 bytes, "${host}" is ${name.length}`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`SOCKS5 port must be 1-65535, got ${port}`);
  return Buffer.concat([Buffer.from([VERSION, CMD_CONNECT, 0x00, ATYP_DOMAIN, name.length]), name, Buffer.from([port >> 8, port & 0xff])]);
}

/**
 * Connects through the SOCKS5 proxy. On success the socket is handed over with nothing consumed past the
 * proxy's reply (any early payload is pushed back), paused, without timeouts or extra listeners but a no-op
 * 'error' one; the caller owns it.
 */
export function socks5Connect(opts: Socks5ConnectOptions): Promise<Socks5ConnectResult> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: opts.proxy.host, port: opts.proxy.port, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    let buf: Buffer = Buffer.alloc(0);
    let stage: 'method' | 'reply' = 'method';
    let settled = false;
    const proxy = `${opts.proxy.host}:${opts.proxy.port}`;

    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    const fail = (message: string, cause?: unknown) => {
      if (settled) return;
      settled = true;
      cleanup();
      socket.destroy();
      reject(new Error(message, cause === undefined ? undefined : { cause }));
    };
    const done = (r: Socks5ConnectResult) => {
      settled = true;
      cleanup();
      resolve(r);
    };
    const timer = setTimeout(() => fail(`SOCKS5 proxy ${proxy} did not answer within ${opts.timeoutMs} ms`), opts.timeoutMs);
    const onError = (err: NodeJS.ErrnoException) => fail(`SOCKS5 proxy ${proxy}: ${err.code ?? err.message}`, err);
    const onClose = () => fail(`SOCKS5 proxy ${proxy} closed the connection during the handshake (${stage === 'method' ? 'before choosing a method' : 'before answering CONNECT'})`);

    const onData = (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      if (stage === 'method') {
        if (buf.length < 2) return;
        if (buf[0] !== VERSION) return fail(`${proxy} is not a SOCKS5 proxy (first byte 0x${buf[0]!.toString(16)})`);
        if (buf[1] !== NO_AUTH) return fail(`SOCKS5 proxy ${proxy} wants authentication (method 0x${buf[1]!.toString(16)}); only "no authentication" is supported`);
        buf = buf.subarray(2);
        stage = 'reply';
        socket.write(encodeConnectRequest(opts.target.host, opts.target.port));
      }
      if (stage === 'reply') {
        if (buf.length < 5) return;
        if (buf[0] !== VERSION) return fail(`SOCKS5 proxy ${proxy} answered CONNECT with version 0x${buf[0]!.toString(16)}`);
        const reply = buf[1]!;
        const atyp = buf[3]!;
        const addrLen = atyp === ATYP_IPV4 ? 4 : atyp === ATYP_IPV6 ? 16 : atyp === ATYP_DOMAIN ? 1 + buf[4]! : -1;
        if (addrLen < 0) {
          // A failure reply may come with a bound address we cannot read; the code is all that matters then.
          if (reply !== 0x00) return refused(reply);
          return fail(`SOCKS5 proxy ${proxy} answered with unknown address type 0x${atyp.toString(16)}`);
        }
        const total = 4 + addrLen + 2;
        if (buf.length < total) return;
        if (reply !== 0x00) return refused(reply);
        const bound = { host: boundHost(atyp, buf.subarray(4, 4 + addrLen)), port: buf.readUInt16BE(4 + addrLen) };
        const rest = buf.subarray(total);
        socket.pause();
        if (rest.length) socket.unshift(rest);
        socket.on('error', () => undefined);
        done({ ok: true, socket, bound });
      }
    };
    const refused = (reply: number) => {
      socket.on('error', () => undefined);
      socket.destroy();
      done({ ok: false, reply, message: socks5ReplyMessage(reply) });
    };

    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.once('connect', () => socket.write(Buffer.from([VERSION, 1, NO_AUTH])));
  });
}

function boundHost(atyp: number, addr: Buffer): string {
  if (atyp === ATYP_IPV4) return [...addr].join('.');
  if (atyp === ATYP_DOMAIN) return addr.subarray(1).toString('ascii');
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(addr.readUInt16BE(i).toString(16));
  return parts.join(':');
}
