/**
 * Protobuf resource bodies (src/common/proto/resources.proto) <-> the TypeScript objects of resources.ts.
 *
 * The converter is driven by the schema and the fixed rules written at the top of resources.proto, so a field added
 * to the .proto needs no code here. It is exact or it refuses: encodeBody throws BodyCodecError for anything the
 * schema cannot carry so that decodeBody would give back a different object (an unknown or missing property, null,
 * a non-integer in an integer field, ...), and the caller sends that one body as JSON instead.
 */
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import protobuf from 'protobufjs';
import { bug } from '../errors.js';
import { decodeMessage } from './body-decode.js';
import { TYPE_AUTHORIZATION, TYPE_POLICY, TYPE_ROUTE, TYPE_SERVICE, TYPE_WORKLOAD } from './resources.js';

/** The message carrying each type URL's body. */
const MESSAGE_OF_TYPE: Readonly<Record<string, string>> = {
  [TYPE_WORKLOAD]: 'Workload',
  [TYPE_SERVICE]: 'Service',
  [TYPE_AUTHORIZATION]: 'Authorization',
  [TYPE_ROUTE]: 'Route',
  [TYPE_POLICY]: 'Policy',
};

/** A body the schema cannot represent exactly (the caller falls back to JSON for it). */
export class BodyCodecError extends Error {}

export type ScalarKind = 'string' | 'bool' | 'uint32' | 'int32' | 'double';

export interface FieldPlan {
  readonly name: string;
  /** Field number on the wire. */
  readonly id: number;
  readonly optional: boolean;
  /** 'scalar' | 'message' | 'repeated' | 'map' | 'wrapped' (an optional *List / *Map: its one `items` field). */
  readonly shape: 'scalar' | 'message' | 'repeated' | 'map' | 'wrapped';
  /** Element / value type: a scalar kind, or the message plan. */
  readonly scalar?: ScalarKind;
  plan?: MessagePlan;
  /** shape 'wrapped': the inner field (repeated or map). */
  inner?: FieldPlan;
}

export interface MessagePlan {
  readonly type: protobuf.Type;
  readonly fields: Map<string, FieldPlan>;
  /** Scalar oneofs: property name -> member field plans. */
  readonly unions: Map<string, FieldPlan[]>;
  /** A discriminated union (rule 6): the discriminant property and its members by value. */
  variant?: { key: string; members: Map<string, MessagePlan>; byId: Map<number, { name: string; plan: MessagePlan }> };
  /** Rule 7. */
  readonly pair: boolean;
  /** body-decode.ts's field-number table, built on first use. */
  decodeSlots?: unknown[];
}

const SCALARS: Readonly<Record<string, ScalarKind>> = {
  string: 'string',
  bool: 'bool',
  uint32: 'uint32',
  double: 'double',
};

let cache: { root: protobuf.Root; plans: Map<string, MessagePlan> } | undefined;

function load(): { root: protobuf.Root; plans: Map<string, MessagePlan> } {
  if (cache) return cache;
  const path = fileURLToPath(new URL('../proto/resources.proto', import.meta.url));
  if (!existsSync(path)) throw bug(`resources.proto not found at ${path}; the build did not copy src/common/proto (run \`npm run build\`)`);
  const root = protobuf.loadSync(path);
  root.resolveAll();
  const plans = new Map<string, MessagePlan>();
  const planOf = (type: protobuf.Type): MessagePlan => {
    const known = plans.get(type.fullName);
    if (known) return known;
    const plan: MessagePlan = { type, fields: new Map(), unions: new Map(), pair: type.name === 'StringPair' };
    plans.set(type.fullName, plan);
    const realOneofs = type.oneofsArray.filter((o) => !o.fieldsArray.every((f) => f.options?.['proto3_optional']));
    const inOneof = new Set(realOneofs.flatMap((o) => o.fieldsArray.map((f) => f.name)));
    for (const f of type.fieldsArray) {
      if (inOneof.has(f.name)) continue;
      plan.fields.set(f.name, fieldPlan(f, planOf));
    }
    for (const o of realOneofs) {
      const members = o.fieldsArray;
      if (members.every((f) => f.resolvedType instanceof protobuf.Type)) {
        if (type.fieldsArray.length !== members.length) throw bug(`${type.fullName}: a oneof of messages must be alone in its message (resources.proto rule 6)`);
        const byName = new Map(members.map((f) => [f.name, planOf(f.resolvedType as protobuf.Type)]));
        plan.variant = { key: o.name, members: byName, byId: new Map(members.map((f) => [f.id, { name: f.name, plan: byName.get(f.name)! }])) };
      } else if (members.every((f) => SCALARS[f.type])) {
        plan.unions.set(o.name, members.map((f) => fieldPlan(f, planOf)));
      } else {
        throw bug(`${type.fullName}.${o.name}: a oneof mixes scalars and messages`);
      }
    }
    return plan;
  };
  for (const name of Object.values(MESSAGE_OF_TYPE)) planOf(root.lookupType(`strait.resources.v1.${name}`));
  cache = { root, plans };
  return cache;
}

