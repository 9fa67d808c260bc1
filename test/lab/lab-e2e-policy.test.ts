/**
 * `strait lab` end to end (issue 11): L4 policy under real capture, seen by unmodified curl in pods. PeerAuthentication
 * STRICT refuses a pod outside the mesh (curl sees the connection refused, reset or closed empty: never a hang, never
 * an answer), PERMISSIVE lets it in; an L4 DENY AuthorizationPolicy blocks an enrolled pod's calls, and removing it
 * restores them. One lab: namespace secure (ambient: server on node-b, caller on node-a), namespace outside (not in the
 * mesh: stranger on node-a).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { namespace, service } from '../helpers/manifests.js';
import { demoPod } from '../helpers/mesh.js';
import { requireLab } from '../helpers/netns.js';
import { LabCli, REFUSED_OR_RESET, until, type CurlResult } from '../helpers/lab-cli.js';
import type { LogLine } from '../helpers/procs.js';

const SERVER = '198.18.10.2';
const VIP = '198.18.20.1';
const URL = `http://${VIP}/`;
/** A mesh pod on the stranger's own node (node-a), behind its own VIP. */
const NEAR = { pod: '198.18.10.4', vip: '198.18.20.2' };

const peerAuthn = (mode: string) => [{
  apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'secure' }, spec: { mtls: { mode } },
}];
const denyCaller = [{
  apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-caller', namespace: 'secure' },
  spec: { selector: { matchLabels: { app: 'server' } }, action: 'DENY', rules: [{ from: [{ source: { principals: ['cluster.local/ns/secure/sa/caller'] } }] }] },
}];

