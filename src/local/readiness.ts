/**
 * Whether a child of the local mesh is ready: its readiness URL answers 200 *and* the answer names the child's own
 * pid (PID_HEADER). A 200 from anything else on that address — another mesh's component, say — proves nothing and
 * is remembered, to say who holds the address when our child then fails to bind it. The URL is asked from this
 * process (fetch), or, for a child in a network namespace (a lab's), from inside that namespace (httpGetIn).
 */
import { execFile } from 'node:child_process';
import { PID_HEADER } from '../common/admin.js';
import { errorMessage } from '../common/errors.js';

const POLL_INTERVAL_MS = 100;
const REQUEST_TIMEOUT_MS = 1_000;

/** What a readiness URL answered. */
export interface ReadyAnswer {
  status: number;
  /** The PID_HEADER value, if any. */
  pid: string | null;
  body: string;
}

/** Asks `url` once, within `timeoutMs`; throws when nothing answers. */
export type ReadyGet = (url: string, timeoutMs: number) => Promise<ReadyAnswer>;

export interface ReadyProbe {
  url: string;
  pid: number;
  /** True once the child has exited: stop waiting. */
  gone: () => boolean;
  timeoutMs: number;
  /** How the URL is asked (default: fetch from this process). */
  get?: ReadyGet;
}

export type ReadyOutcome =
  | { ready: true }
  | { ready: false; why: 'exited' | 'timeout'; last: string; /** pid (or "unknown") of another process that answered 200 */ answeredBy?: string };

export const httpGet: ReadyGet = async (url, timeoutMs) => {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, pid: res.headers.get(PID_HEADER), body: await res.text() };
};

/**
 * Asks the URL from inside network namespace `netns`, where this process cannot reach: `ip netns exec NS curl` (no
 * proxy), reading the status line and headers curl prints (-D -) before the body.
 */
export function httpGetIn(netns: string): ReadyGet {
  return (url, timeoutMs) => new Promise((resolve, reject) => {
    const seconds = Math.max(0.1, timeoutMs / 1000).toFixed(1);
    execFile('ip', ['netns', 'exec', netns, 'curl', '-sS', '--noproxy', '*', '-m', seconds, '-D', '-', url],
      { encoding: 'utf8', timeout: timeoutMs + 2_000, maxBuffer: 64 * 1024 }, (err, stdout, stderr) => {
        if (err) return reject(new Error((stderr || errorMessage(err)).trim()));
        const answer = parseCurlAnswer(stdout);
        if (!answer) return reject(new Error(`unreadable answer from curl in ${netns}: ${stdout.slice(0, 200)}`));
        resolve(answer);
      });
  });
}

/** The status, pid header and body of `curl -D -` output (the last header block: a 100 Continue may come first). */
export function parseCurlAnswer(out: string): ReadyAnswer | undefined {
  let rest = out;
  let head: string | undefined;
  for (;;) {
    const end = rest.search(/\r?\n\r?\n/);
    if (!/^HTTP\/\S+ \d{3}/.test(rest) || end < 0) break;
    head = rest.slice(0, end);
    rest = rest.slice(end).replace(/^\r?\n\r?\n/, '');
  }
  if (head === undefined) return undefined;
  const [statusLine, ...headers] = head.split(/\r?\n/);
  const status = Number(/^HTTP\/\S+ (\d{3})/.exec(statusLine!)![1]);
  const want = PID_HEADER.toLowerCase();
  const pidLine = headers.find((h) => h.slice(0, h.indexOf(':')).trim().toLowerCase() === want);
  return { status, pid: pidLine ? pidLine.slice(pidLine.indexOf(':') + 1).trim() : null, body: rest };
}

export interface ListenProbe {
  /** "ip:port" pairs that must each accept a TCP connection. */
  addresses: readonly string[];
  /** Where to connect from (a lab pod's namespace). */
  netns: string;
  gone: () => boolean;
  timeoutMs: number;
}

/**
 * Whether a process that says nothing about its readiness (a lab pod's own command) is ready: each of its declared
 * TCP ports accepts a connection on the pod's address, tried from inside its namespace (bash's /dev/tcp, at most 1 s
 * each). Nothing else listens on a pod's address, so an answer there is the pod's.
 */
export async function waitListening(p: ListenProbe): Promise<ReadyOutcome> {
  const until = Date.now() + p.timeoutMs;
  let last = 'no answer yet';
  const pending = [...p.addresses];
  for (;;) {
    if (p.gone()) return { ready: false, why: 'exited', last };
    if (Date.now() >= until) return { ready: false, why: 'timeout', last };
    const [host, port] = splitHostPort(pending[0]!);
    const r = await new Promise<string | undefined>((resolve) => {
      execFile('ip', ['netns', 'exec', p.netns, 'timeout', '1', 'bash', '-c', `exec 3<>/dev/tcp/${host}/${port}`], { encoding: 'utf8', timeout: 3_000 },
        (err, _out, stderr) => resolve(err ? `${pending[0]}: ${(stderr.trim().split('\n').pop() ?? '') || errorMessage(err)}` : undefined));
    });
    if (r === undefined) {
      pending.shift();
      if (pending.length === 0) return { ready: true };
      continue;
    }
    last = r;
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

function splitHostPort(hp: string): [string, string] {
  const i = hp.lastIndexOf(':');
  return [hp.slice(0, i), hp.slice(i + 1)];
}

export async function waitReady(p: ReadyProbe): Promise<ReadyOutcome> {
  const get = p.get ?? httpGet;
  const until = Date.now() + p.timeoutMs;
  let last = 'no answer yet';
  let answeredBy: string | undefined;
  const fail = (why: 'exited' | 'timeout'): ReadyOutcome => ({ ready: false, why, last, ...(answeredBy ? { answeredBy } : {}) });
  for (;;) {
    if (p.gone()) return fail('exited');
    if (Date.now() >= until) return fail('timeout');
    try {
      const res = await get(p.url, REQUEST_TIMEOUT_MS);
      const body = res.body.trim().slice(0, 200);
      const ok = res.status >= 200 && res.status < 300;
      if (ok && res.pid === String(p.pid)) return { ready: true };
      if (ok) {
        answeredBy = res.pid ?? 'unknown';
        last = `200 from another process (${res.pid ? `pid ${res.pid}` : 'it does not say its pid'})`;
      } else {
        last = `${res.status} ${body}`;
      }
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      last = cause ? `${errorMessage(err)}: ${errorMessage(cause)}` : errorMessage(err);
    }
    await new Promise((r) => setTimeout(r, POLL_INTERVAL_MS));
  }
}