function fieldPlan(f: protobuf.Field, planOf: (t: protobuf.Type) => MessagePlan): FieldPlan {
  const optional = Boolean(f.options?.['proto3_optional']);
  const scalar = SCALARS[f.type];
  const sub = f.resolvedType instanceof protobuf.Type ? f.resolvedType : undefined;
  if (!scalar && !sub) throw bug(`resources.proto field ${f.fullName} has type ${f.type}, which the body codec does not handle`);
  const elem = (): Pick<FieldPlan, 'scalar' | 'plan'> => (scalar ? { scalar } : { plan: planOf(sub!) });
  if (f instanceof protobuf.MapField) {
    if (f.keyType !== 'string') throw bug(`${f.fullName}: map keys must be strings`);
    return { name: f.name, id: f.id, optional, shape: 'map', ...elem() };
  }
  if (f.repeated) return { name: f.name, id: f.id, optional, shape: 'repeated', ...elem() };
  if (scalar) return { name: f.name, id: f.id, optional, shape: 'scalar', scalar };
  const inner = sub!.fieldsArray.length === 1 && sub!.fieldsArray[0]!.name === 'items' ? sub!.fieldsArray[0]! : undefined;
  if (inner && (inner.repeated || inner instanceof protobuf.MapField)) {
    if (!optional) throw bug(`${f.fullName}: a *List / *Map wrapper is for optional properties only`);
    return { name: f.name, id: f.id, optional, shape: 'wrapped', inner: fieldPlan(inner, planOf) };
  }
  return { name: f.name, id: f.id, optional, shape: 'message', plan: planOf(sub!) };
}

// --- encode (TypeScript object -> protobufjs message object) ------------------------------------------------

function refuse(path: string, why: string): never {
  throw new BodyCodecError(`${path}: ${why}`);
}

function scalarToWire(kind: ScalarKind, v: unknown, path: string): unknown {
  switch (kind) {
    case 'string':
      if (typeof v !== 'string') refuse(path, `expected a string, got ${typeof v}`);
      return v;
    case 'bool':
      if (typeof v !== 'boolean') refuse(path, `expected a boolean, got ${typeof v}`);
      return v;
    case 'double':
      if (typeof v !== 'number' || !Number.isFinite(v)) refuse(path, `expected a finite number`);
      return v;
    case 'uint32':
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff || Object.is(v, -0)) refuse(path, `expected an integer 0..2^32-1`);
      return v;
    case 'int32':
      if (typeof v !== 'number' || !Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff || Object.is(v, -0)) refuse(path, `expected a 32-bit integer`);
      return v;
  }
}

function valueToWire(fp: Pick<FieldPlan, 'scalar' | 'plan'>, v: unknown, path: string): unknown {
  return fp.scalar ? scalarToWire(fp.scalar, v, path) : messageToWire(fp.plan!, v, path);
}

