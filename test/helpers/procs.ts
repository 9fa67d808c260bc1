import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** The compiled CLI entry point (tests run from dist/test/...). */
export const STRAIT_BIN = new URL('../../src/cli/strait.js', import.meta.url).pathname;

export interface LogLine { msg?: string; level?: string; [k: string]: unknown }

/**
 * A real `strait ...` child process whose JSON log lines are collected. `waitFor` resolves with the first
 * line (past or future) matching a predicate.
 */
export class StraitProcess {
  readonly lines: LogLine[] = [];
  readonly stderr: string[] = [];
  private waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (text) => {
      let line: LogLine;
      try { line = JSON.parse(text) as LogLine; } catch { line = { msg: text, raw: true }; }
      this.lines.push(line);
      this.waiters = this.waiters.filter((w) => (w.pred(line) ? (w.resolve(line), false) : true));
    });
    createInterface({ input: child.stderr! }).on('line', (t) => this.stderr.push(t));
    this.exited = once(child, 'exit').then(([code]) => code as number | null);
  }

  static start(args: string[], env: Record<string, string> = {}): StraitProcess {
    return new StraitProcess(spawn(process.execPath, [STRAIT_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }));
  }

  waitFor(pred: (l: LogLine) => boolean, timeoutMs = 15_000, what = 'log line'): Promise<LogLine> {
    const found = this.lines.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out after ${timeoutMs}ms waiting for ${what}; stderr: ${this.stderr.join('\n')}; last lines: ${JSON.stringify(this.lines.slice(-5))}`)), timeoutMs);
      this.waiters.push({ pred, resolve: (l) => { clearTimeout(t); resolve(l); } });
      void this.exited.then((code) => { clearTimeout(t); reject(new Error(`process exited (${code}) before ${what}; stderr: ${this.stderr.join('\n')}`)); });
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  async stop(graceMs = 5000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }
}

/** Run a command to completion, capturing output. */
export async function run(cmd: string, args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  // A child that exits (or closes its stdin) before reading it makes this write fail with EPIPE: not the test's failure.
  child.stdin.on('error', () => undefined);
  child.stdin.end(input ?? '');
  // 'close', not 'exit': a process can exit before its output has been read from the pipes (then stdout came back empty).
  const [code] = await once(child, 'close');
  return { code: code as number | null, stdout, stderr };
}
