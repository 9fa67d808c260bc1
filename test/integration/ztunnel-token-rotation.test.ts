/**
 * A proxy's token file is read again at every (re)connect: a Kubernetes projected ServiceAccount token is rotated by
 * the kubelet (the one read at start expires within the hour). A real controller (file source, bootstrap tokens) and
 * a real `strait ztunnel` whose --token-file starts out wrong and is then rewritten.
 * Addresses: 127.0.216.*.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startController, type ControllerHandle } from '../helpers/controller.js';
import { eventually } from '../helpers/eventually.js';
import { docs, namespace, pod } from '../helpers/manifests.js';
import { metricValue } from '../helpers/metrics.js';
import { STRAIT_BIN, StraitProcess } from '../helpers/procs.js';
import { tempDir } from '../helpers/temp-dir.js';
import { ZTUNNEL_NODE_OPTIONS } from '../../src/ztunnel/config.js';

const NODE_ADDR = '127.0.216.200';

describe('a ztunnel whose token file changes', () => {
  const manifests = tempDir('rot-manifests');
  const data = tempDir('rot-data');
  const tokens = tempDir('rot-token');
  let controller: ControllerHandle | undefined;
  let zt: StraitProcess | undefined;
  after(async () => {
    await zt?.stop(15_000);
    await controller?.stop();
    manifests.remove();
    data.remove();
    tokens.remove();
  });

  it('presents the file\'s new token at its next reconnect, without a restart', async () => {
    writeFileSync(join(manifests.path, 'mesh.yaml'), docs(
      namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
      pod('apps', 'app', { node: 'node-rot', ip: '127.0.216.1', sa: 'app' }),
    ));
    controller = await startController(manifests.path, data.path);
    const tokenFile = join(tokens.path, 'token');
    writeFileSync(tokenFile, 'an-expired-token\n');
    zt = new StraitProcess(spawn(process.execPath, [...ZTUNNEL_NODE_OPTIONS, STRAIT_BIN, 'ztunnel', '--node', 'node-rot', '--xds-address', controller.xds,
      '--token-file', tokenFile, '--root-cert', controller.rootFile, '--listen-address', NODE_ADDR, '--local-pod-listeners'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    await zt.waitFor((l) => l.msg === 'ztunnel listening', 20_000, 'ztunnel listening');
    const refusedWrong = async () => metricValue((await controller!.get('/metrics')).text, 'strait_auth_refused_total', { service: 'xds', reason: 'wrong_token' });
    await eventually(async () => (await refusedWrong()) >= 1, 10_000, 'the wrong token refused');
    assert.equal((await fetch(`http://${NODE_ADDR}:15021/healthz/ready`)).status, 503);

    // The kubelet's rotation: the file now holds a token the controller accepts.
    writeFileSync(tokenFile, readFileSync(join(data.path, 'tokens', 'node-node-rot.token')));
    const t0 = Date.now();
    await eventually(async () => (await fetch(`http://${NODE_ADDR}:15021/healthz/ready`)).ok, 20_000, 'ztunnel ready with the new token');
    console.log(`ztunnel connected ${Date.now() - t0} ms after its token file was rewritten`);
    const connected = await (await fetch(`http://${NODE_ADDR}:15020/metrics`)).text();
    assert.equal(metricValue(connected, 'strait_ztunnel_xds_connected'), 1);
  });
});
