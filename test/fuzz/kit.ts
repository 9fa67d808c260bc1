/**
 * What the fuzz tests share: how many runs and which seed (FUZZ_RUNS, FUZZ_SEED, FUZZ_PATH, printed so that a
 * failure can be replayed), byte-level mutations of a corpus (bit flips, byte edits, truncation, splicing of two
 * inputs, duplicated ranges, edits of HTTP/2 frame-header fields), random chunkings, an in-memory socket that
 * records what is written to it, and memory measurements.
 *
 * A short run is part of `npm test` (each property's CI count, the whole fuzz suite well under 20 s on two
 * cores); `npm run fuzz [RUNS]` runs every property RUNS times (see scripts/run-fuzz.mjs).
 */
import { Duplex } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';

/** Environment of a fuzz run (read here only: test code has no config.ts). */
const RUNS_ENV = process.env.FUZZ_RUNS;
const SEED_ENV = process.env.FUZZ_SEED;
const PATH_ENV = process.env.FUZZ_PATH;
/** With FUZZ_PATH: the one property (by the name printed in its [fuzz] line) whose counterexample is replayed. */
const PROPERTY_ENV = process.env.FUZZ_PROPERTY;

/** The run count is FUZZ_RUNS when set (the long run), else the property's own short CI count. */
export function isLongRun(): boolean {
  return RUNS_ENV !== undefined && RUNS_ENV !== '';
}

function envRuns(): number | undefined {
  if (!isLongRun()) return undefined;
  const n = Number(RUNS_ENV);
  if (!Number.isInteger(n) || n < 1) throw new Error(`FUZZ_RUNS must be a positive integer, got "${RUNS_ENV}"`);
  return n;
}

const baseSeed = (() => {
  if (SEED_ENV !== undefined && SEED_ENV !== '') {
    const n = Number(SEED_ENV);
    if (!Number.isInteger(n)) throw new Error(`FUZZ_SEED must be an integer, got "${SEED_ENV}"`);
    return n;
  }
  return (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) | 0;
})();

/**
 * fast-check parameters for one property: `ciRuns` in `npm test`, FUZZ_RUNS × `weight` in the long run (weight < 1
 * for properties whose inputs cost real sockets). Prints the seed. To replay a failure: FUZZ_SEED=<seed>
 * FUZZ_PROPERTY=<name> FUZZ_PATH=<path from the failure report> (and the FUZZ_RUNS of the run) replays that
 * property's counterexample alone; the other properties then run a single input each.
 */
export function fuzzParams<T>(name: string, ciRuns: number, extra: fc.Parameters<T> = {}, weight = 1): fc.Parameters<T> {
  const long = envRuns();
  let numRuns = long === undefined ? ciRuns : Math.max(1, Math.round(long * weight));
  const seed = baseSeed;
  let replay = {};
  if (PATH_ENV !== undefined && PATH_ENV !== '') {
    if (PROPERTY_ENV === undefined || PROPERTY_ENV === '') throw new Error('FUZZ_PATH needs FUZZ_PROPERTY: the name of the property to replay, as in its [fuzz] line');
    if (PROPERTY_ENV === name) replay = { path: PATH_ENV };
    else numRuns = 1;
  }
  process.stderr.write(`[fuzz] ${name}: seed=${seed} runs=${numRuns} (replay a failure: FUZZ_SEED=${seed}${long === undefined ? '' : ` FUZZ_RUNS=${long}`} FUZZ_PROPERTY="${name}" FUZZ_PATH=<path>)\n`);
  return { numRuns, seed, includeErrorInReport: true, ...replay, ...extra };
}

/** A node:test timeout for a property of `runs` inputs costing about `msPerRun` each (generous). */
export function testTimeoutMs(ciRuns: number, msPerRun: number, weight = 1): number {
  const runs = envRuns() === undefined ? ciRuns : Math.round(envRuns()! * weight);
  return Math.max(60_000, Math.ceil(runs * msPerRun * 4));
}

// ---- mutations ----------------------------------------------------------------------------------------

/** A corpus entry: bytes, and where HTTP/2 frame headers start in them (empty for non-HTTP/2 inputs). */
export interface Sample {
  bytes: Buffer;
  frameStarts: number[];
}

