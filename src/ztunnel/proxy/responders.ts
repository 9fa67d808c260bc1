/**
 * How the outbound path tells its client the outcome before bytes flow: a SOCKS5 reply on 15080, a reset for a
 * captured socket on 15001 (it has no other way to say no).
 */
import type net from 'node:net';
import type { OutboundResponder } from './outbound.js';
import { outcome } from '../../dataplane/outcomes.js';
import { SOCKS5_REPLY, type Socks5Request } from './socks5.js';

export function socksResponder(req: Pick<Socks5Request, 'reply'>): OutboundResponder {
  return {
    connected: (bind) => req.reply(SOCKS5_REPLY.SUCCEEDED, bind),
    // The reply for each outcome is in the one table (dataplane/outcomes.ts, docs/errors.md).
    refused: (code) => req.reply(outcome(code).socks5),
  };
}

export function captureResponder(s: net.Socket): OutboundResponder {
  return { connected: () => undefined, refused: () => s.resetAndDestroy() };
}
