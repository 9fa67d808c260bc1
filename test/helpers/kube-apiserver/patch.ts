/** JSON merge patch (RFC 7386) and JSON patch (RFC 6902), as the API server applies them. */

type Json = unknown;

export class PatchError extends Error {
  constructor(message: string, readonly status: number = 422) {
    super(message);
  }
}

export function mergePatch(target: Json, patch: Json): Json {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return clone(patch);
  const out: Record<string, Json> = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, Json>) } : {};
  for (const [k, v] of Object.entries(patch as Record<string, Json>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

interface Op {
  op: string;
  path: string;
  from?: string;
  value?: Json;
}

export function jsonPatch(target: Json, ops: Json): Json {
  if (!Array.isArray(ops)) throw new PatchError('a JSON patch must be an array of operations', 400);
  let doc = clone(target);
  for (const raw of ops as Op[]) {
    if (!raw || typeof raw !== 'object' || typeof raw.op !== 'string' || typeof raw.path !== 'string') throw new PatchError('invalid JSON patch operation', 400);
    switch (raw.op) {
      case 'add':
        doc = put(doc, pointer(raw.path), clone(raw.value), 'add');
        break;
      case 'replace':
        get(doc, pointer(raw.path));
        doc = put(doc, pointer(raw.path), clone(raw.value), 'replace');
        break;
      case 'remove':
        doc = remove(doc, pointer(raw.path));
        break;
      case 'move': {
        const v = get(doc, pointer(raw.from ?? ''));
        doc = remove(doc, pointer(raw.from ?? ''));
        doc = put(doc, pointer(raw.path), v, 'add');
        break;
      }
      case 'copy':
        doc = put(doc, pointer(raw.path), clone(get(doc, pointer(raw.from ?? ''))), 'add');
        break;
      case 'test':
        if (JSON.stringify(get(doc, pointer(raw.path))) !== JSON.stringify(raw.value)) throw new PatchError(`the test operation at ${raw.path} failed`);
        break;
      default:
        throw new PatchError(`unknown JSON patch operation "${raw.op}"`, 400);
    }
  }
  return doc;
}

function pointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw new PatchError(`invalid JSON pointer "${p}"`, 400);
  return p.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function get(doc: Json, path: string[]): Json {
  let cur = doc;
  for (const seg of path) {
    if (Array.isArray(cur)) {
      const i = Number(seg);
      if (!Number.isInteger(i) || i < 0 || i >= cur.length) throw new PatchError(`path /${path.join('/')} does not exist`);
      cur = cur[i];
    } else if (cur !== null && typeof cur === 'object' && seg in (cur as object)) {
      cur = (cur as Record<string, Json>)[seg];
    } else {
      throw new PatchError(`path /${path.join('/')} does not exist`);
    }
  }
  return cur;
}

function put(doc: Json, path: string[], value: Json, mode: 'add' | 'replace'): Json {
  if (path.length === 0) return value;
  const parent = get(doc, path.slice(0, -1));
  const last = path[path.length - 1]!;
  if (Array.isArray(parent)) {
    const i = last === '-' ? parent.length : Number(last);
    if (!Number.isInteger(i) || i < 0 || i > parent.length || (mode === 'replace' && i === parent.length)) throw new PatchError(`array index ${last} out of range`);
    if (mode === 'add') parent.splice(i, 0, value);
    else parent[i] = value;
  } else if (parent !== null && typeof parent === 'object') {
    (parent as Record<string, Json>)[last] = value;
  } else {
    throw new PatchError(`cannot set /${path.join('/')}: the parent is not an object or array`);
  }
  return doc;
}

function remove(doc: Json, path: string[]): Json {
  if (path.length === 0) throw new PatchError('cannot remove the whole document');
  const parent = get(doc, path.slice(0, -1));
  const last = path[path.length - 1]!;
  get(doc, path);
  if (Array.isArray(parent)) parent.splice(Number(last), 1);
  else delete (parent as Record<string, Json>)[last];
  return doc;
}

export function clone<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}
