/**
 * `strait check`'s node checks: can this machine run a capturing ztunnel (DESIGN §6a)? Node.js version, the
 * SO_ORIGINAL_DST addon, an iptables backend that reads the nat table (chosen as scripts/iptables/lib.sh does), and
 * the kernel's support for the rules: as root, the shipped node-setup.sh and pod-add.sh are run for real inside a
 * scratch network namespace (`unshare --net`), which the kernel throws away with everything in it — the node's own
 * tables are never touched.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { errorMessage } from '../../common/errors.js';
import { captureAddonError } from '../../ztunnel/capture/original-dst.js';
import { defaultScriptsDir } from '../../ztunnel/capture/capture-scripts.js';
import type { Finding } from './check-types.js';

const run = promisify(execFile);
export const MIN_NODE_MAJOR = 20;
/** An address no real pod has (TEST-NET-2 would do too): only used inside the scratch namespace. */
const SCRATCH_POD = '198.51.100.7';
const TIMEOUT_MS = 20_000;

export interface NodeCheckOptions {
  /** STRAIT_IPTABLES: the iptables binary the ztunnel's scripts are told to use (undefined: their own choice). */
  iptables?: string;
  /** Default: process.getuid() === 0. */
  root?: boolean;
  /** Default: the package's scripts/iptables. */
  scriptsDir?: string;
  /** The environment the commands run with (the CLI's); /usr/sbin and /sbin are added to its PATH. */
  env: NodeJS.ProcessEnv;
  nodeVersion?: string;
}

export async function nodeChecks(o: NodeCheckOptions): Promise<Finding[]> {
  const path = [o.env.PATH, '/usr/local/sbin', '/usr/sbin', '/sbin'].filter(Boolean).join(':');
  const env = { ...o.env, PATH: path, LC_ALL: 'C' };
  const root = o.root ?? process.getuid?.() === 0;
  const out: Finding[] = [nodeVersion(o.nodeVersion ?? process.versions.node), addon()];
  const backend = await chooseBackend(o.iptables, env);
  out.push(backendFinding(backend, root, o.iptables));
  out.push(await scratchRules(backend, root, o.scriptsDir ?? defaultScriptsDir(), env));
  return out;
}

function nodeVersion(v: string): Finding {
  const major = Number(v.split('.')[0]);
  return major >= MIN_NODE_MAJOR
    ? { section: 'node', check: 'node-version', result: 'pass', detail: `Node.js ${v}` }
    : { section: 'node', check: 'node-version', result: 'fail', detail: `Node.js ${v}; Strait needs ${MIN_NODE_MAJOR} or later`, fix: `install Node.js ${MIN_NODE_MAJOR} or later (e.g. from nodejs.org or NodeSource)` };
}

function addon(): Finding {
  const error = captureAddonError();
  return error === undefined
    ? { section: 'node', check: 'original-dst-addon', result: 'pass', detail: 'the SO_ORIGINAL_DST addon loads (original destinations can be read, sockets marked)' }
    : { section: 'node', check: 'original-dst-addon', result: 'fail', detail: error, fix: 'npm run build:native (needs python3, make and a C++ compiler), or use the Strait image, which has it built' };
}

interface Backend {
  /** The binary the scripts would use. */
  bin: string;
  found: boolean;
  /** It lists the nat table. */
  readable: boolean;
  readError?: string;
}

async function canRead(bin: string, env: NodeJS.ProcessEnv): Promise<{ found: boolean; readable: boolean; error?: string }> {
  try {
    await run(bin, ['-w', '-t', 'nat', '-S', 'PREROUTING'], { env, timeout: TIMEOUT_MS });
    return { found: true, readable: true };
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') return { found: false, readable: false };
    return { found: true, readable: false, error: (e.stderr ?? errorMessage(err)).trim().split('\n')[0] ?? '' };
  }
}

/** As lib.sh: STRAIT_IPTABLES when set; else iptables-nft, then iptables-legacy, the first that reads nat; else iptables. */
async function chooseBackend(forced: string | undefined, env: NodeJS.ProcessEnv): Promise<Backend> {
  if (forced) return { bin: forced, ...(await canReadBackend(forced, env)) };
  for (const candidate of ['iptables-nft', 'iptables-legacy']) {
    const r = await canRead(candidate, env);
    if (r.readable) return { bin: candidate, found: true, readable: true };
  }
  return { bin: 'iptables', ...(await canReadBackend('iptables', env)) };
}

