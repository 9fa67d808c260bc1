/**
 * Fuzzing HBONE's HTTP/2 frame parser and HPACK decoder through H2Connection, in the server role (what a client
 * with any mesh certificate can send to 15008) and the client role (what a hostile server can send to a ztunnel).
 *
 * Inputs: sessions generated from the production encoders, the same mutated (bit flips, byte edits, truncation,
 * splicing of two sessions, frame length/type/flags/stream edits), and arbitrary bytes after a valid start; each
 * fed in a random chunking, with or without the peer closing its side afterwards.
 *
 * Every input must end in a defined outcome: frames processed (the connection still open), stream errors
 * (RST_STREAM), or a connection error (GOAWAY with its code as the last frame written, the connection destroyed).
 * Never a throw out of the parser, and, bounded per input:
 * - bytes written ≤ 4 × input bytes + 10 × reads + 16 KiB: replies cannot run away from the input. The reads term is
 *   there because a relayed (here: echoed) stream sends what each read delivered as its own DATA frame, so input
 *   arriving a byte per read comes back as 1-byte DATA frames (10 bytes each); on the wire every read costs the
 *   peer a TLS record (22 bytes or more), so this is no amplification;
 * - off-heap buffer growth ≤ 8 MiB + 8 × input bytes, heap growth ≤ 64 MiB + 32 × input bytes;
 * - once the peer closes its side the connection is closed within two event-loop turns (no hang), and each input
 *   has a 2 s budget (fast-check's per-run timeout);
 * and across a whole file: after the last input and a full GC, memory is within 32 MiB of what it was before.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { H2Connection, type H2Settings } from '../../src/hbone/h2/connection.js';
import { CONNECTION_PREFACE, FrameType, H2Code, codeName } from '../../src/hbone/h2/frames.js';
import type { H2Headers, H2Stream } from '../../src/hbone/h2/stream.js';
import { H2_ERROR_CODES, randomFramesArb, sessionArb } from './h2-corpus.js';
import {
  MemorySocket,
  bufferMemory,
  chunkingArb,
  chunksOf,
  delay,
  fullGc,
  fuzzParams,
  memoryInUse,
  mutate,
  mutationsArb,
  parseFrames,
  testTimeoutMs,
  tick,
  type Chunking,
} from './kit.js';

type Role = 'client' | 'server';

interface Profile {
  name: string;
  settings: H2Settings;
  connectionWindow?: number;
}

/** HBONE's own settings (server.ts / client.ts), the protocol defaults, and tight limits. */
const PROFILES: Profile[] = [
  { name: 'hbone', settings: { maxConcurrentStreams: 100, initialWindowSize: 4 * 1024 * 1024 }, connectionWindow: 16 * 1024 * 1024 },
  { name: 'defaults', settings: {} },
  { name: 'tight', settings: { maxConcurrentStreams: 2, initialWindowSize: 1024, maxHeaderListSize: 1024 } },
];
const profileArb = fc.constantFrom(...PROFILES);

const KiB = 1024;
const MiB = 1024 * KiB;
const noop = (): void => undefined;

/** What one input led to, for the run's summary line. */
type Outcome = 'processed' | 'stream errors' | `GOAWAY ${string}` | 'closed after the peer\'s GOAWAY' | 'closed at EOF';

