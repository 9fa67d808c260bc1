/**
 * The demo app's gRPC service `strait.demo.v1.Echo` (src/common/proto/demo.proto), served with @grpc/grpc-js on
 * connections the app hands it (plain h2c). The pod's faults apply to every call: a failing call ends with the
 * gRPC status that the pod's HTTP fail status maps to (as gRPC's HTTP-to-status table), after the pod's delay.
 */
import * as grpc from '@grpc/grpc-js';
import { loadProto, serviceOf } from '../common/grpc.js';
import { MAX_DEMO_DELAY_MS } from '../local/demo-annotations.js';
import { MAX_REQUEST_KEY_BYTES, REQUEST_KEY_HEADER, type PodFaults } from './behaviour.js';

export const ECHO_SERVICE = 'strait.demo.v1.Echo';

export interface EchoIdentity { app: string; version: string; pod: string; namespace: string; node: string }

interface SayRequest { message: string; delay_ms: number }
interface FailRequest { code: number; message: string }
export interface SayReply extends EchoIdentity { message: string; metadata: Record<string, string>; attempt: number }

/** gRPC's mapping of an HTTP status to a gRPC code (doc/http-grpc-status-mapping.md); 2xx is OK. */
export function grpcCodeOfHttpStatus(status: number): grpc.status {
  if (status >= 200 && status < 300) return grpc.status.OK;
  switch (status) {
    case 400: return grpc.status.INTERNAL;
    case 401: return grpc.status.UNAUTHENTICATED;
    case 403: return grpc.status.PERMISSION_DENIED;
    case 404: return grpc.status.UNIMPLEMENTED;
    case 429: case 502: case 503: case 504: return grpc.status.UNAVAILABLE;
    default: return grpc.status.UNKNOWN;
  }
}

/** A grpc-js server with the Echo service; it binds no port (the app injects the connections). */
export function echoServer(who: EchoIdentity, faults: PodFaults): grpc.Server {
  const server = new grpc.Server();
  const svc = serviceOf(loadProto('demo.proto'), ECHO_SERVICE);

  /** Pod faults, then the delay, then `answer` with the reply's common part; a call cancelled meanwhile is dropped. */
  const handle = <Req>(call: grpc.ServerUnaryCall<Req, SayReply>, cb: grpc.sendUnaryData<SayReply>, extraDelayMs: number, answer: (reply: SayReply) => void) => {
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(call.metadata.getMap())) metadata[k] = typeof v === 'string' ? v : v.toString('base64');
    const key = metadata[REQUEST_KEY_HEADER];
    if (key !== undefined && Buffer.byteLength(key) > MAX_REQUEST_KEY_BYTES) {
      return cb({ code: grpc.status.INVALID_ARGUMENT, details: `${REQUEST_KEY_HEADER} is longer than ${MAX_REQUEST_KEY_BYTES} bytes` });
    }
    const decision = faults.decide(key);
    const finish = () => {
      if (call.cancelled) return;
      const code = decision.failStatus !== undefined ? grpcCodeOfHttpStatus(decision.failStatus) : grpc.status.OK;
      if (code !== grpc.status.OK) return cb({ code, details: `demo fault: pod ${who.pod} fails this call (HTTP ${decision.failStatus})` });
      answer({ ...who, message: '', metadata, attempt: decision.attempt ?? 0 });
    };
    const delay = faults.delayMs + extraDelayMs;
    if (delay <= 0) return finish();
    const t = setTimeout(finish, delay);
    call.on('cancelled', () => clearTimeout(t));
  };

  server.addService(svc.service, {
    Say: (call: grpc.ServerUnaryCall<SayRequest, SayReply>, cb: grpc.sendUnaryData<SayReply>) => {
      if (call.request.delay_ms > MAX_DEMO_DELAY_MS) return cb({ code: grpc.status.INVALID_ARGUMENT, details: `delay_ms ${call.request.delay_ms} is over ${MAX_DEMO_DELAY_MS}` });
      handle(call, cb, call.request.delay_ms, (reply) => cb(null, { ...reply, message: call.request.message }));
    },
    Fail: (call: grpc.ServerUnaryCall<FailRequest, SayReply>, cb: grpc.sendUnaryData<SayReply>) => {
      const code = call.request.code;
      if (!Number.isInteger(code) || code < 0 || code > 16) return cb({ code: grpc.status.INVALID_ARGUMENT, details: `code ${code} is not a gRPC status (0-16)` });
      handle(call, cb, 0, (reply) => {
        if (code === grpc.status.OK) return cb(null, { ...reply, message: call.request.message });
        cb({ code, details: call.request.message || `demo Fail asked for status ${code}` });
      });
    },
  });
  return server;
}
