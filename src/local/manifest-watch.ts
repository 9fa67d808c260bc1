/**
 * Notices edits of a manifest directory (or file) for `strait up` and `strait lab`: a recursive fs.watch, debounced,
 * plus a poll (fs.watch misses changes on some file systems, and editors that replace files). The callback only
 * schedules work; what changed is found by reloading.
 */
import { watch, type FSWatcher } from 'node:fs';

const DEBOUNCE_MS = 200;
const POLL_MS = 2_000;

export interface ManifestWatch {
  close(): void;
}

/** Calls `onChange` DEBOUNCE_MS after a burst of changes under `path`, and every POLL_MS anyway. */
export function watchManifests(path: string, onChange: () => void): ManifestWatch {
  let pending: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(path, { recursive: true, persistent: false }, () => {
      clearTimeout(pending);
      pending = setTimeout(onChange, DEBOUNCE_MS);
    });
  } catch {
    // polling below still applies edits
  }
  const poll = setInterval(onChange, POLL_MS);
  poll.unref();
  return {
    close() {
      watcher?.close();
      clearTimeout(pending);
      clearInterval(poll);
    },
  };
}