async function canReadBackend(bin: string, env: NodeJS.ProcessEnv): Promise<Omit<Backend, 'bin'>> {
  const r = await canRead(bin, env);
  return { found: r.found, readable: r.readable, ...(r.error ? { readError: r.error } : {}) };
}

function backendFinding(b: Backend, root: boolean, forced: string | undefined): Finding {
  const check = 'iptables';
  if (!b.found) {
    return { section: 'node', check, result: 'fail', detail: `${b.bin} not found${forced ? ' (STRAIT_IPTABLES)' : ''}`, fix: forced ? 'set STRAIT_IPTABLES to an iptables binary, or unset it' : 'apt-get install -y iptables (or your distribution\'s iptables package)' };
  }
  if (b.readable) return { section: 'node', check, result: 'pass', detail: `${b.bin} reads the nat table` };
  if (!root) return { section: 'node', check, result: 'skip', detail: `${b.bin} is installed; reading the nat table needs root`, fix: 'run strait check as root on the node (the ztunnel runs with NET_ADMIN)' };
  return { section: 'node', check, result: 'fail', detail: `${b.bin} cannot read the nat table: ${b.readError ?? 'unknown error'}`, fix: 'load nf_nat (modprobe -a iptable_nat nf_nat, or nft_chain_nat for iptables-nft), or set STRAIT_IPTABLES to the backend your kernel supports (iptables-nft or iptables-legacy)' };
}

/**
 * The shipped scripts against this kernel: node-setup.sh then pod-add.sh for one address, in a network namespace
 * of their own; passes when the pod's REDIRECT rules are in place afterwards.
 */
async function scratchRules(b: Backend, root: boolean, scriptsDir: string | undefined, env: NodeJS.ProcessEnv): Promise<Finding> {
  const check = 'capture-rules';
  if (!scriptsDir) return { section: 'node', check, result: 'fail', detail: 'scripts/iptables is not in this package', fix: 'reinstall Strait: its package ships scripts/iptables' };
  if (!root) return { section: 'node', check, result: 'skip', detail: 'trying the capture rules (in a scratch network namespace) needs root', fix: 'run strait check as root on the node' };
  if (!b.found) return { section: 'node', check, result: 'skip', detail: 'no iptables binary to try the rules with', fix: 'install iptables first (see the iptables check)' };
  const script = [
    `sh ${q(join(scriptsDir, 'node-setup.sh'))}`,
    `sh ${q(join(scriptsDir, 'pod-add.sh'))} ${SCRATCH_POD}`,
    `${q(b.bin)} -w -t nat -S STRAIT_INBOUND`,
  ].join(' && ');
  try {
    const r = await run('unshare', ['--net', '--', 'sh', '-c', script], { env: { ...env, STRAIT_IPTABLES: b.bin }, timeout: TIMEOUT_MS });
    const redirects = r.stdout.split('\n').filter((l) => l.includes(SCRATCH_POD) && l.includes('REDIRECT')).length;
    if (redirects >= 2) {
      return { section: 'node', check, result: 'pass', detail: `node-setup.sh and pod-add.sh work with ${b.bin} (REDIRECT, mark and comment matches), tried in a scratch network namespace` };
    }
    return { section: 'node', check, result: 'fail', detail: `the scripts ran with ${b.bin} but the pod's REDIRECT rules are not in STRAIT_INBOUND: ${r.stdout.trim() || '(empty)'}`, fix: 'report this with the output of strait check -o json' };
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') return { section: 'node', check, result: 'skip', detail: 'unshare (util-linux) is not installed, so the rules cannot be tried without touching this node\'s tables', fix: 'apt-get install -y util-linux' };
    const why = (e.stderr ?? errorMessage(err)).trim();
    return {
      section: 'node', check, result: 'fail', detail: `the capture rules do not work with ${b.bin}: ${why}`,
      fix: b.bin.includes('legacy')
        ? 'load the modules the rules use: modprobe -a iptable_nat nf_nat xt_REDIRECT xt_mark xt_comment'
        : 'load the modules the rules use: modprobe -a nf_tables nft_chain_nat nft_redir xt_mark xt_comment (or try STRAIT_IPTABLES=iptables-legacy)',
    };
  }
}

/** Single-quoted for sh. */
function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
