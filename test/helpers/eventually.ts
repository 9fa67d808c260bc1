/** How often `eventually` looks again. */
const POLL_MS = 10;

/**
 * Polls `check` until it returns a truthy value (resolving with it) or `timeoutMs` passes (rejecting, with the last
 * error `check` threw, if any). Tests wait on conditions with this, never on fixed sleeps.
 */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 5000, what = 'condition'): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
