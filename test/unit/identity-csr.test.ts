import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SpiffeId, createKeyAndCsr, parseCsr } from '../../src/identity/index.js';
import { generateKeyPairSync } from 'node:crypto';
import { handMadeCsrPem, openssl, tlv } from '../helpers/identity-fixtures.js';
import { tempDir } from '../helpers/temp-dir.js';

function pemToDer(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

function readFileSyncText(file: string): string {
  return readFileSync(file, 'utf8');
}

function derToPem(label: string, der: Buffer): string {
  return `-----BEGIN ${label}-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END ${label}-----\n`;
}

describe('createKeyAndCsr / parseCsr', () => {
  let dir: { path: string; remove: () => void };
  before(async () => {
    dir = tempDir('csr');
  });
  after(() => dir.remove());

  it('makes an EC P-256 PKCS#8 key and a CSR that openssl verifies', async () => {
    const { keyPem, csrPem } = await createKeyAndCsr();
    assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    const file = join(dir.path, 'plain.csr');
    await writeFile(file, csrPem);
    const text = openssl(['req', '-in', file, '-noout', '-verify', '-text']);
    assert.match(text, /NIST CURVE: P-256/);
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
    const parsed = parseCsr(csrPem);
    assert.equal(parsed.publicKey.asymmetricKeyType, 'ec');
    assert.equal(parsed.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  });

  it('puts a requested SPIFFE id in the CSR as a URI SAN', async () => {
    const { csrPem } = await createKeyAndCsr({ identity: SpiffeId.of('cluster.local', 'a', 'b') });
    const file = join(dir.path, 'san.csr');
    await writeFile(file, csrPem);
    assert.match(openssl(['req', '-in', file, '-noout', '-verify', '-text']), /URI:spiffe:\/\/cluster\.local\/ns\/a\/sa\/b/);
  });

  it('rejects garbage, non-PEM text and a wrong PEM label', async () => {
    assert.throws(() => parseCsr(''), { code: 'STRAIT_ERR_CSR_INVALID', message: 'certificate signing request rejected: it is empty' });
    assert.throws(() => parseCsr('hello world'), {
      code: 'STRAIT_ERR_CSR_INVALID',
      message: 'certificate signing request rejected: it is not PEM (expected a "-----BEGIN CERTIFICATE REQUEST-----" block)',
    });
    const { keyPem } = await createKeyAndCsr();
    assert.throws(() => parseCsr(keyPem), {
      code: 'STRAIT_ERR_CSR_INVALID',
      message: 'certificate signing request rejected: the PEM label is "PRIVATE KEY" but "CERTIFICATE REQUEST" was expected',
    });
    assert.throws(() => parseCsr(derToPem('CERTIFICATE REQUEST', Buffer.from('not der at all'))), {
      code: 'STRAIT_ERR_CSR_INVALID',
      message: /it is not a DER PKCS#10 request/,
    });
    assert.throws(() => parseCsr('-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n'), {
      code: 'STRAIT_ERR_CSR_INVALID',
      message: /invalid base64/,
    });
  });

  it('rejects a CSR whose signed content was altered', async () => {
    const { csrPem } = await createKeyAndCsr({ identity: SpiffeId.of('cluster.local', 'evil', 'sa') });
    const der = pemToDer(csrPem);
    const at = der.indexOf('ns/evil');
    assert.ok(at > 0);
    der[at + 3] = 'd'.charCodeAt(0); // ns/dvil: same length, still valid DER
    assert.throws(() => parseCsr(derToPem('CERTIFICATE REQUEST', der)), {
      code: 'STRAIT_ERR_CSR_INVALID',
      message: 'certificate signing request rejected: its signature does not verify (the request was altered or signed with another key)',
    });
  });

  it('rejects a correctly self-signed request whose nested DER does not fit, or whose version is not v1', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    const v1 = tlv(0x02, Buffer.from([0]));
    const emptyName = tlv(0x30, Buffer.alloc(0));
    const noAttributes = tlv(0xa0, Buffer.alloc(0));
    assert.ok(parseCsr(handMadeCsrPem(Buffer.concat([v1, emptyName, spki, noAttributes]), privateKey)).spkiDer.equals(spki));
    // [0] holds a SEQUENCE that claims 5 bytes but has 3: signed, yet not DER.
    const brokenAttributes = Buffer.from([0xa0, 0x05, 0x30, 0x05, 0x06, 0x01, 0x00]);
    assert.throws(() => parseCsr(handMadeCsrPem(Buffer.concat([v1, emptyName, spki, brokenAttributes]), privateKey)), {
      code: 'STRAIT_ERR_CSR_INVALID',
      message: /^certificate signing request rejected: it is not a DER PKCS#10 request \(/,
    });
    assert.throws(() => parseCsr(handMadeCsrPem(Buffer.concat([tlv(0x02, Buffer.from([1])), emptyName, spki, noAttributes]), privateKey)), {
      code: 'STRAIT_ERR_CSR_INVALID',
      message: 'certificate signing request rejected: the version is not v1 (0)',
    });
  });

  it('accepts RSA 2048 (sha256WithRSAEncryption) and EC P-384 CSRs made by openssl', async () => {
    const rsa = join(dir.path, 'rsa.csr');
    openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir.path, 'rsa.key'), '-subj', '/CN=ops', '-sha256', '-out', rsa]);
    const rsaKey = parseCsr(await readFile(rsa, 'utf8')).publicKey;
    assert.equal(rsaKey.asymmetricKeyType, 'rsa');

    const p384 = join(dir.path, 'p384.csr');
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-nodes', '-keyout', join(dir.path, 'p384.key'), '-subj', '/CN=ops', '-sha384', '-out', p384]);
    assert.equal(parseCsr(await readFile(p384, 'utf8')).publicKey.asymmetricKeyDetails?.namedCurve, 'secp384r1');
  });

  it('rejects unsupported key types, small RSA keys and weak signature algorithms', async () => {
    const ed = join(dir.path, 'ed.csr');
    openssl(['req', '-new', '-newkey', 'ed25519', '-nodes', '-keyout', join(dir.path, 'ed.key'), '-subj', '/CN=x', '-out', ed]);
    assert.throws(() => parseCsr(readFileSyncText(ed)), {
      code: 'STRAIT_ERR_CSR_INVALID',
      message:
        'certificate signing request rejected: its public key is not usable: unsupported public key algorithm 1.3.101.112 (use EC P-256, EC P-384 or RSA >= 2048)',
    });

    const small = join(dir.path, 'small.csr');
    openssl(['req', '-new', '-newkey', 'rsa:1024', '-nodes', '-keyout', join(dir.path, 'small.key'), '-subj', '/CN=x', '-out', small]);
    assert.throws(() => parseCsr(readFileSyncText(small)), { message: /RSA key of 1024 bits is too small \(use >= 2048\)/ });

    const p521 = join(dir.path, 'p521.csr');
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-521', '-nodes', '-keyout', join(dir.path, 'p521.key'), '-subj', '/CN=x', '-out', p521]);
    assert.throws(() => parseCsr(readFileSyncText(p521)), { message: /unsupported EC curve 1\.3\.132\.0\.35 \(use P-256 or P-384\)/ });

    const sha1 = join(dir.path, 'sha1.csr');
    openssl(['req', '-new', '-key', join(dir.path, 'rsa.key'), '-subj', '/CN=x', '-sha1', '-out', sha1]);
    assert.throws(() => parseCsr(readFileSyncText(sha1)), {
      message:
        'certificate signing request rejected: unsupported signature algorithm 1.2.840.113549.1.1.5 (use ecdsa-with-SHA256/SHA384 or sha256WithRSAEncryption)',
    });
  });
});
