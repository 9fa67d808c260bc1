/**
 * `strait lab` end to end (issue 11): a node's capture rules. They are observable (/config_dump, metrics, log lines);
 * a node's ztunnel killed with SIGKILL (no teardown) and restarted by the lab's supervisor leaves the node's nat table
 * exactly right: each enrolled pod's three rules once, none for a pod outside the mesh, every jump into Strait's chains
 * (and the lab's service chain) once; rules tampered with while it was down (a stale pod's rules added, an enrolled
 * pod's removed) are reconciled by the new process; traffic flows again. Pods deleted from and added to the manifest
 * lose and get their rules and namespaces live.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { namespace, service } from '../helpers/manifests.js';
import { demoPod } from '../helpers/mesh.js';
import { listNamespaces, requireLab } from '../helpers/netns.js';
import { LabCli, until } from '../helpers/lab-cli.js';

const SCRIPTS = join(fileURLToPath(new URL('../../../', import.meta.url)), 'scripts/iptables');
const ENROLLED_A = { 'app/a-1': '198.18.10.1', 'app/a-2': '198.18.10.2' };
const OUTSIDE_A = '198.18.10.3';
const VIP = '198.18.20.1';

const tag = (ip: string) => new RegExp(`strait-pod=${ip.replace(/\./g, '\\.')}(?![0-9])`);
/** The rule lines of an iptables-save dump: no comments, counters or table markers. */
const ruleLines = (dump: string): string[] => dump.split('\n').filter((l) => l.startsWith('-A ') || (l.startsWith(':') && !l.startsWith(':PREROUTING') && !l.startsWith(':OUTPUT') && !l.startsWith(':INPUT') && !l.startsWith(':POSTROUTING')))
  .map((l) => l.replace(/ \[\d+:\d+\]$/, ''));

/** Asserts node-a's nat table holds exactly the right Strait rules; returns its rule lines, sorted. */
function assertNodeRules(dump: string): string[] {
  const lines = ruleLines(dump);
  const dupes = lines.filter((l, i) => lines.indexOf(l) !== i);
  assert.deepEqual(dupes, [], `duplicate rules in node-a's nat table:\n${dump}`);
  for (const [pod, ip] of Object.entries(ENROLLED_A)) {
    assert.equal(lines.filter((l) => tag(ip).test(l)).length, 3, `${pod} (${ip}) has its 3 rules:\n${dump}`);
  }
  assert.equal(lines.filter((l) => tag(OUTSIDE_A).test(l)).length, 0, `no rules for out/o-1 (${OUTSIDE_A}), outside the mesh:\n${dump}`);
  assert.equal(lines.filter((l) => /strait-pod=/.test(l)).length, 3 * Object.keys(ENROLLED_A).length, `only node-a's enrolled pods have rules:\n${dump}`);
  for (const [from, to] of [['PREROUTING', 'STRAIT_PREROUTING'], ['OUTPUT', 'STRAIT_OUTPUT'], ['PREROUTING', 'STRAIT_LAB_SERVICES'], ['OUTPUT', 'STRAIT_LAB_SERVICES']]) {
    assert.equal(lines.filter((l) => l === `-A ${from} -j ${to}`).length, 1, `one jump ${from} -> ${to}:\n${dump}`);
  }
  // Strait's jumps come before the lab's service DNAT in each built-in chain (mesh pods are captured before it).
  for (const chain of ['PREROUTING', 'OUTPUT']) {
    const order = lines.filter((l) => l.startsWith(`-A ${chain} `));
    assert.ok(order.indexOf(`-A ${chain} -j STRAIT_${chain}`) < order.indexOf(`-A ${chain} -j STRAIT_LAB_SERVICES`), `Strait's jump first in ${chain}: ${order.join(' / ')}`);
  }
  return [...lines].sort();
}