function assertAnswered(r: CurlResult, who: string, pod = 'server'): void {
  assert.equal(r.exit, 0, `${who}: curl exit ${r.exit}: ${r.stderr}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body?.pod, pod, r.text);
}

function assertRefused(t: { diagnostic(m: string): void }, r: CurlResult, who: string): void {
  t.diagnostic(`${who}: curl exit ${r.exit} (${r.stderr.trim()})`);
  assert.ok(r.exit !== null && REFUSED_OR_RESET.has(r.exit),
    `${who}: curl must see the connection refused (7), closed empty (52) or reset (56), not exit ${r.exit} (HTTP ${r.status}): ${r.stderr} ${r.text}`);
  assert.equal(r.status, 0, `${who}: no HTTP answer`);
}

test('strait lab: STRICT refuses a pod outside the mesh, PERMISSIVE accepts it; an L4 DENY policy blocks an enrolled pod until removed', async (t) => {
  if (!requireLab(t)) return;
  const lab = await LabCli.start({
    files: {
      '00-namespaces.yaml': [namespace('secure', { 'istio.io/dataplane-mode': 'ambient' }), namespace('outside')],
      '10-pods.yaml': [
        demoPod('secure', 'server', 'node-b', SERVER, 'server'),
        demoPod('secure', 'caller', 'node-a', '198.18.10.1', 'caller'),
        demoPod('outside', 'stranger', 'node-a', '198.18.10.3', 'stranger'),
        service('secure', 'server', { ip: VIP, selector: { app: 'server' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
        demoPod('secure', 'near', 'node-a', NEAR.pod, 'near'),
        service('secure', 'near', { ip: NEAR.vip, selector: { app: 'near' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
      ],
      '20-peer-authn.yaml': peerAuthn('PERMISSIVE'),
    },
  });
  const modeOnB = async () => ((await lab.configDump('node-b')).policies as { key: string; mode?: string }[]).find((p) => p.key === 'peerauthn/secure/default')?.mode;
  const policyOnB = async (key: string) => ((await lab.configDump('node-b')).policies as { key: string }[]).some((p) => p.key === key);
  try {
    await t.test('PERMISSIVE: plain curl from a pod outside the mesh gets its answer', async () => {
      await until(async () => (await modeOnB()) === 'PERMISSIVE', 'PERMISSIVE on node-b');
      await until(async () => (await lab.capturePods('node-b')).get('secure/server')?.state === 'present', 'secure/server captured on node-b');
      assertAnswered(await lab.curl('outside/stranger', URL), 'outside/stranger under PERMISSIVE');
      const line = await lab.waitForLog((l) => l.component === 'ztunnel' && l.node === 'node-b' && l.msg === 'connection complete'
        && l.direction === 'inbound-plaintext' && String(l['src.addr']).startsWith('198.18.10.3'), 'node-b\'s inbound-plaintext access-log line');
      assert.equal(line['src.identity'], undefined, 'plaintext has no identity');
      // By the VIP of a mesh pod on the stranger's own node: captured after the service NAT and delivered by the ztunnel.
      assertAnswered(await lab.curl('outside/stranger', `http://${NEAR.vip}/`), 'outside/stranger to secure/near\'s VIP under PERMISSIVE', 'near');
      await lab.waitForLog((l) => l.component === 'ztunnel' && l.msg === 'connection complete' && l.direction === 'inbound-plaintext'
        && String(l['src.addr']).startsWith('198.18.10.3') && String(l['dst.addr']) === `${NEAR.pod}:8080`, 'the near node\'s inbound-plaintext line for the VIP call');
    });

    await t.test('STRICT: the same curl is refused (the app sees refused/reset), and an enrolled pod still gets through', async (t) => {
      lab.write('20-peer-authn.yaml', peerAuthn('STRICT'));
      await until(async () => (await modeOnB()) === 'STRICT', 'STRICT on node-b');
      assertRefused(t, await lab.curl('outside/stranger', URL), 'outside/stranger under STRICT');
      const line = await lab.waitForLog((l) => l.component === 'ztunnel' && l.node === 'node-b' && l.msg === 'connection refused'
        && l.direction === 'inbound-plaintext' && String(l['src.addr']).startsWith('198.18.10.3'), 'node-b\'s refusal in the access log');
      assert.equal(line.reason, 'mtls_required', JSON.stringify(line));
      assertAnswered(await lab.curl('secure/caller', URL), 'secure/caller (mTLS) under STRICT');
    });

    // The VIP case: the node's service DNAT (kube-proxy's job, the lab's chains here) turns the connection into one to
    // a pod of the same node after Strait's nat rules saw only the VIP; the nftables stage after NAT (scripts/iptables
    // lib.sh) hands it to the ztunnel's transparent plaintext listener, so STRICT applies all the same.
    await t.test('STRICT also refuses the outside pod calling a mesh pod on its own node, by the pod\'s address and by its Service VIP', async (t) => {
      assertRefused(t, await lab.curl('outside/stranger', `http://${NEAR.pod}:8080/`), 'outside/stranger to secure/near\'s pod address under STRICT');
      const refusal = (l: LogLine) => l.component === 'ztunnel' && l.msg === 'connection refused' && l.direction === 'inbound-plaintext'
        && String(l['src.addr']).startsWith('198.18.10.3') && String(l['dst.addr']) === `${NEAR.pod}:8080`;
      await lab.waitForLog(refusal, 'the refusal by pod address in the near node\'s access log');
      const before = lab.logLines().filter(refusal).length;
      assertRefused(t, await lab.curl('outside/stranger', `http://${NEAR.vip}/`), 'outside/stranger to secure/near\'s VIP under STRICT');
      // Its refusal names the pod's address and port (where the service NAT sent it), not the VIP.
      const lines = await until(() => { const all = lab.logLines().filter(refusal); return all.length > before ? all : undefined; }, 'the VIP refusal in the near node\'s access log');
      assert.equal(lines[lines.length - 1]!.reason, 'mtls_required', JSON.stringify(lines[lines.length - 1]));
      assertAnswered(await lab.curl('secure/caller', `http://${NEAR.vip}/`), 'secure/caller (mTLS) to secure/near', 'near');
    });

    await t.test('an L4 DENY AuthorizationPolicy blocks the enrolled caller (reset/empty reply); removing it restores its calls', async (t) => {
      assertAnswered(await lab.curl('secure/caller', URL), 'secure/caller before the policy');
      lab.write('30-deny.yaml', denyCaller);
      await until(() => policyOnB('authz/secure/deny-caller'), 'the DENY policy on node-b');
      assertRefused(t, await lab.curl('secure/caller', URL), 'secure/caller under the DENY policy');
      const line = await lab.waitForLog((l) => l.component === 'ztunnel' && l.msg === 'connection refused'
        && l['src.identity'] === 'spiffe://cluster.local/ns/secure/sa/caller', 'the denial in an access log');
      assert.equal(line.reason, 'policy_denied', JSON.stringify(line));

      lab.remove('30-deny.yaml');
      await until(async () => !(await policyOnB('authz/secure/deny-caller')), 'the DENY policy gone from node-b');
      assertAnswered(await lab.curl('secure/caller', URL), 'secure/caller after the policy was removed');
    });
  } finally {
    await lab.down();
  }
});
