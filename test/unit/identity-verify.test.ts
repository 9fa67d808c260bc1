import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import {
  CertificateAuthority,
  SpiffeId,
  createKeyAndCsr,
  peerCertificateChain,
  spiffeIdOf,
  tlsContextOptions,
  verifyPeer,
} from '../../src/identity/index.js';
import { isStraitError } from '../../src/common/errors.js';
import { makeOperatorCa, openssl } from '../helpers/identity-fixtures.js';
import { tempDir } from '../helpers/temp-dir.js';

const CLIENT = SpiffeId.parse('spiffe://cluster.local/ns/shop/sa/frontend');
const SERVER = SpiffeId.parse('spiffe://cluster.local/ns/shop/sa/checkout');

async function issue(ca: CertificateAuthority, id: SpiffeId, ttlMs?: number): Promise<{ keyPem: string; certChainPem: string[] }> {
  const { keyPem, csrPem } = await createKeyAndCsr();
  return { keyPem, certChainPem: ca.signWorkload(csrPem, id, ttlMs).certChainPem };
}

function peerError(message: string | RegExp) {
  return (err: unknown) => {
    assert.ok(isStraitError(err, 'STRAIT_ERR_PEER_VERIFY'), `expected STRAIT_ERR_PEER_VERIFY, got ${String(err)}`);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  };
}

