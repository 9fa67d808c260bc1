/**
 * HTTP/2 conformance of HBONE in both roles, one test per case (test/conformance/ holds the tables):
 * - server role: HboneServer behind mutual TLS, driven by a raw HTTP/2 peer, every case that applies to a
 *   CONNECT-only server must pass;
 * - client role: our H2Connection (plain TCP) and HbonePool (mutual TLS) against a hostile server;
 * - reference: the same server table against node:http2, whose count is reported; only the cases that check the
 *   harness itself (a conforming server must pass every "generic" and "hpack" case) are asserted there.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { codeName } from '../../src/hbone/h2/frames.js';
import { countResults, runServerCase, runServerCases, SERVER_CASES } from '../conformance/runner.js';
import { CLIENT_CASES } from '../conformance/client-cases.js';
import { CLIENT_MODES, runClientCase } from '../conformance/client-runner.js';
import { makeMeshCerts, startHboneTarget, startNodeTarget, startUpstream, type MeshCerts, type Running } from '../conformance/targets.js';

/** Each wait for the peer under test (h2spec's default). Passing cases end as soon as the answer arrives. */
const WAIT_MS = 2000;

let certs: MeshCerts;
let upstream: Awaited<ReturnType<typeof startUpstream>>;

before(async () => {
  certs = await makeMeshCerts();
  upstream = await startUpstream();
});

after(async () => {
  await upstream.close();
  await certs.cleanup();
});

describe('HTTP/2 conformance, server role: HboneServer over mutual TLS', () => {
  let hbone: Running;
  before(async () => {
    hbone = await startHboneTarget(certs, upstream.port);
  });
  after(() => hbone.close());

  for (const c of SERVER_CASES) {
    const skip = c.connectOnly.applies ? false : `does not apply to a CONNECT-only server: ${c.connectOnly.why}`;
    it(`${c.id} ${c.description}: ${c.expect} (${c.rfc})`, { skip }, async (t) => {
      const r = await runServerCase(hbone.target, c, WAIT_MS);
      if (r.status === 'skip') {
        t.skip(r.detail);
        return;
      }
      assert.equal(r.status, 'pass', `${c.rfc}: expected ${c.expect}; got ${r.detail}`);
    });
  }
});

describe('HTTP/2 conformance, client role: H2Connection and HbonePool against a hostile server', () => {
  for (const c of CLIENT_CASES) {
    for (const mode of CLIENT_MODES) {
      const wire = c.wire.kind === 'connection-error' || c.wire.kind === 'stream-error' ? `${c.wire.kind} ${c.wire.codes.map(codeName).join(' or ')}` : c.wire.kind;
      it(`${c.id} [${mode}] ${c.description}: ${wire}, caller sees ${c.caller} (${c.rfc})`, async () => {
        const r = await runClientCase(c, mode, certs, WAIT_MS);
        assert.equal(r.status, 'pass', `${c.rfc}: ${r.detail}`);
      });
    }
  }
});

describe('HTTP/2 conformance, reference: node:http2 server with the same certificates', () => {
  let node: Running;
  before(async () => {
    node = await startNodeTarget(certs, upstream.port);
  });
  after(() => node.close());

  it('passes every generic and hpack case (the harness\'s own check) and reports its count', async (t) => {
    const results = await runServerCases(node.target, { timeoutMs: WAIT_MS, concurrency: 4 });
    const all = countResults(results);
    t.diagnostic(`node:http2 server: ${all.pass}/${all.total} passed (${all.pass + all.lenient} as h2spec counts), ${all.skip} skipped`);
    const harness = results.filter((r) => r.case.group === 'generic' || r.case.group === 'hpack');
    const broken = harness.filter((r) => r.status !== 'pass').map((r) => `${r.id}: ${r.detail}`);
    assert.deepEqual(broken, [], 'node:http2 fails cases every conforming server passes: look at the harness first');
  });
});
