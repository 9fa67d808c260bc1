// Runs the HTTP/2 conformance tables (compiled to dist/test/conformance/) and prints h2spec-like listings:
// the server table against the HBONE server and node:http2 side by side, then the client table against our
// HTTP/2 client (H2Connection, HbonePool) with node:http2's client as the reference.
// Usage: npm run conformance [-- --only http2/5.1,connect] [--timeout MS] [--quiet] [--server-only|--client-only]
// Exit status: 0 when every HBONE case passes, 1 when some fail, 2 when the run itself broke.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const main = join(root, 'dist/test/conformance/main.js');
if (!existsSync(main)) {
  console.error(`h2-conformance: ${main} is missing; run \`npm run build\` first`);
  process.exit(2);
}
const r = spawnSync(process.execPath, [main, ...process.argv.slice(2)], { stdio: 'inherit', cwd: root });
process.exit(r.status ?? 2);
