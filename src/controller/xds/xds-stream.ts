/**
 * Per-stream state of the xDS server: what one proxy holds of each type, what it has not answered, and what the
 * transport has not yet taken. The push logic lives in xds-server.ts.
 */
import type * as grpc from '@grpc/grpc-js';
import type { NackInfo, ProxyInfo, ResourceEntry, ResourceSet } from '../../common/xds/types.js';
import {
  encodedResourceFieldAs,
  encodedSnapshot,
  type OutgoingDeltaResponse,
  type ProtoFallbackHook,
  type StreamEncoding,
  type WireDeltaRequest,
} from '../../common/xds/xds-proto.js';

export type DuplexCall = grpc.ServerDuplexStream<WireDeltaRequest, OutgoingDeltaResponse | Buffer>;

/** A held version the server does not know (a response the proxy skipped without answering): resent on the next flush. */
export const UNKNOWN_VERSION = '\u0000unknown';

export interface PendingResponse {
  nonce: string;
  systemVersion: string;
  sentAt: number;
  /** Timestamp of the config change that caused it; null for initial sync / subscribe responses. */
  changedAt: number | null;
  /** For every name in the response, what the proxy held before it (undefined: nothing). */
  prev: PrevVersions;
  /** The first response of its type on this stream (once the transport took it, or it is settled, the type's initial-sync slot is free). */
  initial: boolean;
}

/** For every name in a response, what the proxy held before it (undefined: nothing). A Map is one. */
export interface PrevVersions extends Iterable<[string, string | undefined]> {
  has(name: string): boolean;
  set(name: string, version: string | undefined): unknown;
  keys(): Iterable<string>;
  readonly size: number;
}

/**
 * The PrevVersions of a whole-snapshot response to a stream that held nothing: every name of the snapshot, held
 * before at nothing. O(1) to create; becomes a Map the first time one name is changed (a NACK rollback of an
 * overlapping later response), which is rare.
 */
export class SnapshotPrev implements PrevVersions {
  private map: Map<string, string | undefined> | undefined;
  constructor(private readonly snapshot: ResourceSet) {}
  private materialize(): Map<string, string | undefined> {
    if (!this.map) {
      this.map = new Map();
      for (const name of this.snapshot.keys()) this.map.set(name, undefined);
    }
    return this.map;
  }
  has(name: string): boolean {
    return this.map ? this.map.has(name) : this.snapshot.has(name);
  }
  set(name: string, version: string | undefined): this {
    this.materialize().set(name, version);
    return this;
  }
  keys(): Iterable<string> {
    return this.map ? this.map.keys() : this.snapshot.keys();
  }
  get size(): number {
    return this.map ? this.map.size : this.snapshot.size;
  }
  *[Symbol.iterator](): Iterator<[string, string | undefined]> {
    if (this.map) yield* this.map;
    else for (const name of this.snapshot.keys()) yield [name, undefined];
  }
}

/** What one stream holds of one type. */
export class TypeState {
  subscribed: '*' | Set<string>;
  /** Wildcard: the snapshot the proxy is in step with, apart from `delta`. Explicit: null. */
  base: ResourceSet | null = null;
  /** Wildcard: deviations from `base` (null: not held). Explicit: everything held. */
  delta = new Map<string, string | null>();
  /** Sent, not yet answered, oldest first. Never dropped unanswered: only an ACK, a NACK or the stream's end clears one. */
  pending: PendingResponse[] = [];
  /** A first response is owed (the first request was not answered yet). */
  owesFirstResponse = true;
  /** Pushes were coalesced while the stream could not take them; the earliest change among them (null: none caused by a change). */
  coalescedSince: number | null | undefined = undefined;
  /** Holds an initial-sync slot until the transport has taken its first response (or it is answered, or the stream ends). */
  holdsSlot = false;
  versionSent = '';
  versionAcked = '';
  lastAckedNonce: string | undefined;
  lastAckedAt: number | undefined;
  lastNack: NackInfo | undefined;
  /** How the proxy answered its latest answered response (undefined: none answered yet). */
  lastAnswer: 'ACK' | 'NACK' | undefined;

  constructor(
    readonly typeUrl: string,
    subscribed: '*' | Set<string>,
  ) {
    this.subscribed = subscribed;
  }

  get coalesced(): boolean {
    return this.coalescedSince !== undefined;
  }

  isSubscribed(name: string): boolean {
    return this.subscribed === '*' || this.subscribed.has(name);
  }

  held(name: string): string | undefined {
    const d = this.delta.get(name);
    if (d !== undefined) return d ?? undefined;
    return this.base?.get(name)?.version;
  }

  setHeld(name: string, version: string | undefined): void {
    if (this.base) {
      if (this.base.get(name)?.version === version) this.delta.delete(name);
      else this.delta.set(name, version ?? null);
    } else if (version === undefined) {
      this.delta.delete(name);
    } else {
      this.delta.set(name, version);
    }
  }

