/**
 * A real @grpc/grpc-js client of the demo app's gRPC service `strait.demo.v1.Echo` (src/common/proto/demo.proto),
 * plain h2c. Through the mesh, point it at a SocksForwarder and give the service's name as `authority` (what a
 * waypoint routes on). Every call resolves — a failing one too — with its status, details, reply and metadata.
 */
import * as grpc from '@grpc/grpc-js';
import { loadProto, serviceOf } from '../../src/common/grpc.js';
import type { SayReply } from '../../src/demo/grpc-echo.js';

export type { SayReply };

export interface EchoCallOptions {
  /** Deadline of the call (default 10 s). */
  deadlineMs?: number;
  /** Request metadata (e.g. { 'x-request-key': 'k1' }). */
  metadata?: Record<string, string>;
}

export interface EchoCallResult {
  /** gRPC status code (grpc.status; 0 = OK). */
  code: number;
  details: string;
  /** The reply, null when the call failed. */
  reply: SayReply | null;
  /** Response headers (initial metadata), names lower case, first value each. */
  metadata: Record<string, string>;
  /** Trailers, names lower case, first value each. */
  trailers: Record<string, string>;
  durationMs: number;
}

export class EchoClient {
  private readonly client: grpc.Client;

  /** `target` "host:port"; `authority` the :authority sent (default: the target). */
  constructor(readonly target: string, opts: { authority?: string } = {}) {
    const Ctor = serviceOf(loadProto('demo.proto'), 'strait.demo.v1.Echo');
    this.client = new Ctor(target, grpc.credentials.createInsecure(), {
      ...(opts.authority ? { 'grpc.default_authority': opts.authority } : {}),
      // Each EchoClient its own connection: tests count connections and requests per client.
      'grpc.use_local_subchannel_pool': 1,
    });
  }

  /** Say(message): the app answers it back after `delayMs` (and the pod's delay). */
  say(message: string, o: EchoCallOptions & { delayMs?: number } = {}): Promise<EchoCallResult> {
    return this.call('Say', { message, delay_ms: o.delayMs ?? 0 }, o);
  }

  /** Fail(code): the call ends with that gRPC status (0 answers like Say). */
  fail(code: number, o: EchoCallOptions & { message?: string } = {}): Promise<EchoCallResult> {
    return this.call('Fail', { code, message: o.message ?? '' }, o);
  }

  close(): void {
    this.client.close();
  }

  private call(method: 'Say' | 'Fail', request: object, o: EchoCallOptions): Promise<EchoCallResult> {
    const started = Date.now();
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(o.metadata ?? {})) md.set(k, v);
    let headers: Record<string, string> = {};
    let trailers: Record<string, string> = {};
    return new Promise((resolve) => {
      const fn = (this.client as unknown as Record<string, (...a: unknown[]) => grpc.ClientUnaryCall>)[method]!.bind(this.client);
      const call = fn(request, md, { deadline: Date.now() + (o.deadlineMs ?? 10_000) }, (err: grpc.ServiceError | null, reply: SayReply | undefined) => {
        const base = { metadata: headers, durationMs: Date.now() - started };
        if (err) resolve({ ...base, code: err.code, details: err.details, reply: null, trailers: err.metadata ? flat(err.metadata) : trailers });
        else resolve({ ...base, code: grpc.status.OK, details: '', reply: reply ?? null, trailers });
      });
      call.on('metadata', (m: grpc.Metadata) => { headers = flat(m); });
      call.on('status', (s: grpc.StatusObject) => { trailers = flat(s.metadata); });
    });
  }
}

function flat(m: grpc.Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.getMap())) out[k] = typeof v === 'string' ? v : v.toString('base64');
  return out;
}
