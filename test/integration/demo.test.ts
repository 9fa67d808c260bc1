/**
 * `strait demo` as `npm start` runs it — the local mesh of examples/demo (controller, two ztunnels, the store's
 * waypoint, ten demo apps), its traffic and its live summary — checked against what the real processes did: the L4
 * routes as before, and through the waypoint the canary's v1/v2 split, the flaky payments' 503s retried into 200s, the
 * DELETE denied 403 by the waypoint's AuthorizationPolicy and the failing inventory endpoint ejected by outlier
 * detection; the waypoint's own access log and log lines say the same. Then what each component costs.
 * Addresses: 127.147.0.0/16 (`--address-base`).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from '../helpers/eventually.js';
import { alive, killAll, pidsMentioning, type MeshStateFile } from '../helpers/mesh.js';
import { StraitProcess } from '../helpers/procs.js';
import { tempDir } from '../helpers/temp-dir.js';

const CLIENT_ID = 'spiffe://cluster.local/ns/shop/sa/client';

type DemoState = MeshStateFile & { waypoints: Record<string, { pid: number }> };

interface AccessLine { msg?: string; access?: boolean; 'dst.service'?: string; 'dst.workload'?: string; method?: string; status?: number; attempts?: number; policy?: string }

describe('strait demo', () => {
  const work = tempDir('demo-run');
  after(() => {
    killAll(pidsMentioning('127.147.'));
    work.remove();
  });

  it('shows the L4 routes, the L7 routes through the waypoint (split, retries, 403, ejection) and what each component costs', async () => {
    const stateFile = join(work.path, 'state.json');
    const logs = join(work.path, 'logs');
    const p = StraitProcess.start(['demo', '--duration', '20s', '--rate', '5', '--address-base', '127.147.0.0', '--state-file', stateFile, '--log-dir', logs]);
    const state = await eventually(() => (existsSync(stateFile) ? JSON.parse(readFileSync(stateFile, 'utf8')) as DemoState : undefined), 60_000, 'state file');
    const code = await p.exited;
    assert.equal(code, 0, p.stderr.join('\n'));
    const out = p.lines.map((l) => String(l.msg));
    const from = out.findIndex((l) => / · final$/.test(l));
    assert.ok(from > 0, 'a final summary');
    const final = out.slice(from, out.indexOf('', from));
    const text = final.join('\n');
    const row = (start: string) => final.find((l) => l.startsWith(start)) ?? '';

    // L4: as the ztunnels' policies say.
    assert.match(row('✓ client → web.shop '), new RegExp(`web v1 \\d+ +${CLIENT_ID}$`));
    assert.match(row('✓ client → orders.backend '), /^✓ client → orders\.backend +0 +\d+ +0 .*refused by policy \(SOCKS5 0x02\)$/);

    // L7 rows are checked by what the client got, status by status (failed×N: no HTTP answer within 5 s).
    const l7 = (start: string) => final.find((l) => l.slice(2).startsWith(start)) ?? '';
    const statuses = (line: string) => Object.fromEntries([...line.matchAll(/\b(\d{3}|failed)×(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
    assert.match(final.find((l) => l.startsWith('L7 · waypoint')) ?? '', /^L7 · waypoint store\/waypoint +answers +retried +rate +answered by$/);

    // The canary: without the header v1 and v2 share the answers 90 / 10; with x-canary: true, v2 alone.
    const split = / api v1 (\d+) \(\d+%\) \/ v2 (\d+) \(\d+%\)$/.exec(l7('client → api.store  '));
    assert.ok(split, `split row: ${l7('client → api.store  ')}\n${text}`);
    const [v1, v2] = split.slice(1).map(Number) as [number, number];
    assert.deepEqual(Object.keys(statuses(l7('client → api.store  '))).filter((k) => k !== '200'), [], 'only 200s, every request answered');
    assert.equal(v1 + v2, statuses(l7('client → api.store  '))['200']);
    assert.ok(v1 + v2 >= 50 && v2 > 0 && v2 < 0.3 * (v1 + v2), `v2 got ${v2} of ${v1 + v2} (10 % expected)\n${text}`);
    assert.match(l7('client → api.store x-canary: true'), / 0 +\d+\.\d\/s +api v2 \d+$/, 'v2 alone, never retried');

    // The DELETE: 403 from the waypoint's AuthorizationPolicy, never reaching a pod (no try: —).
    assert.match(l7('client → api.store DELETE /items/1'), /^. client → api\.store DELETE \/items\/1 +403×\d+ +— +\d+\.\d\/s +HTTP 403 RBAC: access denied$/);
    assert.match(row('✓ client → api.store DELETE'), /403/, 'as the manifests say');

    // payments fails 3 tries in 10: the waypoint retries them, and the client gets 200s, never a 503.
    const pay = l7('client → payments.store');
    const retried = / (\d+) → 200 +\d+\.\d\/s +payments v1 (\d+)$/.exec(pay);
    assert.ok(retried, `payments row: ${pay}\n${text}`);
    assert.deepEqual(Object.keys(statuses(pay)).filter((k) => k !== '200'), [], `no 503 (and no request left unanswered) reached the client: ${pay}`);
    assert.ok(Number(retried[1]) >= 5 && Number(retried[1]) < Number(retried[2]), `${retried[1]} of ${retried[2]} answers retried`);

    // inventory-2 fails its first 20 s: a few 503s reach the client, then outlier detection ejects it.
    // (The pods split the 200s between them when both gave some; in its first 20 s inventory-2 gives none.)
    const inv = l7('client → inventory.store');
    assert.ok(statuses(inv)['200']! > 0 && statuses(inv)['503']! > 0, inv);
    assert.match(inv, / (inventory v1 \d+|inventory-1 \d+ \(\d+%\) \/ inventory-2 \d+ \(\d+%\))$/);
    const ejections = /^ {4}⏏ outlier detection: .* · ejections so far: inventory-2 (\d+)×$/.exec(final.find((l) => l.includes('⏏')) ?? '');
    assert.ok(ejections, `outlier line:\n${text}`);

    // What the waypoint itself logged agrees.
    const waypointLog = readFileSync(join(logs, 'waypoint_store_waypoint.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AccessLine);
    const ejectedLines = waypointLog.filter((l) => l.msg === 'endpoint ejected (outlier detection)');
    assert.equal(ejectedLines.length, Number(ejections[1]), 'one log line per ejection');
    const access = waypointLog.filter((l) => l.access && l.msg === 'request complete');
    const retriedOk = access.filter((l) => l['dst.service']?.startsWith('payments.store.') && l.status === 200 && (l.attempts ?? 0) > 1).length;
    assert.ok(retriedOk >= Number(retried[1]), `the access log shows ${retriedOk} payments requests retried into 200s, the summary ${retried[1]}`);
    const denied = access.filter((l) => l.method === 'DELETE' && l.status === 403);
    assert.ok(denied.length > 0 && denied.every((l) => l.attempts === 0 && /no-delete-from-client/.test(l.policy ?? '')), JSON.stringify(denied[0]));

    // What each component costs: the controller, each ztunnel, the waypoint, the demo apps together.
    assert.match(text, /^component\s+pid\s+cpu\s+memory$/m);
    const controller = /^controller\s+(\d+)\s+(\d+\.\d)%\s+(\d+) MiB$/.exec(row('controller '));
    assert.ok(controller, `controller row: ${row('controller ')}`);
    assert.equal(Number(controller[1]), state.controller.pid, 'the controller\'s own pid');
    assert.ok(Number(controller[3]) >= 20 && Number(controller[3]) < 1000, `controller memory ${controller[3]} MiB`);
    for (const n of ['node-a', 'node-b']) {
      const z = new RegExp(`^ztunnel ${n}\\s+(\\d+)\\s+\\d+\\.\\d%\\s+\\d+ MiB$`).exec(row(`ztunnel ${n} `));
      assert.ok(z, `ztunnel ${n} row: ${row(`ztunnel ${n} `)}`);
      assert.equal(Number(z[1]), state.nodes[n].pid);
    }
    const w = /^waypoint store\/waypoint\s+(\d+)\s+\d+\.\d%\s+\d+ MiB$/.exec(row('waypoint store/waypoint '));
    assert.ok(w, `waypoint row: ${row('waypoint store/waypoint ')}`);
    assert.equal(Number(w[1]), state.waypoints['store/waypoint']!.pid);
    assert.match(row('10 demo apps'), /^10 demo apps\s+\d+\.\d%\s+\d+ MiB$/);
    for (const l of final) assert.ok([...l].length <= 120, `over 120 columns: ${l}`);
    assert.equal(alive(state.controller.pid), false, 'stopped at the end');
    assert.equal(alive(state.waypoints['store/waypoint']!.pid), false, 'the waypoint too');
  });
});
