import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { asList, formatJson, formatTable, formatYaml, humanDuration } from '../../src/cli/kube/output.js';
import { buildStatus, formatStatusTable, typeCell, type ControllerResult } from '../../src/cli/kube/status-view.js';
import { syncState, type ControllerInfo, type ProxyStatusEntry } from '../../src/common/xds/proxy-status.js';

describe('kubectl-style output', () => {
  it('aligns table columns three spaces apart with upper-case headers and no trailing spaces', () => {
    const out = formatTable(['NAME', 'CLASS', 'PROGRAMMED'], [['waypoint', 'istio-waypoint', 'True'], ['a-much-longer-name', 'x', '']]);
    assert.equal(out, [
      'NAME                 CLASS            PROGRAMMED',
      'waypoint             istio-waypoint   True',
      'a-much-longer-name   x',
      '',
    ].join('\n'));
  });

  it('prints ages as kubectl does', () => {
    const s = 1000, m = 60 * s, h = 60 * m, d = 24 * h;
    const cases: [number, string][] = [
      [-500, '0s'], [-5 * s, '<invalid>'], [0, '0s'], [59 * s, '59s'], [119 * s, '119s'], [2 * m, '2m'], [3 * m + 12 * s, '3m12s'],
      [10 * m, '10m'], [179 * m, '179m'], [3 * h, '3h'], [5 * h + 3 * m, '5h3m'], [30 * h, '30h'], [2 * d, '2d'], [3 * d + 5 * h, '3d5h'],
      [45 * d, '45d'], [729 * d, '729d'], [2 * 365 * d + 30 * d, '2y30d'], [9 * 365 * d, '9y'],
    ];
    for (const [ms, want] of cases) assert.equal(humanDuration(ms), want, `${ms} ms`);
  });

  it('prints JSON with four-space indents and YAML that parses back to the same value', () => {
    const v = asList([{ kind: 'Gateway', metadata: { name: 'w' } }]);
    assert.equal(formatJson(v).split('\n')[1], '    "apiVersion": "v1",');
    assert.deepEqual(JSON.parse(formatJson(v)), v);
    assert.deepEqual(parse(formatYaml(v)), v);
  });
});

describe('proxy sync state', () => {
  const t = (o: Partial<Parameters<typeof syncState>[0]>) => syncState({ versionSent: '3', unanswered: 0, coalesced: false, lastAnswer: 'ACK', ...o });
  it('is NOT SENT before anything was sent, STALE while a response is unanswered or pushes are held back', () => {
    assert.equal(t({ versionSent: '', lastAnswer: undefined }), 'NOT SENT');
    assert.equal(t({ unanswered: 1 }), 'STALE');
    assert.equal(t({ versionSent: '', unanswered: 1, lastAnswer: undefined }), 'STALE');
    assert.equal(t({ coalesced: true }), 'STALE');
  });
  it('is NACKED when the latest answer was a NACK, SYNCED when it was an ACK', () => {
    assert.equal(t({ lastAnswer: 'NACK' }), 'NACKED');
    assert.equal(t({}), 'SYNCED');
  });
});

