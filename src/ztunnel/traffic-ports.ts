/**
 * The ztunnel's traffic ports on the node address (DESIGN §2): 15080 SOCKS5 (on 127.0.0.1 under capture) and 15001 captured outbound (both to
 * the outbound handler), 15006 captured plaintext inbound, 15008 HBONE. A captured connection without an original
 * destination (nothing redirected it) is reset with one warning line. Under capture the plaintext listener is also
 * transparent: a connection that the node's own NAT sent to an enrolled pod (a Service VIP resolved by kube-proxy or
 * the lab, see scripts/iptables/lib.sh) arrives there by TPROXY, its local address being the pod's address and port.
 */
import type net from 'node:net';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { normalizeIp } from '../common/net.js';
import { RateLimitedLog } from '../common/rate-limited-log.js';
import type { HboneServer } from '../hbone/index.js';
import { originalDestination } from './capture/original-dst.js';
import type { ZtunnelPorts } from './config.js';
import type { Listeners } from './listeners.js';
import type { InboundHandler } from './proxy/inbound.js';
import type { OutboundHandler } from './proxy/outbound.js';
import { captureResponder, socksResponder } from './proxy/responders.js';
import { acceptSocks5 } from './proxy/socks5.js';

export interface TrafficPortsDeps {
  address: string;
  ports: ZtunnelPorts;
  listeners: Listeners;
  outbound: OutboundHandler;
  inbound: InboundHandler;
  hbone: HboneServer;
  log: Logger;
  /** Capture mode: the plaintext listener is transparent (IP_TRANSPARENT) for the Service-VIP capture. */
  transparent?: boolean;
  /** A connection reached a capture port (15001, 15006, 15008) without a capture rule redirecting it, and was reset. */
  onUnredirected?: (listener: 'outbound' | 'inbound-plaintext' | 'hbone') => void;
}

/** Individual warnings per 10 s about connections that reached a capture port directly (the rest are summed up). */
export const UNREDIRECTED_LOG_BURST = 5;

export async function openTrafficPorts(d: TrafficPortsDeps): Promise<void> {
  const { log, outbound, inbound, hbone } = d;
  const listen = (port: number, what: string, onSocket: (s: net.Socket) => void, opts?: { hbone?: boolean; transparent?: boolean }) => d.listeners.listen(d.address, port, what, onSocket, opts);
  const unredirected = new RateLimitedLog({
    logger: log, level: 'warn', burst: UNREDIRECTED_LOG_BURST, what: 'connections without an original destination refused',
    msg: 'connection without an original destination refused (in the local mesh, use SOCKS5 on 15080)',
  });
  const captured = (s: net.Socket, what: 'outbound' | 'inbound-plaintext' | 'hbone') => {
    try {
      return originalDestination(s);
    } catch (err) {
      d.onUnredirected?.(what);
      unredirected.record(what, { listener: what, 'src.addr': s.remoteAddress, err: errorMessage(err) });
      s.resetAndDestroy();
      return undefined;
    }
  };
  // Under capture pods need no proxy: SOCKS5 stays on the node's loopback instead of the wildcard address the
  // capture ports need, so the pod network is not offered it (it would refuse non-enrolled sources anyway).
  const socksAddress = d.transparent === true ? '127.0.0.1' : d.address;
  await d.listeners.listen(socksAddress, d.ports.socks5, 'SOCKS5', (s) => {
    acceptSocks5(s).then(
      (req) => outbound.handle(req.socket, s.remoteAddress ?? '', { host: req.target.host, port: req.target.port }, socksResponder(req)),
      (err) => log.debug({ 'src.addr': s.remoteAddress, err: errorMessage(err) }, 'SOCKS5 handshake failed'),
    ).catch((err) => log.error({ err: errorMessage(err) }, 'BUG: SOCKS5 outbound failed'));
  });
  await listen(d.ports.outbound, 'outbound capture', (s) => {
    const orig = captured(s, 'outbound');
    if (orig) void outbound.handle(s, s.remoteAddress ?? '', { ...orig, captured: true }, captureResponder(s));
  });
  await listen(d.ports.inboundPlaintext, 'inbound plaintext', (s) => {
    // TPROXYed (Service VIP → local pod): the destination is the socket's own local address, after the service NAT
    // (SO_ORIGINAL_DST would give the VIP). REDIRECTed connections arrive on the listener's own port.
    const tproxied = d.transparent === true && s.localPort !== undefined && s.localPort !== d.ports.inboundPlaintext && s.localAddress !== undefined;
    const orig = tproxied ? { host: normalizeIp(s.localAddress!), port: s.localPort! } : captured(s, 'inbound-plaintext');
    if (orig) void inbound.handlePlaintext(s, orig);
  }, { transparent: d.transparent === true });
  await listen(d.ports.hbone, 'HBONE (node)', (s) => {
    const orig = captured(s, 'hbone');
    if (orig) hbone.handleSocket(s, orig.host, orig.port);
  }, { hbone: true });
}
