import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { docs, namespace } from '../helpers/manifests.js';
import { STRAIT_BIN, run } from '../helpers/procs.js';
import { tempDir } from '../helpers/temp-dir.js';

const strait = (...args: string[]) => run(process.execPath, [STRAIT_BIN, ...args]);

describe('strait validate', () => {
  const dir = tempDir('validate');
  after(() => dir.remove());

  it('exits 0 on valid manifests and prints the summary', async () => {
    writeFileSync(join(dir.path, 'ok.yaml'), docs(namespace('shop', { 'istio.io/dataplane-mode': 'ambient' })));
    const r = await strait('validate', join(dir.path, 'ok.yaml'));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '1 object(s) valid, 0 error(s), 0 warning(s)');
  });

  it('prints every problem with file, document, object, field and reason, and exits 1 on an error', async () => {
    const sub = join(dir.path, 'bad');
    mkdirSync(sub);
    writeFileSync(join(sub, 'policies.yaml'), [
      'apiVersion: v1\nkind: Namespace\nmetadata: {name: foo}',
      'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ok, namespace: foo}\nspec: {action: ALLOW, rules: [{}]}',
      'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-get, namespace: foo}\nspec:\n  action: BLOCK',
      'apiVersion: v1\nkind: Namespace\nmetadata: {name: bar}\nspec: {colour: blue}',
    ].join('\n---\n') + '\n');
    const r = await strait('validate', sub);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^\S*\/bad\/policies\.yaml doc 3 AuthorizationPolicy foo\/deny-get: spec\.action: "BLOCK" is not one of ALLOW, DENY, AUDIT, CUSTOM$/m);
    assert.match(r.stdout, /^\S*\/bad\/policies\.yaml doc 4 Namespace bar: warning: spec\.colour: /m);
    assert.match(r.stdout, /^3 object\(s\) valid, 1 error\(s\), 1 warning\(s\)$/m);
  });

  it('says clearly when a path cannot be read', async () => {
    const r = await strait('validate', join(dir.path, 'missing.yaml'));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /missing\.yaml.*(no such file|ENOENT)/i);
  });
});

describe('strait controller', () => {
  it('rejects bad options at start-up, naming the fix', async () => {
    const r = await strait('controller', '--config-dir', '/nonexistent-strait', '--data-dir', '/tmp/x', '--cert-ttl', 'soon');
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim(), 'strait: [STRAIT_ERR_CONFIG] --cert-ttl: "soon" is not a duration (use forms like 100ms, 30s, 12h)');
  });
});
