import { readFileSync } from 'node:fs';
import { findPackageFile } from './package-file.js';

/** Strait's version: package.json's, read once (from src/... or dist/src/... up to the package root). */
export const STRAIT_VERSION: string = readVersion();

function readVersion(): string {
  const file = findPackageFile(import.meta.url, 'package.json');
  if (!file) return 'unknown';
  try {
    const v = (JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version;
    return typeof v === 'string' ? v : 'unknown';
  } catch {
    return 'unknown';
  }
}
