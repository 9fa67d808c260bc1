/**
 * Label selectors (`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, comma = AND) and field
 * selectors (`path=value`, `path==value`, `path!=value`, comma = AND) as the API server parses them.
 */

type Obj = Record<string, unknown>;
export type Matcher = (obj: Obj) => boolean;

export class SelectorError extends Error {}

export function parseLabelSelector(text: string | null): Matcher {
  if (!text) return () => true;
  const reqs: Matcher[] = [];
  for (const part of splitTopLevel(text)) {
    const p = part.trim();
    if (p === '') continue;
    let m: RegExpMatchArray | null;
    if ((m = p.match(/^([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)$/))) {
      const [, key, op, list] = m as unknown as [string, string, string, string];
      const values = new Set(list.split(',').map((v) => v.trim()).filter((v) => v !== ''));
      reqs.push(op === 'in' ? (o) => { const v = labelsOf(o)[key]; return v !== undefined && values.has(v); } : (o) => { const v = labelsOf(o)[key]; return v === undefined || !values.has(v); });
    } else if ((m = p.match(/^([^\s!=]+)\s*(==|=|!=)\s*([^\s,]*)$/))) {
      const [, key, op, value] = m as unknown as [string, string, string, string];
      reqs.push(op === '!=' ? (o) => labelsOf(o)[key] !== value : (o) => labelsOf(o)[key] === value);
    } else if ((m = p.match(/^!\s*([^\s!=]+)$/))) {
      const key = m[1]!;
      reqs.push((o) => labelsOf(o)[key] === undefined);
    } else if ((m = p.match(/^([^\s!=()]+)$/))) {
      const key = m[1]!;
      reqs.push((o) => labelsOf(o)[key] !== undefined);
    } else {
      throw new SelectorError(`unable to parse requirement: ${p}`);
    }
  }
  return (o) => reqs.every((r) => r(o));
}

export function parseFieldSelector(text: string | null): Matcher {
  if (!text) return () => true;
  const reqs: Matcher[] = [];
  for (const part of text.split(',')) {
    const p = part.trim();
    if (p === '') continue;
    const m = p.match(/^([^=!]+?)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw new SelectorError(`invalid selector: '${p}'; can't understand '${p}'`);
    const [, path, op, value] = m as unknown as [string, string, string, string];
    const get = (o: Obj): string => fieldValue(o, path);
    reqs.push(op === '!=' ? (o) => get(o) !== value : (o) => get(o) === value);
  }
  return (o) => reqs.every((r) => r(o));
}

function fieldValue(o: Obj, path: string): string {
  let cur: unknown = o;
  for (const seg of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return '';
    cur = (cur as Obj)[seg];
  }
  return cur === undefined || cur === null ? '' : String(cur);
}

function labelsOf(o: Obj): Record<string, string> {
  const meta = o['metadata'] as Obj | undefined;
  return (meta?.['labels'] as Record<string, string> | undefined) ?? {};
}

/** Splits on commas that are not inside parentheses. */
function splitTopLevel(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  out.push(cur);
  return out;
}
