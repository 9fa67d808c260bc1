import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

import { StraitProcess, run } from './procs.js';
import { tempDir } from './temp-dir.js';
import { eventually } from './eventually.js';
import { SocksForwarder } from './socks-forwarder.js';

/** What the state file says of each component: its pid (null while it is not running), status and restarts. */
export interface ComponentStateFile { pid: number; status?: 'starting' | 'running' | 'restarting' | 'stopped'; restarts?: number }

export interface MeshStateFile {
  rootCert: string;
  addressBase?: string;
  controller: ComponentStateFile & { xds: string; admin: string };
  nodes: Record<string, ComponentStateFile & { address: string; socks5: string; admin: string; metrics: string; ready: string }>;
  apps: Record<string, ComponentStateFile & { address: string; node: string }>;
}

/** A real `strait up` on a manifest directory, driven through its state file and log directory. */
export class TestMesh {
  readonly logDir = tempDir('mesh-logs');
  readonly dataDir = tempDir('mesh-data');
  readonly stateFile: string;
  proc!: StraitProcess;
  state!: MeshStateFile;

  constructor(readonly manifestDir: string, readonly extraArgs: string[] = [], readonly env: Record<string, string> = {}) {
    this.stateFile = join(this.logDir.path, 'state.json');
  }

  async start(): Promise<this> {
    this.proc = StraitProcess.start(['up', this.manifestDir, '--state-file', this.stateFile, '--log-dir', this.logDir.path, '--data-dir', this.dataDir.path, ...this.extraArgs], this.env);
    await this.proc.waitFor((l) => l.msg === 'mesh ready', 60_000, 'mesh ready');
    this.state = JSON.parse(readFileSync(this.stateFile, 'utf8')) as MeshStateFile;
    return this;
  }

  /** JSON lines of one component's log file (e.g. "ztunnel/node-a"). */
  logs(component: string): Record<string, any>[] {
    const file = join(this.logDir.path, `${component.replace(/[/:]/g, '_')}.log`);
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8').split('\n').filter(Boolean).flatMap((l) => { try { return [JSON.parse(l)]; } catch { return []; } });
  }

  logFiles(): string[] {
    return readdirSync(this.logDir.path);
  }

  async metrics(node: string): Promise<string> {
    return (await fetch(`http://${this.state.nodes[node].metrics}/metrics`)).text();
  }

  async configDump(node: string): Promise<any> {
    return (await fetch(`http://${this.state.nodes[node].admin}/config_dump`)).json();
  }

  /** Waits until a node's ztunnel holds (or no longer holds) an authorization resource. */
  async policyOnNode(node: string, key: string, present = true): Promise<void> {
    await eventually(async () => ((await this.configDump(node)).policies as { key: string }[]).some((p) => p.key === key) === present, 5000, `${key} ${present ? 'on' : 'gone from'} ${node}`);
  }

  /** Real curl from a pod's address through its node's SOCKS5. */
  curl(fromIp: string, node: string, url: string, extra: string[] = []) {
    return run('curl', ['-sS', '--max-time', '10', '--noproxy', '', '--interface', fromIp, '--socks5-hostname', this.state.nodes[node].socks5, ...extra, url]);
  }

  /**
   * Real curl, as curl(), whose JSON body is parsed: the status from `-w '%{http_code}'` (0: no answer), the
   * response headers (`%{header_json}`: names lower case, every value), the HTTP version and the time taken.
   * Add `H2C` to `extra` for HTTP/2 with prior knowledge, `['-H', 'x: y']` for headers, `['-d', body]` to POST.
   */
  async curlJson(fromIp: string, node: string, url: string, extra: string[] = []): Promise<CurlJsonResult> {
    const r = await this.curl(fromIp, node, url, ['-w', `${WRITE_OUT_MARK}%{http_code} %{http_version} %{time_total}${WRITE_OUT_MARK}%{header_json}`, ...extra]);
    const at = r.stdout.lastIndexOf(WRITE_OUT_MARK, r.stdout.lastIndexOf(WRITE_OUT_MARK) - 1);
    const text = at >= 0 ? r.stdout.slice(0, at) : r.stdout;
    const [meta = '', headerJson = ''] = at >= 0 ? r.stdout.slice(at + WRITE_OUT_MARK.length).split(WRITE_OUT_MARK) : [];
    const [code = '0', version = '', time = '0'] = meta.split(' ');
    let headers: Record<string, string[]> = {};
    try { headers = JSON.parse(headerJson) as Record<string, string[]>; } catch { /* no answer */ }
    return { exit: r.code, status: Number(code), httpVersion: version, timeMs: Math.round(Number(time) * 1000), headers, body: parseJson(text), text, stderr: r.stderr };
  }

