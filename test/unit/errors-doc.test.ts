import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERROR_CODES } from '../../src/common/errors.js';

it('documents every error code in docs/errors.md, with the same meaning, and nothing else', () => {
  const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
  const rows = new Map([...doc.matchAll(/^\| `(STRAIT_ERR_[A-Z0-9_]+)` \| (.*) \|$/gm)].map((m) => [m[1], m[2]]));
  assert.deepEqual([...rows.keys()].sort(), Object.keys(ERROR_CODES).sort(), 'docs/errors.md and ERROR_CODES list different codes');
  for (const [code, meaning] of Object.entries(ERROR_CODES)) assert.equal(rows.get(code), meaning, `meaning of ${code} differs`);
});
