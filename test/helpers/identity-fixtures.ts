/** Shared fixtures for the identity unit tests: the real openssl CLI, temp dirs, a fake clock. */
import { execFileSync } from 'node:child_process';
import { sign, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const OPENSSL = '/usr/bin/openssl';

/**
 * Runs the real openssl and returns stdout; throws with stderr when it exits non-zero. A missing openssl is a
 * failure, not a skip: these tests are the independent check of our DER.
 */
export function openssl(args: string[], cwd?: string): string {
  if (!existsSync(OPENSSL)) throw new Error(`${OPENSSL} is not installed; the identity tests need the real openssl`);
  try {
    return execFileSync(OPENSSL, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr ?? ''}${e.stdout ?? ''}${e.message}`);
  }
}

export interface OperatorCaFixture {
  rootCert: string;
  rootKey: string;
  /** Present when `intermediate` was asked for. */
  intCert?: string;
  intKey?: string;
}

/**
 * An operator's CA made with the openssl CLI (independent of our code): an EC root with a SEC1 key and,
 * optionally, an intermediate (RSA 2048 or EC) with pathlen:0 signed by it.
 */
export async function makeOperatorCa(
  dir: string,
  opts: { intermediate?: 'rsa' | 'ec'; intermediateDays?: number } = {},
): Promise<OperatorCaFixture> {
  const rootKey = join(dir, 'op-root.key');
  const rootCert = join(dir, 'op-root.pem');
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', rootKey]);
  openssl([
    'req', '-x509', '-new', '-key', rootKey, '-subj', '/O=Example Corp/CN=Example Root CA', '-days', '3650',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-out', rootCert,
  ]);
  if (opts.intermediate === undefined) return { rootCert, rootKey };
  const intKey = join(dir, 'op-int.key');
  const intCsr = join(dir, 'op-int.csr');
  const intCert = join(dir, 'op-int.pem');
  const ext = join(dir, 'op-int.ext');
  if (opts.intermediate === 'rsa') {
    openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', intKey]);
  } else {
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', intKey]);
  }
  openssl(['req', '-new', '-key', intKey, '-subj', '/O=Example Corp/CN=Example Mesh Intermediate', '-out', intCsr]);
  await writeFile(
    ext,
    [
      'basicConstraints=critical,CA:TRUE,pathlen:0',
      'keyUsage=critical,keyCertSign,cRLSign',
      'subjectKeyIdentifier=hash',
      'authorityKeyIdentifier=keyid',
      '',
    ].join('\n'),
  );
  openssl([
    'x509', '-req', '-in', intCsr, '-CA', rootCert, '-CAkey', rootKey, '-CAcreateserial',
    '-days', String(opts.intermediateDays ?? 365), '-sha256', '-extfile', ext, '-out', intCert,
  ], dir);
  return { rootCert, rootKey, intCert, intKey };
}

/** Lets pending promise callbacks and I/O callbacks run. */
export async function flushAsync(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

interface FakeTimer {
  id: number;
  due: number;
  fn: () => void;
}

/** A manual clock with setTimer/clearTimer for CertStore; advance() fires due timers in order. */
export class FakeClock {
  #now: number;
  #nextId = 1;
  readonly timers: FakeTimer[] = [];

  constructor(startMs: number) {
    this.#now = startMs;
  }

  now = (): number => this.#now;

  setTimer = (fn: () => void, ms: number): number => {
    const id = this.#nextId++;
    this.timers.push({ id, due: this.#now + ms, fn });
    return id;
  };

  clearTimer = (handle: unknown): void => {
    const i = this.timers.findIndex((t) => t.id === handle);
    if (i >= 0) this.timers.splice(i, 1);
  };

  /** When the next timer is due, or undefined when none is pending. */
  nextDue(): number | undefined {
    return this.timers.reduce<number | undefined>((min, t) => (min === undefined || t.due < min ? t.due : min), undefined);
  }

  /** Moves time forward by `ms`, firing each timer at its due time and letting async work settle after each. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      await flushAsync();
      const due = this.nextDue();
      if (due === undefined || due > target) break;
      const i = this.timers.findIndex((t) => t.due === due);
      const [timer] = this.timers.splice(i, 1);
      this.#now = Math.max(this.#now, due);
      timer!.fn();
    }
    this.#now = target;
    await flushAsync();
  }

  /** Moves time forward without firing timers, like a process that was suspended. */
  jump(ms: number): void {
    this.#now += ms;
  }

  /** Moves to an absolute time. */
  async advanceTo(ms: number): Promise<void> {
    await this.advance(ms - this.#now);
  }
}

/** A DER tag-length-value; `longLength` forces the long length form (BER, not DER) for lengths < 128. */
export function tlv(tag: number, content: Buffer, longLength = false): Buffer {
  const n = content.length;
  let header: number[];
  if (n < 0x80 && !longLength) header = [tag, n];
  else if (n < 0x100) header = [tag, 0x81, n];
  else header = [tag, 0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from(header), content]);
}

/**
 * A PKCS#10 request assembled by hand from a CertificationRequestInfo body (whatever goes inside its SEQUENCE)
 * and correctly self-signed with `key` (ecdsa-with-SHA256), for requests our builder would never make.
 */
export function handMadeCsrPem(infoBody: Buffer, key: KeyObject): string {
  const info = tlv(0x30, infoBody);
  const algorithm = Buffer.from('300a06082a8648ce3d040302', 'hex'); // ecdsa-with-SHA256
  const signature = tlv(0x03, Buffer.concat([Buffer.from([0]), sign('sha256', info, key)]));
  const der = tlv(0x30, Buffer.concat([info, algorithm, signature]));
  return `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE REQUEST-----\n`;
}