  /** curlJson() with HTTP/2 prior knowledge (h2c). */
  curlH2(fromIp: string, node: string, url: string, extra: string[] = []): Promise<CurlJsonResult> {
    return this.curlJson(fromIp, node, url, [...H2C, ...extra]);
  }

  /**
   * `n` requests from a pod through its node's SOCKS5 in ONE curl process (`--parallel`, a config file with a block per
   * request, each body to its own file; over h2c one process per `parallel` requests, see CurlBatchOptions.http2): per-status counts, a tally of one JSON field of the bodies (default
   * `version`), and every result in request order. `url` may depend on the request's index.
   */
  async curlBatch(fromIp: string, node: string, url: string | ((i: number) => string), n: number, opts: CurlBatchOptions = {}): Promise<CurlBatchResult> {
    const dir = tempDir('curl-batch');
    try {
      const q = (v: string) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
      const common = [
        'silent', 'show-error', `noproxy = ""`, `interface = ${q(fromIp)}`, `socks5-hostname = ${q(this.state.nodes[node].socks5)}`,
        `max-time = ${opts.maxTimeS ?? 10}`, `write-out = "%{filename_effective} %{http_code} %{exitcode} %{time_total}\\n"`,
        ...(opts.http2 ? ['http2-prior-knowledge'] : []), ...(opts.configLines ?? []),
      ];
      const blocks: string[] = [];
      for (let i = 0; i < n; i++) {
        const headers = { ...opts.headers, ...opts.headersFor?.(i) };
        blocks.push([`url = ${q(typeof url === 'string' ? url : url(i))}`, `output = ${q(join(dir.path, String(i)))}`, ...common,
          ...Object.entries(headers).map(([k, v]) => `header = ${q(`${k}: ${v}`)}`)].join('\n'));
      }
      // curl 7.88 (Debian 12) fails every request it sends on a reused h2c prior-knowledge connection ("Error in the
      // HTTP2 framing layer", curl issue 10634, fixed in 8.0): over h2c one curl process per `parallel` requests, each
      // on its own connection (--parallel-immediate), so no connection is ever reused.
      const parallel = opts.parallel ?? 50;
      const chunk = opts.http2 ? parallel : n;
      const started = Date.now();
      let stdout = '';
      let stderr = '';
      let exit: number | null = 0;
      for (let from = 0; from < n; from += chunk) {
        const config = join(dir.path, `curl-${from}.config`);
        writeFileSync(config, blocks.slice(from, from + chunk).join('\nnext\n') + '\n');
        const r = await run('curl', ['--parallel', '--parallel-max', String(parallel), ...(opts.http2 ? ['--parallel-immediate'] : []), '-K', config]);
        stdout += r.stdout;
        stderr += r.stderr;
        if (r.code !== 0) exit = r.code;
      }
      const durationMs = Date.now() - started;
      const r = { stdout, stderr, code: exit };
      const results: CurlBatchResult['results'] = Array.from({ length: n }, () => ({ status: 0, exit: -1, timeMs: 0, body: undefined }));
      for (const line of r.stdout.split('\n')) {
        const m = /^(\S+) (\d{3}) (\d+) ([\d.]+)$/.exec(line);
        if (!m) continue;
        const i = Number(m[1]!.slice(m[1]!.lastIndexOf('/') + 1));
        const file = join(dir.path, String(i));
        results[i] = { status: Number(m[2]), exit: Number(m[3]), timeMs: Math.round(Number(m[4]) * 1000), body: existsSync(file) ? parseJson(readFileSync(file, 'utf8')) : undefined };
      }
      const statuses: Record<number, number> = {};
      const tally: Record<string, number> = {};
      const field = opts.tally ?? 'version';
      for (const x of results) {
        statuses[x.status] = (statuses[x.status] ?? 0) + 1;
        let v: unknown = x.body;
        for (const part of field.split('.')) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[part] : undefined;
        if (v !== undefined) tally[String(v)] = (tally[String(v)] ?? 0) + 1;
      }
      return { total: n, statuses, tally, results, durationMs, exit: r.code, stderr: r.stderr };
    } finally {
      dir.remove();
    }
  }

  /**
   * A SocksForwarder for clients without SOCKS5 (grpc-js, nghttp, h2load): listens on the pod's own address (port from
   * the kernel: `forwarder.address`), and carries each connection from that pod through its node's SOCKS5 to
   * host:port. The caller closes it (after()).
   */
  forwarder(fromIp: string, node: string, host: string, port: number): Promise<SocksForwarder> {
    const [proxyHost, proxyPort] = this.state.nodes[node].socks5.split(':');
    return SocksForwarder.start({ listen: { host: fromIp, port: 0 }, proxy: { host: proxyHost!, port: Number(proxyPort) }, source: fromIp, target: { host, port } });
  }

