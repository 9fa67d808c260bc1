/**
 * What one HTTP/2 peer may cost us (STYLE §8: a budget, not just a size). Every bound here ends that peer's
 * connection only, with GOAWAY (ENHANCE_YOUR_CALM for floods) and a reason the owner turns into one log line
 * and a metric (`strait_hbone_goaway_total{reason}`).
 *
 * The rate budgets count per fixed window (`floodWindowMs`), reset lazily when an event arrives after the
 * window ended: no timer, and nothing at all on the DATA hot path.
 */
import { StraitError } from '../../common/errors.js';

export interface H2Limits {
  /** Length of the window the rate budgets below count in. */
  floodWindowMs: number;
  /**
   * Frames that do no useful work, per window: PING, SETTINGS, PRIORITY, WINDOW_UPDATE, RST_STREAM on closed
   * streams, unknown frame types, empty DATA and CONTINUATION frames that end nothing. Two per 8 KiB of DATA
   * we sent in the window are added to the allowance (its receiver legitimately answers with WINDOW_UPDATEs for
   * the stream and the connection and, for bandwidth probing, PING).
   */
  maxUselessFramesPerWindow: number;
  /** Streams the peer opened and reset again before we answered them ("Rapid Reset"), per window... */
  maxPrematureResetsPerWindow: number;
  /** Streams we had to reset because the peer broke a rule on them ("MadeYouReset"), per window. */
  maxErrorResetsPerWindow: number;
  /** Server side: streams we answered with a refusal (status 400 and above), per window. */
  maxRefusedStreamsPerWindow: number;
  /** Replies (PING and SETTINGS ACKs, RST_STREAM) written while the socket does not drain. */
  maxQueuedControlFrames: number;
  /** Reading from the peer pauses while this much waits in our write buffer (it resumes at 'drain'). */
  maxWriteQueueBytes: number;
  /**
   * DATA handed to streams whose destination was already full (a pod that does not read) counts as held; while
   * the connection holds more than this, the peer gets no connection-window credit, so it cannot make us hold
   * every stream's window at once (100 streams x 4 MiB).
   */
  maxHeldBytes: number;
  /** A header block (HEADERS + CONTINUATION, 9 bytes counted per frame) may not be larger than this. */
  maxHeaderBlockBytes: number;
  /** The peer must acknowledge our SETTINGS (and, as a server, send its preface) within this time, and finish a
   *  header block (HEADERS + CONTINUATION) it started. */
  settingsTimeoutMs: number;
  /** A connection without streams for this long is closed with GOAWAY(NO_ERROR); 0 = never. */
  idleTimeoutMs: number;
  /** A connection on which the peer never opened a stream is closed after this; 0 = only idleTimeoutMs applies. */
  firstStreamTimeoutMs: number;
}

export const DEFAULT_H2_FLOOD_WINDOW_MS = 10_000;
export const DEFAULT_H2_MAX_USELESS_FRAMES_PER_WINDOW = 1_000;
export const DEFAULT_H2_MAX_PREMATURE_RESETS_PER_WINDOW = 100;
export const DEFAULT_H2_MAX_ERROR_RESETS_PER_WINDOW = 100;
export const DEFAULT_H2_MAX_REFUSED_STREAMS_PER_WINDOW = 1_000;
export const DEFAULT_H2_MAX_QUEUED_CONTROL_FRAMES = 1_000;
export const DEFAULT_H2_MAX_WRITE_QUEUE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_H2_MAX_HELD_BYTES = 16 * 1024 * 1024;
export const DEFAULT_H2_MAX_HEADER_LIST_BYTES = 64 * 1024;
export const DEFAULT_H2_SETTINGS_TIMEOUT_MS = 10_000;

export function defaultH2Limits(): H2Limits {
  return {
    floodWindowMs: DEFAULT_H2_FLOOD_WINDOW_MS,
    maxUselessFramesPerWindow: DEFAULT_H2_MAX_USELESS_FRAMES_PER_WINDOW,
    maxPrematureResetsPerWindow: DEFAULT_H2_MAX_PREMATURE_RESETS_PER_WINDOW,
    maxErrorResetsPerWindow: DEFAULT_H2_MAX_ERROR_RESETS_PER_WINDOW,
    maxRefusedStreamsPerWindow: DEFAULT_H2_MAX_REFUSED_STREAMS_PER_WINDOW,
    maxQueuedControlFrames: DEFAULT_H2_MAX_QUEUED_CONTROL_FRAMES,
    maxWriteQueueBytes: DEFAULT_H2_MAX_WRITE_QUEUE_BYTES,
    maxHeldBytes: DEFAULT_H2_MAX_HELD_BYTES,
    maxHeaderBlockBytes: DEFAULT_H2_MAX_HEADER_LIST_BYTES + 1024,
    settingsTimeoutMs: DEFAULT_H2_SETTINGS_TIMEOUT_MS,
    idleTimeoutMs: 0,
    firstStreamTimeoutMs: 0,
  };
}

/** Why we sent GOAWAY: the `reason` label of `strait_hbone_goaway_total` and the log line. */
export type GoawayReason =
  | 'useless_frames'
  | 'rapid_reset'
  | 'error_resets'
  | 'refused_streams'
  | 'header_block_timeout'
  | 'sessions_per_identity'
  | 'control_queue'
  | 'header_block_size'
  | 'settings_timeout'
  | 'idle'
  | 'drain'
  | 'protocol_error'
  | 'flow_control_error'
  | 'frame_size_error'
  | 'compression_error'
  | 'stream_closed'
  | 'internal_error';

/**
 * Per-connection counters of one flood window.
 * Invariant: every counter covers only events since `start`; the first event after the window ends resets all.
 */
export class FloodCounters {
  start = 0;
  useless = 0;
  /** Bytes of DATA we sent: each 8 KiB lets the peer send two more "useless" frames (WINDOW_UPDATEs, PING). */
  dataSentBytes = 0;
  opened = 0;
  premature = 0;
  errorResets = 0;
  refused = 0;

  constructor(private readonly windowMs: number) {}

  /** Starts a new window if the current one is over. */
  roll(now: number): void {
    if (now - this.start < this.windowMs) return;
    this.start = now;
    this.useless = 0;
    this.dataSentBytes = 0;
    this.opened = 0;
    this.premature = 0;
    this.errorResets = 0;
    this.refused = 0;
  }
}

/** The largest count or time (ms) an HBONE option takes: what a timer accepts, about 24.8 days. */
const MAX_OPTION = 2 ** 31 - 1;

/**
 * A whole-number option of `owner` (HboneServer, HbonePool, H2Connection) in min..2^31-1, or STRAIT_ERR_CONFIG
 * naming it: bad options fail when the object is made, not per connection.
 */
export function checkCount(owner: string, name: string, value: number, min = 1): number {
  if (!Number.isInteger(value) || value < min || value > MAX_OPTION) {
    throw new StraitError('STRAIT_ERR_CONFIG', `${owner}: ${name} must be a whole number from ${min} to ${MAX_OPTION} (milliseconds for times, about 24 days at most), got ${value}`);
  }
  return value;
}

/** Rejects limits that cannot work, naming the field. */
export function checkH2Limits(limits: H2Limits, where: string): H2Limits {
  for (const [name, value] of Object.entries(limits) as Array<[keyof H2Limits, number]>) {
    checkCount(where, `HTTP/2 limit ${name}`, value, name === 'idleTimeoutMs' || name === 'firstStreamTimeoutMs' ? 0 : 1);
  }
  return limits;
}
