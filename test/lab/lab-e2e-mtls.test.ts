/**
 * `strait lab` end to end (issue 11): plain curl in a pod, captured by its node's ztunnel (`--capture`), to a Service
 * VIP whose pod is on the other node. The wire between the nodes (tcpdump on node-a's fabric interface) carries only
 * TLS on 15008, and a marker sent in the request never appears on it, while the same capture does see it when the
 * namespaces are not in the mesh. A namespace's label flipped in the manifest moves its pods between mTLS and
 * plaintext without restarting them. One lab for the file: namespaces mesh (ambient), plain (none), flip (toggled).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import { namespace, service } from '../helpers/manifests.js';
import { demoPod } from '../helpers/mesh.js';
import { requireLab, runSync } from '../helpers/netns.js';
import { LabCli, until, type Pcap } from '../helpers/lab-cli.js';

const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };
const IP = {
  mesh: { client: '198.18.10.1', server: '198.18.10.2', vip: '198.18.20.1' },
  plain: { client: '198.18.10.3', server: '198.18.10.4', vip: '198.18.20.2' },
  flip: { client: '198.18.10.5', server: '198.18.10.6', vip: '198.18.20.3' },
};
const spiffe = (ns: string, sa: string): string => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;
/** A mesh pod on the client's own node, behind its own VIP: same-node HBONE (lab contract §1). */
const LOCAL = { pod: '198.18.10.7', vip: '198.18.20.4' };
/** A mesh pod on node-b whose app is not Strait's: Python's http.server, run by the pod's strait.dev/lab-command. */
const PY = { pod: '198.18.10.8', vip: '198.18.20.5' };
const pyPod = {
  apiVersion: 'v1', kind: 'Pod',
  metadata: { name: 'py', namespace: 'mesh', labels: { app: 'py' }, annotations: { 'strait.dev/lab-command': `exec /usr/bin/python3 -m http.server 8080 --bind ${PY.pod}` } },
  spec: { nodeName: 'node-b', serviceAccountName: 'py', containers: [{ name: 'app', image: 'python:3', ports: [{ name: 'http', containerPort: 8080 }] }] },
  status: { podIP: PY.pod },
};

const pods = (ns: keyof typeof IP) => [
  demoPod(ns, 'client', 'node-a', IP[ns].client, 'client'),
  demoPod(ns, 'server', 'node-b', IP[ns].server, 'server'),
  service(ns, 'server', { ip: IP[ns].vip, selector: { app: 'server' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] }),
];

/** The TCP packets of a capture other than the nodes' xDS/CA traffic with the controller. */
function podTraffic(lab: LabCli, pcap: Pcap) {
  const controller = lab.state.controller.address;
  return pcap.tcp.filter((p) => p.src !== controller && p.dst !== controller);
}

