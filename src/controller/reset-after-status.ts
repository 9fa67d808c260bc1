/**
 * After a call's status is sent, a client that has not ended its side keeps the HTTP/2 stream half-open: it counts
 * against the connection's stream limit and keeps the connection from ever being idle (so
 * grpc.max_connection_idle_ms never closes it). grpc-js leaves such streams open; like grpc-go, this resets them
 * with RST_STREAM(NO_ERROR) once the status has gone out, which RFC 9113 §8.1 allows after a complete response.
 */
import * as grpc from '@grpc/grpc-js';
import { constants as http2constants, type ServerHttp2Stream } from 'node:http2';

/** The http2 stream under a grpc-js server call (walking the interceptor chain), or undefined if not found. */
function http2StreamOf(call: unknown): ServerHttp2Stream | undefined {
  let c = call as Record<string, unknown> | undefined;
  for (let i = 0; c && i < 8; i++) {
    const s = c['stream'] as ServerHttp2Stream | undefined;
    if (s && typeof s.close === 'function' && 'rstCode' in s) return s;
    c = c['nextCall'] as Record<string, unknown> | undefined;
  }
  return undefined;
}

/** A server interceptor (for every method) that resets a call's stream once its status went out, unless it closed. */
export function resetAfterStatusInterceptor(): grpc.ServerInterceptor {
  return (_method, next) => {
    const stream = http2StreamOf(next);
    return new grpc.ServerInterceptingCall(next, {
      sendStatus: (status, statusNext) => {
        // Trailers-only (nothing sent yet): grpc-js submits the status as headers with END_STREAM at once.
        // Otherwise it ends the data and sends the status as trailers when the stream asks for them.
        const trailersOnly = stream !== undefined && !stream.headersSent;
        statusNext(status);
        if (!stream || stream.closed) return;
        // Node flushes what is queued before a RST_STREAM, so the client always receives the status first.
        const reset = () => setImmediate(() => {
          if (!stream.closed && !stream.destroyed) stream.close(http2constants.NGHTTP2_NO_ERROR);
        });
        if (trailersOnly) reset();
        else stream.once('wantTrailers', reset); // runs after grpc-js's own listener has sent the trailers
      },
    });
  };
}
