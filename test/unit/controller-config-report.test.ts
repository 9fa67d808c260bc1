import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { parseManifests } from '../../src/common/model/parse.js';
import { ConfigReport, MAX_REPORT_LINES } from '../../src/controller/config-report.js';
import { ConfigStore } from '../../src/controller/store.js';
import { MeshViewSource } from '../../src/controller/view-source.js';
import { docs } from '../helpers/manifests.js';

const opts = { trustDomain: 'cluster.local', rootNamespace: 'istio-system' };

function setup(): { store: ConfigStore; report: ConfigReport; lines: Record<string, any>[] } {
  const lines: Record<string, any>[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
  const store = new ConfigStore();
  const report = new ConfigReport(store, new MeshViewSource(store, opts), opts, pino({ level: 'info' }, sink), 10);
  return { store, report, lines };
}
const vs = (name: string, host = name) => ({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace: 'shop' }, spec: { hosts: [host], http: [{ route: [{ destination: { host } }] }] } });
const load = (...o: unknown[]) => parseManifests(docs(...o), 'mesh.yaml');
const msgs = (lines: Record<string, any>[]) => lines.map((l) => String(l.msg).replace(/: warning: .*/, ': warning'));

describe('config report: logged once per object and change', () => {
  const steps: { name: string; objects: unknown[]; logged: string[] }[] = [
    { name: 'first report: every problem', objects: [vs('a'), vs('b'), { apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'default', namespace: 'shop' } }],
      logged: ['mesh.yaml doc 1 VirtualService shop/a: warning', 'mesh.yaml doc 2 VirtualService shop/b: warning', 'mesh.yaml doc 3 Sidecar shop/default: warning'] },
    { name: 'nothing changed: nothing logged', objects: [vs('a'), vs('b'), { apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'default', namespace: 'shop' } }], logged: [] },
    { name: 'an unrelated object added: nothing logged again', objects: [vs('a'), vs('b'), { apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'default', namespace: 'shop' } }, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } }], logged: [] },
    { name: 'one object changed: only its warning again', objects: [vs('a', 'a2'), vs('b'), { apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'default', namespace: 'shop' } }, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } }],
      logged: ['mesh.yaml doc 1 VirtualService shop/a: warning'] },
    { name: 'a problem gone and back: logged again', objects: [vs('a', 'a2'), vs('b')], logged: [] },
    { name: '...and back', objects: [vs('a', 'a2'), vs('b'), { apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'default', namespace: 'shop' } }], logged: ['mesh.yaml doc 3 Sidecar shop/default: warning'] },
  ];
  it('logs what is new at each step, and nothing else', () => {
    const { store, report, lines } = setup();
    for (const step of steps) {
      const before = lines.length;
      store.replaceSource('f', load(...step.objects));
      report.logNew();
      assert.deepEqual(msgs(lines.slice(before)), step.logged, step.name);
    }
    assert.ok(lines.every((l) => l.level === 40 && typeof l.code === 'string' && l.file === 'mesh.yaml'));
    assert.equal(lines.find((l) => String(l.msg).includes('VirtualService shop/b'))!.object, 'VirtualService/shop/b');
  });

  it(`logs at most ${MAX_REPORT_LINES} lines at once and counts the rest in one line`, () => {
    const { store, report, lines } = setup();
    store.replaceSource('f', load(...Array.from({ length: MAX_REPORT_LINES + 12 }, (_, i) => vs(`v${i}`))));
    report.logNew();
    assert.equal(lines.length, MAX_REPORT_LINES + 1);
    assert.equal(lines.at(-1)!.msg, '12 more configuration problems (0 errors, 12 warnings) not logged one by one: see /debug/configz on the admin address');
    // All of them are in the report itself.
    assert.equal(report.problems().length, MAX_REPORT_LINES + 12);
    report.logNew();
    assert.equal(lines.length, MAX_REPORT_LINES + 1, 'nothing logged again');
  });
});
