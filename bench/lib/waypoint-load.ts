/**
 * The load generator of the waypoint benchmark, as its own process (forked by bench/waypoint.ts) so that its CPU
 * is never counted as a proxy's and it never competes with the benchmark's bookkeeping on the event loop. It is the
 * data-path benchmark's client (datapath-client.ts: keep-alive HTTP/1.1 on raw sockets, a minimal response parser,
 * the open-loop pacer on a worker thread), the same for every path.
 *
 * Requests: `GET / HTTP/1.1` to server.bench.svc.cluster.local, every second one with `x-canary: true`, so the
 * route decision goes both ways and both server versions get load.
 *
 * IPC (serialization "advanced"): the parent sends `{ id, cmd, ... }` and gets `{ id, ok: true, ... }` or
 * `{ id, ok: false, error }`; commands:
 *   open       { name, dial, connections }   opens keep-alive connections for path `name`
 *   sequential { name, count, maxMs }        one request at a time on the path's first connection
 *   rate       { name, rps, durationMs }     open loop over all the path's connections
 *   probe      { name, dial }                one plain and one canary request on a fresh connection: the x-version answered
 *   close      { name }
 * Latencies come back as Float64Array of nanoseconds. It exits when the parent disconnects.
 */
import { HttpConn, dialerFor, openConns, openLoop, sequential, type DialSpec, type Dialer } from './datapath-client.js';
import { serveForked } from './forked.js';

export const HOST = 'server.bench.svc.cluster.local';
export const CANARY_HEADER = 'x-canary';
export const CANARY_VALUE = 'true';

const request = (canary: boolean): Buffer => Buffer.from(
  `GET / HTTP/1.1\r\nHost: ${HOST}\r\nUser-Agent: strait-bench\r\nAccept: */*\r\n${canary ? `${CANARY_HEADER}: ${CANARY_VALUE}\r\n` : ''}\r\n`, 'latin1');
const PLAIN = request(false);
const CANARY = request(true);

/** Alternates plain and canary requests, counting each kind as it is sent. */
function alternating(): { pick: (i: number) => Buffer; counts: { plain: number; canary: number } } {
  const counts = { plain: 0, canary: 0 };
  return {
    counts,
    pick: (i) => {
      if (i % 2 === 1) {
        counts.canary++;
        return CANARY;
      }
      counts.plain++;
      return PLAIN;
    },
  };
}

/** One request on a fresh socket, reading the response head: its status line and x-version. */
async function probeOne(dial: Dialer, canary: boolean): Promise<{ status: string; version: string | null }> {
  const s = await dial();
  try {
    return await new Promise((resolve, reject) => {
      let buf = Buffer.alloc(0);
      const timer = setTimeout(() => reject(new Error('no response within 10 s')), 10_000);
      s.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        clearTimeout(timer);
        const head = buf.toString('latin1', 0, end);
        resolve({ status: head.split('\r\n')[0]!, version: /\r\nx-version:\s*(\S+)/i.exec(head)?.[1] ?? null });
      });
      s.on('error', (err) => { clearTimeout(timer); reject(err); });
      s.on('close', () => { clearTimeout(timer); reject(new Error('closed before a response')); });
      s.resume();
      s.write(request(canary));
    });
  } finally {
    s.destroy();
  }
}

const conns = new Map<string, HttpConn[]>();

type Msg = { id: number; cmd: string; name: string; [k: string]: unknown };

async function handle(m: Msg): Promise<Record<string, unknown>> {
  switch (m.cmd) {
    case 'open': {
      const list = await openConns(dialerFor(m.dial as DialSpec), m.connections as number);
      conns.set(m.name, [...(conns.get(m.name) ?? []), ...list]);
      return {};
    }
    case 'sequential': {
      const c = conns.get(m.name)?.[0];
      if (!c) throw new Error(`no connection open for ${m.name}`);
      const a = alternating();
      const r = await sequential(c, a.pick, m.count as number, m.maxMs as number);
      if (c.closed) throw new Error(`${m.name}: the connection closed during the run (${r.errors} errors)`);
      return { samples: r.latency.values(), errors: r.errors, seconds: r.seconds, ...a.counts };
    }
    case 'rate': {
      const list = conns.get(m.name);
      if (!list?.length) throw new Error(`no connections open for ${m.name}`);
      const a = alternating();
      const r = await openLoop(list, a.pick, m.rps as number, m.durationMs as number);
      return {
        fromSchedule: r.fromSchedule.values(), service: r.service.values(), lateness: r.lateness.values(),
        scheduled: r.scheduled, due: r.due, completed: r.completed, errors: r.errors, seconds: r.seconds, closed: list.filter((c) => c.closed).length, ...a.counts,
      };
    }
    case 'probe': {
      const d = dialerFor(m.dial as DialSpec);
      return { plain: await probeOne(d, false), canary: await probeOne(d, true) };
    }
    case 'close': {
      for (const c of conns.get(m.name) ?? []) c.close();
      conns.delete(m.name);
      return {};
    }
    default:
      throw new Error(`unknown command ${m.cmd}`);
  }
}

serveForked(handle);
