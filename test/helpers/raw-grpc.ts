/**
 * gRPC spoken by hand over node:http2, for peers that grpc-js cannot play: a proxy that stops reading (a tiny
 * flow-control window that it never reopens), or a caller that sends its headers and then nothing.
 * Messages are framed as gRPC does (1 byte compressed flag, 4 bytes big-endian length, the protobuf bytes) and
 * encoded/decoded with the same proto definitions the proxies use.
 */
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import { XDS_METHOD_NAME, XDS_SERVICE_NAME, loadXdsProto, type WireDeltaRequest, type WireDeltaResponse } from '../../src/common/xds/index.js';

export const ADS_PATH = `/${XDS_SERVICE_NAME}/${XDS_METHOD_NAME}`;

export interface RawCallEnd {
  /** RST_STREAM code (0 when the stream ended normally). */
  rstCode: number;
  /** grpc-status from trailers (or trailers-only headers), if any arrived. */
  status: number | undefined;
  message: string | undefined;
}

export function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

/**
 * One gRPC call on its own HTTP/2 connection. `read: false` never consumes the response body, so once the
 * stream window (`windowBytes`) is full the server cannot send more. Responses read are decoded into `messages`.
 */
export class RawGrpcCall {
  readonly session: http2.ClientHttp2Session;
  readonly stream: http2.ClientHttp2Stream;
  readonly ended: Promise<RawCallEnd>;
  readonly messages: WireDeltaResponse[] = [];
  bytesRead = 0;
  private buf = Buffer.alloc(0);
  private status: number | undefined;
  private statusMessage: string | undefined;
  private readonly onMessage: (() => void)[] = [];

  /** `rootPem` null: plaintext HTTP/2 (h2c), for servers bound with insecure credentials. */
  constructor(address: string, rootPem: string | null, path: string, metadata: Record<string, string>, opts: { read?: boolean; windowBytes?: number } = {}) {
    const settings = { initialWindowSize: opts.windowBytes ?? 65_535 };
    this.session = rootPem === null
      ? http2.connect(`http://${address}`, { settings })
      : http2.connect(`https://${address}`, { ca: rootPem, minVersion: 'TLSv1.3', settings });
    this.session.on('error', () => {});
    this.stream = this.session.request({
      ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...metadata,
    }, { endStream: false });
    const grab = (h: http2.IncomingHttpHeaders) => {
      if (h['grpc-status'] !== undefined) this.status = Number(h['grpc-status']);
      if (h['grpc-message'] !== undefined) this.statusMessage = decodeURIComponent(String(h['grpc-message']));
    };
    this.stream.on('response', grab);
    this.stream.on('trailers', grab);
    this.stream.on('error', () => {});
    this.ended = new Promise((resolve) => {
      const done = () => resolve({ rstCode: this.stream.rstCode ?? 0, status: this.status, message: this.statusMessage });
      this.stream.on('close', done);
      // A status ends the call even while our half of the stream is still open.
      this.stream.on('trailers', done);
      this.stream.on('response', (h) => h['grpc-status'] !== undefined && done());
    });
    if (opts.read !== false) this.startReading();
  }

  /** Consumes (and decodes) what arrives from now on; the flow-control window reopens. */
  startReading(): void {
    const { responseDeserialize } = (loadXdsProto().service as Record<string, grpc.MethodDefinition<unknown, WireDeltaResponse>>)[XDS_METHOD_NAME]!;
    this.stream.on('data', (chunk: Buffer) => {
      this.bytesRead += chunk.length;
      this.buf = Buffer.concat([this.buf, chunk]);
      while (this.buf.length >= 5) {
        const len = this.buf.readUInt32BE(1);
        if (this.buf.length < 5 + len) break;
        this.messages.push(responseDeserialize(this.buf.subarray(5, 5 + len)));
        this.buf = this.buf.subarray(5 + len);
        for (const w of this.onMessage.splice(0)) w();
      }
    });
    this.stream.resume();
  }

  /** Stops consuming: what arrives stays unread and the window is not reopened. */
  stopReading(): void {
    this.stream.pause();
    this.stream.removeAllListeners('data');
  }

  writeRaw(message: Buffer): void {
    this.stream.write(grpcFrame(message));
  }

  writeAds(req: Partial<WireDeltaRequest>): void {
    const { requestSerialize } = (loadXdsProto().service as Record<string, grpc.MethodDefinition<Partial<WireDeltaRequest>, unknown>>)[XDS_METHOD_NAME]!;
    this.writeRaw(requestSerialize(req));
  }

  /** Resolves once `n` messages have been read in total. */
  async waitForMessages(n: number, timeoutMs = 5000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.messages.length < n) {
      const left = until - Date.now();
      if (left <= 0) throw new Error(`only ${this.messages.length} of ${n} responses within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.onMessage.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  close(): void {
    if (!this.stream.closed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
    this.session.destroy();
  }
}
