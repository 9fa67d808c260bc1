import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERROR_CODES } from '../../src/common/errors.js';
import { CONNECTION_OUTCOMES, outcomeOfStatus, type ConnectionOutcome } from '../../src/dataplane/outcomes.js';

it('documents every error code in docs/errors.md, with the same meaning, and nothing else', () => {
  const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
  const rows = new Map([...doc.matchAll(/^\| `(STRAIT_ERR_[A-Z0-9_]+)` \| (.*) \|$/gm)].map((m) => [m[1], m[2]]));
  assert.deepEqual([...rows.keys()].sort(), Object.keys(ERROR_CODES).sort(), 'docs/errors.md and ERROR_CODES list different codes');
  for (const [code, meaning] of Object.entries(ERROR_CODES)) assert.equal(rows.get(code), meaning, `meaning of ${code} differs`);
});

it('documents every connection outcome in docs/errors.md with the same HBONE status, SOCKS5 reply, blame and hint, and nothing else', () => {
  const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## Connection outcomes'));
  assert.ok(section.startsWith('## Connection outcomes'), 'docs/errors.md has a "Connection outcomes" section');
  const rows = new Map([...section.matchAll(/^\| `([a-z0-9_]+)` \| (\d{3}|—) \| (0x[0-9a-f]{2})[^|]* \| (\w+) \| (.*) \|$/gm)]
    .map((m) => [m[1], { hboneStatus: m[2] === '—' ? undefined : Number(m[2]), socks5: Number(m[3]), blame: m[4], hint: m[5] }]));
  assert.deepEqual([...rows.keys()].sort(), Object.keys(CONNECTION_OUTCOMES).sort(), 'docs/errors.md and CONNECTION_OUTCOMES list different codes');
  for (const [code, o] of Object.entries(CONNECTION_OUTCOMES) as [string, ConnectionOutcome][]) {
    assert.deepEqual(rows.get(code), { hboneStatus: o.hboneStatus, socks5: o.socks5, blame: o.blame, hint: o.hint }, `row of ${code} differs`);
  }
});

it('maps every HBONE status of the table back to its own code, and any other status to hbone_refused', () => {
  for (const [code, o] of Object.entries(CONNECTION_OUTCOMES) as [string, ConnectionOutcome][]) {
    if (o.hboneStatus !== undefined) assert.equal(outcomeOfStatus(o.hboneStatus), code);
  }
  assert.equal(outcomeOfStatus(502), 'hbone_refused');
});
