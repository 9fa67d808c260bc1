/** A self-signed CA and a serving certificate for the double, made with the real openssl CLI (EC P-256). */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const OPENSSL = '/usr/bin/openssl';

export interface DoubleTls {
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
}

function run(args: string[], cwd: string): void {
  try {
    execFileSync(OPENSSL, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`openssl ${args.join(' ')} failed (the Kubernetes API double needs ${OPENSSL}): ${e.stderr?.toString() ?? e.message}`);
  }
}

export function makeDoubleTls(host: string): DoubleTls {
  const dir = mkdtempSync(join(tmpdir(), 'strait-kube-double-'));
  try {
    run(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
    run(['req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=kube-apiserver-double-ca', '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', 'ca.crt'], dir);
    run(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'server.key'], dir);
    run(['req', '-new', '-key', 'server.key', '-subj', '/CN=kube-apiserver', '-out', 'server.csr'], dir);
    const san = [isIP(host) ? `IP:${host}` : `DNS:${host}`, 'DNS:localhost', 'DNS:kubernetes', 'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local'];
    writeFileSync(join(dir, 'ext.cnf'), `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${san.join(',')}\n`);
    run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'ext.cnf', '-out', 'server.crt'], dir);
    const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
    return { caCert: read('ca.crt'), caKey: read('ca.key'), cert: read('server.crt'), key: read('server.key') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A client certificate signed by the double's CA: the API server takes CN as the user and O as the groups. */
export function makeClientCert(tls: DoubleTls, user: string, groups: string[] = []): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'strait-kube-double-client-'));
  try {
    writeFileSync(join(dir, 'ca.crt'), tls.caCert);
    writeFileSync(join(dir, 'ca.key'), tls.caKey);
    run(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'client.key'], dir);
    const subj = `${groups.map((g) => `/O=${g}`).join('')}/CN=${user}`;
    run(['req', '-new', '-key', 'client.key', '-subj', subj, '-out', 'client.csr'], dir);
    writeFileSync(join(dir, 'ext.cnf'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
    run(['x509', '-req', '-in', 'client.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'ext.cnf', '-out', 'client.crt'], dir);
    return { cert: readFileSync(join(dir, 'client.crt'), 'utf8'), key: readFileSync(join(dir, 'client.key'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
