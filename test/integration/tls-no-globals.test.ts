/**
 * The controller and the ztunnel, started in this process as a library: they speak TLS 1.3 only on the gRPC
 * channel between them without touching the process-wide `tls.DEFAULT_MIN_VERSION` (which would change every other
 * TLS socket of an embedding process). Addresses: 127.0.140.x.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/log.js';
import { formatHostPort } from '../../src/common/net.js';
import { parseConfig as parseControllerConfig } from '../../src/controller/config.js';
import { startController, type RunningController } from '../../src/controller/app.js';
import { parseConfig as parseZtunnelConfig } from '../../src/ztunnel/config.js';
import { startZtunnel, type RunningZtunnel } from '../../src/ztunnel/app.js';
import { docs, namespace, pod } from '../helpers/manifests.js';
import { run } from '../helpers/procs.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';
import { OPENSSL } from '../helpers/identity-fixtures.js';

const CONTROLLER = '127.0.140.254';
const NODE = '127.0.140.1';

describe('TLS 1.3 only, without process-wide TLS defaults', () => {
  const config = tempDir('tls-globals-config');
  const data = tempDir('tls-globals-data');
  const defaultsBefore = { min: tls.DEFAULT_MIN_VERSION, max: tls.DEFAULT_MAX_VERSION };
  let controller: RunningController | undefined;
  let ztunnel: RunningZtunnel | undefined;

  before(async () => {
    writeFileSync(join(config.path, 'mesh.yaml'), docs(
      namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
      pod('apps', 'web', { node: 'node-a', ip: '127.0.140.10', sa: 'web' }),
    ));
    controller = await startController(parseControllerConfig({}, {
      configDir: config.path, dataDir: data.path, xdsAddress: `${CONTROLLER}:0`, adminAddress: `${CONTROLLER}:0`,
    }), silentLogger());
    ztunnel = await startZtunnel(parseZtunnelConfig({}, {
      node: 'node-a', xdsAddress: formatHostPort(controller.xdsAddress), tokenFile: join(data.path, 'tokens', 'node-node-a.token'),
      rootCert: controller.rootCertFile, listenAddress: NODE, drain: '0s',
    }), silentLogger());
  });
  after(async () => {
    await ztunnel?.close();
    await controller?.close();
    config.remove();
    data.remove();
  });

  it('leaves tls.DEFAULT_MIN_VERSION and DEFAULT_MAX_VERSION as they were', () => {
    assert.deepEqual({ min: tls.DEFAULT_MIN_VERSION, max: tls.DEFAULT_MAX_VERSION }, defaultsBefore);
  });

  it('the ztunnel gets its configuration from the controller over TLS 1.3', async () => {
    await eventually(() => ztunnel!.state.workloads.has('apps/web'), 10_000, 'the workload over xDS');
  });

  it('the controller\'s xDS port refuses a TLS 1.2 client and accepts a TLS 1.3 one', async () => {
    const at = formatHostPort(controller!.xdsAddress);
    const old = await run(OPENSSL, ['s_client', '-connect', at, '-tls1_2', '-alpn', 'h2']);
    assert.notEqual(old.code, 0, `a TLS 1.2 handshake must fail: ${old.stdout}`);
    assert.match(old.stdout, /Cipher is \(NONE\)/, 'no TLS 1.2 session');
    const now = await run(OPENSSL, ['s_client', '-connect', at, '-tls1_3', '-alpn', 'h2']);
    assert.match(now.stdout, /New, TLSv1\.3, Cipher is TLS_/, now.stderr);
  });
});
