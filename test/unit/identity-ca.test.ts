import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CertificateAuthority,
  DEFAULT_BACKDATE_MS,
  DEFAULT_WORKLOAD_TTL_MS,
  ROOT_CERT_FILE,
  ROOT_KEY_FILE,
  SpiffeId,
  createKeyAndCsr,
  spiffeIdOf,
  verifyPeer,
} from '../../src/identity/index.js';
import { handMadeCsrPem, makeOperatorCa, openssl, tlv } from '../helpers/identity-fixtures.js';
import { tempDir } from '../helpers/temp-dir.js';

const WEB = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/web');

async function writeChain(dir: string, name: string, chain: string[]): Promise<{ leaf: string; intermediates: string; root: string }> {
  const leaf = join(dir, `${name}-leaf.pem`);
  const intermediates = join(dir, `${name}-untrusted.pem`);
  const root = join(dir, `${name}-root.pem`);
  await writeFile(leaf, chain[0]!);
  await writeFile(intermediates, chain.slice(1, -1).join(''));
  await writeFile(root, chain[chain.length - 1]!);
  return { leaf, intermediates, root };
}

describe('CertificateAuthority with its own root', () => {
  let dir: { path: string; remove: () => void };
  before(async () => {
    dir = tempDir('ca');
  });
  after(() => dir.remove());

  it('creates the root once (key 0600, cert 0644, dir 0700) and reuses it on the next load', async () => {
    const dataDir = join(dir.path, 'data');
    const first = await CertificateAuthority.loadOrCreate({ dataDir });
    const keyStat = await stat(join(dataDir, ROOT_KEY_FILE));
    const certStat = await stat(join(dataDir, ROOT_CERT_FILE));
    assert.equal(keyStat.mode & 0o777, 0o600);
    assert.equal(certStat.mode & 0o777, 0o644);
    assert.equal((await stat(dataDir)).mode & 0o777, 0o700);
    const keyBefore = await readFile(join(dataDir, ROOT_KEY_FILE), 'utf8');
    assert.equal(await readFile(join(dataDir, ROOT_CERT_FILE), 'utf8'), first.rootCertPem);

    const second = await CertificateAuthority.loadOrCreate({ dataDir });
    assert.equal(second.rootCertPem, first.rootCertPem);
    assert.equal(await readFile(join(dataDir, ROOT_KEY_FILE), 'utf8'), keyBefore);
    assert.equal(second.trustDomain, 'cluster.local');

    // A leaf from the reloaded CA chains to the root the first one wrote.
    const { csrPem } = await createKeyAndCsr();
    const { certChainPem } = second.signWorkload(csrPem, WEB);
    assert.equal(verifyPeer(certChainPem, first.rootCertPem, [WEB.toString()]).toString(), WEB.toString());
  });

  it('makes a 10-year self-signed P-256 root named after the trust domain', async () => {
    const now = Date.UTC(2030, 0, 1);
    const ca = await CertificateAuthority.loadOrCreate({ dataDir: join(dir.path, 'td'), trustDomain: 'prod.example', now: () => now });
    const file = join(dir.path, 'td', ROOT_CERT_FILE);
    const text = openssl(['x509', '-in', file, '-noout', '-text']);
    assert.match(text, /Issuer: O = prod.example, CN = Strait Root CA/);
    assert.match(text, /Subject: O = prod.example, CN = Strait Root CA/);
    assert.match(text, /Basic Constraints: critical\n\s+CA:TRUE/);
    assert.match(text, /Key Usage: critical\n\s+Certificate Sign, CRL Sign/);
    assert.match(text, /ASN1 OID: prime256v1/);
    assert.match(text, /Not Before: Dec 31 23:55:00 2029 GMT/);
    assert.match(text, /Not After : Dec 30 00:00:00 2039 GMT/);
    assert.match(openssl(['verify', '-attime', String(now / 1000), '-CAfile', file, file]), /: OK/);
    assert.equal(ca.trustDomain, 'prod.example');
  });

  it('refuses a half-present root pair and never overwrites the file that is there', async () => {
    const dataDir = join(dir.path, 'half');
    await CertificateAuthority.loadOrCreate({ dataDir });
    const certPath = join(dataDir, ROOT_CERT_FILE);
    const keyPath = join(dataDir, ROOT_KEY_FILE);
    const certBefore = await readFile(certPath, 'utf8');
    await rm(keyPath);
    await assert.rejects(CertificateAuthority.loadOrCreate({ dataDir }), {
      code: 'STRAIT_ERR_CA_ROOT',
      message:
        `found ${certPath} but not ${keyPath}: the CA root is half present. Restore ${keyPath} from a backup, ` +
        `or delete ${certPath} to generate a new root (which re-keys the mesh: every workload certificate is re-issued)`,
    });
    assert.equal(await readFile(certPath, 'utf8'), certBefore);
  });

  it('refuses a root key that does not belong to the root certificate, or that cannot be read', async () => {
    const dataDir = join(dir.path, 'mismatch');
    await CertificateAuthority.loadOrCreate({ dataDir });
    const keyPath = join(dataDir, ROOT_KEY_FILE);
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    await writeFile(keyPath, other);
    await assert.rejects(CertificateAuthority.loadOrCreate({ dataDir }), {
      code: 'STRAIT_ERR_CA_ROOT',
      message: new RegExp(`the private key in ${keyPath} does not belong to the certificate in .*${ROOT_CERT_FILE}; restore the matching pair`),
    });
    await writeFile(keyPath, 'not a key');
    await assert.rejects(CertificateAuthority.loadOrCreate({ dataDir }), {
      code: 'STRAIT_ERR_CA_ROOT',
      message: new RegExp(`cannot read the private key in ${keyPath}: .*it must be an unencrypted PEM key`),
    });
  });

  it('rejects bad options at start-up', async () => {
    await assert.rejects(CertificateAuthority.loadOrCreate({ dataDir: join(dir.path, 'x'), trustDomain: 'Bad TD' }), {
      code: 'STRAIT_ERR_SPIFFE_ID',
    });
    await assert.rejects(CertificateAuthority.loadOrCreate({ dataDir: join(dir.path, 'x'), workloadTtlMs: 0 }), {
      code: 'STRAIT_ERR_CONFIG',
      message: 'workloadTtlMs must be a positive number of milliseconds, got 0',
    });
  });

  describe('signWorkload', () => {
    const now = Date.UTC(2031, 5, 15, 12, 0, 0);
    /** openssl checks validity at the CA's fake time. */
    const at = ['-attime', String(now / 1000)];
    let ca: CertificateAuthority;
    before(async () => {
      ca = await CertificateAuthority.loadOrCreate({ dataDir: join(dir.path, 'sign'), now: () => now });
    });

    it('issues a leaf that openssl verifies, with only the SPIFFE URI SAN and workload extensions', async () => {
      // The CSR asks for another identity: it must be ignored.
      const { csrPem } = await createKeyAndCsr({ identity: SpiffeId.of('cluster.local', 'kube-system', 'admin') });
      const { certChainPem, notAfter } = ca.signWorkload(csrPem, WEB);
      assert.equal(certChainPem.length, 2);
      assert.equal(certChainPem[1], ca.rootCertPem);
      assert.equal(notAfter.getTime(), now + DEFAULT_WORKLOAD_TTL_MS);

      const files = await writeChain(dir.path, 'own', certChainPem);
      assert.equal(openssl(['verify', ...at, '-CAfile', files.root, files.leaf]).trim(), `${files.leaf}: OK`);
      assert.match(openssl(['verify', ...at, '-purpose', 'sslclient', '-CAfile', files.root, files.leaf]), /: OK/);
      assert.match(openssl(['verify', ...at, '-purpose', 'sslserver', '-CAfile', files.root, files.leaf]), /: OK/);
      const text = openssl(['x509', '-in', files.leaf, '-noout', '-text']);
      assert.match(text, /X509v3 Subject Alternative Name: critical\n\s+URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/web\n/);
      assert.doesNotMatch(text, /kube-system/);
      assert.match(text, /Subject: *\n/);
      assert.match(text, /Basic Constraints: critical\n\s+CA:FALSE/);
      assert.match(text, /Key Usage: critical\n\s+Digital Signature, Key Encipherment/);
      assert.match(text, /Extended Key Usage: *\n\s+TLS Web Server Authentication, TLS Web Client Authentication/);
      assert.match(text, /Subject Key Identifier/);
      assert.match(text, /Authority Key Identifier/);
      assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
      assert.match(text, /Not Before: Jun 15 11:55:00 2031 GMT/); // back-dated 5 minutes
      assert.match(text, /Not After : Jun 16 12:00:00 2031 GMT/);
      assert.equal(DEFAULT_BACKDATE_MS, 5 * 60 * 1000);
      assert.equal(spiffeIdOf(certChainPem[0]!).toString(), WEB.toString());
    });

    it('gives each certificate a random 128-bit serial and honours a requested TTL', async () => {
      const { csrPem } = await createKeyAndCsr();
      const a = ca.signWorkload(csrPem, WEB, 60 * 60 * 1000);
      const b = ca.signWorkload(csrPem, WEB);
      const serialA = new X509Certificate(a.certChainPem[0]!).serialNumber;
      const serialB = new X509Certificate(b.certChainPem[0]!).serialNumber;
      assert.notEqual(serialA, serialB);
      assert.ok(serialA.length >= 30 && serialA.length <= 32, serialA);
      assert.equal(a.notAfter.getTime(), now + 60 * 60 * 1000);
    });

    it('puts the CSR\'s key into the leaf as DER even when the CSR used a BER length for it', async () => {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const spki = publicKey.export({ type: 'spki', format: 'der' }); // 30 59 ...
      const berSpki = tlv(0x30, spki.subarray(2), true); // 30 81 59 ...: the same key, non-minimal length
      const info = Buffer.concat([tlv(0x02, Buffer.from([0])), tlv(0x30, Buffer.alloc(0)), berSpki, tlv(0xa0, Buffer.alloc(0))]);
      const { certChainPem } = ca.signWorkload(handMadeCsrPem(info, privateKey), WEB);
      const leaf = new X509Certificate(certChainPem[0]!);
      assert.ok(leaf.raw.includes(spki));
      assert.ok(!leaf.raw.includes(berSpki));
      assert.ok(leaf.publicKey.export({ type: 'spki', format: 'der' }).equals(spki));
      const files = await writeChain(dir.path, 'ber', certChainPem);
      assert.match(openssl(['verify', ...at, '-CAfile', files.root, files.leaf]), /: OK/);
    });

    it('signs RSA CSRs from operators\' tools', async () => {
      const csr = join(dir.path, 'rsa-sign.csr');
      openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir.path, 'rsa-sign.key'), '-subj', '/CN=ignored', '-out', csr]);
      const { certChainPem } = ca.signWorkload(await readFile(csr, 'utf8'), WEB);
      const files = await writeChain(dir.path, 'rsa', certChainPem);
      assert.match(openssl(['verify', ...at, '-CAfile', files.root, files.leaf]), /: OK/);
      assert.doesNotMatch(openssl(['x509', '-in', files.leaf, '-noout', '-subject']), /ignored/);
    });

    it('refuses an identity from another trust domain and garbage CSRs', async () => {
      const { csrPem } = await createKeyAndCsr();
      assert.throws(() => ca.signWorkload(csrPem, SpiffeId.of('other.local', 'a', 'b')), {
        code: 'STRAIT_ERR_SPIFFE_ID',
        message: 'refusing to sign spiffe://other.local/ns/a/sa/b: its trust domain "other.local" is not this CA\'s "cluster.local"',
      });
      assert.throws(() => ca.signWorkload('garbage', WEB), { code: 'STRAIT_ERR_CSR_INVALID' });
      assert.throws(() => ca.signWorkload(ca.rootCertPem, WEB), { code: 'STRAIT_ERR_CSR_INVALID', message: /PEM label is "CERTIFICATE"/ });
      assert.throws(() => ca.signWorkload(csrPem, WEB, -1), { code: 'STRAIT_ERR_CONFIG' });
    });
  });

  it('issues a serving certificate with DNS and IP names that openssl accepts for the host', async () => {
    const ca = await CertificateAuthority.loadOrCreate({ dataDir: join(dir.path, 'serving') });
    const serving = ca.issueServing({
      dnsNames: ['strait-controller.strait-system.svc', 'localhost'],
      ips: ['127.0.0.1', '::1', '2001:db8::1'],
      identity: SpiffeId.of('cluster.local', 'strait-system', 'strait-controller'),
    });
    assert.match(serving.keyPem, /BEGIN PRIVATE KEY/);
    const files = await writeChain(dir.path, 'serving', serving.certChainPem);
    assert.match(openssl(['verify', '-purpose', 'sslserver', '-verify_hostname', 'localhost', '-CAfile', files.root, files.leaf]), /: OK/);
    assert.match(openssl(['verify', '-verify_ip', '2001:db8::1', '-CAfile', files.root, files.leaf]), /: OK/);
    const text = openssl(['x509', '-in', files.leaf, '-noout', '-text']);
    assert.match(text, /DNS:strait-controller\.strait-system\.svc, DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1, IP Address:2001:DB8:0:0:0:0:0:1, URI:spiffe:\/\/cluster\.local\/ns\/strait-system\/sa\/strait-controller/);
    assert.match(text, /Subject: O = cluster.local, CN = strait-controller.strait-system.svc/);
    assert.throws(() => ca.issueServing({ dnsNames: ['bad name'], ips: [] }), { code: 'STRAIT_ERR_CONFIG', message: /"bad name" is not a valid DNS name/ });
    assert.throws(() => ca.issueServing({ dnsNames: [], ips: ['1.2.3'] }), { code: 'STRAIT_ERR_CONFIG' });
    assert.throws(() => ca.issueServing({ dnsNames: [], ips: [] }), { code: 'STRAIT_ERR_CONFIG' });
  });
});