test('strait lab: a node\'s capture rules stay exactly right across a ztunnel SIGKILL and restart and as pods come and go, and traffic flows', async (t) => {
  if (!requireLab(t)) return;
  const lab = await LabCli.start({
    files: {
      '00-namespaces.yaml': [namespace('app', { 'istio.io/dataplane-mode': 'ambient' }), namespace('out')],
      '10-pods.yaml': [
        demoPod('app', 'a-1', 'node-a', ENROLLED_A['app/a-1'], 'a'),
        demoPod('app', 'a-2', 'node-a', ENROLLED_A['app/a-2'], 'a'),
        demoPod('out', 'o-1', 'node-a', OUTSIDE_A, 'o'),
        demoPod('app', 'b-1', 'node-b', '198.18.10.11', 'b'),
        service('app', 'b', { ip: VIP, selector: { app: 'b-1' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
      ],
    },
  });
  const captured = async () => {
    const pods = await lab.capturePods('node-a');
    return Object.keys(ENROLLED_A).every((p) => pods.get(p)?.state === 'present') && !pods.has('out/o-1');
  };
  /** SIGKILLs node-a's ztunnel and waits for the supervisor's new one to run with every pod's rules in place. */
  const killAndWait = async (): Promise<number> => {
    const before = lab.refresh().nodes['node-a']!.ztunnel;
    assert.equal(before.status, 'running');
    process.kill(before.pid!, 'SIGKILL');
    const after = await until(() => {
      const z = lab.refresh().nodes['node-a']!.ztunnel;
      return z.status === 'running' && z.pid !== before.pid && z.pid !== null ? z : undefined;
    }, 'the lab to restart node-a\'s ztunnel', 20_000);
    assert.equal(after.restarts, before.restarts + 1, 'the state file counts the restart');
    await until(captured, 'the new ztunnel to hold node-a\'s enrolled pods as present', 20_000);
    return after.pid!;
  };
  const traffic = async (pid: number) => {
    const r = await lab.curl('app/a-1', `http://${VIP}/`);
    assert.equal(r.exit, 0, r.stderr);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body?.pod, 'b-1');
    const line = await lab.waitForLog((l) => l.component === 'ztunnel' && l.node === 'node-a' && l.pid === pid && l.msg === 'connection complete'
      && l.direction === 'outbound' && String(l['src.addr']).startsWith(ENROLLED_A['app/a-1']), 'the new ztunnel\'s outbound access-log line');
    assert.equal(line['src.identity'], 'spiffe://cluster.local/ns/app/sa/a');
  };
  try {
    await until(captured, 'node-a\'s enrolled pods captured', 20_000);
    const before = assertNodeRules(await lab.natRules('node-a'));

    await t.test('the capture is observable: /config_dump capture section, strait_capture_* metrics, `capture rules added` lines; admin on loopback only', async () => {
      const dump = (await lab.configDump('node-a')).capture;
      assert.equal(dump?.enabled, true, JSON.stringify(dump));
      assert.equal(dump.mark, '0x539');
      assert.ok(typeof dump.iptables === 'string' && dump.iptables.length > 0, `iptables: ${dump.iptables}`);
      assert.match(String(dump.scripts), /scripts\/iptables\/?$/);
      assert.ok(!Number.isNaN(Date.parse(dump.setupAt)), `setupAt: ${dump.setupAt}`);
      const pods = (dump.pods as { pod: string; address: string; state: string; attempts: number }[]).map((p) => `${p.pod} ${p.address} ${p.state}`).sort();
      assert.deepEqual(pods, Object.entries(ENROLLED_A).map(([pod, ip]) => `${pod} ${ip} present`).sort());

      const metrics = (await lab.inNode('node-a', ['curl', '-sS', '--noproxy', '*', '--max-time', '3', 'http://127.0.0.1:15020/metrics'])).stdout;
      const value = (series: string): number => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
      assert.equal(value('strait_capture_pods{state="present"}'), 2, metrics.split('\n').filter((l) => l.startsWith('strait_capture')).join('\n'));
      assert.ok(value('strait_capture_operations_total{operation="setup",result="ok"}') >= 1, 'setup counted');
      assert.ok(value('strait_capture_operations_total{operation="add",result="ok"}') >= 2, 'one add per enrolled pod counted');

      for (const [pod, address] of Object.entries(ENROLLED_A)) {
        await lab.waitForLog((l) => l.component === 'ztunnel' && l.node === 'node-a' && l.msg === 'capture rules added' && l.pod === pod && l.address === address, `\`capture rules added\` for ${pod}`);
      }

      // Listening on 0.0.0.0, the traffic, metrics and readiness ports answer on the node's address; admin does not.
      const nodeA = lab.node('node-a').address;
      const fromB = (port: number, path: string) => lab.inNode('node-b', ['curl', '-sS', '--noproxy', '*', '--max-time', '3', '-o', '/dev/null', '-w', '%{http_code}', `http://${nodeA}:${port}${path}`]);
      assert.equal((await fromB(15021, '/healthz/ready')).stdout, '200', 'readiness answers on the node address');
      assert.equal((await fromB(15020, '/metrics')).stdout, '200', 'metrics answer on the node address');
      const admin = await fromB(15000, '/config_dump');
      assert.equal(admin.status, 7, `admin (15000) must not answer on the node address (curl exit ${admin.status}, HTTP ${admin.stdout})`);
    });

    await t.test('after SIGKILL and restart: each enrolled pod\'s 3 rules once, none for the pod outside the mesh, each jump once; traffic flows', async () => {
      const pid = await killAndWait();
      const after = assertNodeRules(await lab.natRules('node-a'));
      assert.deepEqual(after, before, 'the same rules as before the kill');
      await traffic(pid);
    });

    await t.test('rules changed while the ztunnel was down are reconciled: a stale pod\'s rules removed, a missing pod\'s added', async () => {
      const ns = lab.node('node-a').netns;
      const sh = async (script: string, ip: string) => {
        const r = await lab.inNode('node-a', ['sh', join(SCRIPTS, script), ip]);
        assert.equal(r.status, 0, `${script} ${ip} in ${ns}: ${r.stderr}`);
      };
      await sh('pod-add.sh', OUTSIDE_A);
      await sh('pod-del.sh', ENROLLED_A['app/a-2']);
      const tampered = await lab.natRules('node-a');
      assert.match(tampered, tag(OUTSIDE_A));
      assert.doesNotMatch(tampered, tag(ENROLLED_A['app/a-2']));

      const pid = await killAndWait();
      // The new process reports its pods present once reconciled; the table must say the same.
      const after = await until(async () => {
        try { return assertNodeRules(await lab.natRules('node-a')); } catch { return undefined; }
      }, 'node-a\'s rules reconciled', 10_000).catch(async () => assertNodeRules(await lab.natRules('node-a')));
      assert.deepEqual(after, before);
      await traffic(pid);
    });

    await t.test('a pod deleted from the manifest loses its rules and its namespace; a pod added gets both, and its calls go in mTLS', async () => {
      const gone = lab.pod('app/a-2');
      lab.write('10-pods.yaml', [
        demoPod('app', 'a-1', 'node-a', ENROLLED_A['app/a-1'], 'a'),
        demoPod('app', 'a-3', 'node-a', '198.18.10.4', 'a3'),
        demoPod('out', 'o-1', 'node-a', OUTSIDE_A, 'o'),
        demoPod('app', 'b-1', 'node-b', '198.18.10.11', 'b'),
        service('app', 'b', { ip: VIP, selector: { app: 'b-1' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
      ]);
      await until(async () => {
        const pods = await lab.capturePods('node-a');
        return pods.get('app/a-3')?.state === 'present' && !pods.has('app/a-2') && lab.refresh().pods['app/a-3']?.process?.status === 'running';
      }, 'node-a to capture app/a-3 and drop app/a-2', 20_000);
      const rules = ruleLines(await lab.natRules('node-a'));
      assert.equal(rules.filter((l) => tag(ENROLLED_A['app/a-2']).test(l)).length, 0, 'the deleted pod\'s rules are gone');
      assert.equal(rules.filter((l) => tag('198.18.10.4').test(l)).length, 3, 'the new pod has its 3 rules');
      await until(() => !lab.refresh().pods['app/a-2'] && !listNamespaces(lab.state.prefix).includes(gone.netns), 'the deleted pod\'s namespace to be removed', 10_000);
      if (gone.process?.pid) assert.throws(() => process.kill(gone.process!.pid!, 0), 'the deleted pod\'s process is gone');
      const r = await lab.curl('app/a-3', `http://${VIP}/`);
      assert.equal(r.status, 200, `${r.exit} ${r.stderr} ${r.text}`);
      await lab.waitForLog((l) => l.component === 'ztunnel' && l.node === 'node-b' && l.msg === 'connection complete' && l.direction === 'inbound'
        && l['src.identity'] === 'spiffe://cluster.local/ns/app/sa/a3', 'node-b\'s inbound line naming a-3\'s identity');
    });
  } finally {
    await lab.down();
  }
});
