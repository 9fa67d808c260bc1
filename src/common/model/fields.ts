/**
 * Small readers that turn untrusted values (from YAML) into typed values or into problems.
 * Every reader takes the field's path for messages, records at most one error per field, and returns
 * undefined when the value is absent or wrong; callers build the typed object regardless and the
 * object is discarded as soon as any error was recorded (see validate.ts).
 */
import type { Labels } from './types.js';
import { isLabelKey, isLabelValue } from './formats.js';
import { isGatewayDuration, parseDurationMs } from './duration.js';

export type Raw = Record<string, unknown>;

/** Where readers report. */
export interface Ctx {
  error(path: string, message: string): void;
  warn(path: string, message: string): void;
  /** Namespace of the object being validated (undefined for cluster-scoped kinds). */
  readonly namespace: string | undefined;
}

/** `true`: required; a string: required, with this hint appended to the message. */
export type Req = boolean | string | undefined;

// ---------- paths ----------

export const at = (path: string, key: string): string => (path ? `${path}.${key}` : key);
export const idx = (path: string, i: number): string => `${path}[${i}]`;
/** A user-chosen map key (label, header name, port): `metadata.labels[app]`, as Kubernetes prints it. */
export const keyed = (path: string, key: string): string => `${path}[${key}]`;
/** A field of a struct: dotted when the key looks like a field name, bracketed otherwise. */
export const field = (path: string, key: string): string => (/^[A-Za-z_$][\w$-]*$/.test(key) ? at(path, key) : keyed(path, key));

// ---------- value helpers ----------

export const absent = (v: unknown): v is null | undefined => v === undefined || v === null;
/** A plain mapping as YAML gives it (not a list, nor binary data or another class instance). */
export function isMapping(v: unknown): v is Raw {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** A value as it appears in a message: strings quoted, containers named. */
export function describe(v: unknown): string {
  if (absent(v)) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Uint8Array) return 'binary data';
  if (typeof v === 'object') return isMapping(v) ? 'a mapping' : 'an unsupported value';
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

/** Drops keys whose value is undefined, so results compare equal to hand-written expectations. */
export function compact<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as T;
}

export function missing(ctx: Ctx, path: string, req: Req): void {
  ctx.error(path, typeof req === 'string' ? `required field is missing; ${req}` : 'required field is missing');
}

/** Returns true when the value is present; reports a missing required value. */
function present(ctx: Ctx, v: unknown, path: string, req: Req): boolean {
  if (!absent(v)) return true;
  if (req) missing(ctx, path, req);
  return false;
}

// ---------- structs ----------

export interface FieldSet {
  /** Fields the validator reads. */
  readonly known: readonly string[];
  /** Upstream fields with no bearing on the mesh (bookkeeping, scheduling): accepted silently. */
  readonly silent?: readonly string[];
  /** Upstream fields that Strait does not implement: accepted with a warning. */
  readonly unsupported?: readonly string[];
}

/**
 * A mapping whose keys are checked against `fields`: unknown keys give warnings, never errors.
 * Returns undefined when absent (reporting it if required) or not a mapping.
 */
export function struct(ctx: Ctx, v: unknown, path: string, fields: FieldSet, req?: Req): Raw | undefined {
  if (!present(ctx, v, path, req)) return undefined;
  if (!isMapping(v)) {
    ctx.error(path, `expected a mapping, got ${describe(v)}`);
    return undefined;
  }
  for (const key of Object.keys(v)) {
    if (fields.known.includes(key) || fields.silent?.includes(key)) continue;
    if (fields.unsupported?.includes(key)) ctx.warn(field(path, key), 'not supported by Strait, ignored');
    else ctx.warn(field(path, key), 'unknown field, ignored');
  }
  return v;
}

// ---------- scalars ----------

export function str(ctx: Ctx, v: unknown, path: string, req?: Req): string | undefined {
  if (!present(ctx, v, path, req)) return undefined;
  if (typeof v !== 'string') {
    ctx.error(path, `expected a string, got ${describe(v)}`);
    return undefined;
  }
  return v;
}

/** A string that must not be empty (names, hosts). */
export function nonEmpty(ctx: Ctx, v: unknown, path: string, req?: Req): string | undefined {
  const s = str(ctx, v, path, req);
  if (s === '') {
    if (req) missing(ctx, path, req);
    else ctx.error(path, 'must not be empty');
    return undefined;
  }
  return s;
}

export function bool(ctx: Ctx, v: unknown, path: string, req?: Req): boolean | undefined {
  if (!present(ctx, v, path, req)) return undefined;
  if (typeof v !== 'boolean') {
    ctx.error(path, `expected true or false, got ${describe(v)}`);
    return undefined;
  }
  return v;
}

export interface Range {
  min?: number;
  max?: number;
}

