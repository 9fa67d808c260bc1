import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A file shipped with the package (the capture addon under build/, the scripts under scripts/), found by walking up
 * from `fromModule` (an `import.meta.url`; it lives in src/... or dist/src/...) to the first directory holding
 * `relative`. Undefined when none does.
 */
export function findPackageFile(fromModule: string, relative: string): string | undefined {
  let dir = dirname(fileURLToPath(fromModule));
  for (;;) {
    const candidate = join(dir, relative);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}
