// The real controller on a directory an Istio user brings: what nothing enforces and the kinds Strait ignores are
// warnings in /debug/configz and in the log (once per object and change); a broken version of an object keeps the
// last good one in force, wherever the broken document now lives.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startController, type ControllerHandle } from '../helpers/controller.js';
import { eventually } from '../helpers/eventually.js';
import { ISTIO_USER_FILES, ISTIO_USER_WARNINGS } from '../helpers/istio-user-config.js';
import type { LogLine } from '../helpers/procs.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('controller: config nothing enforces, ignored kinds, last good versions', () => {
  const cfg = tempDir('ctl-report-cfg');
  const data = tempDir('ctl-report-data');
  let c: ControllerHandle;
  const configz = async () => (await c.get('/debug/configz')).body;
  /** Warning lines the controller logged about `object` ("VirtualService default/api"). */
  const logged = (object: string): LogLine[] => c.proc.lines.filter((l) => typeof l.msg === 'string' && l.msg.includes(` ${object}: warning: `));

  before(async () => {
    for (const [name, text] of Object.entries(ISTIO_USER_FILES)) writeFileSync(join(cfg.path, name), text);
    c = await startController(cfg.path, data.path, ['--push-debounce', '50ms']);
  });
  after(async () => {
    await c?.stop();
    cfg.remove();
    data.remove();
  });

  it('loads every object it reads and shows a warning for each object nothing enforces and each kind it ignores in /debug/configz', async () => {
    const cz = await configz();
    assert.deepEqual(cz.rejected, []);
    assert.equal(cz.objects.length, 8);
    for (const w of ISTIO_USER_WARNINGS) {
      const mine = cz.warnings.filter((p: { text: string }) => p.text.includes(` ${w.object}: warning: `));
      assert.equal(mine.length, 1, `one warning for ${w.object}: ${JSON.stringify(cz.warnings.map((p: { text: string }) => p.text), null, 1)}`);
      assert.equal(mine[0].file, w.file);
      assert.match(mine[0].text, w.says);
      assert.ok(['STRAIT_ERR_CONFIG_NOT_ENFORCED', 'STRAIT_ERR_MANIFEST_IGNORED'].includes(mine[0].code), mine[0].code);
    }
    assert.equal(cz.warnings.length, ISTIO_USER_WARNINGS.length);
  });

  it('logs each warning once, not again on an unrelated change, and again when its object changes', async () => {
    for (const w of ISTIO_USER_WARNINGS) {
      const line = await c.proc.waitFor((l) => typeof l.msg === 'string' && l.msg.includes(` ${w.object}: warning: `), 5000, `the warning about ${w.object}`);
      assert.equal(line.level, 'warn');
      assert.match(String(line.msg), w.says);
    }
    const changes = () => c.proc.lines.filter((l) => l.msg === 'configuration changed').length;
    // An unrelated change (a pod's address): the report is recomputed, nothing is logged again.
    const before = changes();
    writeFileSync(join(cfg.path, '00-mesh.yaml'), ISTIO_USER_FILES['00-mesh.yaml']!.replace('10.0.0.7', '10.0.0.8'));
    await eventually(() => changes() > before, 3000, 'the pod change applied');
    // The VirtualService changes: its warning is logged again (after every report for the pod change ran).
    writeFileSync(join(cfg.path, '10-routing.yaml'), ISTIO_USER_FILES['10-routing.yaml']!.replace('weight: 90', 'weight: 80').replace('weight: 10', 'weight: 20'));
    await eventually(() => logged('VirtualService default/api').length === 2, 3000, 'the changed VirtualService warned about again');
    for (const w of ISTIO_USER_WARNINGS) {
      if (w.object !== 'VirtualService default/api') assert.equal(logged(w.object).length, 1, `${w.object} logged once`);
    }
  });

  it('keeps a policy in force when it moves to another file with a mistake, and logs the rejection once', async () => {
    const moved = readFileSync(join(cfg.path, '20-policy.yaml'), 'utf8').replace('action: ALLOW', 'action: BLOCK');
    writeFileSync(join(cfg.path, '21-policy-moved.yaml'), moved);
    unlinkSync(join(cfg.path, '20-policy.yaml'));
    const cz = await eventually(async () => {
      const body = await configz();
      return body.rejected.some((p: { file: string }) => p.file === '21-policy-moved.yaml') && !body.rejected.some((p: { file: string }) => p.file === '20-policy.yaml') ? body : undefined;
    }, 3000, 'the moved policy rejected');
    const kept = cz.objects.find((o: { key: string }) => o.key === 'AuthorizationPolicy/default/orders-policy');
    assert.ok(kept, 'the last good policy is still in force');
    assert.equal(kept.object.spec.action, 'ALLOW');
    assert.equal(kept.source.file, '20-policy.yaml');
    assert.deepEqual(cz.rejected.map((p: { text: string }) => p.text), [
      '21-policy-moved.yaml doc 1 AuthorizationPolicy default/orders-policy: spec.action: "BLOCK" is not one of ALLOW, DENY, AUDIT, CUSTOM',
    ]);
    assert.ok(cz.warnings.some((w: { text: string }) => w.text === '21-policy-moved.yaml doc 1 AuthorizationPolicy default/orders-policy: warning: the last good version (loaded from 20-policy.yaml doc 1) stays in force until this document is fixed'));
    await c.proc.waitFor((l) => l.msg === cz.rejected[0].text, 3000, 'the rejection logged');
    assert.equal(c.proc.lines.filter((l) => l.msg === cz.rejected[0].text).length, 1);
  });

  it('keeps an object in force when its kind gets misspelt', async () => {
    writeFileSync(join(cfg.path, '10-routing.yaml'), ISTIO_USER_FILES['10-routing.yaml']!.replace('kind: DestinationRule', 'kind: DestinationRul'));
    const cz = await eventually(async () => {
      const body = await configz();
      return body.rejected.some((p: { file: string }) => p.file === '10-routing.yaml') ? body : undefined;
    }, 3000, 'the misspelt kind rejected');
    const kept = cz.objects.find((o: { key: string }) => o.key === 'DestinationRule/default/orders-circuit-breaker');
    assert.ok(kept, 'the DestinationRule is still in force');
    assert.equal(kept.object.spec.trafficPolicy.outlierDetection.consecutive5xxErrors, 5);
    assert.ok(cz.rejected.some((p: { text: string }) => /^10-routing\.yaml doc 2 DestinationRul default\/orders-circuit-breaker: kind: "DestinationRul" is not a networking\.istio\.io kind Strait knows \(misspelt\?\)/.test(p.text)));
    assert.equal((await c.get('/ready')).status, 200);
  });
});