/** A curl from ns/client to the ns's Service VIP carrying `marker` in its path and in a header, and what the wire between the nodes saw. */
async function markedRequest(lab: LabCli, ns: keyof typeof IP): Promise<{ marker: string; pcap: Pcap }> {
  const marker = `strait-e2e-marker-${randomUUID()}`;
  const dump = await lab.tcpdump('node-a');
  let pcap: Pcap;
  try {
    const r = await lab.curl(`${ns}/client`, `http://${IP[ns].vip}/echo/${marker}`, ['-H', `x-e2e-marker: ${marker}`]);
    assert.equal(r.exit, 0, `curl from ${ns}/client to ${IP[ns].vip}: ${r.stderr}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body?.pod, 'server', `answered by ${ns}/server: ${r.text}`);
    assert.equal(r.body?.namespace, ns);
    assert.equal(r.body?.path, `/echo/${marker}`);
    assert.equal(r.body?.headers?.['x-e2e-marker'], marker, 'the marker header reached the server');
  } finally {
    pcap = await dump.stop();
  }
  return { marker, pcap };
}

/** The capture shows the request in mTLS: the marker nowhere, every pod packet on 15008, TLS records to 15008 (a handshake first on a new connection). */
function assertOnlyTls(lab: LabCli, ns: keyof typeof IP, { marker, pcap }: { marker: string; pcap: Pcap }, newConnection = true): void {
  assert.equal(pcap.contains(marker), false, 'the plaintext marker went over the wire between the nodes');
  const pods = podTraffic(lab, pcap);
  const notHbone = pods.filter((p) => p.sport !== 15008 && p.dport !== 15008);
  assert.deepEqual(notHbone.map((p) => `${p.src}:${p.sport} > ${p.dst}:${p.dport}`), [], 'pod traffic between the nodes outside HBONE (15008)');
  const toServer = pods.filter((p) => p.dst === IP[ns].server && p.dport === 15008 && p.payload.length > 0);
  assert.ok(toServer.length > 0, `no HBONE data to ${IP[ns].server}:15008 on the wire (${pcap.tcp.length} TCP packets captured)`);
  const first = toServer[0]!.payload;
  if (newConnection) assert.deepEqual([first[0], first[1]], [0x16, 0x03], `the first bytes to 15008 are a TLS handshake record (got ${first.subarray(0, 8).toString('hex')})`);
  assert.ok(toServer.some((p) => p.payload[0] === 0x17), 'TLS application data records to 15008');
}

/** The capture shows the request in plaintext: the marker is on the wire, to the server pod's port 8080. */
function assertPlaintext(lab: LabCli, ns: keyof typeof IP, { marker, pcap }: { marker: string; pcap: Pcap }): void {
  assert.equal(pcap.contains(marker), true, `the capture would see a plaintext marker (${pcap.tcp.length} TCP packets captured)`);
  assert.ok(podTraffic(lab, pcap).some((p) => p.dst === IP[ns].server && p.dport === 8080 && p.payload.includes(Buffer.from(marker))),
    `the marker went to ${IP[ns].server}:8080 in plain TCP`);
}

test('strait lab: plain curl between pods on two nodes goes over mTLS, and a flipped namespace label (absent, none) moves it to plaintext and back', async (t) => {
  if (!requireLab(t)) return;
  const lab = await LabCli.start({
    files: {
      '00-namespaces.yaml': [namespace('mesh', AMBIENT), namespace('plain')],
      '01-flip.yaml': [namespace('flip', AMBIENT)],
      '10-mesh.yaml': [...pods('mesh'), demoPod('mesh', 'local', 'node-a', LOCAL.pod, 'local'),
        service('mesh', 'local', { ip: LOCAL.vip, selector: { app: 'local' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] }),
        pyPod, service('mesh', 'py', { ip: PY.vip, selector: { app: 'py' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] })],
      '11-plain.yaml': pods('plain'),
      '12-flip.yaml': pods('flip'),
    },
  });
  try {
    await t.test('curl in a pod on node-a to a Service VIP whose pod is on node-b: only TLS on 15008 between the nodes, the marker never on the wire', async () => {
      assert.equal(lab.pod('mesh/client').node, 'node-a');
      assert.equal(lab.pod('mesh/server').node, 'node-b');
      const seen = await markedRequest(lab, 'mesh');
      assertOnlyTls(lab, 'mesh', seen);
    });

    await t.test('both ztunnels\' access logs name the client\'s SPIFFE id', async () => {
      const id = spiffe('mesh', 'client');
      const out = await lab.waitForLog((l) => l.component === 'ztunnel' && l.node === 'node-a' && l.msg === 'connection complete' && l.direction === 'outbound'
        && String(l['src.addr']).startsWith(IP.mesh.client), 'node-a\'s outbound access-log line');
      assert.equal(out['src.identity'], id, JSON.stringify(out));
      assert.equal(out['dst.identity'], spiffe('mesh', 'server'), JSON.stringify(out));
      // Captured before the lab's service DNAT: the client's ztunnel saw the VIP, and named the Service.
      assert.equal(out['dst.service'], 'server.mesh.svc.cluster.local', JSON.stringify(out));
      const inb = await lab.waitForLog((l) => l.component === 'ztunnel' && l.node === 'node-b' && l.msg === 'connection complete' && l.direction === 'inbound'
        && l['src.identity'] === id, 'node-b\'s inbound access-log line');
      assert.equal(inb['dst.workload'], 'server', JSON.stringify(inb));
      assert.equal(inb['dst.identity'], spiffe('mesh', 'server'), JSON.stringify(inb));
    });

    await t.test('curl to a Service whose pod is on the client\'s own node goes through the node\'s ztunnel both ways, with the client\'s identity', async () => {
      const r = await lab.curl('mesh/client', `http://${LOCAL.vip}/same-node`);
      assert.equal(r.exit, 0, r.stderr);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body?.pod, 'local');
      const inb = await lab.waitForLog((l) => l.component === 'ztunnel' && l.node === 'node-a' && l.msg === 'connection complete' && l.direction === 'inbound'
        && l['dst.workload'] === 'local', 'node-a\'s inbound access-log line for mesh/local');
      assert.equal(inb['src.identity'], spiffe('mesh', 'client'), JSON.stringify(inb));
    });

    await t.test('an app that is not Strait\'s (a pod\'s lab-command: Python\'s http.server) is reached in mTLS the same way', async () => {
      assert.match(lab.pod('mesh/py').process?.command ?? '', /http\.server/);
      const r = await lab.curl('mesh/client', `http://${PY.vip}/`);
      assert.equal(r.exit, 0, r.stderr);
      assert.equal(r.status, 200, r.text);
      assert.match(r.text, /Directory listing/);
      const inb = await lab.waitForLog((l) => l.component === 'ztunnel' && l.node === 'node-b' && l.msg === 'connection complete' && l.direction === 'inbound'
        && l['dst.workload'] === 'py', 'node-b\'s inbound access-log line for mesh/py');
      assert.equal(inb['src.identity'], spiffe('mesh', 'client'), JSON.stringify(inb));
    });

    await t.test('nothing in the lab routes out of 198.18.0.0/15 (pods only to their node, which has no way out), and no link reaches the machine\'s own namespace', async () => {
      const routeGet = (ns: string, dest: string) => runSync(['ip', 'netns', 'exec', ns, 'ip', 'route', 'get', dest], { allowFailure: true });
      const outside = ['192.0.2.1', '10.0.0.1', '8.8.8.8'];
      for (const ns of [lab.state.controller.netns, ...Object.values(lab.state.nodes).map((n) => n.netns)]) {
        for (const dest of outside) {
          const r = routeGet(ns, dest);
          assert.notEqual(r.status, 0, `${ns} has a route to ${dest}: ${r.stdout}`);
        }
      }
      for (const [name, pod] of Object.entries(lab.state.pods)) {
        for (const dest of outside) {
          const r = routeGet(pod.netns, dest);
          if (r.status === 0) assert.match(r.stdout, new RegExp(`via ${lab.node(pod.node).gateway.replace(/\./g, '\\.')} dev eth0 `), `${name} routes ${dest} only to its node`);
        }
      }
      const rootLinks = runSync(['ip', '-o', 'link', 'show']).stdout;
      assert.equal(rootLinks.includes(lab.state.prefix), false, `a link of the machine's namespace has its peer in the lab:\n${rootLinks}`);
    });

    await t.test('the same capture sees the marker when the namespace is not in the mesh (the proof that it would)', async () => {
      const seen = await markedRequest(lab, 'plain');
      assertPlaintext(lab, 'plain', seen);
      const caps = [...(await lab.capturePods('node-a')).keys(), ...(await lab.capturePods('node-b')).keys()];
      assert.equal(caps.some((p) => p.startsWith('plain/')), false, `no capture rules for pods outside the mesh: ${caps.join(', ')}`);
    });

    await t.test('a namespace label flipped in the manifest (absent, then none) moves its pods from mTLS to plaintext and back, without restarting them', async () => {
      const pidsOf = () => ['flip/client', 'flip/server'].map((p) => lab.refresh().pods[p]!.process?.pid);
      const pidsBefore = pidsOf();
      for (const pid of pidsBefore) assert.ok(typeof pid === 'number' && pid > 0, `the pods run the demo app: ${JSON.stringify(pidsBefore)}`);
      const enrolled = async (present: boolean) => {
        await until(async () => {
          const [a, b] = [await lab.capturePods('node-a'), await lab.capturePods('node-b')];
          const ok = (m: typeof a, pod: string) => (present ? m.get(pod)?.state === 'present' : !m.has(pod));
          return ok(a, 'flip/client') && ok(b, 'flip/server');
        }, `capture.pods of node-a and node-b to ${present ? 'hold' : 'drop'} flip/client and flip/server`, 15_000);
        // Both ends must see the server's protocol change before the next request means anything.
        await until(async () => ((await lab.configDump('node-a')).workloads as { uid: string; protocol: string }[])
          .find((w) => w.uid === 'flip/server')?.protocol === (present ? 'HBONE' : 'TCP'), `node-a to see flip/server as ${present ? 'HBONE' : 'TCP'}`);
      };

      await enrolled(true);
      const dumpA = (await lab.capturePods('node-a')).get('flip/client')!;
      assert.equal(dumpA.address, IP.flip.client);
      assert.ok(!Number.isNaN(Date.parse(dumpA.since)), `since is a time: ${dumpA.since}`);
      assertOnlyTls(lab, 'flip', await markedRequest(lab, 'flip'));

      lab.write('01-flip.yaml', [namespace('flip')]);
      await enrolled(false);
      assertPlaintext(lab, 'flip', await markedRequest(lab, 'flip'));
      assert.equal((await lab.natRules('node-a')).includes(`strait-pod=${IP.flip.client}`), false, 'node-a removed flip/client\'s rules');

      lab.write('01-flip.yaml', [namespace('flip', AMBIENT)]);
      await enrolled(true);
      // The ztunnel may reuse its pooled HBONE connection from the first round: no handshake need be on the wire.
      assertOnlyTls(lab, 'flip', await markedRequest(lab, 'flip'), false);

      // The explicit opt-out value works as the absent label does.
      lab.write('01-flip.yaml', [namespace('flip', { 'istio.io/dataplane-mode': 'none' })]);
      await enrolled(false);
      assertPlaintext(lab, 'flip', await markedRequest(lab, 'flip'));

      assert.deepEqual(pidsOf(), pidsBefore, 'the pods\' processes were not restarted');
      for (const pid of pidsBefore) assert.doesNotThrow(() => process.kill(pid!, 0), `pod process ${pid} is alive`);
    });
  } finally {
    await lab.down();
  }
});
