import { spawn } from 'node:child_process';
import { STRAIT_BIN } from './procs.js';

export interface CliResult { code: number | null; stdout: string; stderr: string }

/** Runs the real `strait` CLI (dist/src/cli/strait.js) to completion with extra environment variables. */
export function strait(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CliResult> {
  const child = spawn(process.execPath, [STRAIT_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => child.on('close', (code) => {
    clearTimeout(t);
    resolve({ code, stdout, stderr });
  }));
}