function fieldToWire(fp: FieldPlan, v: unknown, path: string): unknown {
  switch (fp.shape) {
    case 'scalar':
      return scalarToWire(fp.scalar!, v, path);
    case 'message':
      return messageToWire(fp.plan!, v, path);
    case 'repeated':
      if (!Array.isArray(v)) refuse(path, 'expected an array');
      return v.map((e, i) => valueToWire(fp, e, `${path}[${i}]`));
    case 'map': {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) refuse(path, 'expected a record');
      const out: Record<string, unknown> = {};
      for (const [k, e] of Object.entries(v)) {
        if (k === '__proto__') refuse(path, 'a "__proto__" key');
        out[k] = valueToWire(fp, e, `${path}.${k}`);
      }
      return out;
    }
    case 'wrapped':
      return { items: fieldToWire(fp.inner!, v, path) };
  }
}

function messageToWire(plan: MessagePlan, v: unknown, path: string): Record<string, unknown> {
  if (plan.pair) {
    if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'string' || typeof v[1] !== 'string') refuse(path, 'expected a [string, string] pair');
    return { a: v[0], b: v[1] };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) refuse(path, 'expected an object');
  const obj = v as Record<string, unknown>;
  if (plan.variant) {
    const tag = obj[plan.variant.key];
    const member = typeof tag === 'string' ? plan.variant.members.get(tag) : undefined;
    if (!member) refuse(path, `${plan.variant.key} ${JSON.stringify(tag)} is none of ${[...plan.variant.members.keys()].join(', ')}`);
    const rest: Record<string, unknown> = { ...obj };
    delete rest[plan.variant.key];
    return { [tag as string]: messageToWire(member, rest, path) };
  }
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(obj)) {
    const value = obj[key];
    if (value === undefined) continue; // as JSON.stringify drops it
    const fp = plan.fields.get(key);
    if (fp) {
      out[key] = fieldToWire(fp, value, `${path}.${key}`);
      continue;
    }
    const union = plan.unions.get(key);
    if (union) {
      const member = union.find((m) => (m.scalar === 'string' ? typeof value === 'string' : m.scalar === 'bool' ? typeof value === 'boolean' : typeof value === 'number'));
      if (!member) refuse(`${path}.${key}`, `a ${typeof value} fits none of ${union.map((m) => m.name).join(', ')}`);
      out[member.name] = scalarToWire(member.scalar!, value, `${path}.${key}`);
      continue;
    }
    refuse(`${path}.${key}`, `not in ${plan.type.name} of resources.proto`);
  }
  for (const fp of plan.fields.values()) if (!fp.optional && !(fp.name in out)) refuse(`${path}.${fp.name}`, 'required, missing');
  for (const [name, members] of plan.unions) if (!members.some((m) => m.name in out)) refuse(`${path}.${name}`, 'required, missing');
  return out;
}

// --- API -----------------------------------------------------------------------------------------------------

const planByType = new Map<string, MessagePlan>();

function planFor(typeUrl: string): MessagePlan | undefined {
  let plan = planByType.get(typeUrl);
  if (plan) return plan;
  const name = MESSAGE_OF_TYPE[typeUrl];
  if (!name) return undefined;
  plan = load().plans.get(`.strait.resources.v1.${name}`);
  if (plan) planByType.set(typeUrl, plan);
  return plan;
}

/** Whether `typeUrl` has a protobuf body schema. */
export function hasProtoBody(typeUrl: string): boolean {
  return MESSAGE_OF_TYPE[typeUrl] !== undefined;
}

/** The protobuf body of `body`; throws BodyCodecError when the schema cannot carry it exactly (send JSON instead). */
export function encodeBody(typeUrl: string, body: unknown): Buffer {
  const plan = planFor(typeUrl);
  if (!plan) throw new BodyCodecError(`${typeUrl} has no protobuf body schema`);
  const wire = messageToWire(plan, body, plan.type.name);
  const bytes = plan.type.encode(wire).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The object encodeBody encoded (body-decode.ts reads the wire directly); throws BodyCodecError on malformed bytes. */
export function decodeBody(typeUrl: string, bytes: Uint8Array): unknown {
  const plan = planFor(typeUrl);
  if (!plan) throw new BodyCodecError(`${typeUrl} has no protobuf body schema`);
  return decodeMessage(plan, Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}
