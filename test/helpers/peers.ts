/**
 * Independent HTTP/2 peers for the interop tests: python-h2 (Debian python3-h2, run by test/peers/*.py) and nghttp
 * (Debian nghttp2-client). `.ci/run` installs both; a test whose peer is missing says so loudly and fails under
 * CI=true (requireOrSkip), it never passes quietly.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CertificateAuthority, SpiffeId, createKeyAndCsr } from '../../src/identity/index.js';

/** The peer scripts, in the source tree (tests run from dist/test/...). */
export const PEERS_DIR = new URL('../../../test/peers/', import.meta.url).pathname;

/** Debian's python3-h2 is importable from /usr/bin/python3 (a python3 earlier on PATH may lack Debian's modules). */
const PYTHON_CANDIDATES = ['/usr/bin/python3', 'python3'];

let python: { path: string; h2Version: string } | string | undefined;

/** A python that imports h2, or the reason there is none. Probed once per process. */
export function pythonH2(): { path: string; h2Version: string } | string {
  if (python !== undefined) return python;
  for (const p of PYTHON_CANDIDATES) {
    const r = spawnSync(p, ['-c', 'import h2, hpack, hyperframe; print(h2.__version__)'], { encoding: 'utf8', timeout: 10_000 });
    if (r.status === 0) {
      python = { path: p, h2Version: r.stdout.trim() };
      return python;
    }
  }
  python = `no python with the h2 module (tried ${PYTHON_CANDIDATES.join(', ')}): apt-get install -y python3-h2 (.ci/run does)`;
  return python;
}

let nghttpReason: string | null | undefined;

/** Why nghttp cannot run here, or undefined when it can. */
export function nghttpUnavailable(): string | undefined {
  if (nghttpReason === undefined) {
    const r = spawnSync('nghttp', ['--version'], { encoding: 'utf8', timeout: 10_000 });
    nghttpReason = r.status === 0 ? null : '`nghttp` is not installed: apt-get install -y nghttp2-client (.ci/run does)';
  }
  return nghttpReason ?? undefined;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (killed after `timeoutMs`). */
export async function runCommand(cmd: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  return { code, stdout, stderr: stderr + (signal ? `\n(killed by ${signal} after ${timeoutMs} ms)` : '') };
}

/** A long-running peer whose stdout JSON lines are collected (the python server). */
export class PeerProcess {
  readonly lines: Array<Record<string, any>> = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<number | null>;
  private waiters: Array<{ pred: (l: Record<string, any>) => boolean; resolve: (l: Record<string, any>) => void }> = [];

  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (text) => {
      let line: Record<string, any>;
      try { line = JSON.parse(text) as Record<string, any>; } catch { line = { raw: text }; }
      this.lines.push(line);
      this.waiters = this.waiters.filter((w) => (w.pred(line) ? (w.resolve(line), false) : true));
    });
    createInterface({ input: child.stderr! }).on('line', (t) => this.stderr.push(t));
    this.exited = once(child, 'exit').then(([code]) => code as number | null);
  }

  static start(cmd: string, args: string[]): PeerProcess {
    return new PeerProcess(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  waitFor(pred: (l: Record<string, any>) => boolean, timeoutMs = 10_000, what = 'line'): Promise<Record<string, any>> {
    const found = this.lines.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; stderr: ${this.stderr.join('\n')}; lines: ${JSON.stringify(this.lines.slice(-5))}`)), timeoutMs);
      this.waiters.push({ pred, resolve: (l) => { clearTimeout(t); resolve(l); } });
      void this.exited.then((code) => { clearTimeout(t); reject(new Error(`peer exited (${code}) before ${what}; stderr: ${this.stderr.join('\n')}`)); });
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}

export interface PemFiles {
  cert: string;
  key: string;
  ca: string;
}

/**
 * Issues a workload certificate for `spiffeId` from the mesh root kept in `dataDir` (what `strait up --data-dir`
 * uses) and writes it, its key and the root as PEM files into `dir`, named after `name`.
 */
export async function issuePemFiles(dataDir: string, spiffeId: string, dir: string, name: string): Promise<PemFiles> {
  const ca = await CertificateAuthority.loadOrCreate({ dataDir });
  const { keyPem, csrPem } = await createKeyAndCsr();
  const { certChainPem } = ca.signWorkload(csrPem, SpiffeId.parse(spiffeId));
  const files = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`), ca: join(dir, 'root.pem') };
  writeFileSync(files.cert, certChainPem.join('\n'));
  writeFileSync(files.key, keyPem, { mode: 0o600 });
  writeFileSync(files.ca, ca.rootCertPem);
  return files;
}
