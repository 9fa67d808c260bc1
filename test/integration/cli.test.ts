import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ISTIO_USER_FILES, ISTIO_USER_WARNINGS } from '../helpers/istio-user-config.js';
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

  it('passes a directory an Istio user brings, warning once for each object nothing enforces and each kind it ignores', async () => {
    const sub = join(dir.path, 'istio-user');
    mkdirSync(sub);
    for (const [name, text] of Object.entries(ISTIO_USER_FILES)) writeFileSync(join(sub, name), text);
    const r = await strait('validate', sub);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const lines = r.stdout.trim().split('\n');
    for (const w of ISTIO_USER_WARNINGS) {
      const mine = lines.filter((l) => l.includes(` ${w.object}: warning: `));
      assert.equal(mine.length, 1, `one warning for ${w.object}:\n${r.stdout}`);
      assert.match(mine[0]!, new RegExp(`^\\S*/istio-user/${w.file.replace('.', '\\.')} doc \\d+ ${w.object}: warning: `));
      assert.match(mine[0]!, w.says);
    }
    assert.equal(lines.at(-1), `8 object(s) valid, 0 error(s), ${ISTIO_USER_WARNINGS.length} warning(s)`);
    // --quiet leaves the warnings out but keeps the summary
    const q = await strait('validate', '--quiet', sub);
    assert.equal(q.code, 0);
    assert.equal(q.stdout.trim(), `8 object(s) valid, 0 error(s), ${ISTIO_USER_WARNINGS.length} warning(s)`);
  });

  it('says clearly when a path cannot be read', async () => {
    const r = await strait('validate', join(dir.path, 'missing.yaml'));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /missing\.yaml.*(no such file|ENOENT)/i);
  });
});

describe('strait controller', () => {
  it('--help prints every limit with its default in the units its flag takes, and its environment variable', async () => {
    const r = await strait('controller', '--help');
    assert.equal(r.code, 0, r.stderr);
    const help = r.stdout.replace(/\s+/g, ' ');
    assert.match(help, /--xds-max-message-size <bytes> bytes of one request message \(default 4MiB\) \[env STRAIT_XDS_MAX_MESSAGE_SIZE\]/);
    assert.match(help, /--xds-max-queued-bytes <bytes> .*? \(default 4MiB\)/);
    assert.match(help, /--xds-stall-timeout <duration> .*? \(default 30s\)/);
    assert.match(help, /--xds-max-initial-syncs-per-credential <n> .*? \(default 2\) \[env STRAIT_XDS_MAX_INITIAL_SYNCS_PER_CREDENTIAL\]/);
    assert.match(help, /--xds-max-connection-idle <duration> .*? \(default 10s\) \[env STRAIT_XDS_MAX_CONNECTION_IDLE\]/);
    assert.match(help, /--ca-cert-burst <n> .*? \(default 256\) \[env STRAIT_CA_CERT_BURST\]/);
    assert.match(help, /--ca-certs-per-minute <n> .*? \(default 300\) \[env STRAIT_CA_CERTS_PER_MINUTE\]/);
    assert.match(help, /--ca-max-calls-per-credential <n> .*? \(default 32\) \[env STRAIT_CA_MAX_CALLS_PER_CREDENTIAL\]/);
    assert.doesNotMatch(help, /4194304/);
  });

  it('rejects bad options at start-up, naming the fix', async () => {
    const r = await strait('controller', '--config-dir', '/nonexistent-strait', '--data-dir', '/tmp/x', '--cert-ttl', 'soon');
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim(), 'strait: [STRAIT_ERR_CONFIG] --cert-ttl: "soon" is not a duration (use forms like 100ms, 30s, 12h)');
  });
});
