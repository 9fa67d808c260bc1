import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { isStraitError } from '../../src/common/errors.js';
import { connectMarked, getMark, isOriginalDstAvailable, originalDestination, setMark } from '../../src/ztunnel/capture/original-dst.js';
import { requireOrSkip } from '../helpers/netns.js';

const NOT_BUILT = 'the capture addon is not built (run `npm run build:native`)';

describe('originalDestination', () => {
  let server: net.Server;
  let accepted: Promise<net.Socket>;
  let client: net.Socket;

  before(async () => {
    server = net.createServer();
    accepted = once(server, 'connection').then(([s]) => s as net.Socket);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    await once(client, 'connect');
  });
  after(async () => {
    client.destroy();
    (await accepted).destroy();
    server.close();
  });

  it('throws STRAIT_ERR_CAPTURE saying the connection was not redirected for a plain loopback socket', async (t) => {
    if (!requireOrSkip(t, isOriginalDstAvailable() ? undefined : NOT_BUILT)) return;
    const socket = await accepted;
    assert.throws(
      () => originalDestination(socket),
      (err: unknown) => {
        assert.ok(isStraitError(err, 'STRAIT_ERR_CAPTURE'), `unexpected error: ${String(err)}`);
        assert.match(err.message, /^cannot read the original destination of 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+/);
        assert.match(err.message, /not redirected/);
        return true;
      },
    );
  });

  it('throws STRAIT_ERR_CAPTURE for a socket without a file descriptor', (t) => {
    if (!requireOrSkip(t, isOriginalDstAvailable() ? undefined : NOT_BUILT)) return;
    assert.throws(() => originalDestination(new net.Socket()), (err: unknown) => isStraitError(err, 'STRAIT_ERR_CAPTURE') && /no file descriptor/.test(err.message));
  });

  it('marks a socket before its first packet with connectMarked, and after with setMark (needs CAP_NET_ADMIN)', async (t) => {
    if (!requireOrSkip(t, isOriginalDstAvailable() ? undefined : NOT_BUILT)) return;
    if (!requireOrSkip(t, process.getuid?.() === 0 ? undefined : 'setting SO_MARK needs CAP_NET_ADMIN: run as root')) return;
    const port = (server.address() as net.AddressInfo).port;
    const marked = connectMarked({ host: '127.0.0.1', port }, 0x539);
    await once(marked, 'connect');
    assert.equal(getMark(marked), 0x539);
    setMark(marked, 0x53a);
    assert.equal(getMark(marked), 0x53a);
    marked.destroy();
    assert.throws(() => setMark(client, -1), (err: unknown) => isStraitError(err, 'STRAIT_ERR_CAPTURE'));
  });
});