export type Mutation =
  | { kind: 'flip'; pos: number; bit: number }
  | { kind: 'set'; pos: number; value: number }
  | { kind: 'truncate'; keep: number }
  | { kind: 'splice'; at: number; from: number }
  | { kind: 'insert'; pos: number; bytes: Uint8Array }
  | { kind: 'delete'; pos: number; len: number }
  | { kind: 'duplicate'; pos: number; len: number; to: number }
  | { kind: 'frameLength'; frame: number; length: number }
  | { kind: 'frameLengthDelta'; frame: number; delta: number }
  | { kind: 'frameType'; frame: number; type: number }
  | { kind: 'frameFlags'; frame: number; flags: number }
  | { kind: 'frameStream'; frame: number; stream: number };

const pos = fc.nat();
/** Frame-header field edits (applied first, while frame offsets are still known), then byte-level edits. */
export const frameMutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('frameLength' as const), frame: pos, length: fc.oneof(fc.constantFrom(0, 1, 4, 5, 6, 8, 16_384, 16_385, 65_535, 2 ** 24 - 1), fc.integer({ min: 0, max: 2 ** 24 - 1 })) }),
  fc.record({ kind: fc.constant('frameLengthDelta' as const), frame: pos, delta: fc.integer({ min: -16, max: 16 }) }),
  fc.record({ kind: fc.constant('frameType' as const), frame: pos, type: fc.oneof(fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: 255 })) }),
  fc.record({ kind: fc.constant('frameFlags' as const), frame: pos, flags: fc.oneof(fc.constantFrom(0, 1, 4, 5, 8, 0x20, 0x25, 0x2d), fc.integer({ min: 0, max: 255 })) }),
  fc.record({ kind: fc.constant('frameStream' as const), frame: pos, stream: fc.oneof(fc.constantFrom(0, 1, 2, 3, 5, 2 ** 31 - 1, 2 ** 32 - 1), fc.nat({ max: 2 ** 32 - 1 })) }),
);

export const byteMutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('flip' as const), pos, bit: fc.integer({ min: 0, max: 7 }) }), weight: 4 },
  { arbitrary: fc.record({ kind: fc.constant('set' as const), pos, value: fc.oneof(fc.constantFrom(0, 0x7f, 0x80, 0xff), fc.integer({ min: 0, max: 255 })) }), weight: 2 },
  fc.record({ kind: fc.constant('truncate' as const), keep: pos }),
  fc.record({ kind: fc.constant('splice' as const), at: pos, from: pos }),
  fc.record({ kind: fc.constant('insert' as const), pos, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('delete' as const), pos, len: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ kind: fc.constant('duplicate' as const), pos, len: fc.integer({ min: 1, max: 64 }), to: pos }),
);

export const mutationsArb: fc.Arbitrary<Mutation[]> = fc.tuple(
  fc.array(frameMutationArb, { maxLength: 3 }),
  fc.array(byteMutationArb, { minLength: 1, maxLength: 6 }),
).map(([a, b]) => [...a, ...b]);

/** Applies `mutations` to `sample`; `other` is the second parent of a splice (prefix of one, suffix of the other). */
export function mutate(sample: Sample, other: Sample, mutations: readonly Mutation[]): Buffer {
  let b = Buffer.from(sample.bytes);
  const starts = sample.frameStarts.filter((s) => s + 9 <= b.length);
  for (const m of mutations) {
    const n = b.length;
    const frameAt = (k: number): number | undefined => (starts.length === 0 ? undefined : starts[k % starts.length]);
    switch (m.kind) {
      case 'frameLength':
      case 'frameLengthDelta': {
        const at = frameAt(m.frame);
        if (at === undefined || at + 3 > n) break;
        const old = b.readUIntBE(at, 3);
        const len = m.kind === 'frameLength' ? m.length : Math.min(2 ** 24 - 1, Math.max(0, old + m.delta));
        b.writeUIntBE(len, at, 3);
        break;
      }
      case 'frameType': { const at = frameAt(m.frame); if (at !== undefined && at + 4 <= n) b[at + 3] = m.type; break; }
      case 'frameFlags': { const at = frameAt(m.frame); if (at !== undefined && at + 5 <= n) b[at + 4] = m.flags; break; }
      case 'frameStream': { const at = frameAt(m.frame); if (at !== undefined && at + 9 <= n) b.writeUInt32BE(m.stream, at + 5); break; }
      case 'flip': if (n > 0) b[m.pos % n] ^= 1 << m.bit; break;
      case 'set': if (n > 0) b[m.pos % n] = m.value; break;
      case 'truncate': b = b.subarray(0, n === 0 ? 0 : m.keep % (n + 1)); break;
      case 'splice': {
        const o = other.bytes;
        b = Buffer.concat([b.subarray(0, n === 0 ? 0 : m.at % (n + 1)), o.subarray(o.length === 0 ? 0 : m.from % (o.length + 1))]);
        break;
      }
      case 'insert': { const p = n === 0 ? 0 : m.pos % (n + 1); b = Buffer.concat([b.subarray(0, p), Buffer.from(m.bytes), b.subarray(p)]); break; }
      case 'delete': { if (n === 0) break; const p = m.pos % n; b = Buffer.concat([b.subarray(0, p), b.subarray(p + m.len)]); break; }
      case 'duplicate': {
        if (n === 0) break;
        const p = m.pos % n;
        const piece = b.subarray(p, p + m.len);
        const to = m.to % (n + 1);
        b = Buffer.concat([b.subarray(0, to), piece, b.subarray(to)]);
        break;
      }
    }
  }
  return b;
}

