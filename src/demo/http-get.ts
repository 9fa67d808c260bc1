/**
 * One HTTP/1.1 request without a body (GET unless told otherwise) over an already connected socket (for the demo:
 * the socket the SOCKS5 proxy handed over), with `Connection: close`: the response is read until the server closes,
 * then parsed. Small on purpose: status line, headers, and a body framed by Content-Length, chunked encoding or the
 * close.
 *
 * The result tells apart a server that answered (any status) from a connection that closed or was reset
 * before a single byte of response came back, which is how a refusal after connecting looks.
 */
import type { Socket } from 'node:net';

export type HttpGetResult =
  | { kind: 'response'; status: number; headers: Record<string, string>; body: string }
  /** Nothing came back: `reset` when the peer reset the connection (RST), false when it closed it cleanly (FIN). */
  | { kind: 'no-response'; reset: boolean; error?: string }
  | { kind: 'timeout'; bytes: number }
  | { kind: 'malformed'; message: string };

const MAX_RESPONSE_BYTES = 1 << 20;

export function httpGet(socket: Socket, opts: { host: string; path: string; timeoutMs: number; headers?: Record<string, string>; method?: string }): Promise<HttpGetResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let reset = false;
    let error: string | undefined;
    let settled = false;
    const finish = (r: HttpGetResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ kind: 'timeout', bytes }), opts.timeoutMs);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      bytes += c.length;
      if (bytes > MAX_RESPONSE_BYTES) finish({ kind: 'malformed', message: `response larger than ${MAX_RESPONSE_BYTES} bytes` });
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') reset = true;
      error = err.code ?? err.message;
    });
    socket.on('close', () => {
      if (bytes === 0) return finish({ kind: 'no-response', reset, ...(error ? { error } : {}) });
      finish(parseResponse(Buffer.concat(chunks)));
    });
    const headers = { host: opts.host, 'user-agent': 'strait-demo', accept: 'application/json', connection: 'close', ...(opts.headers ?? {}) };
    socket.write(`${opts.method ?? 'GET'} ${opts.path} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
    socket.resume();
  });
}

/** Parses a whole HTTP/1.1 response (the server has closed, so everything is here). */
export function parseResponse(raw: Buffer): HttpGetResult {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return { kind: 'malformed', message: `connection closed in the middle of the response headers (${raw.length} bytes)` };
  const [statusLine = '', ...lines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(statusLine);
  if (!m) return { kind: 'malformed', message: `not an HTTP/1.x status line: ${JSON.stringify(statusLine.slice(0, 60))}` };
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let body = raw.subarray(end + 4);
  if (/\bchunked\b/i.test(headers['transfer-encoding'] ?? '')) {
    const decoded = dechunk(body);
    if (!decoded) return { kind: 'malformed', message: 'bad or truncated chunked body' };
    body = decoded;
  } else if (headers['content-length'] !== undefined) {
    const len = Number(headers['content-length']);
    if (!Number.isInteger(len) || len < 0) return { kind: 'malformed', message: `bad Content-Length ${headers['content-length']}` };
    if (body.length < len) return { kind: 'malformed', message: `body truncated: ${body.length} of ${len} bytes` };
    body = body.subarray(0, len);
  }
  return { kind: 'response', status: Number(m[1]), headers, body: body.toString('utf8') };
}

function dechunk(body: Buffer): Buffer | undefined {
  const out: Buffer[] = [];
  let i = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', i);
    if (eol < 0) return undefined;
    const size = parseInt(body.subarray(i, eol).toString('latin1').split(';')[0]!.trim(), 16);
    if (!Number.isFinite(size) || size < 0) return undefined;
    if (size === 0) return Buffer.concat(out);
    if (eol + 2 + size > body.length) return undefined;
    out.push(body.subarray(eol + 2, eol + 2 + size));
    i = eol + 2 + size + 2;
  }
}
