/**
 * Connection churn for the scale benchmark: new connections at a fixed rate (open loop, paced by the same worker
 * clock as the rate phase), each dialled, sent one GET, read to the end of its response and closed. Latency is from
 * the scheduled time to the end of the response, so a proxy that accepts late (listen-queue overflow, a busy event
 * loop) shows it. At most `maxInFlight` connections are open at once; a connection due while that many are open
 * counts as an error ("in-flight cap"), never as a silent delay.
 */
import { HttpConn, type Dialer } from './datapath-client.js';
import { Pacer } from './datapath-pacer.js';
import { Samples } from './datapath-stats.js';

export interface ChurnResult {
  /** Scheduled time → response complete (connect + request). */
  fromSchedule: Samples;
  /** Scheduled time → connected (the dialer resolved: TCP, or TCP + SOCKS5 for the mesh). */
  connect: Samples;
  scheduled: number;
  completed: number;
  errors: number;
  /** The first few error messages, for the report. */
  errorSamples: string[];
  seconds: number;
  achievedPerSecond: number;
}

const now = (): bigint => process.hrtime.bigint();

export async function churn(dial: Dialer, request: Buffer, perSecond: number, durationMs: number, o: { maxInFlight?: number; graceMs?: number } = {}): Promise<ChurnResult> {
  const maxInFlight = o.maxInFlight ?? 4096;
  const pacer = new Pacer();
  try {
    return await new Promise<ChurnResult>((resolve, reject) => {
      const total = Math.floor((perSecond * durationMs) / 1000);
      const intervalNs = 1e9 / perSecond;
      const fromSchedule = new Samples(total);
      const connect = new Samples(total);
      const errorSamples: string[] = [];
      let t0 = 0n;
      let inFlight = 0;
      let completed = 0;
      let errors = 0;
      let finished = false;
      let hardStop: NodeJS.Timeout | undefined;
      const end = (): void => {
        if (finished) return;
        finished = true;
        clearTimeout(hardStop);
        const seconds = Number(now() - t0) / 1e9;
        resolve({ fromSchedule, connect, scheduled: total, completed, errors, errorSamples, seconds, achievedPerSecond: completed / seconds });
      };
      const fail = (msg: string): void => {
        errors++;
        if (errorSamples.length < 5) errorSamples.push(msg);
      };
      const settle = (): void => {
        inFlight--;
        if (completed + errors >= total) end();
      };
      const one = (i: number): void => {
        const scheduledAt = t0 + BigInt(Math.round(i * intervalNs));
        if (inFlight >= maxInFlight) {
          fail(`in-flight cap of ${maxInFlight} connections reached`);
          if (completed + errors >= total) end();
          return;
        }
        inFlight++;
        dial().then((socket) => {
          connect.add(Number(now() - scheduledAt));
          const conn = new HttpConn(socket);
          conn.get(request, (endNs, err) => {
            conn.close();
            if (err) fail(err.message);
            else {
              completed++;
              fromSchedule.add(Number(endNs - scheduledAt));
            }
            settle();
          });
        }, (err: Error) => {
          fail(err.message);
          settle();
        });
      };
      pacer.start(intervalNs, total, (i) => { if (!finished) one(i); }).then((start) => {
        t0 = start;
        hardStop = setTimeout(end, durationMs + (o.graceMs ?? 10_000));
      }, reject);
    });
  } finally {
    await pacer.stop();
  }
}