class Tally {
  readonly counts = new Map<string, number>();
  streamsOpened = 0;
  total = 0;
  add(o: Outcome): void {
    this.counts.set(o, (this.counts.get(o) ?? 0) + 1);
    this.total++;
  }
  toString(): string {
    return [...this.counts].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}: ${v}`).join(', ') + `; streams opened by the input: ${this.streamsOpened}`;
  }
}

/** Feeds `input` to a fresh connection of `role` and checks every property of a defined outcome. */
async function runInput(role: Role, input: Buffer, chunking: Chunking, eof: boolean, profile: Profile, tally: Tally): Promise<void> {
  const sock = new MemorySocket();
  const conn = new H2Connection(sock, { role, settings: profile.settings, ...(profile.connectionWindow !== undefined ? { connectionWindow: profile.connectionWindow } : {}) });
  const errors: Error[] = [];
  let goawaysReceived = 0;
  let closed = false;
  conn.on('error', (e: Error) => errors.push(e));
  conn.on('goaway', () => goawaysReceived++);
  conn.on('close', () => { closed = true; });
  if (role === 'server') {
    conn.on('stream', (stream: H2Stream, headers: H2Headers) => {
      tally.streamsOpened++;
      stream.on('error', noop);
      if (headers[':method'] === 'CONNECT') {
        stream.respond({ ':status': 200 });
        stream.pipe(stream); // echo: DATA in, DATA out
      } else {
        stream.respond({ ':status': 405 }, { endStream: true });
      }
    });
  } else {
    for (const authority of ['10.0.0.1:80', '10.0.0.2:80']) {
      const stream = conn.request({ ':method': 'CONNECT', ':authority': authority });
      stream.on('error', noop);
      stream.once('response', () => {
        tally.streamsOpened++;
        stream.write(Buffer.alloc(1024, 0x62));
      });
      stream.resume();
    }
  }
  await tick(); // the reader is flowing: every feed() below is parsed before it returns
  const ownStart = role === 'client' ? CONNECTION_PREFACE.length : 0;
  const buffers0 = bufferMemory();
  const heap0 = process.memoryUsage().heapUsed;

  const chunks = chunksOf(input, chunking);
  const yieldBetween = chunking.kind === 'sizes' && chunks.length <= 64;
  for (const c of chunks) {
    sock.feed(c); // a throw out of the parser fails the property here
    if (yieldBetween) await tick();
  }
  await tick();
  await tick();
  const buffersGrowth = bufferMemory() - buffers0;
  const heapGrowth = process.memoryUsage().heapUsed - heap0;
  if (eof) {
    sock.eof();
    await tick();
    await tick();
  }

  const out = sock.output();
  assert.ok(role === 'server' || out.subarray(0, ownStart).equals(CONNECTION_PREFACE), 'a client starts with the preface');
  const { frames, rest } = parseFrames(out.subarray(ownStart));
  assert.equal(rest, 0, 'only whole frames are written');
  assert.ok(out.length <= 4 * input.length + 10 * chunks.length + 16 * KiB, `wrote ${out.length} bytes for ${input.length} input bytes in ${chunks.length} reads`);
  assert.ok(buffersGrowth <= 8 * MiB + 8 * input.length, `buffers grew by ${buffersGrowth} bytes for ${input.length} input bytes`);
  assert.ok(heapGrowth <= 64 * MiB + 32 * input.length, `heap grew by ${heapGrowth} bytes for ${input.length} input bytes`);

  const goawayAt = frames.findIndex((f) => f.type === FrameType.GOAWAY && f.payload.length >= 8 && f.payload.readUInt32BE(4) !== H2Code.NO_ERROR);
  for (const e of errors) {
    const h2Code = (e as { h2Code?: unknown }).h2Code;
    assert.ok(typeof h2Code === 'number' && H2_ERROR_CODES.includes(h2Code), `every error is an HTTP/2 connection error with a code, got ${String(e)}`);
    assert.ok(goawayAt >= 0 && frames[goawayAt]!.payload.readUInt32BE(4) === h2Code, `a connection error (${e.message}) is told to the peer: GOAWAY ${codeName(h2Code)}`);
  }
  let outcome: Outcome;
  if (goawayAt >= 0) {
    const code = frames[goawayAt]!.payload.readUInt32BE(4);
    assert.ok(H2_ERROR_CODES.includes(code), `GOAWAY carries a defined code, got ${code}`);
    assert.equal(goawayAt, frames.length - 1, `nothing is written after GOAWAY(${codeName(code)}), got frame types ${frames.slice(goawayAt + 1).map((f) => f.type).join(',')}`);
    assert.ok(conn.destroyed, `after GOAWAY(${codeName(code)}) the connection reads no more`);
    assert.ok(sock.finished || sock.destroyed, 'after a connection error the socket is ended');
    outcome = `GOAWAY ${codeName(code)}`;
  } else if (conn.destroyed && !eof) {
    assert.ok(goawaysReceived > 0, 'a connection only goes away by itself after a GOAWAY (sent or received)');
    outcome = 'closed after the peer\'s GOAWAY';
  } else if (frames.some((f) => f.type === FrameType.RST_STREAM)) {
    outcome = 'stream errors';
  } else {
    outcome = eof ? 'closed at EOF' : 'processed';
  }
  if (eof) assert.ok(closed, 'once the peer closed its side, the connection is closed (no hang)');
  tally.add(outcome);

  conn.destroy();
  sock.destroy();
  sock.written = [];
}

/**
 * Inputs the long runs found, kept with their exact bytes. Each is run as found (role, chunking, EOF, profile) and
 * must meet every property above.
 */
const REGRESSIONS: Array<{ name: string; role: Role; bytes: Buffer; chunking: Chunking; eof: boolean; profile: string }> = [
  {
    // seed 835620645: a CONNECT and 2766 bytes of DATA arriving a byte per read. The echo sent them back as 2766
    // one-byte DATA frames (27,725 bytes written for 2,835 read), which the first output bound (4 x input + 16 KiB)
    // called a runaway; DATA frames follow the reads, hence the per-read term of the bound.
    name: 'DATA read a byte at a time is echoed in one-byte frames, within the per-read output bound',
    role: 'server',
    bytes: Buffer.concat([
      Buffer.from('505249202a20485454502f322e300d0a0d0a534d0d0a0d0a000000040000000000000012010400000001' +
        '0207434f4e4e454354018702e05c0b82e07f000ace000000000001', 'hex'),
      Buffer.alloc(2766, 0x61),
    ]),
    chunking: { kind: 'bytes' },
    eof: false,
    profile: 'hbone',
  },
];

describe('fuzz regressions: H2Connection', () => {
  for (const r of REGRESSIONS) {
    it(r.name, async () => {
      const tally = new Tally();
      await runInput(r.role, r.bytes, r.chunking, r.eof, PROFILES.find((p) => p.name === r.profile)!, tally);
      assert.equal(tally.counts.size, 1);
    });
  }
});

const CI_RUNS = { generated: 300, mutated: 500, arbitrary: 250 };
const PER_RUN_MS = 3;

for (const role of ['server', 'client'] as const) {
  describe(`fuzz: H2Connection as ${role} (frame parser + HPACK decoder)`, () => {
    let baseline = 0;
    before(async () => {
      await delay(10);
      fullGc();
      baseline = memoryInUse();
    });

    it('ends every generated session in a defined outcome', { timeout: testTimeoutMs(CI_RUNS.generated, PER_RUN_MS) }, async () => {
      const tally = new Tally();
      await fc.assert(
        fc.asyncProperty(sessionArb(role), chunkingArb, fc.boolean(), profileArb, (s, chunking, eof, profile) => runInput(role, s.bytes, chunking, eof, profile, tally)),
        fuzzParams(`h2 ${role} generated`, CI_RUNS.generated, { timeout: 2000 }),
      );
      process.stderr.write(`[fuzz] h2 ${role} generated: ${tally}\n`);
      if (tally.total >= 100) assert.ok(tally.streamsOpened > 0, 'the corpus reaches stream handling');
    });

    it('ends every mutated session (bit flips, truncation, splicing, frame-field edits) in a defined outcome', { timeout: testTimeoutMs(CI_RUNS.mutated, PER_RUN_MS) }, async () => {
      const tally = new Tally();
      await fc.assert(
        fc.asyncProperty(sessionArb(role), sessionArb(role), mutationsArb, chunkingArb, fc.boolean(), profileArb,
          (a, b, mutations, chunking, eof, profile) => runInput(role, mutate(a, b, mutations), chunking, eof, profile, tally)),
        fuzzParams(`h2 ${role} mutated`, CI_RUNS.mutated, { timeout: 2000 }),
      );
      process.stderr.write(`[fuzz] h2 ${role} mutated: ${tally}\n`);
    });

    it('ends random frames and arbitrary bytes after a valid start in a defined outcome', { timeout: testTimeoutMs(CI_RUNS.arbitrary, PER_RUN_MS) }, async () => {
      const tally = new Tally();
      const start = role === 'server' ? Buffer.concat([CONNECTION_PREFACE, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]) : Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
      await fc.assert(
        fc.asyncProperty(fc.oneof({ arbitrary: randomFramesArb, weight: 3 }, fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b))), chunkingArb, fc.boolean(), profileArb,
          (bytes, chunking, eof, profile) => runInput(role, Buffer.concat([start, bytes]), chunking, eof, profile, tally)),
        fuzzParams(`h2 ${role} arbitrary`, CI_RUNS.arbitrary, { timeout: 2000 }),
      );
      process.stderr.write(`[fuzz] h2 ${role} arbitrary: ${tally}\n`);
    });

    it('keeps no memory from the inputs once they are done', async () => {
      await delay(2200); // connections end their sockets on unref'd timers of up to 2 s
      fullGc();
      const growth = memoryInUse() - baseline;
      process.stderr.write(`[fuzz] h2 ${role}: memory after the runs and a GC: ${(growth / MiB).toFixed(1)} MiB above the start\n`);
      assert.ok(growth < 32 * MiB, `memory grew by ${(growth / MiB).toFixed(1)} MiB across the fuzz inputs`);
    });
  });
}
