/** A compact way to write case tables: one call per case. */
import type { Area, CaseContext, ServerCase, Verdict } from './case.js';

export const APPLIES = { applies: true } as const;

export function adapted(how: string): ServerCase['connectOnly'] {
  return { applies: true, adapted: how };
}

export function notApplicable(why: string): ServerCase['connectOnly'] {
  return { applies: false, why };
}

export function serverCase(
  id: string,
  rfc: string,
  area: Area,
  description: string,
  expect: string,
  run: (ctx: CaseContext) => Promise<Verdict>,
  connectOnly: ServerCase['connectOnly'] = APPLIES,
): ServerCase {
  const group = id.slice(0, id.indexOf('/')) as ServerCase['group'];
  return { id, group, rfc, area, description, expect, connectOnly, run };
}

/** Eight bytes of PING payload from a short text. */
export function pingData(text: string): Buffer {
  const b = Buffer.alloc(8);
  b.write(text.slice(0, 8), 'latin1');
  return b;
}
