/**
 * Memory of recently closed streams, so that a frame on a closed stream gets the answer RFC 9113 §5.1 asks
 * for: ignored after we reset the stream (the peer may not have seen our RST_STREAM yet), a stream error
 * after the peer reset it, a connection error after both sides ended it, a connection error for an id the
 * peer skipped (§5.1.1: ids only grow).
 *
 * Invariants: at most `capacity` ids are remembered (the oldest are forgotten first); every id at or below
 * `forgottenBelow` that is not remembered was closed long ago and is treated as reset by us (ignored).
 */

export type ClosedHow = 'ended' | 'reset-sent' | 'reset-received';
export type ClosedState = ClosedHow | 'forgotten' | 'never-opened';

export const CLOSED_STREAMS_REMEMBERED = 1024;

export class ClosedStreams {
  readonly #closed = new Map<number, ClosedHow>();
  #forgottenBelow = 0;

  constructor(private readonly capacity = CLOSED_STREAMS_REMEMBERED) {}

  remember(id: number, how: ClosedHow): void {
    this.#closed.delete(id); // the latest closing counts, and makes the id the newest
    this.#closed.set(id, how);
    if (this.#closed.size > this.capacity) {
      const oldest = this.#closed.keys().next().value!;
      this.#closed.delete(oldest);
      if (oldest > this.#forgottenBelow) this.#forgottenBelow = oldest;
    }
  }

  /** How a stream that is not open (and not idle) came to be closed. */
  stateOf(id: number): ClosedState {
    return this.#closed.get(id) ?? (id <= this.#forgottenBelow ? 'forgotten' : 'never-opened');
  }
}