  /** Everything held, as a plain map (mode switches and coalesced flushes only: O(held)). */
  heldMap(): Map<string, string> {
    const out = new Map<string, string>();
    if (this.base) for (const [name, e] of this.base) out.set(name, e.version);
    for (const [name, v] of this.delta) {
      if (v === null) out.delete(name);
      else out.set(name, v);
    }
    return out;
  }

  heldCount(): number {
    if (!this.base) return this.delta.size;
    let n = this.base.size;
    for (const [name, v] of this.delta) {
      const inBase = this.base.has(name);
      if (v === null && inBase) n--;
      else if (v !== null && !inBase) n++;
    }
    return n;
  }

  explicitCount(): number {
    return this.subscribed === '*' ? 0 : this.subscribed.size;
  }
}

export class ViewState {
  readonly streams = new Set<ProxyStream>();
  /** Last snapshot pushed to (or read for) this view, per type URL. */
  readonly snapshots = new Map<string, ResourceSet>();
  constructor(readonly key: string) {}
}

/** One write handed to the transport and not yet taken by the network. */
interface QueuedWrite {
  bytes: number;
  at: number;
}

/**
 * One accepted stream.
 * Invariants: `queuedBytes` is the sum of `writes`; writes complete in order (the transport is a FIFO), so
 * `writes[0]` is the oldest unread one. A type is coalesced only while the stream cannot take a push for it.
 */
export class ProxyStream {
  readonly types = new Map<string, TypeState>();
  /** First requests per type waiting for an initial-sync slot (in arrival order, with what followed them). */
  readonly deferred = new Map<string, WireDeltaRequest[]>();
  /** Has had an initial-sync slot: its other large types go to the front of the queue, so proxies finish one by one. */
  hadSlot = false;
  readonly connectedAt = new Date();
  closed = false;
  queuedBytes = 0;
  readonly writes: QueuedWrite[] = [];
  lastAckAt: number | undefined;
  /** Currently coalescing pushes for at least one type (counted once per episode in the stall metric). */
  stalled = false;
  flushing = false;

  constructor(
    readonly call: DuplexCall,
    readonly proxy: ProxyInfo,
    readonly view: ViewState,
    readonly allowedTypes: ReadonlySet<string>,
    readonly peer: string,
    readonly credential: string,
    /** How bodies are encoded for this proxy (its Node.accept, decided at its first request). */
    readonly encoding: StreamEncoding,
  ) {}

  noteWrite(bytes: number, at: number): void {
    this.writes.push({ bytes, at });
    this.queuedBytes += bytes;
  }

  noteWritten(): void {
    const w = this.writes.shift();
    if (w) this.queuedBytes -= w.bytes;
  }

  oldestWriteAt(): number | undefined {
    return this.writes[0]?.at;
  }

  /** The oldest response of any type not yet answered. */
  oldestPending(): { typeUrl: string; p: PendingResponse } | undefined {
    let out: { typeUrl: string; p: PendingResponse } | undefined;
    for (const [typeUrl, ts] of this.types) {
      const p = ts.pending[0];
      if (p && (!out || p.sentAt < out.p.sentAt)) out = { typeUrl, p };
    }
    return out;
  }

  /** Since when the stream has had something unread or unanswered (undefined: it is fully caught up). */
  behindSince(): number | undefined {
    const w = this.oldestWriteAt();
    const p = this.oldestPending()?.p.sentAt;
    if (w === undefined) return p;
    if (p === undefined) return w;
    return Math.min(w, p);
  }

  explicitNames(): number {
    let n = 0;
    for (const ts of this.types.values()) n += ts.explicitCount();
    return n;
  }
}

/** A response being assembled for one stream, in that stream's encoding. */
export class ResponseBuilder {
  readonly resources: Buffer[] = [];
  readonly removed: string[] = [];
  prev: PrevVersions = new Map<string, string | undefined>();
  /** Resources in `resources` (a whole snapshot is one buffer). */
  private added = 0;
  constructor(
    private readonly typeUrl: string,
    private readonly encoding: StreamEncoding,
    private readonly onFallback?: ProtoFallbackHook,
  ) {}
  /** Resources sent plus names removed. */
  get size(): number {
    return this.added + this.removed.length;
  }
  add(entry: ResourceEntry, held: string | undefined): void {
    this.resources.push(encodedResourceFieldAs(entry, this.typeUrl, this.encoding, this.onFallback));
    this.prev.set(entry.name, held);
    this.added++;
  }
  /** The whole snapshot, for a stream that holds none of it: one shared buffer (built once per snapshot and encoding). */
  addSnapshot(snapshot: ResourceSet): void {
    if (this.size > 0) throw new Error('addSnapshot on a non-empty response');
    if (snapshot.size === 0) return;
    this.resources.push(encodedSnapshot(snapshot, this.typeUrl, this.encoding, this.onFallback));
    this.prev = new SnapshotPrev(snapshot);
    this.added = snapshot.size;
  }
  remove(name: string, held: string | undefined): void {
    this.removed.push(name);
    this.prev.set(name, held);
  }
}
