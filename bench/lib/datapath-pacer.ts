/**
 * The open-loop schedule's clock: a worker thread that sleeps until each request is due (Atomics.wait, which
 * sleeps with sub-millisecond precision, unlike Node's millisecond timers) and then tells the main thread
 * which request index is due. The main thread only reacts to messages, so it never sleeps through a
 * response and never spins.
 *
 * Protocol: the main thread starts the worker (workerData = { stop: SharedArrayBuffer(4) }), waits until it
 * says it is running (a worker takes tens of milliseconds to start: the schedule must not begin before), then
 * posts { t0: bigint (process.hrtime.bigint() of request 0), intervalNs, total }. The worker posts the index of
 * each due request and exits after the last one, or when the main thread stores 1 in `stop` and notifies it.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

interface Schedule {
  t0: bigint;
  intervalNs: number;
  total: number;
}

export class Pacer {
  private readonly stopFlag = new Int32Array(new SharedArrayBuffer(4));
  private readonly worker: Worker;
  private readonly ready: Promise<void>;

  constructor() {
    this.worker = new Worker(new URL(import.meta.url), { workerData: { stop: this.stopFlag.buffer } });
    this.worker.on('error', (err) => { throw err; });
    this.ready = new Promise((resolve) => this.worker.once('message', () => resolve()));
  }

  /**
   * Once the worker runs, starts the schedule `startInMs` from now and calls `onDue(i)` on the main thread when
   * request i (due at t0 + i·intervalNs) is due; resolves with t0.
   */
  async start(intervalNs: number, total: number, onDue: (i: number) => void, startInMs = 2): Promise<bigint> {
    await this.ready;
    this.worker.on('message', (i: number) => onDue(i));
    const t0 = process.hrtime.bigint() + BigInt(Math.round(startInMs * 1e6));
    const s: Schedule = { t0, intervalNs, total };
    this.worker.postMessage(s);
    return t0;
  }

  async stop(): Promise<void> {
    Atomics.store(this.stopFlag, 0, 1);
    Atomics.notify(this.stopFlag, 0);
    await this.worker.terminate();
  }
}

function runWorker(stopBuffer: SharedArrayBuffer, d: Schedule): void {
  const stop = new Int32Array(stopBuffer);
  for (let i = 0; i < d.total; i++) {
    const due = d.t0 + BigInt(Math.round(i * d.intervalNs));
    for (;;) {
      if (Atomics.load(stop, 0) !== 0) return;
      const leftMs = Number(due - process.hrtime.bigint()) / 1e6;
      if (leftMs <= 0) break;
      Atomics.wait(stop, 0, 0, leftMs);
    }
    parentPort!.postMessage(i);
  }
}

if (!isMainThread && (workerData as { stop?: SharedArrayBuffer } | undefined)?.stop) {
  const stop = (workerData as { stop: SharedArrayBuffer }).stop;
  parentPort!.once('message', (s: Schedule) => runWorker(stop, s));
  parentPort!.postMessage('running');
}
