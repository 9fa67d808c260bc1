/**
 * Bootstrap token files (`<data-dir>/tokens/`) for every node that runs pods and every waypoint the config names,
 * written as they appear.
 * Invariant: one write pass at a time, in order; `settled()` resolves once every caller known so far has its file
 * (the controller says "ready" only after that).
 */
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { ConfigStore } from './store.js';
import { callerSubject, type BootstrapTokens, type Caller } from './tokens.js';
import { WAYPOINT_GATEWAY_CLASS } from './views.js';

export class TokenFiles {
  readonly #written = new Set<string>();
  #chain = Promise.resolve();

  constructor(private readonly store: ConfigStore, private readonly tokens: BootstrapTokens, private readonly log: Logger) {}

  /** Writes the files of callers that appeared since the last pass (queued behind any pass in progress). */
  update(): Promise<void> {
    this.#chain = this.#chain.then(() => this.#writeNew());
    return this.#chain;
  }

  /** Every caller known so far. */
  callers(): Caller[] {
    const callers: Caller[] = [];
    for (const o of this.store.meshObjects()) {
      if (o.kind === 'Pod' && o.spec.nodeName) callers.push({ type: 'node', node: o.spec.nodeName });
      if (o.kind === 'Node') callers.push({ type: 'node', node: o.metadata.name });
      if (o.kind === 'Gateway' && o.spec.gatewayClassName === WAYPOINT_GATEWAY_CLASS) callers.push({ type: 'waypoint', namespace: o.metadata.namespace!, name: o.metadata.name });
    }
    return callers;
  }

  async #writeNew(): Promise<void> {
    for (const c of this.callers()) {
      const s = callerSubject(c);
      if (this.#written.has(s)) continue;
      await this.tokens.writeTokenFile(c).then(() => this.#written.add(s), (err) => this.log.error({ err: errorMessage(err), caller: s }, 'cannot write bootstrap token'));
    }
  }
}
