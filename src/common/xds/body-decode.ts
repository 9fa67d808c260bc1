/**
 * The decoding half of body-codec.ts: reads a resources.proto message straight from the wire into the TypeScript
 * object, following the same plan and rules (resources.proto, top), without protobufjs's intermediate message
 * objects (a proxy decodes every body of a 10,000-pod snapshot at once; this is several times faster).
 * Bounds: every length is checked against the enclosing message; nesting follows the schema (no recursion the
 * schema does not have), so malformed input ends in BodyCodecError, never in a read past the buffer.
 */
import { BodyCodecError, type FieldPlan, type MessagePlan, type ScalarKind } from './body-codec.js';

type Slot =
  | { k: 'field'; fp: FieldPlan }
  | { k: 'union'; name: string; scalar: ScalarKind }
  | { k: 'variant'; key: string; name: string; plan: MessagePlan };

function slots(plan: MessagePlan): Slot[] {
  let t = plan.decodeSlots as Slot[] | undefined;
  if (t) return t;
  t = [];
  for (const fp of plan.fields.values()) t[fp.id] = { k: 'field', fp };
  for (const [name, members] of plan.unions) for (const m of members) t[m.id] = { k: 'union', name, scalar: m.scalar! };
  if (plan.variant) for (const [id, m] of plan.variant.byId) t[id] = { k: 'variant', key: plan.variant.key, name: m.name, plan: m.plan };
  plan.decodeSlots = t;
  return t;
}

class Reader {
  constructor(
    readonly buf: Buffer,
    public pos: number,
  ) {}
  varint(end: number): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= end) throw new BodyCodecError('truncated varint');
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    throw new BodyCodecError('varint too long');
  }
  /** End offset of a length-delimited payload starting here. */
  len(end: number): number {
    const n = this.varint(end);
    const e = this.pos + n;
    if (e > end) throw new BodyCodecError('length past the end of its message');
    return e;
  }
  string(end: number): string {
    const e = this.len(end);
    const s = this.pos;
    this.pos = e;
    if (e - s < 24) {
      // Short ASCII strings (names, labels) without a native call.
      let out = '';
      for (let i = s; i < e; i++) {
        const c = this.buf[i]!;
        if (c >= 0x80) return this.buf.toString('utf8', s, e);
        out += String.fromCharCode(c);
      }
      return out;
    }
    return this.buf.toString('utf8', s, e);
  }
  skip(wireType: number, end: number): void {
    if (wireType === 0) this.varint(end);
    else if (wireType === 1) this.pos += 8;
    else if (wireType === 2) this.pos = this.len(end);
    else if (wireType === 5) this.pos += 4;
    else throw new BodyCodecError(`unsupported wire type ${wireType}`);
    if (this.pos > end) throw new BodyCodecError('field past the end of its message');
  }
}

function scalar(r: Reader, kind: ScalarKind, wireType: number, end: number): unknown {
  switch (kind) {
    case 'string':
      if (wireType !== 2) break;
      return r.string(end);
    case 'bool':
      if (wireType !== 0) break;
      return r.varint(end) !== 0;
    case 'uint32':
      if (wireType !== 0) break;
      return r.varint(end) % 0x100000000;
    case 'int32':
      if (wireType !== 0) break;
      return r.varint(end) | 0;
    case 'double': {
      if (wireType !== 1) break;
      if (r.pos + 8 > end) throw new BodyCodecError('truncated double');
      const v = r.buf.readDoubleLE(r.pos);
      r.pos += 8;
      return v;
    }
  }
  throw new BodyCodecError(`wire type ${wireType} for a ${kind}`);
}

const NUMERIC_PACKABLE = new Set<ScalarKind>(['bool', 'uint32', 'int32', 'double']);

function element(r: Reader, fp: Pick<FieldPlan, 'scalar' | 'plan'>, wireType: number, end: number): unknown {
  if (fp.scalar) return scalar(r, fp.scalar, wireType, end);
  if (wireType !== 2) throw new BodyCodecError(`wire type ${wireType} for a message`);
  const e = r.len(end);
  const v = readMessage(fp.plan!, r, e);
  r.pos = e;
  return v;
}

/** A map entry {1: key, 2: value}. */
function mapEntry(r: Reader, fp: FieldPlan, end: number, into: Record<string, unknown>): void {
  const e = r.len(end);
  let key = '';
  let value: unknown;
  while (r.pos < e) {
    const tag = r.varint(e);
    const id = tag >>> 3;
    const wt = tag & 7;
    if (id === 1 && wt === 2) key = r.string(e);
    else if (id === 2) value = element(r, fp, wt, e);
    else r.skip(wt, e);
  }
  if (key === '__proto__') throw new BodyCodecError('a "__proto__" map key');
  into[key] = value === undefined ? defaultElement(fp) : value;
  r.pos = e;
}

