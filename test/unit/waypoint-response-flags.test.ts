import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { RESPONSE_FLAGS, formatResponseFlags, type ResponseFlag } from '../../src/waypoint/response-flags.js';

it('documents every response flag in README.md "Response flags", with the same name, status and meaning, in the same order', () => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('### Response flags');
  assert.ok(start >= 0, 'README.md has a "### Response flags" section');
  const end = readme.indexOf('\n#', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const rows = [...section.matchAll(/^\| `([A-Z]+)` \| (\w+) \| (\d{3}|—) \| (.*) \|$/gm)]
    .map((m) => ({ flag: m[1], name: m[2], status: m[3] === '—' ? undefined : Number(m[3]), meaning: m[4] }));
  const table = Object.entries(RESPONSE_FLAGS).map(([flag, info]) => ({ flag, name: info.name, status: 'status' in info ? info.status : undefined, meaning: info.meaning }));
  assert.deepEqual(rows, table);
});

it('prints flags as Envoy does: table order, comma-separated, "-" for none, duplicates once', () => {
  assert.equal(formatResponseFlags([]), '-');
  assert.equal(formatResponseFlags(['URX', 'UF']), 'UF,URX');
  assert.equal(formatResponseFlags(['FI', 'DI'] satisfies ResponseFlag[]), 'DI,FI');
  assert.equal(formatResponseFlags(['UO', 'UO']), 'UO');
});