function rangeText(r: Range): string {
  if (r.min !== undefined && r.max !== undefined) return ` from ${r.min} to ${r.max}`;
  if (r.min !== undefined) return r.min === 0 ? ' (0 or more)' : ` of at least ${r.min}`;
  if (r.max !== undefined) return ` of at most ${r.max}`;
  return '';
}

/** An integer within `range`. Quoted numbers are rejected with a hint, as Kubernetes rejects them. */
export function int(ctx: Ctx, v: unknown, path: string, range: Range = {}, req?: Req): number | undefined {
  if (!present(ctx, v, path, req)) return undefined;
  const expected = `an integer${rangeText(range)}`;
  if (typeof v === 'string' && /^-?\d+$/.test(v.trim())) {
    ctx.error(path, `expected ${expected}, got ${describe(v)}; remove the quotes`);
    return undefined;
  }
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    ctx.error(path, `expected ${expected}, got ${describe(v)}`);
    return undefined;
  }
  if ((range.min !== undefined && v < range.min) || (range.max !== undefined && v > range.max)) {
    ctx.error(path, `${v} is out of range; expected ${expected}`);
    return undefined;
  }
  return v;
}

/** A (possibly fractional) number within `range`, e.g. a percentage. */
export function num(ctx: Ctx, v: unknown, path: string, range: Range = {}, req?: Req): number | undefined {
  if (!present(ctx, v, path, req)) return undefined;
  const expected = `a number${rangeText(range)}`;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    ctx.error(path, `expected ${expected}, got ${describe(v)}`);
    return undefined;
  }
  if ((range.min !== undefined && v < range.min) || (range.max !== undefined && v > range.max)) {
    ctx.error(path, `${v} is out of range; expected ${expected}`);
    return undefined;
  }
  return v;
}

export const PORT_RANGE: Range = { min: 1, max: 65535 };

export function port(ctx: Ctx, v: unknown, path: string, req?: Req): number | undefined {
  return int(ctx, v, path, PORT_RANGE, req);
}

/** One of a fixed set of strings; a case-only mismatch gets a "did you mean". */
export function oneOf<T extends string>(ctx: Ctx, v: unknown, path: string, values: readonly T[], req?: Req): T | undefined {
  const s = str(ctx, v, path, req);
  if (s === undefined) return undefined;
  if ((values as readonly string[]).includes(s)) return s as T;
  const near = values.find((x) => x.toLowerCase() === s.toLowerCase());
  ctx.error(path, `${describe(s)} is not one of ${values.join(', ')}${near ? ` (did you mean "${near}"?)` : ''}`);
  return undefined;
}

/** A string checked by `ok`; `what` completes "... is not <what>". */
export function formatted(
  ctx: Ctx,
  v: unknown,
  path: string,
  ok: (s: string) => boolean,
  what: string,
  req?: Req,
): string | undefined {
  const s = str(ctx, v, path, req);
  if (s === undefined) return undefined;
  if (s === '' && req) {
    missing(ctx, path, req);
    return undefined;
  }
  if (!ok(s)) {
    ctx.error(path, `${describe(s)} is not ${what}`);
    return undefined;
  }
  return s;
}

// ---------- containers ----------

/** A list whose items are read by `item`; invalid items are left out (their errors reject the object). */
export function list<T>(
  ctx: Ctx,
  v: unknown,
  path: string,
  item: (v: unknown, path: string) => T | undefined,
  req?: Req,
): T[] | undefined {
  if (!present(ctx, v, path, req)) return undefined;
  if (!Array.isArray(v)) {
    ctx.error(path, `expected a list, got ${describe(v)}`);
    return undefined;
  }
  const out: T[] = [];
  v.forEach((x, i) => {
    const r = item(x, idx(path, i));
    if (r !== undefined) out.push(r);
  });
  return out;
}

/** A list with at least one item. */
export function nonEmptyList<T>(
  ctx: Ctx,
  v: unknown,
  path: string,
  item: (v: unknown, path: string) => T | undefined,
  req?: Req,
): T[] | undefined {
  const out = list(ctx, v, path, item, req);
  if (Array.isArray(v) && v.length === 0) {
    ctx.error(path, 'must not be empty');
    return undefined;
  }
  return out;
}

export function strList(ctx: Ctx, v: unknown, path: string, req?: Req): string[] | undefined {
  return list(ctx, v, path, (x, p) => str(ctx, x, p, true), req);
}

/** A mapping with user-chosen keys whose values are read by `value`. */
export function mapOf<T>(
  ctx: Ctx,
  v: unknown,
  path: string,
  value: (v: unknown, path: string, key: string) => T | undefined,
  req?: Req,
): Record<string, T> | undefined {
  if (!present(ctx, v, path, req)) return undefined;
  if (!isMapping(v)) {
    ctx.error(path, `expected a mapping, got ${describe(v)}`);
    return undefined;
  }
  const out: Record<string, T> = {};
  for (const [k, x] of Object.entries(v)) {
    const r = value(x, keyed(path, k), k);
    if (r !== undefined) out[k] = r;
  }
  return out;
}