describe('verifyPeer', () => {
  let dir: { path: string; remove: () => void };
  let ca: CertificateAuthority;
  let otherCa: CertificateAuthority;
  let otherDomainCa: CertificateAuthority;
  before(async () => {
    dir = tempDir('verify');
    ca = await CertificateAuthority.loadOrCreate({ dataDir: join(dir.path, 'mesh') });
    otherCa = await CertificateAuthority.loadOrCreate({ dataDir: join(dir.path, 'other') });
    otherDomainCa = await CertificateAuthority.loadOrCreate({ dataDir: join(dir.path, 'td'), trustDomain: 'other.local' });
  });
  after(() => dir.remove());

  it('accepts a peer whose chain leads to the mesh root and whose id is expected', async () => {
    const { certChainPem } = await issue(ca, SERVER);
    assert.equal(verifyPeer(certChainPem, ca.rootCertPem, [SERVER.toString()]).toString(), SERVER.toString());
    assert.ok(verifyPeer(certChainPem, ca.rootCertPem, [CLIENT.toString(), SERVER.toString()]).equals(SERVER));
    // Without the root in the presented chain, and as DER buffers.
    const der = certChainPem.slice(0, 1).map((p) => Buffer.from(p.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64'));
    assert.ok(verifyPeer(der, ca.rootCertPem, [SERVER.toString()]).equals(SERVER));
    // A trust bundle with several roots.
    assert.ok(verifyPeer(certChainPem, [otherCa.rootCertPem, ca.rootCertPem], [SERVER.toString()]).equals(SERVER));
  });

  it('rejects a peer whose SPIFFE id is not the destination\'s', async () => {
    const { certChainPem } = await issue(ca, CLIENT);
    assert.throws(
      () => verifyPeer(certChainPem, ca.rootCertPem, [SERVER.toString()]),
      peerError(`peer presented ${CLIENT} but ${SERVER} was expected`),
    );
    const third = 'spiffe://cluster.local/ns/shop/sa/cart';
    assert.throws(
      () => verifyPeer(certChainPem, ca.rootCertPem, [SERVER.toString(), third]),
      peerError(`peer presented ${CLIENT} but one of ${SERVER}, ${third} was expected`),
    );
  });

  it('with no expected ids accepts any id in the mesh trust domain and nothing outside it', async () => {
    const { certChainPem } = await issue(ca, CLIENT);
    assert.ok(verifyPeer(certChainPem, ca.rootCertPem, []).equals(CLIENT));
    const foreign = await issue(otherDomainCa, SpiffeId.of('other.local', 'shop', 'frontend'));
    assert.throws(
      () => verifyPeer(foreign.certChainPem, otherDomainCa.rootCertPem, []),
      peerError('peer presented spiffe://other.local/ns/shop/sa/frontend, which is outside the mesh trust domain "cluster.local"'),
    );
    assert.ok(verifyPeer(foreign.certChainPem, otherDomainCa.rootCertPem, [], new Date(), 'other.local'));
  });

  it('rejects a certificate from another CA even with the same subject names', async () => {
    const { certChainPem } = await issue(otherCa, SERVER);
    assert.throws(
      () => verifyPeer(certChainPem, ca.rootCertPem, [SERVER.toString()]),
      peerError(
        new RegExp(
          '^peer certificate does not chain to the mesh root \\(issuer "O=cluster.local, CN=Strait Root CA"; its chain ends at ' +
            `another root "O=cluster.local, CN=Strait Root CA" \\(SHA-256 ${new X509Certificate(otherCa.rootCertPem).fingerprint256}\\)\\); ` +
            'check that both sides trust the same mesh root$',
        ),
      ),
    );
    // Only the leaf presented.
    assert.throws(
      () => verifyPeer(certChainPem.slice(0, 1), ca.rootCertPem, [SERVER.toString()]),
      peerError('peer certificate does not chain to the mesh root (issuer "O=cluster.local, CN=Strait Root CA"); check that both sides trust the same mesh root'),
    );
  });

  it('rejects expired and not-yet-valid certificates', async () => {
    const t0 = Date.UTC(2032, 2, 1, 0, 0, 0);
    const clockCa = await CertificateAuthority.loadOrCreate({ dataDir: join(dir.path, 'mesh'), now: () => t0, backdateMs: 0 });
    const { certChainPem } = await issue(clockCa, SERVER, 60 * 60 * 1000);
    assert.ok(verifyPeer(certChainPem, ca.rootCertPem, [SERVER.toString()], new Date(t0 + 30 * 60 * 1000)));
    assert.throws(
      () => verifyPeer(certChainPem, ca.rootCertPem, [SERVER.toString()], new Date(t0 + 2 * 60 * 60 * 1000)),
      peerError(`peer certificate for ${SERVER} expired at 2032-03-01T01:00:00.000Z (now 2032-03-01T02:00:00.000Z)`),
    );
    assert.throws(
      () => verifyPeer(certChainPem, ca.rootCertPem, [SERVER.toString()], new Date(t0 - 60 * 1000)),
      peerError(/is not valid before 2032-03-01T00:00:00\.000Z .*check the clocks of both nodes/),
    );
  });

  it('rejects an empty chain, garbage and certificates without one SPIFFE id', async () => {
    assert.throws(() => verifyPeer([], ca.rootCertPem, []), peerError(/peer presented no certificate/));
    assert.throws(() => verifyPeer([Buffer.from('junk')], ca.rootCertPem, []), peerError(/cannot parse certificate/));
    // The root itself has no URI SAN.
    assert.throws(() => verifyPeer([ca.rootCertPem], ca.rootCertPem, []), peerError(/carries no URI SAN/));
    const serving = ca.issueServing({ dnsNames: ['localhost'], ips: [] });
    assert.throws(() => spiffeIdOf(serving.certChainPem[0]!), { code: 'STRAIT_ERR_CERT_INVALID', message: /carries no URI SAN/ });
    // Two URI SANs (made with openssl).
    const two = join(dir.path, 'two.pem');
    openssl([
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir.path, 'two.key'),
      '-subj', '/CN=x', '-addext', `subjectAltName=URI:${SERVER},URI:${CLIENT}`, '-out', two,
    ]);
    const twoPem = await readFile(two, 'utf8');
    assert.throws(() => spiffeIdOf(twoPem), {
      code: 'STRAIT_ERR_CERT_INVALID',
      message: new RegExp(`carries 2 URI SANs \\(${SERVER}, ${CLIENT}\\); a workload certificate must carry exactly one`),
    });
  });

  it('follows an intermediate to the root and needs it to be presented', async () => {
    const opDir = join(dir.path, 'op');
    await mkdir(opDir);
    const op = await makeOperatorCa(opDir, { intermediate: 'ec' });
    const intCa = await CertificateAuthority.loadOrCreate({
      dataDir: opDir,
      operator: { certFile: op.intCert!, keyFile: op.intKey!, chainFile: op.rootCert },
    });
    const { certChainPem } = await issue(intCa, SERVER);
    assert.ok(verifyPeer(certChainPem, intCa.rootCertPem, [SERVER.toString()]).equals(SERVER));
    assert.ok(verifyPeer(certChainPem.slice(0, 2), intCa.rootCertPem, [SERVER.toString()]).equals(SERVER));
    assert.throws(
      () => verifyPeer(certChainPem.slice(0, 1), intCa.rootCertPem, [SERVER.toString()]),
      peerError(/does not chain to the mesh root \(issuer "O=Example Corp, CN=Example Mesh Intermediate"\)/),
    );
    assert.throws(
      () => verifyPeer(certChainPem, ca.rootCertPem, [SERVER.toString()]),
      peerError(/does not chain to the mesh root \(issuer "O=Example Corp, CN=Example Mesh Intermediate"; its chain ends at another root "O=Example Corp, CN=Example Root CA"/),
    );
    assert.throws(
      () => verifyPeer(certChainPem.slice(0, 2), ca.rootCertPem, [SERVER.toString()]),
      peerError(/\(issuer "O=Example Corp, CN=Example Mesh Intermediate"; intermediate "O=Example Corp, CN=Example Mesh Intermediate" is issued by "O=Example Corp, CN=Example Root CA", which is neither presented nor the mesh root\)/),
    );
  });
});

describe('mesh TLS', () => {
  let dir: { path: string; remove: () => void };
  let ca: CertificateAuthority;
  let server: tls.Server | undefined;
  before(async () => {
    dir = tempDir('tls');
    ca = await CertificateAuthority.loadOrCreate({ dataDir: dir.path });
  });
  after(async () => {
    if (server !== undefined) await new Promise((resolve) => server!.close(resolve));
    dir.remove();
  });

  it('completes a real TLS 1.3 mutual handshake on 127.0.0.1 and both sides verify the other\'s SPIFFE id', async () => {
    const serverCert = await issue(ca, SERVER);
    const clientCert = await issue(ca, CLIENT);
    const seenByServer: Array<SpiffeId | Error> = [];
    server = tls.createServer({ ...tlsContextOptions(serverCert, ca.rootCertPem), requestCert: true }, (socket) => {
      try {
        seenByServer.push(verifyPeer(peerCertificateChain(socket), ca.rootCertPem, [CLIENT.toString()]));
        socket.end(`hello ${socket.getProtocol()}`);
      } catch (err) {
        seenByServer.push(err as Error);
        socket.destroy();
      }
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;

    const client = tls.connect({ host: '127.0.0.1', port, ...tlsContextOptions(clientCert, ca.rootCertPem) });
    await once(client, 'secureConnect');
    assert.equal(client.getProtocol(), 'TLSv1.3');
    assert.ok(client.authorized, String(client.authorizationError));
    const chain = peerCertificateChain(client);
    assert.ok(verifyPeer(chain, ca.rootCertPem, [SERVER.toString()]).equals(SERVER));
    assert.throws(() => verifyPeer(chain, ca.rootCertPem, [CLIENT.toString()]), peerError(`peer presented ${SERVER} but ${CLIENT} was expected`));
    let body = '';
    client.setEncoding('utf8');
    client.on('data', (d: string) => (body += d));
    await once(client, 'end');
    client.destroy();
    assert.equal(body, 'hello TLSv1.3');
    assert.equal(seenByServer.length, 1);
    assert.ok(seenByServer[0] instanceof SpiffeId && seenByServer[0].equals(CLIENT), String(seenByServer[0]));

    // A client with a certificate from another mesh root fails the handshake itself.
    const otherCa = await CertificateAuthority.loadOrCreate({ dataDir: join(dir.path, 'other') });
    const stranger = await issue(otherCa, CLIENT);
    const bad = tls.connect({ host: '127.0.0.1', port, ...tlsContextOptions(stranger, ca.rootCertPem) });
    const [outcome] = await Promise.race([
      once(bad, 'error').then((e) => ['error', e] as const),
      once(bad, 'close').then(() => ['closed'] as const),
    ]);
    bad.destroy();
    assert.ok(outcome === 'error' || outcome === 'closed');
    assert.equal(seenByServer.length, 1, 'the server callback never ran for the stranger');

    // TLS 1.2 is refused.
    const old = tls.connect({ host: '127.0.0.1', port, ...tlsContextOptions(clientCert, ca.rootCertPem), minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
    const [err] = (await once(old, 'error')) as [Error];
    old.destroy();
    assert.match(err.message, /version|protocol/i);
  });

  it('sends leaf and intermediates but not the root, and trusts only the mesh root', async () => {
    const cert = await issue(ca, CLIENT);
    const opts = tlsContextOptions(cert, ca.rootCertPem);
    assert.equal(opts.cert.match(/BEGIN CERTIFICATE/g)?.length, 1);
    assert.equal(opts.ca.length, 1);
    assert.equal(opts.minVersion, 'TLSv1.3');
    assert.equal(opts.maxVersion, 'TLSv1.3');
    assert.equal(opts.checkServerIdentity(), undefined);
  });
});