describe('CertificateAuthority with an operator-provided CA', () => {
  let dir: { path: string; remove: () => void };
  before(async () => {
    dir = tempDir('opca');
  });
  after(() => dir.remove());

  it('signs with an operator root (SEC1 EC key); the root is the mesh root', async () => {
    const op = await makeOperatorCa(dir.path);
    const ca = await CertificateAuthority.loadOrCreate({
      dataDir: join(dir.path, 'unused'),
      operator: { certFile: op.rootCert, keyFile: op.rootKey },
    });
    assert.equal(new X509Certificate(ca.rootCertPem).fingerprint256, new X509Certificate(await readFile(op.rootCert)).fingerprint256);
    const { csrPem } = await createKeyAndCsr();
    const { certChainPem } = ca.signWorkload(csrPem, WEB);
    assert.equal(certChainPem.length, 2);
    const leaf = join(dir.path, 'op-root-leaf.pem');
    await writeFile(leaf, certChainPem[0]!);
    assert.equal(openssl(['verify', '-CAfile', op.rootCert, leaf]).trim(), `${leaf}: OK`);
    assert.match(openssl(['x509', '-in', leaf, '-noout', '-text']), /URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/web/);
  });

  it('signs with an operator RSA intermediate and returns leaf, intermediate, root', async () => {
    const sub = join(dir.path, 'int');
    await mkdir(sub);
    const op = await makeOperatorCa(sub, { intermediate: 'rsa' });
    const ca = await CertificateAuthority.loadOrCreate({
      dataDir: join(dir.path, 'unused'),
      operator: { certFile: op.intCert!, keyFile: op.intKey!, chainFile: op.rootCert },
    });
    const { csrPem } = await createKeyAndCsr();
    const { certChainPem } = ca.signWorkload(csrPem, WEB);
    assert.equal(certChainPem.length, 3);
    assert.equal(certChainPem[2], ca.rootCertPem);
    const files = await writeChain(sub, 'int', certChainPem);
    assert.equal(openssl(['verify', '-CAfile', op.rootCert, '-untrusted', files.intermediates, files.leaf]).trim(), `${files.leaf}: OK`);
    // Without the intermediate the leaf does not verify: the chain really goes through it.
    assert.throws(() => openssl(['verify', '-CAfile', op.rootCert, files.leaf]), /unable to get local issuer certificate/);
    const text = openssl(['x509', '-in', files.leaf, '-noout', '-text']);
    assert.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
    assert.match(text, /Issuer: O = Example Corp, CN = Example Mesh Intermediate/);
    assert.equal(verifyPeer(certChainPem, ca.rootCertPem, [WEB.toString()]).toString(), WEB.toString());
  });

  it('never issues a leaf that outlives the intermediate', async () => {
    const sub = join(dir.path, 'short');
    await mkdir(sub);
    const op = await makeOperatorCa(sub, { intermediate: 'ec', intermediateDays: 1 });
    const ca = await CertificateAuthority.loadOrCreate({
      dataDir: join(dir.path, 'unused'),
      operator: { certFile: op.intCert!, keyFile: op.intKey!, chainFile: op.rootCert },
    });
    const { csrPem } = await createKeyAndCsr();
    const { notAfter } = ca.signWorkload(csrPem, WEB, 7 * 24 * 60 * 60 * 1000);
    const intNotAfter = new Date(new X509Certificate(await readFile(op.intCert!)).validTo);
    assert.equal(notAfter.getTime(), intNotAfter.getTime());
  });

  it('rejects an intermediate without its chain, a mismatched key, and a non-CA certificate', async () => {
    const sub = join(dir.path, 'bad');
    await mkdir(sub);
    const op = await makeOperatorCa(sub, { intermediate: 'ec' });
    await assert.rejects(
      CertificateAuthority.loadOrCreate({ dataDir: sub, operator: { certFile: op.intCert!, keyFile: op.intKey! } }),
      {
        code: 'STRAIT_ERR_CA_ROOT',
        message: /does not end in a self-signed root: "O=Example Corp, CN=Example Mesh Intermediate" from .* is issued by "O=Example Corp, CN=Example Root CA"; it is an intermediate, so give chainFile/,
      },
    );
    await assert.rejects(
      CertificateAuthority.loadOrCreate({ dataDir: sub, operator: { certFile: op.intCert!, keyFile: op.rootKey, chainFile: op.rootCert } }),
      { code: 'STRAIT_ERR_CA_ROOT', message: /does not belong to the certificate in .*op-int\.pem; check that the two files are a pair/ },
    );
    // A leaf certificate is not a CA.
    const leafKey = join(sub, 'leaf.key');
    const leafCert = join(sub, 'leaf.pem');
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', leafKey, '-subj', '/CN=leaf', '-addext', 'basicConstraints=critical,CA:FALSE', '-out', leafCert]);
    await assert.rejects(
      CertificateAuthority.loadOrCreate({ dataDir: sub, operator: { certFile: leafCert, keyFile: leafKey } }),
      { code: 'STRAIT_ERR_CA_ROOT', message: /is not a CA certificate \(basicConstraints CA:TRUE is missing\)/ },
    );
    await assert.rejects(
      CertificateAuthority.loadOrCreate({ dataDir: sub, operator: { certFile: join(sub, 'missing.pem'), keyFile: leafKey } }),
      { code: 'STRAIT_ERR_CA_ROOT', message: /the operator CA certificate .*missing\.pem does not exist; check the path/ },
    );
  });
});
