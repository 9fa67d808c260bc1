/**
 * HBONE data path cost: one stream through HbonePool → HboneServer → relay → TCP target, against the same
 * target over plain TCP.
 *
 *   node dist/bench/hbone-throughput.js [--mb 256] [--rtts 2000] [--connects 300] [--cold 50]
 *
 * The destination side (HboneServer and three TCP targets: echo, sink, source) runs in a child process, the
 * client side (HbonePool, or plain sockets for the baseline) in this one, both on 127.0.0.1, so each side has
 * its own event loop as the source and destination ztunnels would. Measured:
 * - upload: one stream writes --mb MiB to the sink (respecting backpressure) until the sink acknowledges the count;
 * - download: one stream reads --mb MiB from the source until it ends;
 * - round trip: 64-byte request, 64-byte echo, --rtts times on one open stream (p50 / p99);
 * - connect (warm): time until a new stream can carry bytes, on an already pooled TLS connection (HBONE: CONNECT +
 *   the destination's TCP connect to the target + 200; TCP: the 3-way handshake);
 * - connect (cold): the same on a new TLS connection each time (a new pool key: TCP + TLS 1.3 handshake with both
 *   certificate checks + HTTP/2 + CONNECT).
 * Not a test: it prints numbers.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { CertificateAuthority, SpiffeId, createKeyAndCsr } from '../src/identity/index.js';
import { HbonePool, HboneServer, relay, type WorkloadCert } from '../src/hbone/index.js';

const CLIENT_ID = 'spiffe://cluster.local/ns/bench/sa/client';
const SERVER_ID = 'spiffe://cluster.local/ns/bench/sa/server';
const CHUNK = Buffer.alloc(64 * 1024, 0x61);

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

async function issue(ca: CertificateAuthority, id: string): Promise<WorkloadCert> {
  const { keyPem, csrPem } = await createKeyAndCsr();
  return { keyPem, certChainPem: ca.signWorkload(csrPem, SpiffeId.parse(id)).certChainPem };
}

async function listen(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

interface Ports {
  hbone: number;
  echo: number;
  sink: number;
  source: number;
}

// --- destination side (child process) --------------------------------------------------------------------

async function runDestination(dataDir: string, bytes: number): Promise<void> {
  const ca = await CertificateAuthority.loadOrCreate({ dataDir });
  const cert = await issue(ca, SERVER_ID);
  const quiet = (s: net.Socket): net.Socket => s.on('error', () => undefined);
  const echo = net.createServer({ allowHalfOpen: true }, (s) => quiet(s).pipe(s));
  const sink = net.createServer({ allowHalfOpen: true }, (s) => {
    let n = 0;
    quiet(s).on('data', (c: Buffer) => { n += c.length; });
    s.on('end', () => s.end(String(n)));
  });
  const source = net.createServer((s) => {
    quiet(s);
    let left = bytes;
    const pump = (): void => {
      while (left > 0) {
        const c = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
        left -= c.length;
        if (!s.write(c)) {
          s.once('drain', pump);
          return;
        }
      }
      s.end();
    };
    pump();
  });
  const server = new HboneServer({
    rootPem: ca.rootCertPem,
    certFor: () => cert,
    maxConcurrentStreams: 1000,
    onConnect: (req) => {
      const t = net.connect({ host: req.targetHost, port: req.targetPort, noDelay: true });
      t.once('connect', () => {
        t.removeAllListeners('error');
        void relay(req.accept(), t);
      });
      t.once('error', (err) => req.reject(503, err.message));
    },
  });
  const ports: Ports = {
    hbone: (await server.listen('127.0.0.1', 0)).port,
    echo: await listen(echo),
    sink: await listen(sink),
    source: await listen(source),
  };
  process.send!(ports);
  process.on('disconnect', () => process.exit(0));
}

// --- client side -----------------------------------------------------------------------------------------

type Opener = (targetPort: number) => Promise<Duplex>;

function directOpener(): Opener {
  return async (port) => {
    const s = net.connect({ host: '127.0.0.1', port, noDelay: true });
    await once(s, 'connect');
    return s;
  };
}

function hboneOpener(key: () => string, pool: HbonePool, hbonePort: number, cert: WorkloadCert): Opener {
  return async (port) => {
    const res = await pool.connect({
      key: key(),
      address: { host: '127.0.0.1', port: hbonePort },
      cert,
      expectedPeerSans: [SERVER_ID],
      authority: `127.0.0.1:${port}`,
      headers: { forwarded: 'for="127.0.0.1"' },
    });
    return res.stream;
  };
}

function readToEnd(s: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
  });
}

async function upload(open: Opener, port: number, bytes: number): Promise<number> {
  const s = await open(port);
  const started = process.hrtime.bigint();
  const ack = readToEnd(s);
  let left = bytes;
  while (left > 0) {
    const c = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
    left -= c.length;
    if (!s.write(c)) await once(s, 'drain');
  }
  s.end();
  const got = Number((await ack).toString());
  if (got !== bytes) throw new Error(`sink counted ${got} bytes, sent ${bytes}`);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

async function download(open: Opener, port: number, bytes: number): Promise<number> {
  const started = process.hrtime.bigint();
  const s = await open(port);
  let n = 0;
  s.on('data', (c: Buffer) => { n += c.length; });
  await once(s, 'end');
  s.end();
  if (n !== bytes) throw new Error(`received ${n} bytes, expected ${bytes}`);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

async function roundTrips(open: Opener, port: number, count: number): Promise<number[]> {
  const s = await open(port);
  const msg = Buffer.alloc(64, 0x62);
  const out: number[] = [];
  let pending: (() => void) | undefined;
  let got = 0;
  s.on('data', (c: Buffer) => {
    got += c.length;
    if (got >= msg.length) {
      got -= msg.length;
      pending?.();
    }
  });
  for (let i = 0; i < count; i++) {
    const started = process.hrtime.bigint();
    await new Promise<void>((resolve) => {
      pending = resolve;
      s.write(msg);
    });
    out.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  s.end();
  s.destroy();
  return out.sort((a, b) => a - b);
}

async function connects(open: Opener, port: number, count: number, fresh?: () => void): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    fresh?.();
    const started = process.hrtime.bigint();
    const s = await open(port);
    out.push(Number(process.hrtime.bigint() - started) / 1000);
    s.on('error', () => undefined);
    s.destroy();
  }
  return out.sort((a, b) => a - b);
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function main(): Promise<void> {
  const mib = arg('mb', 256);
  const rtts = arg('rtts', 2000);
  const warmConnects = arg('connects', 300);
  const coldConnects = arg('cold', 50);
  const bytes = mib * 1024 * 1024;
  const dataDir = await mkdtemp(join(tmpdir(), 'strait-bench-hbone-'));
  const ca = await CertificateAuthority.loadOrCreate({ dataDir });
  const cert = await issue(ca, CLIENT_ID);
  const child = fork(fileURLToPath(import.meta.url), ['--destination', dataDir, String(bytes)], { stdio: 'inherit' });
  const [ports] = (await once(child, 'message')) as [Ports];

  const pool = new HbonePool({ rootPem: ca.rootCertPem, maxStreamsPerConnection: 1000, idleTimeoutMs: 1000 });
  let key = `${CLIENT_ID}|${SERVER_ID}|127.0.0.1:${ports.hbone}`;
  let cold = 0;
  const paths: Array<{ name: string; open: Opener; fresh?: () => void }> = [
    { name: 'direct TCP', open: directOpener() },
    {
      name: 'HBONE (mTLS h2 CONNECT)',
      open: hboneOpener(() => key, pool, ports.hbone, cert),
      // A new pool key forces a new TLS connection (the pool's cached TLS contexts stay, as in a running ztunnel).
      fresh: () => {
        key = `${CLIENT_ID}|${SERVER_ID}|127.0.0.1:${ports.hbone}|cold-${++cold}`;
      },
    },
  ];

  const rows: string[][] = [];
  for (const p of paths) {
    await upload(p.open, ports.sink, 8 * 1024 * 1024); // warm up (JIT, pooled connection)
    const up = await upload(p.open, ports.sink, bytes);
    const down = await download(p.open, ports.source, bytes);
    const rtt = await roundTrips(p.open, ports.echo, rtts);
    const warm = await connects(p.open, ports.echo, warmConnects);
    const cold = p.fresh ? await connects(p.open, ports.echo, coldConnects, p.fresh) : await connects(p.open, ports.echo, coldConnects);
    rows.push([
      p.name,
      (mib / up).toFixed(0),
      (mib / down).toFixed(0),
      pct(rtt, 50).toFixed(0),
      pct(rtt, 99).toFixed(0),
      pct(warm, 50).toFixed(0),
      pct(warm, 99).toFixed(0),
      pct(cold, 50).toFixed(0),
      pct(cold, 99).toFixed(0),
    ]);
  }
  pool.close();
  child.disconnect();
  await rm(dataDir, { recursive: true, force: true });

  const header = ['path', 'upload MiB/s', 'download MiB/s', 'RTT p50 µs', 'RTT p99 µs', 'connect warm p50 µs', 'warm p99 µs', 'connect cold p50 µs', 'cold p99 µs'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log(`\nHBONE vs direct TCP on 127.0.0.1, one stream, ${mib} MiB per transfer, ${rtts} round trips of 64 B, Node ${process.version}\n`);
  console.log(line(header));
  console.log(`|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const r of rows) console.log(line(r));
}

if (process.argv[2] === '--destination') {
  await runDestination(process.argv[3]!, Number(process.argv[4]));
} else {
  await main();
}
