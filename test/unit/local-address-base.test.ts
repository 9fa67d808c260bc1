// The local mesh's address base: which addresses move into 127.N.0.0/16 and which stay as written, and the copy of
// the manifests the controller reads.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAddressBase, relocateAddress, relocateText } from '../../src/local/address-base.js';
import { ManifestMirror } from '../../src/local/manifest-mirror.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('--address-base', () => {
  it('takes 127.N.0.0 and gives N', () => {
    assert.equal(parseAddressBase('127.0.0.0'), 0);
    assert.equal(parseAddressBase('127.200.0.0'), 200);
  });

  it('refuses anything else, saying the form and giving an example', () => {
    for (const bad of ['127.0.200.0', '10.1.0.0', '127.256.0.0', '127.1.0.1', 'localhost', '']) {
      assert.throws(() => parseAddressBase(bad), (err: Error & { code?: string }) => err.code === 'STRAIT_ERR_CONFIG' && /127\.N\.0\.0/.test(err.message) && /127\.1\.0\.0/.test(err.message), bad);
    }
  });

  it('moves a loopback address by its second octet and leaves others alone', () => {
    assert.equal(relocateAddress('127.0.10.1', 7), '127.7.10.1');
    assert.equal(relocateAddress('127.3.10.1', 7), '127.7.10.1');
    assert.equal(relocateAddress('10.0.10.1', 7), '10.0.10.1');
  });
});

describe('relocateText', () => {
  it('moves every loopback address of a manifest, comments and layout kept', () => {
    const text = [
      '# pods live on 127.0.10.0/24',
      'status:',
      '  podIP: 127.0.10.1   # client',
      '  podIPs: [{ip: "127.0.10.1"}]',
      "  hostIP: '127.0.100.2'",
      'spec: {clusterIP: 127.0.50.3}',
    ].join('\n');
    assert.equal(relocateText(text, 146), [
      '# pods live on 127.146.10.0/24',
      'status:',
      '  podIP: 127.146.10.1   # client',
      '  podIPs: [{ip: "127.146.10.1"}]',
      "  hostIP: '127.146.100.2'",
      'spec: {clusterIP: 127.146.50.3}',
    ].join('\n'));
  });

  it('moves CIDRs of /16 and longer; shorter prefixes, which span bases, stay as written', () => {
    assert.equal(relocateText('ipBlocks: ["127.0.10.0/24", "127.0.0.0/16", "127.0.0.0/8", "127.0.0.0/12"]', 9),
      'ipBlocks: ["127.9.10.0/24", "127.9.0.0/16", "127.0.0.0/8", "127.0.0.0/12"]');
  });

  it('leaves strings that only contain an address-like part alone', () => {
    const text = 'a: 127.0.0.1.5\nb: 1127.0.0.1\nc: v127.0.0.1\nd: 127.0.0.256\ne: image:127.0.0.1x';
    assert.equal(relocateText(text, 4), text);
  });

  it('keeps line numbers, so problems found in the copy point at the same lines', () => {
    const text = 'a: 127.0.0.1\n\nb:\n  - 127.0.1.1\n';
    assert.equal(relocateText(text, 250).split('\n').length, text.split('\n').length);
  });
});

describe('ManifestMirror', () => {
  const src = tempDir('mirror-src');
  const mirrors: ManifestMirror[] = [];
  after(() => {
    for (const m of mirrors) m.remove();
    src.remove();
  });

  it('copies every manifest with addresses moved, follows edits and deletions, and copies nothing else', () => {
    mkdirSync(join(src.path, 'sub'));
    writeFileSync(join(src.path, 'a.yaml'), 'podIP: 127.0.10.1\n');
    writeFileSync(join(src.path, 'sub', 'b.yml'), 'address: 127.0.100.1\n');
    writeFileSync(join(src.path, 'notes.txt'), '127.0.0.1\n');
    const m = new ManifestMirror(src.path, (t) => relocateText(t, 33));
    mirrors.push(m);
    assert.equal(m.sync(), true);
    assert.equal(readFileSync(join(m.dir, 'a.yaml'), 'utf8'), 'podIP: 127.33.10.1\n');
    assert.equal(readFileSync(join(m.dir, 'sub', 'b.yml'), 'utf8'), 'address: 127.33.100.1\n');
    assert.equal(existsSync(join(m.dir, 'notes.txt')), false);
    assert.equal(m.sync(), false, 'nothing changed, nothing written');

    writeFileSync(join(src.path, 'a.yaml'), 'podIP: 127.0.10.2\n');
    rmSync(join(src.path, 'sub', 'b.yml'));
    assert.equal(m.sync(), true);
    assert.equal(readFileSync(join(m.dir, 'a.yaml'), 'utf8'), 'podIP: 127.33.10.2\n');
    assert.equal(existsSync(join(m.dir, 'sub', 'b.yml')), false);
    assert.deepEqual(readdirSync(m.dir).filter((f) => f.includes('partial')), [], 'no half-written file left');
    m.remove();
    assert.equal(existsSync(m.dir), false);
  });

  it('copies a single manifest file', () => {
    const file = join(src.path, 'one.yaml');
    writeFileSync(file, 'podIP: 127.0.10.9\n');
    const m = new ManifestMirror(file, (t) => relocateText(t, 2));
    mirrors.push(m);
    m.sync();
    assert.deepEqual(readdirSync(m.dir), ['one.yaml']);
    assert.equal(readFileSync(join(m.dir, 'one.yaml'), 'utf8'), 'podIP: 127.2.10.9\n');
  });
});
