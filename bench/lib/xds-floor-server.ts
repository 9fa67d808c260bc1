/**
 * Bench helper (child process) for bench/xds-floor.ts: a bare grpc-js AggregatedDiscoveryService over TLS 1.3 that
 * answers each first request of a type with pre-encoded response bytes (read from files) and reads the ACKs; no
 * XdsServer, no diffing, no per-stream state beyond the call. What is left is the transport: gRPC framing, HTTP/2,
 * TLS. IPC: parent sends { type: 'start', cert, key, responses: { [typeUrl]: file } }; child answers
 * { type: 'listening', port }, later { type: 'cpu', ms } on { type: 'cpu' }.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { XDS_METHOD_NAME, XDS_SERVICE_NAME, loadXdsProto, type WireDeltaRequest } from '../../src/common/xds/index.js';

interface Start {
  type: 'start';
  cert: string;
  key: string;
  responses: Record<string, string>;
}

function run(m: Start): void {
  const bytes = new Map(Object.entries(m.responses).map(([t, f]) => [t, readFileSync(f)]));
  const method = (loadXdsProto().service as Record<string, grpc.MethodDefinition<WireDeltaRequest, Buffer>>)[XDS_METHOD_NAME]!;
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 4 << 20 });
  server.addService(
    { [XDS_METHOD_NAME]: { ...method, path: `/${XDS_SERVICE_NAME}/${XDS_METHOD_NAME}`, responseSerialize: (b: Buffer) => b } },
    {
      [XDS_METHOD_NAME]: (call: grpc.ServerDuplexStream<WireDeltaRequest, Buffer>) => {
        call.sendMetadata(new grpc.Metadata());
        call.on('data', (req: WireDeltaRequest) => {
          if (req.response_nonce) return; // an ACK
          const b = bytes.get(req.type_url);
          if (b) call.write(b);
        });
        call.on('error', () => {});
        call.on('end', () => call.end());
      },
    },
  );
  const creds = grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(m.cert), private_key: Buffer.from(m.key) }], false);
  server.bindAsync('127.0.0.1:0', creds, (err, port) => {
    if (err) throw err;
    process.send!({ type: 'listening', port });
  });
}

if (process.send && process.argv.includes('--strait-xds-floor')) {
  process.on('message', (m: { type: string }) => {
    if (m.type === 'start') run(m as Start);
    if (m.type === 'exit') process.exit(0);
  });
  process.send({ type: 'hello' });
}
