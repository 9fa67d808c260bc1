/**
 * The application at the far end of every path of the data-path benchmark, run as its own process (forked by
 * bench/datapath.ts) so that it has its own event loop, as a pod would:
 * - HTTP/1.1 on <address>:<httpPort>, keep-alive: `GET /1k` answers 1,024 bytes; `GET /bytes/<n>` streams n bytes
 *   (with Content-Length, respecting backpressure), for single-stream download throughput;
 * - a byte sink on <address>:<sinkPort>: the client sends an 8-byte big-endian length n, then n bytes; the sink
 *   answers one byte ("K") once it has them all, for single-stream upload throughput.
 * It tells its parent `{ ready: true }` over IPC once both listen, and exits when the parent disconnects.
 */
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';

export const BODY_1K = Buffer.alloc(1024, 'x');
const CHUNK = Buffer.alloc(256 * 1024, 'y');

function arg(name: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (!v) throw new Error(`datapath-server: --${name} is required`);
  return v;
}

function streamBytes(res: http.ServerResponse, total: number): void {
  let left = total;
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      const ok = res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
      if (!ok) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

async function main(): Promise<void> {
  const address = arg('address');
  const httpPort = Number(arg('http-port'));
  const sinkPort = Number(arg('sink-port'));

  const server = http.createServer({ keepAlive: true, noDelay: true }, (req, res) => {
    if (req.url === '/1k') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY_1K.length });
      res.end(BODY_1K);
      return;
    }
    const m = /^\/bytes\/(\d+)$/.exec(req.url ?? '');
    if (m) {
      const n = Number(m[1]);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
      streamBytes(res, n);
      return;
    }
    res.writeHead(404, { 'content-length': 0 });
    res.end();
  });
  // Longer than any pause between two measured rounds (a wait for a quiet machine): the load's connections stay open.
  server.keepAliveTimeout = 600_000;
  server.headersTimeout = 610_000;
  server.requestTimeout = 0;
  server.listen(httpPort, address);
  await once(server, 'listening');

  const sink = net.createServer({ noDelay: true }, (s) => {
    let header: Buffer = Buffer.alloc(0);
    let expected = -1;
    let got = 0;
    s.on('data', (chunk: Buffer) => {
      if (expected < 0) {
        header = Buffer.concat([header, chunk]);
        if (header.length < 8) return;
        expected = Number(header.readBigUInt64BE(0));
        got = header.length - 8;
      } else {
        got += chunk.length;
      }
      if (got >= expected) {
        s.end('K');
        expected = Number.POSITIVE_INFINITY; // answered; ignore anything further
      }
    });
    s.on('error', () => undefined);
  });
  sink.listen(sinkPort, address);
  await once(sink, 'listening');

  process.send?.({ ready: true });
  process.on('disconnect', () => process.exit(0));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
