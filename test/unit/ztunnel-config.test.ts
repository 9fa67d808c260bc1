import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority } from '../../src/identity/index.js';
import { parseConfig, PORT_HBONE } from '../../src/ztunnel/config.js';

describe('ztunnel configuration', () => {
  let dir: string;
  let root: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strait-zt-config-'));
    const ca = await CertificateAuthority.loadOrCreate({ dataDir: dir });
    root = join(dir, 'root-cert.pem');
    await writeFile(root, ca.rootCertPem);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('defaults to atomic old-generation collection; flags win over STRAIT_GC', () => {
    const base = { node: 'node-a', token: 't', rootCert: root };
    const c = parseConfig({}, base);
    assert.equal(c.gc, 'atomic');
    assert.equal(c.ports.hbone, PORT_HBONE);
    assert.equal(parseConfig({ STRAIT_GC: 'incremental' }, base).gc, 'incremental');
    assert.equal(parseConfig({ STRAIT_GC: 'incremental' }, { ...base, gc: 'atomic' }).gc, 'atomic');
  });

  it('rejects an unknown --gc mode, naming the ones there are', () => {
    assert.throws(() => parseConfig({}, { node: 'node-a', token: 't', rootCert: root, gc: 'generational' }), {
      code: 'STRAIT_ERR_CONFIG',
      message: '--gc: "generational" is not one of atomic, incremental',
    });
    assert.throws(() => parseConfig({ STRAIT_GC: 'off' }, { node: 'node-a', token: 't', rootCert: root }), { message: /--gc: "off" is not one of/ });
  });
});