/** A string-to-string map whose values YAML might have typed: numbers and booleans get a quoting hint. */
export function stringMap(ctx: Ctx, v: unknown, path: string): Labels | undefined {
  return mapOf(ctx, v, path, (x, p) => {
    if (typeof x === 'string') return x;
    if (typeof x === 'number' || typeof x === 'boolean') {
      ctx.error(p, `expected a string, got the ${typeof x} ${x}; quote the value in YAML`);
    } else if (absent(x)) {
      ctx.error(p, `expected a string, got nothing; write "" for an empty value`);
    } else {
      ctx.error(p, `expected a string, got ${describe(x)}`);
    }
    return undefined;
  });
}

/** Kubernetes labels (also label selectors' matchLabels): qualified-name keys, short values. */
export function labels(ctx: Ctx, v: unknown, path: string): Labels | undefined {
  const m = stringMap(ctx, v, path);
  if (m === undefined) return undefined;
  for (const [k, val] of Object.entries(m)) {
    if (!isLabelKey(k)) {
      ctx.error(
        keyed(path, k),
        'is not a valid label key (an optional DNS subdomain prefix and "/", then at most 63 letters, digits, ' +
          "'-', '_' or '.', starting and ending with a letter or digit)",
      );
    } else if (!isLabelValue(val)) {
      ctx.error(
        keyed(path, k),
        `${describe(val)} is not a valid label value (at most 63 letters, digits, '-', '_' or '.', ` +
          'starting and ending with a letter or digit, or empty)',
      );
    }
  }
  return m;
}

/** Kubernetes annotations: qualified-name keys, any string values. */
export function annotations(ctx: Ctx, v: unknown, path: string): Labels | undefined {
  const m = stringMap(ctx, v, path);
  if (m === undefined) return undefined;
  for (const k of Object.keys(m)) {
    if (!isLabelKey(k)) ctx.error(keyed(path, k), 'is not a valid annotation key (an optional DNS subdomain prefix and "/", then a name of at most 63 characters)');
  }
  return m;
}

/**
 * Reports a field value that occurs more than once among the items of a raw list, on the later item.
 * Works on the raw list so that positions stay right even when some items were invalid.
 */
export function uniqueIn(
  ctx: Ctx,
  rawList: unknown,
  path: string,
  field: string,
  keyOf: (item: Raw) => string | undefined = (item) => (typeof item[field] === 'string' ? item[field] : undefined),
): void {
  if (!Array.isArray(rawList)) return;
  const seen = new Map<string, number>();
  rawList.forEach((item: unknown, i) => {
    if (!isMapping(item)) return;
    const key = keyOf(item);
    if (key === undefined) return;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, i);
    else ctx.error(at(idx(path, i), field), `duplicate ${describe(key)}, already used by ${idx(path, first)}`);
  });
}

// ---------- durations ----------

export const DURATION_HINT = 'write a number with a unit, e.g. "100ms", "1s", "1m" or "1h"';

/**
 * An Istio duration: at least 1ms (0 only when `allowZero`), whole milliseconds, as Istio validates.
 * Returns the string as written; use parseDurationMs to read it.
 */
export function duration(ctx: Ctx, v: unknown, path: string, opts: { allowZero?: boolean } = {}, req?: Req): string | undefined {
  if (!present(ctx, v, path, req)) return undefined;
  if (typeof v !== 'string') {
    ctx.error(path, `expected a duration string, got ${describe(v)}; ${DURATION_HINT}`);
    return undefined;
  }
  const ms = parseDurationMs(v);
  if (ms === undefined) {
    ctx.error(path, `${describe(v)} is not a duration; ${DURATION_HINT}`);
    return undefined;
  }
  if (ms === 0 && opts.allowZero) return v;
  if (ms < 1) {
    ctx.error(path, `${describe(v)} is too short; durations must be at least 1ms`);
    return undefined;
  }
  if (!Number.isInteger(ms)) {
    ctx.error(path, `${describe(v)} is finer than a millisecond; only millisecond precision is supported`);
    return undefined;
  }
  return v;
}

/** A Gateway API duration (GEP-2257): "10s", "1h30m", "500ms"; no fractions. */
export function gatewayDuration(ctx: Ctx, v: unknown, path: string): string | undefined {
  const s = str(ctx, v, path);
  if (s === undefined) return undefined;
  if (!isGatewayDuration(s)) {
    ctx.error(path, `${describe(s)} is not a Gateway API duration; write 1 to 4 parts of up to 5 digits with h, m, s or ms, e.g. "500ms", "10s" or "1h30m"`);
    return undefined;
  }
  return s;
}
