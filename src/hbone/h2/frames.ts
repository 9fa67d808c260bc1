/** HTTP/2 wire constants (RFC 9113) and the one frame-header writer HBONE needs. */

export const CONNECTION_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const FRAME_HEADER_BYTES = 9;

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

/** Error codes (RFC 9113 §7), numerically equal to node:http2's NGHTTP2_* constants. */
export const H2Code = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

const CODE_NAMES = new Map<number, string>(Object.entries(H2Code).map(([name, code]) => [code, name]));

export function codeName(code: number): string {
  return CODE_NAMES.get(code) ?? `0x${code.toString(16)}`;
}

export const DEFAULT_WINDOW_BYTES = 65_535;
export const MAX_WINDOW_BYTES = 2 ** 31 - 1;
export const MIN_MAX_FRAME_SIZE = 16_384;
export const MAX_MAX_FRAME_SIZE = 2 ** 24 - 1;

/** Writes a frame header at `off` of `buf`. */
export function writeFrameHeader(buf: Buffer, off: number, length: number, type: number, flags: number, streamId: number): void {
  buf[off] = (length >>> 16) & 0xff;
  buf[off + 1] = (length >>> 8) & 0xff;
  buf[off + 2] = length & 0xff;
  buf[off + 3] = type;
  buf[off + 4] = flags;
  buf.writeUInt32BE(streamId & 0x7fffffff, off + 5);
}

/** One complete frame with `payload` (may be empty). */
export function frame(type: number, flags: number, streamId: number, payload?: Buffer): Buffer {
  const len = payload?.length ?? 0;
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + len);
  writeFrameHeader(buf, 0, len, type, flags, streamId);
  if (payload !== undefined) payload.copy(buf, FRAME_HEADER_BYTES);
  return buf;
}

/** A connection error (RFC 9113 §5.4.1): the connection is closed with GOAWAY(code). */
export class H2ConnectionError extends Error {
  override name = 'H2ConnectionError';
  readonly code = 'ERR_HTTP2_SESSION_ERROR';
  /** @param reason the `reason` label of `strait_hbone_goaway_total` (./limits.ts GoawayReason) */
  constructor(readonly h2Code: number, message: string, readonly reason: string = 'protocol_error') {
    super(`HTTP/2 connection error ${codeName(h2Code)}: ${message}`);
  }
}
