/**
 * `npm run conformance`: runs the server-role table against the HBONE server and node:http2 (same certificates,
 * client certificate required, loopback), then the client-role table against our HTTP/2 client, and prints
 * h2spec-like listings and the counts side by side.
 *
 * Arguments: --only PREFIX[,PREFIX]  (case ids, e.g. http2/5.1,connect)  --timeout MS  --quiet (counts only)
 *            --server-only | --client-only
 */
import { countResults, formatComparison, formatFailuresByArea, formatResults, runServerCases } from './runner.js';
import { makeMeshCerts, startHboneTarget, startNodeTarget, startUpstream } from './targets.js';
import { CLIENT_MODES, formatClientResults, runClientCases } from './client-runner.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const only = arg('--only')?.split(',');
  const timeoutMs = Number(arg('--timeout') ?? 1000);
  const quiet = process.argv.includes('--quiet');
  const color = process.stdout.isTTY;
  const certs = await makeMeshCerts();
  const upstream = await startUpstream();
  let failed = false;
  try {
    if (!process.argv.includes('--client-only')) {
      const hbone = await startHboneTarget(certs, upstream.port);
      const node = await startNodeTarget(certs, upstream.port);
      try {
        const runs = [];
        for (const t of [hbone.target, node.target]) {
          const results = await runServerCases(t, { timeoutMs, ...(only !== undefined ? { only } : {}) });
          runs.push({ name: t.name, results });
          if (!quiet) console.log(`${formatResults(`Server role: ${t.name}`, results, { color })}\n`);
        }
        console.log('Server role, passed/total per group:\n');
        console.log(`${formatComparison(runs)}\n`);
        for (const run of runs) console.log(`${formatFailuresByArea(`Server role, ${run.name}`, run.results)}\n`);
        failed ||= countResults(runs[0]!.results).fail > 0;
      } finally {
        await hbone.close();
        await node.close();
      }
    }
    if (!process.argv.includes('--server-only')) {
      const results = await runClientCases(certs, { timeoutMs, modes: [...CLIENT_MODES, 'node'], ...(only !== undefined ? { only } : {}) });
      console.log(formatClientResults(results, { color, quiet }));
      for (const mode of [...CLIENT_MODES, 'node'] as const) {
        console.log(`\n${formatFailuresByArea(`Client role [${mode}]`, results.filter((r) => r.mode === mode))}`);
      }
      failed ||= countResults(results.filter((r) => r.mode !== 'node')).fail > 0;
    }
  } finally {
    await upstream.close();
    await certs.cleanup();
  }
  process.exitCode = failed ? 1 : 0;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 2;
});