function defaultScalar(kind: ScalarKind): unknown {
  return kind === 'string' ? '' : kind === 'bool' ? false : 0;
}

function defaultElement(fp: Pick<FieldPlan, 'scalar' | 'plan'>): unknown {
  return fp.scalar ? defaultScalar(fp.scalar) : readMessage(fp.plan!, new Reader(Buffer.alloc(0), 0), 0);
}

function readField(r: Reader, fp: FieldPlan, wireType: number, end: number, out: Record<string, unknown>): void {
  switch (fp.shape) {
    case 'scalar':
      out[fp.name] = scalar(r, fp.scalar!, wireType, end);
      return;
    case 'message': {
      if (wireType !== 2) throw new BodyCodecError(`wire type ${wireType} for ${fp.name}`);
      const e = r.len(end);
      out[fp.name] = readMessage(fp.plan!, r, e);
      r.pos = e;
      return;
    }
    case 'repeated': {
      let arr = out[fp.name] as unknown[] | undefined;
      if (!arr) out[fp.name] = arr = [];
      if (wireType === 2 && fp.scalar && NUMERIC_PACKABLE.has(fp.scalar)) {
        const e = r.len(end);
        const wt = fp.scalar === 'double' ? 1 : 0;
        while (r.pos < e) arr.push(scalar(r, fp.scalar, wt, e));
        return;
      }
      arr.push(element(r, fp, wireType, end));
      return;
    }
    case 'map': {
      if (wireType !== 2) throw new BodyCodecError(`wire type ${wireType} for ${fp.name}`);
      let rec = out[fp.name] as Record<string, unknown> | undefined;
      if (!rec) out[fp.name] = rec = {};
      mapEntry(r, fp, end, rec);
      return;
    }
    case 'wrapped': {
      if (wireType !== 2) throw new BodyCodecError(`wire type ${wireType} for ${fp.name}`);
      const e = r.len(end);
      const inner = fp.inner!;
      const holder: Record<string, unknown> = { [inner.name]: inner.shape === 'map' ? {} : [] };
      while (r.pos < e) {
        const tag = r.varint(e);
        if (tag >>> 3 === inner.id) readField(r, inner, tag & 7, e, holder);
        else r.skip(tag & 7, e);
      }
      out[fp.name] = holder[inner.name];
      return;
    }
  }
}

function readMessage(plan: MessagePlan, r: Reader, end: number): unknown {
  if (plan.pair) {
    let a = '';
    let b = '';
    while (r.pos < end) {
      const tag = r.varint(end);
      if (tag === 0x0a) a = r.string(end);
      else if (tag === 0x12) b = r.string(end);
      else r.skip(tag & 7, end);
    }
    return [a, b];
  }
  const table = slots(plan);
  const out: Record<string, unknown> = {};
  let variant: Record<string, unknown> | undefined;
  while (r.pos < end) {
    const tag = r.varint(end);
    const id = tag >>> 3;
    const wt = tag & 7;
    const slot = table[id];
    if (!slot) {
      r.skip(wt, end); // a field from a newer schema
      continue;
    }
    if (slot.k === 'field') readField(r, slot.fp, wt, end, out);
    else if (slot.k === 'union') out[slot.name] = scalar(r, slot.scalar, wt, end);
    else {
      if (wt !== 2) throw new BodyCodecError(`wire type ${wt} for ${slot.name}`);
      const e = r.len(end);
      variant = { [slot.key]: slot.name, ...(readMessage(slot.plan, r, e) as object) };
      r.pos = e;
    }
  }
  if (plan.variant) {
    if (!variant) throw new BodyCodecError(`${plan.type.name}: no ${plan.variant.key} set`);
    return variant;
  }
  for (const fp of plan.fields.values()) {
    if (fp.optional || fp.name in out) continue;
    if (fp.shape === 'scalar') out[fp.name] = defaultScalar(fp.scalar!);
    else if (fp.shape === 'repeated') out[fp.name] = [];
    else if (fp.shape === 'map') out[fp.name] = {};
    else out[fp.name] = readMessage(fp.plan!, new Reader(Buffer.alloc(0), 0), 0);
  }
  return out;
}

/** The TypeScript object of one `plan` message in `buf`. */
export function decodeMessage(plan: MessagePlan, buf: Buffer): unknown {
  const r = new Reader(buf, 0);
  return readMessage(plan, r, buf.length);
}
