/**
 * Reading one component's settings from its flags and environment (each component's config.ts): a flag wins over
 * its environment variable, and every bad value is refused with a message naming the flag and the fix.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { StraitError, errorMessage } from './errors.js';
import { parseByteSize } from './byte-size.js';
import { parseDurationMs } from './model/duration.js';

export interface ConfigValues {
  /** The flag's value, else the environment variable's (an empty variable counts as unset). */
  pick(flag: string | undefined, envName: string): string | undefined;
  /** A file's text; `what` names the flag in the error. */
  readFile(path: string, what: string): string;
  duration(raw: string | undefined, what: string, dflt: number): number;
  int(raw: string | undefined, what: string, dflt: number, min: number, max: number): number;
  size(raw: string | undefined, what: string, dflt: number, min: number, max: number): number;
}

export const configFail = (msg: string) => new StraitError('STRAIT_ERR_CONFIG', msg);

export function configValues(env: Record<string, string | undefined>): ConfigValues {
  return {
    pick: (flag, envName) => flag ?? (env[envName] || undefined),
    readFile: (path, what) => {
      try {
        return readFileSync(resolve(path), 'utf8');
      } catch (err) {
        throw configFail(`${what} ${path} cannot be read: ${errorMessage(err)}`);
      }
    },
    duration: (raw, what, dflt) => {
      if (raw === undefined) return dflt;
      const ms = parseDurationMs(raw);
      if (ms === undefined) throw configFail(`${what}: "${raw}" is not a duration (use forms like 500ms, 5s, 1m)`);
      return ms;
    },
    int: (raw, what, dflt, min, max) => {
      if (raw === undefined) return dflt;
      const n = Number(raw);
      if (!Number.isInteger(n) || n < min || n > max) throw configFail(`${what}: "${raw}" must be a whole number from ${min} to ${max}`);
      return n;
    },
    size: (raw, what, dflt, min, max) => {
      if (raw === undefined) return dflt;
      const n = parseByteSize(raw);
      if (n === undefined || n < min || n > max) throw configFail(`${what}: "${raw}" must be a size from ${min} to ${max} bytes (e.g. 64KiB)`);
      return n;
    },
  };
}