describe('strait status output', () => {
  const now = Date.parse('2025-01-01T00:10:00Z');
  const info = (o: Partial<ControllerInfo> = {}): ControllerInfo => ({
    version: '0.1.0', identity: 'ctl-0', pid: 1, startedAt: '2025-01-01T00:00:00Z', uptimeSeconds: 600,
    leader: { election: 'none' }, generation: 7, sources: ['file'], ...o,
  });
  const types = (status: 'SYNCED' | 'STALE' | 'NACKED' | 'NOT SENT', acked = '7', sent = '7') => ({ status, versionSent: sent, versionAcked: acked });
  const ztunnel = (node: string, extra: Partial<ProxyStatusEntry> = {}): ProxyStatusEntry => ({
    proxy: { id: `ztunnel~${node}~x`, kind: 'ztunnel', nodeName: node }, connectedAt: '2025-01-01T00:09:00Z', peer: '127.0.0.1:1',
    types: { Workload: types('SYNCED'), Service: types('SYNCED'), Authorization: types('SYNCED') }, ...extra,
  });
  const waypoint: ProxyStatusEntry = {
    proxy: { id: 'waypoint~shop/wp~x', kind: 'waypoint', nodeName: '', namespace: 'shop', name: 'wp' }, connectedAt: '2025-01-01T00:05:00Z', peer: '127.0.0.1:2',
    types: {
      Workload: types('SYNCED'), Service: types('STALE', '6', '7'), Route: types('NOT SENT', '', ''),
      Policy: { ...types('NACKED', '5', '6'), lastNack: { nonce: '4', message: 'policy p: unknown field', at: '2025-01-01T00:09:30Z' } },
    },
  };

  it('shows each proxy with every type\'s state and the version it runs, ztunnels first, then the NACK with its message', () => {
    const out = formatStatusTable(buildStatus([{ name: 'controller', address: 'http://127.0.0.1:15014', info: info(), proxies: [waypoint, ztunnel('node-b'), ztunnel('node-a')] }]), now);
    const lines = out.split('\n');
    assert.match(lines[0]!, /^CONTROLLER\s+VERSION\s+LEADER\s+UPTIME\s+GENERATION\s+PROXIES\s+ADDRESS$/);
    assert.match(lines[1]!, /^controller\s+0\.1\.0\s+-\s+10m\s+7\s+3\s+http:\/\/127\.0\.0\.1:15014$/);
    assert.match(lines[3]!, /^NAME\s+KIND\s+WORKLOAD\s+SERVICE\s+AUTHORIZATION\s+ROUTE\s+POLICY\s+CONNECTED$/);
    assert.match(lines[4]!, /^node-a\s+ztunnel\s+SYNCED \(7\)\s+SYNCED \(7\)\s+SYNCED \(7\)\s+-\s+-\s+60s$/);
    assert.match(lines[5]!, /^node-b\s+ztunnel/);
    assert.match(lines[6]!, /^shop\/wp\s+waypoint\s+SYNCED \(7\)\s+STALE \(6, sent 7\)\s+-\s+NOT SENT\s+NACKED \(5\)\s+5m$/);
    assert.match(out, /\nNACKs .*\n  waypoint shop\/wp Policy: policy p: unknown field \(30s ago, nonce 4\)\n/);
  });

  it('lists proxies the platform runs that no controller has, unless a controller could not be asked', () => {
    const expected = [{ kind: 'ztunnel' as const, name: 'node-a', state: 'running' }, { kind: 'ztunnel' as const, name: 'node-c', state: 'restarting' }];
    const ok: ControllerResult = { name: 'controller', address: 'a', info: info(), proxies: [ztunnel('node-a')] };
    const s = buildStatus([ok], expected);
    assert.deepEqual(s.notConnected, [{ kind: 'ztunnel', name: 'node-c', state: 'restarting' }]);
    assert.match(formatStatusTable(s, now), /Not connected .*\n  ztunnel node-c \(restarting\)\n/);
    const failed = buildStatus([ok, { name: 'ctl-1', address: 'b', error: 'nothing listens at b' }], expected);
    assert.deepEqual(failed.notConnected, []);
    assert.match(formatStatusTable(failed, now), /Controller ctl-1 could not be asked: nothing listens at b/);
  });

  it('with several controllers, marks the lease holder and which controller serves each proxy', () => {
    const s = buildStatus([
      { name: 'ctl-0', address: 'a', info: info({ leader: { election: 'lease', leader: true, holder: 'ctl-0' } }), proxies: [ztunnel('node-a')] },
      { name: 'ctl-1', address: 'b', info: info({ identity: 'ctl-1', leader: { election: 'lease', leader: false, holder: 'ctl-0' } }), proxies: [ztunnel('node-b')] },
    ]);
    const out = formatStatusTable(s, now);
    assert.match(out, /\nctl-0\s+0\.1\.0\s+yes\s/);
    assert.match(out, /\nctl-1\s+0\.1\.0\s+no\s/);
    assert.match(out, /\nnode-a\s+ztunnel\s.*\sctl-0\s+60s\n/);
    assert.match(out, /\nnode-b\s+ztunnel\s.*\sctl-1\s+60s\n/);
  });

  it('says so when no proxy is connected, and shows a type it does not know yet after the known ones', () => {
    assert.match(formatStatusTable(buildStatus([{ name: 'c', address: 'a', info: info(), proxies: [] }]), now), /\nNo proxies are connected\.\n/);
    const odd = ztunnel('n', { types: { Zeta: types('SYNCED'), Workload: types('SYNCED') } });
    assert.match(formatStatusTable(buildStatus([{ name: 'c', address: 'a', info: info(), proxies: [odd] }]), now), /NAME\s+KIND\s+WORKLOAD\s+ZETA\s+CONNECTED/);
    assert.equal(typeCell(undefined), '-');
    assert.equal(typeCell(types('STALE', '', '1')), 'STALE');
  });
});