// ---- chunking -----------------------------------------------------------------------------------------

/** How an input is cut into the chunks a reader sees: whole, byte by byte, or at random sizes (cycled). */
export type Chunking = { kind: 'whole' } | { kind: 'bytes' } | { kind: 'sizes'; sizes: number[] };

export const chunkingArb: fc.Arbitrary<Chunking> = fc.oneof(
  fc.constant({ kind: 'whole' } as Chunking),
  fc.constant({ kind: 'bytes' } as Chunking),
  { arbitrary: fc.array(fc.integer({ min: 1, max: 4096 }), { minLength: 1, maxLength: 8 }).map((sizes) => ({ kind: 'sizes', sizes }) as Chunking), weight: 3 },
);

/** Byte-by-byte chunking is used only up to this input size (above it: 7-byte pieces), to bound a run's time. */
const BYTEWISE_MAX = 4096;

export function chunksOf(bytes: Buffer, chunking: Chunking): Buffer[] {
  if (chunking.kind === 'whole' || bytes.length === 0) return [bytes];
  const sizes = chunking.kind === 'bytes' ? [bytes.length <= BYTEWISE_MAX ? 1 : 7] : chunking.sizes;
  const out: Buffer[] = [];
  for (let off = 0, i = 0; off < bytes.length; i++) {
    const n = sizes[i % sizes.length]!;
    out.push(bytes.subarray(off, off + n));
    off += n;
  }
  return out;
}

// ---- an in-memory socket ------------------------------------------------------------------------------

/**
 * One end of a connection held in memory: what the code under test writes is recorded (`written`), and the test
 * delivers input with feed() (a real Readable push, so pause()/resume() of the reader are honoured) and eof().
 * This is only the input channel: the parser reading from it is the real one.
 */
export class MemorySocket extends Duplex {
  written: Buffer[] = [];
  writtenBytes = 0;
  finished = false;

  constructor() {
    super({ allowHalfOpen: true });
  }

  override _read(): void {
    // input comes from feed()
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.written.push(chunk);
    this.writtenBytes += chunk.length;
    cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.finished = true;
    cb();
  }

  feed(chunk: Buffer): void {
    if (!this.destroyed && !this.readableEnded) this.push(chunk);
  }

  eof(): void {
    if (!this.destroyed) this.push(null);
  }

  /** Everything written so far, as one buffer. */
  output(): Buffer {
    return Buffer.concat(this.written);
  }
}

export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
export const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---- HTTP/2 frames written by the code under test -----------------------------------------------------

export interface WireFrame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/** Splits bytes into frames; `rest` holds bytes of an incomplete last frame (none when writes are whole frames). */
export function parseFrames(bytes: Buffer): { frames: WireFrame[]; rest: number } {
  const frames: WireFrame[] = [];
  let off = 0;
  while (off + 9 <= bytes.length) {
    const len = bytes.readUIntBE(off, 3);
    if (off + 9 + len > bytes.length) break;
    frames.push({ type: bytes[off + 3]!, flags: bytes[off + 4]!, stream: bytes.readUInt32BE(off + 5) & 0x7fffffff, payload: bytes.subarray(off + 9, off + 9 + len) });
    off += 9 + len;
  }
  return { frames, rest: bytes.length - off };
}

// ---- memory -------------------------------------------------------------------------------------------

let gcFn: (() => void) | undefined;

/** A full garbage collection (V8's gc, exposed at run time: the test runner's command line stays as it is). */
export function fullGc(): void {
  if (gcFn === undefined) {
    setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
}

/** Heap plus off-heap buffer memory, bytes. */
export function memoryInUse(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** Off-heap buffer memory only (Buffers), bytes: cheap to read per input. */
export function bufferMemory(): number {
  return process.memoryUsage().arrayBuffers;
}
