/**
 * The data-path benchmarks' load, behind one interface whether it runs in the benchmark's own process (LocalLoad:
 * bench/datapath.ts, everything on loopback) or in a process of its own inside a pod's network namespace
 * (RemoteLoad → datapath-load-child.ts: bench/capture.ts). Both are the same client (datapath-client.ts).
 *
 * A path is a name with two dialers: `http` (the bench server's HTTP port) and `sink` (its upload sink). A
 * connection set is a group of keep-alive connections opened on one path, used by one phase.
 */
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  download, openConns, openLoop, requestBytes, sequential, upload,
  type DialSpec, type Dialer, type HttpConn, type OpenLoopResult, type SequentialResult, type TransferResult,
} from './datapath-client.js';
import { Samples } from './datapath-stats.js';
import { Forked } from './forked.js';

/** The request of the latency phases: 1 KB answered by datapath-server.ts. */
export const REQUEST_PATH = '/1k';
/** The Host header of every request (the bench server ignores it). */
export const REQUEST_HOST = 'server';

export interface LoadDriver {
  /** One successful GET /1k (three on one fresh connection), retried for up to `timeoutMs`. */
  probe(path: string, timeoutMs?: number): Promise<void>;
  /** Opens `connections` keep-alive connections on `path` as connection set `set`. */
  open(set: string, path: string, connections: number): Promise<void>;
  /** `count` requests one after another on the set's first connection. */
  sequential(set: string, count: number, maxMs: number): Promise<SequentialResult>;
  /** Open-loop load at `rps` over all of the set's connections. */
  openLoop(set: string, rps: number, durationMs: number): Promise<OpenLoopResult>;
  /** `bytes` downloaded on each of `streams` fresh connections at once. */
  download(path: string, bytes: number, streams: number, maxMs: number): Promise<TransferResult>;
  /** `bytes` uploaded on each of `streams` fresh connections at once. */
  upload(path: string, bytes: number, streams: number, maxMs: number): Promise<TransferResult>;
  close(set: string): Promise<void>;
}

const REQUEST = requestBytes(REQUEST_PATH, REQUEST_HOST);

/**
 * The load in this process. Invariants: every connection of a set is in `sets` until close(set) destroys it; a run
 * starts with every connection of its set open (one that closed while idle, e.g. at the server's keep-alive timeout
 * during a long wait for a quiet machine, is dialled again first, and `say` tells so).
 */
export class LocalLoad implements LoadDriver {
  private readonly paths = new Map<string, { http: Dialer; sink: Dialer }>();
  private readonly sets = new Map<string, { path: string; conns: HttpConn[] }>();

  constructor(private readonly say: (msg: string) => void = (msg) => process.stderr.write(`[load] ${msg}\n`)) {}

  addPath(name: string, http: Dialer, sink: Dialer): void {
    this.paths.set(name, { http, sink });
  }

  private path(name: string): { http: Dialer; sink: Dialer } {
    const p = this.paths.get(name);
    if (!p) throw new Error(`BUG: no path ${name} (known: ${[...this.paths.keys()].join(', ')})`);
    return p;
  }

  /** The set's connections, those closed while idle replaced by fresh ones. */
  private async set(name: string): Promise<HttpConn[]> {
    const s = this.sets.get(name);
    if (!s?.conns.length) throw new Error(`BUG: no connections open as ${name}`);
    const closed = s.conns.filter((c) => c.closed).length;
    if (closed > 0) {
      this.say(`${name}: ${closed} of ${s.conns.length} connections closed while idle; dialling them again before the run`);
      const dial = this.path(s.path).http;
      for (let i = 0; i < s.conns.length; i++) if (s.conns[i]!.closed) s.conns[i] = (await openConns(dial, 1))[0]!;
    }
    return s.conns;
  }

  async probe(path: string, timeoutMs = 30_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < until) {
      try {
        const [conn] = await openConns(this.path(path).http, 1);
        const r = await sequential(conn!, REQUEST, 3, 5_000);
        conn!.close();
        if (r.errors === 0 && r.latency.count === 3) return;
        last = new Error(`${r.errors} errors`);
      } catch (err) {
        last = err;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`path ${path} does not answer GET ${REQUEST_PATH} after ${timeoutMs} ms: ${(last as Error)?.message ?? last}`);
  }

  async open(set: string, path: string, connections: number): Promise<void> {
    const conns = await openConns(this.path(path).http, connections);
    this.sets.set(set, { path, conns: [...(this.sets.get(set)?.conns ?? []), ...conns] });
  }

  async sequential(set: string, count: number, maxMs: number): Promise<SequentialResult> {
    return sequential((await this.set(set))[0]!, REQUEST, count, maxMs);
  }

