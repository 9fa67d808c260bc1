/**
 * The application behind every path of the waypoint benchmark, as its own process (forked by bench/waypoint.ts):
 * one keep-alive HTTP/1.1 listener per pod address, each answering any GET with a small body and `x-version: <v>`,
 * and counting what it answered, so the benchmark can check that every request reached the subset its route
 * names. No logging.
 *
 *   node waypoint-server.js --listen v1=127.0.171.2:8080 --listen v2=127.0.171.3:8080
 *
 * IPC: it sends `{ ready: true }` once every listener is up; `{ cmd: 'counts' }` is answered with
 * `{ counts: { v1: n, v2: m } }`. It exits when the parent disconnects.
 */
import http from 'node:http';
import { once } from 'node:events';

/** The response body: small, as the "small GET". */
export const BODY_BYTES = 64;

async function main(): Promise<void> {
  const listens: { version: string; host: string; port: number }[] = [];
  for (let i = 0; i < process.argv.length; i++) {
    if (process.argv[i] !== '--listen') continue;
    const m = /^([^=]+)=([\d.]+):(\d+)$/.exec(process.argv[i + 1] ?? '');
    if (!m) throw new Error(`waypoint-server: --listen wants VERSION=IP:PORT, got ${process.argv[i + 1]}`);
    listens.push({ version: m[1]!, host: m[2]!, port: Number(m[3]) });
  }
  if (listens.length === 0) throw new Error('waypoint-server: give at least one --listen VERSION=IP:PORT');

  const counts: Record<string, number> = {};
  const servers: http.Server[] = [];
  for (const l of listens) {
    counts[l.version] = 0;
    const body = Buffer.alloc(BODY_BYTES, l.version.padEnd(2, ' ').slice(0, 2));
    const headers = { 'content-type': 'text/plain', 'content-length': String(body.length), 'x-version': l.version };
    const server = http.createServer({ keepAlive: true, noDelay: true }, (req, res) => {
      counts[l.version]!++;
      req.resume();
      res.writeHead(200, headers);
      res.end(body);
    });
    server.keepAliveTimeout = 300_000;
    server.headersTimeout = 310_000;
    server.requestTimeout = 0;
    server.listen(l.port, l.host);
    await once(server, 'listening');
    servers.push(server);
  }
  process.on('message', (m: { cmd?: string }) => {
    if (m?.cmd === 'counts') process.send?.({ counts: { ...counts } });
  });
  process.send?.({ ready: true });
  process.on('disconnect', () => process.exit(0));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
