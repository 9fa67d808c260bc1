/**
 * Reference (b) of the waypoint benchmark: Debian's nginx doing the waypoint's L7 job, run in a temporary prefix
 * (`nginx -p PREFIX -c nginx.conf -e logs/error.log`, `daemon off`) as a child process of the benchmark:
 *
 * - in: `listen … ssl`, TLS 1.3 only, `ssl_verify_client on` against the mesh root (client certificate required);
 * - route: `map $http_x_canary $backend { "true" b; default a; }`, `proxy_pass https://$backend`;
 * - out: `proxy_ssl_certificate` (mutual TLS 1.3), `proxy_ssl_verify on` against the mesh root with
 *   `proxy_ssl_name` (nginx checks DNS names, not the URI SAN a SPIFFE id is), upstream keep-alive connections
 *   (`keepalive 64`, HTTP/1.1, `Connection ""`), TLS session reuse;
 * - `keepalive_requests` raised to 1,000,000 and `keepalive_timeout` to 300 s on both sides (nginx's defaults,
 *   1,000 requests and 60 s, would close the benchmark's keep-alive connections mid-run);
 * - access log: nginx's default (`combined`, one write per request, to PREFIX/logs/access.log) unless turned off,
 *   as the waypoint's access log is on by default.
 *
 * One nginx per worker setting (1 worker: as the waypoint's one thread; `auto`: one per core).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface NginxBinary {
  path: string;
  version: string;
}

/** nginx on PATH or in /usr/sbin (Debian puts it there, off a normal user's PATH), or undefined. */
export function findNginx(): NginxBinary | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin']) {
    const path = join(dir, 'nginx');
    try {
      accessSync(path, constants.X_OK);
    } catch {
      continue;
    }
    const v = spawnSync(path, ['-v'], { encoding: 'utf8', timeout: 5000 });
    return { path, version: /nginx\/\S+/.exec(`${v.stdout}${v.stderr}`)?.[0] ?? 'nginx (version unknown)' };
  }
  return undefined;
}

export interface NginxOptions {
  bin: NginxBinary;
  /** A fresh directory: nginx.conf, logs/, temp directories. */
  prefix: string;
  workers: number | 'auto';
  listen: { host: string; port: number };
  serverCert: { cert: string; key: string };
  clientCert: { cert: string; key: string };
  ca: string;
  header: string;
  value: string;
  upstreams: { a: { host: string; port: number }; b: { host: string; port: number } };
  /** The DNS name nginx verifies in the upstream's certificate. */
  upstreamName: string;
  accessLog: boolean;
}

export function nginxConfig(o: NginxOptions): string {
  const variable = `$http_${o.header.replace(/-/g, '_')}`;
  return `# Written by bench/waypoint.ts (see bench/lib/waypoint-nginx.ts).
worker_processes ${o.workers};
daemon off;
master_process on;
pid nginx.pid;
error_log logs/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log ${o.accessLog ? 'logs/access.log combined' : 'off'};
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path temp/client_body;
    proxy_temp_path temp/proxy;
    fastcgi_temp_path temp/fastcgi;
    uwsgi_temp_path temp/uwsgi;
    scgi_temp_path temp/scgi;

    map ${variable} $backend {
        "${o.value}" b;
        default a;
    }
    upstream a {
        server ${o.upstreams.a.host}:${o.upstreams.a.port};
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }
    upstream b {
        server ${o.upstreams.b.host}:${o.upstreams.b.port};
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }
    server {
        listen ${o.listen.host}:${o.listen.port} ssl;
        ssl_protocols TLSv1.3;
        ssl_certificate ${o.serverCert.cert};
        ssl_certificate_key ${o.serverCert.key};
        ssl_client_certificate ${o.ca};
        ssl_verify_client on;
        ssl_verify_depth 3;

        location / {
            proxy_pass https://$backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_ssl_protocols TLSv1.3;
            proxy_ssl_certificate ${o.clientCert.cert};
            proxy_ssl_certificate_key ${o.clientCert.key};
            proxy_ssl_trusted_certificate ${o.ca};
            proxy_ssl_verify on;
            proxy_ssl_verify_depth 3;
            proxy_ssl_name ${o.upstreamName};
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
        }
    }
}
`;
}

/** Children of `pid` (from /proc/<pid>/task/<pid>/children, else a scan of /proc). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    const out: number[] = [];
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(d));
      } catch {
        // gone
      }
    }
    return out;
  }
}

/** One nginx master with its workers. */
export class NginxProxy {
  private proc: ChildProcess | undefined;
  private exited: Promise<unknown> | undefined;

  constructor(private readonly o: NginxOptions) {}

  get masterPid(): number {
    return this.proc?.pid ?? 0;
  }

  /** The worker processes (what serves requests; the master only supervises). */
  workerPids(): number[] {
    return this.proc?.pid ? childrenOf(this.proc.pid) : [];
  }

  async start(): Promise<void> {
    for (const d of ['logs', 'temp']) mkdirSync(join(this.o.prefix, d), { recursive: true });
    const conf = join(this.o.prefix, 'nginx.conf');
    writeFileSync(conf, nginxConfig(this.o));
    const errorLog = join(this.o.prefix, 'logs', 'error.log');
    const check = spawnSync(this.o.bin.path, ['-t', '-q', '-p', this.o.prefix, '-c', conf, '-e', errorLog], { encoding: 'utf8' });
    if (check.status !== 0) throw new Error(`nginx rejects ${conf}: ${check.stderr.trim()}`);
    this.proc = spawn(this.o.bin.path, ['-p', this.o.prefix, '-c', conf, '-e', errorLog], { stdio: ['ignore', 'inherit', 'inherit'] });
    this.exited = once(this.proc, 'exit');
    const want = this.o.workers === 'auto' ? 1 : this.o.workers;
    const until = Date.now() + 10_000;
    while (this.workerPids().length < want) {
      if (this.proc.exitCode !== null) throw new Error(`nginx exited with ${this.proc.exitCode}; see ${errorLog}`);
      if (Date.now() > until) throw new Error(`nginx started no worker within 10 s; see ${errorLog}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // Workers listen on the inherited socket at once; give an `auto` master time to fork all of them.
    await new Promise((r) => setTimeout(r, 200));
  }

  /** SIGQUIT (graceful: finish requests, close keep-alive connections), SIGKILL after 5 s. */
  async stop(): Promise<void> {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const workers = this.workerPids();
    this.proc.kill('SIGQUIT');
    const t = setTimeout(() => {
      this.proc?.kill('SIGKILL');
      for (const w of workers) try { process.kill(w, 'SIGKILL'); } catch { /* gone */ }
    }, 5000);
    await this.exited;
    clearTimeout(t);
  }
}
