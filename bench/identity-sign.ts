/**
 * Workload certificate signing rate of the CA on one core: CertificateAuthority.signWorkload over distinct
 * P-256 CSRs (each call parses the CSR, checks its self-signature, builds and signs a leaf).
 * Usage: node dist/bench/identity-sign.js [seconds-per-round=2] [rounds=5]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority, SpiffeId, createKeyAndCsr } from '../src/identity/index.js';

const seconds = Number(process.argv[2] ?? 2);
const rounds = Number(process.argv[3] ?? 5);
const DISTINCT_CSRS = 500;

const dir = await mkdtemp(join(tmpdir(), 'strait-bench-'));
try {
  const ca = await CertificateAuthority.loadOrCreate({ dataDir: dir });
  const csrs = await Promise.all(Array.from({ length: DISTINCT_CSRS }, () => createKeyAndCsr().then((k) => k.csrPem)));
  const ids = Array.from({ length: 50 }, (_, i) => SpiffeId.of('cluster.local', `ns-${i % 5}`, `sa-${i}`));
  for (let i = 0; i < 1000; i++) ca.signWorkload(csrs[i % DISTINCT_CSRS]!, ids[i % ids.length]!); // warm-up
  const rates: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let n = 0;
    const start = performance.now();
    const deadline = start + seconds * 1000;
    while (performance.now() < deadline) {
      for (let j = 0; j < 100; j++, n++) ca.signWorkload(csrs[n % DISTINCT_CSRS]!, ids[n % ids.length]!);
    }
    rates.push((n / (performance.now() - start)) * 1000);
  }
  rates.sort((a, b) => a - b);
  const median = rates[Math.floor(rates.length / 2)]!;
  console.log(
    JSON.stringify({
      bench: 'identity-sign',
      signsPerSecondMedian: Math.round(median),
      microsecondsPerSign: Number((1e6 / median).toFixed(1)),
      rounds: rates.map(Math.round),
      node: process.version,
      openssl: process.versions.openssl,
    }),
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