  /** The state file as it is now. */
  readState(): MeshStateFile {
    return JSON.parse(readFileSync(this.stateFile, 'utf8')) as MeshStateFile;
  }

  /** Every pid the state file names: controller, ztunnels, apps. */
  pids(state: MeshStateFile = this.state): number[] {
    return [state.controller.pid, ...Object.values(state.nodes).map((n) => n.pid), ...Object.values(state.apps).map((a) => a.pid)].filter((p) => typeof p === 'number');
  }

  async stop(): Promise<number | null> {
    const code = await this.proc?.stop(15_000);
    return code;
  }

  cleanup(): void {
    this.logDir.remove();
    this.dataDir.remove();
  }
}

/** curl's flag for HTTP/2 with prior knowledge (h2c), for `extra`. */
export const H2C = ['--http2-prior-knowledge'] as const;
const WRITE_OUT_MARK = '\n@@strait-curl@@';

export interface CurlJsonResult {
  /** curl's exit code (0: a response arrived, whatever its status; 28: timed out; 7: could not connect; 97: SOCKS5 refused). */
  exit: number | null;
  /** HTTP status; 0 when no response arrived. */
  status: number;
  /** "1.1", "2" ("0" without a response). */
  httpVersion: string;
  timeMs: number;
  /** Response headers, names lower case, every value. */
  headers: Record<string, string[]>;
  /** The body parsed as JSON, undefined when it is not JSON. */
  body: any;
  text: string;
  stderr: string;
}

export interface CurlBatchOptions {
  /** Transfers at once (`--parallel-max`, default 50). */
  parallel?: number;
  /**
   * HTTP/2 with prior knowledge. curl 7.88 cannot reuse an h2c connection, so each request gets its own connection
   * (one curl process per `parallel` requests, `--parallel-immediate`).
   */
  http2?: boolean;
  /** Headers on every request. */
  headers?: Record<string, string>;
  /** Headers of request i (0-based), e.g. a distinct x-request-key each. */
  headersFor?: (i: number) => Record<string, string>;
  /** Dotted JSON field of the bodies to tally (default "version"). */
  tally?: string;
  /** Per-request time limit in seconds (default 10). */
  maxTimeS?: number;
  /** More curl config-file lines for every request (e.g. 'request = "POST"', 'data = "x"'). */
  configLines?: string[];
}

export interface CurlBatchResult {
  total: number;
  /** Requests per HTTP status; 0 counts those that got no response. */
  statuses: Record<number, number>;
  /** Requests per value of the tallied field (bodies without it are not counted). */
  tally: Record<string, number>;
  /** Per request, in request order: status (0: none), curl's exit code for it, time, parsed body. */
  results: { status: number; exit: number; timeMs: number; body: any }[];
  /** Wall time of the whole batch. */
  durationMs: number;
  exit: number | null;
  stderr: string;
}

function parseJson(text: string): any {
  try { return JSON.parse(text); } catch { return undefined; }
}

export const policy = (ns: string, name: string, spec: unknown) => ({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: ns }, spec });

export function node(name: string, ip: string) {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: ip }] } };
}

/** A pod running the built-in demo app on port 8080. */
export function appPod(ns: string, name: string, nodeName: string, ip: string, sa: string, labels: Record<string, string> = {}) {
  return {
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels: { app: name, ...labels } },
    spec: { nodeName, serviceAccountName: sa, containers: [{ name: 'app', image: 'strait/demo-app', ports: [{ name: 'http', containerPort: 8080 }] }] },
    status: { podIP: ip },
  };
}

/**
 * A pod running the built-in demo app with its demo annotations (strait.dev/demo-fail-status, -fail-ratio,
 * -fail-first, -delay-ms) and ports (default http 8080; a port named grpc or grpc-* also serves gRPC Echo).
 */
export function demoPod(ns: string, name: string, nodeName: string, ip: string, sa: string, o: {
  labels?: Record<string, string>; annotations?: Record<string, string>; ports?: { name?: string; containerPort: number }[];
} = {}) {
  return {
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels: { app: name, ...o.labels }, annotations: o.annotations ?? {} },
    spec: { nodeName, serviceAccountName: sa, containers: [{ name: 'app', image: 'strait/demo-app', ports: o.ports ?? [{ name: 'http', containerPort: 8080 }] }] },
    status: { podIP: ip },
  };
}

export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Whether something accepts TCP connections at host:port. */
export const portOpen = (host: string, port: number): Promise<boolean> => new Promise<boolean>((resolve) => {
  const s = net.connect({ host, port }, () => { s.destroy(); resolve(true); });
  s.on('error', () => resolve(false));
});

/** Pids of processes whose command line contains `text` (e.g. a test's own temporary directory). */
export function pidsMentioning(text: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** SIGKILLs what a failed test left behind. */
export function killAll(pids: readonly number[]): void {
  for (const pid of pids) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
}