  async openLoop(set: string, rps: number, durationMs: number): Promise<OpenLoopResult> {
    return openLoop(await this.set(set), REQUEST, rps, durationMs);
  }

  download(path: string, bytes: number, streams: number, maxMs: number): Promise<TransferResult> {
    return download(this.path(path).http, bytes, REQUEST_HOST, maxMs, streams);
  }

  upload(path: string, bytes: number, streams: number, maxMs: number): Promise<TransferResult> {
    return upload(this.path(path).sink, bytes, maxMs, streams);
  }

  async close(set: string): Promise<void> {
    for (const c of this.sets.get(set)?.conns ?? []) c.close();
    this.sets.delete(set);
  }
}

const CHILD_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'datapath-load-child.js');

/**
 * The load in a process of its own (datapath-load-child.ts), optionally inside a network namespace: a pod's client.
 * Latency samples come back as Float64Array and are rebuilt into Samples here.
 */
export class RemoteLoad implements LoadDriver {
  private readonly child: Forked;

  constructor(what: string, opts: { netns?: string } = {}) {
    this.child = new Forked(CHILD_SCRIPT, [], what, opts);
  }

  get pid(): number {
    return this.child.pid;
  }

  async start(): Promise<void> {
    await this.child.ready;
  }

  async addPath(name: string, http: DialSpec, sink: DialSpec): Promise<void> {
    await this.child.call('path', { name, http, sink });
  }

  async probe(path: string, timeoutMs = 30_000): Promise<void> {
    await this.child.call('probe', { path, timeoutMs });
  }

  async open(set: string, path: string, connections: number): Promise<void> {
    await this.child.call('open', { set, path, connections });
  }

  async sequential(set: string, count: number, maxMs: number): Promise<SequentialResult> {
    const r = await this.child.call('sequential', { set, count, maxMs });
    return { latency: Samples.from(r.latency as Float64Array), errors: r.errors, seconds: r.seconds };
  }

  async openLoop(set: string, rps: number, durationMs: number): Promise<OpenLoopResult> {
    const r = await this.child.call('openLoop', { set, rps, durationMs });
    return {
      fromSchedule: Samples.from(r.fromSchedule), service: Samples.from(r.service), lateness: Samples.from(r.lateness),
      scheduled: r.scheduled, due: r.due, completed: r.completed, errors: r.errors, seconds: r.seconds, achievedRps: r.achievedRps,
    };
  }

  async download(path: string, bytes: number, streams: number, maxMs: number): Promise<TransferResult> {
    return (await this.child.call('download', { path, bytes, streams, maxMs })).result as TransferResult;
  }

  async upload(path: string, bytes: number, streams: number, maxMs: number): Promise<TransferResult> {
    return (await this.child.call('upload', { path, bytes, streams, maxMs })).result as TransferResult;
  }

  async close(set: string): Promise<void> {
    await this.child.call('close', { set });
  }

  stop(): Promise<void> {
    return this.child.stop();
  }
}

/**
 * Several load drivers behind one: each path is carried by the driver `route(path)` names (bench/capture.ts: the
 * client in the enrolled pod and the one in the plain pod). Invariant: a set is used with the driver of the path it
 * was opened on.
 */
export class LoadByPath implements LoadDriver {
  private readonly setPath = new Map<string, string>();

  constructor(private readonly route: (path: string) => LoadDriver) {}

  private bySet(set: string): LoadDriver {
    const path = this.setPath.get(set);
    if (path === undefined) throw new Error(`BUG: connection set ${set} was never opened`);
    return this.route(path);
  }

  probe(path: string, timeoutMs?: number): Promise<void> {
    return this.route(path).probe(path, timeoutMs);
  }

  open(set: string, path: string, connections: number): Promise<void> {
    this.setPath.set(set, path);
    return this.route(path).open(set, path, connections);
  }

  sequential(set: string, count: number, maxMs: number): Promise<SequentialResult> {
    return this.bySet(set).sequential(set, count, maxMs);
  }

  openLoop(set: string, rps: number, durationMs: number): Promise<OpenLoopResult> {
    return this.bySet(set).openLoop(set, rps, durationMs);
  }

  download(path: string, bytes: number, streams: number, maxMs: number): Promise<TransferResult> {
    return this.route(path).download(path, bytes, streams, maxMs);
  }

  upload(path: string, bytes: number, streams: number, maxMs: number): Promise<TransferResult> {
    return this.route(path).upload(path, bytes, streams, maxMs);
  }

  async close(set: string): Promise<void> {
    if (!this.setPath.has(set)) return;
    await this.bySet(set).close(set);
    this.setPath.delete(set);
  }
}
