/**
 * Runs the shipped capture scripts (scripts/iptables/, DESIGN §6a) for the ztunnel: node-setup.sh, pod-add.sh,
 * pod-del.sh, pod-list.sh, node-teardown.sh. Each run is `sh SCRIPT ARGS...` with the capture parameters in its
 * environment and a time limit; a failure becomes a STRAIT_ERR_CAPTURE error carrying the script's own message
 * (the scripts say what to install or run). Nothing here decides which rules a node needs (pod-rules.ts does).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { StraitError } from '../../common/errors.js';
import { normalizeIp } from '../../common/net.js';
import { findPackageFile } from '../../common/package-file.js';

export const SCRIPTS_DIR = 'scripts/iptables';
export const CAPTURE_SCRIPTS = ['node-setup.sh', 'node-teardown.sh', 'pod-add.sh', 'pod-del.sh', 'pod-list.sh'] as const;
export type CaptureScript = (typeof CAPTURE_SCRIPTS)[number];
/** A script that has not finished by then is killed (iptables -w waits for the xtables lock, never this long). */
export const SCRIPT_TIMEOUT_MS = 30_000;

export interface CaptureScriptsOptions {
  /** Directory holding the scripts (default: the package's scripts/iptables). */
  dir?: string;
  /** STRAIT_IPTABLES for the scripts; undefined = the scripts' own choice. */
  iptables?: string;
  /** STRAIT_CAPTURE_MARK: the fwmark the rules skip (the ztunnel's own sockets carry it). */
  mark: number;
  ports: { outbound: number; inboundPlaintext: number; hbone: number };
  timeoutMs?: number;
}

export interface ScriptResult { stdout: string; stderr: string }

/** The package's scripts directory, or undefined when the package has none (say so at start-up). */
export function defaultScriptsDir(): string | undefined {
  return findPackageFile(import.meta.url, SCRIPTS_DIR);
}

export class CaptureScripts {
  readonly dir: string;
  private readonly env: NodeJS.ProcessEnv;

  constructor(private readonly o: CaptureScriptsOptions) {
    const dir = o.dir ?? defaultScriptsDir();
    if (!dir) throw new StraitError('STRAIT_ERR_CONFIG', `the capture scripts (${SCRIPTS_DIR}) are not in this package: reinstall Strait, or point --capture-scripts at a copy`);
    const missing = CAPTURE_SCRIPTS.filter((s) => !existsSync(join(dir, s)));
    if (missing.length > 0) {
      throw new StraitError('STRAIT_ERR_CONFIG', `--capture-scripts ${dir} lacks ${missing.join(', ')}: point it at Strait's scripts/iptables directory`);
    }
    this.dir = dir;
    // PATH for iptables in /usr/sbin even when the ztunnel was started with a user's PATH.
    const path = [process.env.PATH, '/usr/local/sbin', '/usr/sbin', '/sbin'].filter(Boolean).join(':');
    this.env = {
      PATH: path,
      STRAIT_CAPTURE_MARK: `0x${o.mark.toString(16)}`,
      STRAIT_OUTBOUND_PORT: String(o.ports.outbound),
      STRAIT_INBOUND_PORT: String(o.ports.inboundPlaintext),
      STRAIT_HBONE_PORT: String(o.ports.hbone),
      ...(o.iptables ? { STRAIT_IPTABLES: o.iptables } : {}),
    };
  }

  /** What the scripts are told to use (for /config_dump): the binary, or "auto" when the scripts choose. */
  get iptables(): string {
    return this.o.iptables ?? 'auto';
  }

  run(script: CaptureScript, args: readonly string[] = []): Promise<ScriptResult> {
    const file = join(this.dir, script);
    return new Promise((resolve, reject) => {
      execFile('/bin/sh', [file, ...args], { env: this.env, timeout: this.o.timeoutMs ?? SCRIPT_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (!err) return resolve({ stdout, stderr });
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
        const said = stderr.trim().split('\n').filter(Boolean).slice(-3).join('; ');
        const why = e.killed ? `did not finish within ${(this.o.timeoutMs ?? SCRIPT_TIMEOUT_MS) / 1000} s (is another process holding the xtables lock?)`
          : typeof e.code === 'number' ? `exited with code ${e.code}` : e.message;
        reject(new StraitError('STRAIT_ERR_CAPTURE', `${script}${args.length ? ` ${args.join(' ')}` : ''} failed: ${said || why}${said ? ` (${why})` : ''}`, { cause: err }));
      });
    });
  }

  /**
   * The pod addresses that have any capture state now (pod-list.sh), each with whether that state is complete (all
   * of pod-add.sh's rules and set element). Only IP addresses: a rule tagged with anything else (written by hand) is
   * not Strait's to remove, and its text never becomes an argument of a script.
   */
  async listPods(): Promise<ListedPod[]> {
    const { stdout } = await this.run('pod-list.sh');
    const pods: ListedPod[] = [];
    for (const line of stdout.split('\n')) {
      const [address, flag, ...rest] = line.trim().split(/\s+/);
      if (!address || isIP(address) === 0 || rest.length > 0 || (flag !== undefined && flag !== 'incomplete')) continue;
      pods.push({ address: normalizeIp(address), complete: flag === undefined });
    }
    return pods;
  }
}

/** One address pod-list.sh reports. */
export interface ListedPod {
  address: string;
  /** False when some of the pod's rules (or its set element) are missing: pod-add.sh must run again. */
  complete: boolean;
}
