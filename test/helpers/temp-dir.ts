import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh temporary directory ("strait-<prefix>-XXXXXX"), removed with everything in it by remove(). */
export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), `strait-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}
