/**
 * Reference (c) of the waypoint benchmark: the smallest Node.js HTTP proxy that does the waypoint's L7 job, as its
 * own process — the runtime's floor. Everything a Node proxy cannot avoid, nothing more:
 *
 * - in: `node:https` server, TLS 1.3, client certificate required and chained to the mesh root (requestCert +
 *   rejectUnauthorized), keep-alive;
 * - route: `x-canary: true` → upstream B, anything else → upstream A;
 * - out: `https.request` through one keep-alive Agent per upstream, with its own client certificate, TLS 1.3, the
 *   upstream's chain checked against the mesh root and its SPIFFE id (URI SAN) compared with the one expected, as
 *   the waypoint checks an endpoint's identity;
 * - hop-by-hop headers dropped both ways, the response streamed back with pipe.
 *
 * No logging, no metrics, no policy, no retries. It tells its parent `{ ready: true }` once it listens and exits
 * when the parent disconnects.
 *
 *   node waypoint-floor.js --config FILE   (FILE: FloorConfig as JSON)
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { PeerCertificate } from 'node:tls';

export interface FloorUpstream {
  host: string;
  port: number;
  /** The SPIFFE id the upstream must present (URI SAN). */
  identity: string;
}

export interface FloorConfig {
  listen: { host: string; port: number };
  cert: string;
  key: string;
  ca: string;
  /** The route: requests whose `header` equals `value` go to `b`, all others to `a`. */
  header: string;
  value: string;
  a: FloorUpstream;
  b: FloorUpstream;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host']);

function endToEnd(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

function main(): void {
  const i = process.argv.indexOf('--config');
  if (i < 0) throw new Error('waypoint-floor: --config FILE is required');
  const cfg = JSON.parse(readFileSync(process.argv[i + 1]!, 'utf8')) as FloorConfig;
  const creds = { cert: readFileSync(cfg.cert), key: readFileSync(cfg.key), ca: readFileSync(cfg.ca), minVersion: 'TLSv1.3' as const };

  const upstream = (u: FloorUpstream) => {
    const uri = `URI:${u.identity}`;
    return {
      ...u,
      agent: new https.Agent({
        ...creds, keepAlive: true, scheduling: 'lifo',
        // The chain is checked by TLS against `ca`; the peer's identity is its SPIFFE id, not a host name.
        checkServerIdentity: (_host: string, cert: PeerCertificate) =>
          (cert.subjectaltname ?? '').split(', ').includes(uri) ? undefined : new Error(`upstream presented ${cert.subjectaltname}, expected ${uri}`),
      }),
    };
  };
  const a = upstream(cfg.a);
  const b = upstream(cfg.b);

  const server = https.createServer({ ...creds, requestCert: true, rejectUnauthorized: true, noDelay: true, keepAlive: true }, (req, res) => {
    const to = req.headers[cfg.header] === cfg.value ? b : a;
    const headers = endToEnd(req.headers);
    headers.host = req.headers.host;
    const up = https.request({ agent: to.agent, host: to.host, port: to.port, method: req.method, path: req.url, headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, endToEnd(ur.headers));
      ur.pipe(res);
    });
    up.on('error', () => {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-length': '0' });
        res.end();
      } else {
        res.destroy();
      }
    });
    req.pipe(up);
  });
  server.keepAliveTimeout = 300_000;
  server.headersTimeout = 310_000;
  server.requestTimeout = 0;
  server.listen(cfg.listen.port, cfg.listen.host, () => process.send?.({ ready: true }));
  process.on('disconnect', () => process.exit(0));
}

main();
