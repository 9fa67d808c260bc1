// The file source against a real file system and a real second process writing the files.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileSource } from '../../src/controller/sources/file.js';
import { ConfigStore, type StoreChange } from '../../src/controller/store.js';
import { eventually } from '../helpers/eventually.js';
import { tempDir } from '../helpers/temp-dir.js';

const POD = 'apiVersion: v1\nkind: Pod\nmetadata: {name: web-1, namespace: shop}\nspec: {nodeName: node-a, serviceAccountName: web, containers: [{name: app}]}\nstatus: {podIP: 10.0.0.1}\n';

/** Rewrites `file` in place (truncate, then write) `times` times from another process; the objects stay the same. */
async function rewriteInPlace(file: string, times: number): Promise<void> {
  const script = `
    const { writeFileSync } = require('node:fs');
    const pod = ${JSON.stringify(POD)};
    (async () => {
      for (let i = 0; i < ${times}; i++) {
        writeFileSync(${JSON.stringify(file)}, pod + '# ' + 'x'.repeat(i % 2 ? 3000 : 10) + '\\n');
        if (i % 10 === 0) await new Promise((r) => setTimeout(r, 2));
      }
    })();`;
  const child = spawn(process.execPath, ['-e', script], { stdio: 'inherit' });
  const [code] = await once(child, 'exit');
  assert.equal(code, 0);
}

describe('file source', () => {
  const dir = tempDir('file-source');
  let source: FileSource | undefined;
  after(async () => {
    await source?.close();
    dir.remove();
  });

  it('never drops an object while another process rewrites its file in place', async () => {
    const file = join(dir.path, 'mesh.yaml');
    writeFileSync(file, POD);
    const store = new ConfigStore();
    const changes: StoreChange[] = [];
    // Polling every 5 ms with no debounce reads the file as often as possible: mid-write, it is empty or cut short.
    source = new FileSource(dir.path, undefined, { pollMs: 5, debounceMs: 0 });
    await source.start((events, at, opts) => void store.apply(source!.name, events, at, opts));
    store.on('change', (c) => changes.push(c));
    let missing = 0;
    const watch = setInterval(() => { if (!store.get('Pod/shop/web-1')) missing++; }, 1);
    await rewriteInPlace(file, 1000);
    clearInterval(watch);
    assert.deepEqual(changes.map((c) => [c.added, c.updated, c.removed]), [], 'the pod never left the store');
    assert.equal(missing, 0);
    assert.deepEqual(store.problems(), []);

    // A file emptied on purpose still removes its objects, once it stays empty.
    writeFileSync(file, '');
    await eventually(() => store.get('Pod/shop/web-1') === undefined, 3000, 'the pod removed with its emptied file');
    assert.deepEqual(changes.map((c) => c.removed), [['Pod/shop/web-1']]);
    await source.close();
    source = undefined;
  });
});
