import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireOrSkip } from '../helpers/netns.js';

// The capture scripts (scripts/iptables/*.sh) as the current user, root or not, without touching any iptables: the
// scripts run with a PATH holding only the few tools they use and no iptables binary, so the nat table cannot be read
// and --dry-run prints the full set with the names the backend choice falls back to (iptables, ip6tables).

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPTS_DIR = join(ROOT, 'scripts/iptables');
const SCRIPTS = ['node-setup.sh', 'node-teardown.sh', 'pod-add.sh', 'pod-del.sh'];
const TOOLS = ['sh', 'awk', 'sed', 'grep', 'tr'];

let bin = '';
let shell = '';
let work = '';

before(() => {
  work = mkdtempSync(join(tmpdir(), 'strait-ipt-'));
  bin = join(work, 'bin');
  mkdirSync(bin);
  for (const tool of TOOLS) {
    const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
    assert.ok(found.startsWith('/'), `${tool} is not on PATH`);
    symlinkSync(found, join(bin, tool));
  }
  shell = join(bin, 'sh');
});
after(() => { if (work) rmSync(work, { recursive: true, force: true }); });

interface Run { status: number | null; stdout: string; stderr: string; lines: string[] }

/** Runs a script with `sh` in an environment of only PATH=<the tools> plus `env`. */
function run(script: string, args: string[], env: Record<string, string> = {}, cwd = ROOT): Run {
  const r = spawnSync(shell, [script.includes('/') ? script : join(SCRIPTS_DIR, script), ...args], {
    cwd, encoding: 'utf8', env: { PATH: bin, ...env }, timeout: 20_000,
  });
  const stdout = r.stdout ?? '';
  return { status: r.status, stdout, stderr: r.stderr ?? '', lines: stdout.split('\n').filter((l) => l !== '') };
}

function dryRun(script: string, args: string[] = [], env: Record<string, string> = {}): string[] {
  const r = run(script, ['--dry-run', ...args], env);
  assert.equal(r.status, 0, `${script} --dry-run ${args.join(' ')} failed: ${r.stderr}`);
  assert.equal(r.stderr, '', `${script} --dry-run wrote to stderr`);
  return r.lines;
}

const v4 = (args: string): string => `iptables -w -t nat ${args}`;

/** node-setup's full set for one backend, HBONE port and mark match. */
function setupLines(ipt: string, hbonePort = 15008, mark = '0x539/0xfff'): string[] {
  return [
    '-N STRAIT_OUTBOUND', '-N STRAIT_INBOUND', '-N STRAIT_PREROUTING', '-N STRAIT_OUTPUT',
    `-A STRAIT_PREROUTING -m mark --mark ${mark} -j RETURN`,
    '-A STRAIT_PREROUTING -j STRAIT_OUTBOUND',
    '-A STRAIT_PREROUTING -j STRAIT_INBOUND',
    `-A STRAIT_OUTPUT -p tcp -m tcp --dport ${hbonePort} -j STRAIT_INBOUND`,
    `-A STRAIT_OUTPUT -m mark --mark ${mark} -j RETURN`,
    '-A STRAIT_OUTPUT -j STRAIT_INBOUND',
    '-I PREROUTING 1 -j STRAIT_PREROUTING',
    '-I OUTPUT 1 -j STRAIT_OUTPUT',
  ].map((a) => `${ipt} -w -t nat ${a}`);
}

/** node-setup's nftables table for the Service-VIP capture (IPv4) and its policy routing, as a dry run prints them. */
function nftSetupLines(o: { inbound?: number; mark?: string; mask?: string; keep?: string; tproxy?: string; table?: number } = {}): string[] {
  const { inbound = 15006, mark = '0x539', mask = '0xfff', keep = '0xfffff000', tproxy = '0x111', table = 133 } = o;
  const newConn = `meta l4proto tcp ct direction original ct state new ct status dnat ip daddr @pods ct mark set ct mark and ${keep} or ${tproxy}`;
  const marked = `meta l4proto tcp ct direction original ct mark and ${mask} == ${tproxy} meta mark set meta mark and ${keep} or ${tproxy}`;
  return [
    'add table ip strait',
    'add set ip strait pods { type ipv4_addr; }',
    'add chain ip strait prerouting { type filter hook prerouting priority -99; policy accept; }',
    'add chain ip strait output { type route hook output priority -99; policy accept; }',
    'flush chain ip strait prerouting',
    'flush chain ip strait output',
    `add rule ip strait prerouting ${newConn}`,
    `add rule ip strait prerouting ${marked} tproxy to :${inbound} accept`,
    `add rule ip strait output meta mark and ${mask} == ${mark} return`,
    `add rule ip strait output ${newConn}`,
    `add rule ip strait output ${marked}`,
  ].map((c) => `nft '${c}'`).concat([
    `ip -4 rule add fwmark ${tproxy}/${mask} lookup ${table}`,
    `ip -4 route replace local 0.0.0.0/0 dev lo table ${table}`,
  ]);
}

const nftPod = (action: 'add' | 'delete', ip: string): string => `nft '${action} element ip strait pods { ${ip} }'`;

function podLines(action: '-A' | '-D', ipt: string, ip: string, ports = { outbound: 15001, inbound: 15006, hbone: 15008 }): string[] {
  const tag = `-m comment --comment strait-pod=${ip}`;
  return [
    `${action} STRAIT_OUTBOUND -s ${ip} -p tcp ${tag} -j REDIRECT --to-ports ${ports.outbound}`,
    `${action} STRAIT_INBOUND -d ${ip} -p tcp -m tcp --dport ${ports.hbone} ${tag} -j REDIRECT --to-ports ${ports.hbone}`,
    `${action} STRAIT_INBOUND -d ${ip} -p tcp ${tag} -j REDIRECT --to-ports ${ports.inbound}`,
  ].map((a) => `${ipt} -w -t nat ${a}`);
}

describe('capture scripts: shellcheck', () => {
  it('finds nothing to report in any script of scripts/iptables under shellcheck -s sh', (t) => {
    const probe = spawnSync('shellcheck', ['--version'], { encoding: 'utf8' });
    if (!requireOrSkip(t, probe.error ? 'shellcheck is not installed: apt-get install -y shellcheck' : undefined)) return;
    const files = readdirSync(SCRIPTS_DIR).filter((f) => f.endsWith('.sh')).sort();
    assert.deepEqual(files, ['lib.sh', 'pod-list.sh', ...SCRIPTS].sort());
    const r = spawnSync('shellcheck', ['-s', 'sh', ...files.map((f) => join(SCRIPTS_DIR, f))], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, `shellcheck -s sh reported:\n${r.stdout}${r.stderr}`);
    assert.equal(r.stdout, '');
  });
});

describe('capture scripts: --dry-run without a readable nat table', () => {
  it('node-setup.sh prints the whole node set-up, the same-node HBONE jump first in STRAIT_OUTPUT', () => {
    const lines = dryRun('node-setup.sh');
    assert.deepEqual(lines, [...setupLines('iptables'), ...nftSetupLines()]);
    const output = lines.filter((l) => l.includes('-A STRAIT_OUTPUT '));
    assert.deepEqual(output, [
      v4('-A STRAIT_OUTPUT -p tcp -m tcp --dport 15008 -j STRAIT_INBOUND'),
      v4('-A STRAIT_OUTPUT -m mark --mark 0x539/0xfff -j RETURN'),
      v4('-A STRAIT_OUTPUT -j STRAIT_INBOUND'),
    ]);
  });

  it('node-setup.sh takes the HBONE port, mark and mask from the environment, and sets up IPv6 when STRAIT_IP6TABLES is set', () => {
    const env = { STRAIT_HBONE_PORT: '15108', STRAIT_CAPTURE_MARK: '1337', STRAIT_CAPTURE_MASK: '0xFFFF' };
    assert.deepEqual(dryRun('node-setup.sh', [], env), [...setupLines('iptables', 15108, '0x539/0xffff'), ...nftSetupLines({ mask: '0xffff', keep: '0xffff0000' })]);
    // A full mask is left out, as iptables -S prints it (the text is what a later run compares with).
    assert.deepEqual(dryRun('node-setup.sh', [], { STRAIT_CAPTURE_MARK: '0x10', STRAIT_CAPTURE_MASK: '0xffffffff' }),
      [...setupLines('iptables', 15008, '0x10'), ...nftSetupLines({ mark: '0x10', mask: '0xffffffff', keep: '0x0' })]);
    assert.deepEqual(dryRun('node-setup.sh', [], { STRAIT_IP6TABLES: 'ip6tables' }), [...setupLines('iptables'), ...nftSetupLines(), ...setupLines('ip6tables')]);
    assert.deepEqual(dryRun('node-setup.sh', [], { STRAIT_INBOUND_PORT: '16006', STRAIT_TPROXY_MARK: '0x222', STRAIT_ROUTE_TABLE: '200' }),
      [...setupLines('iptables'), ...nftSetupLines({ inbound: 16006, tproxy: '0x222', table: 200 })]);
  });

  it('STRAIT_IPTABLES names the binary in every printed command', () => {
    const name = 'strait-test-no-such-iptables';
    assert.deepEqual(dryRun('node-setup.sh', [], { STRAIT_IPTABLES: name }), [...setupLines(name), ...nftSetupLines()]);
    assert.deepEqual(dryRun('pod-add.sh', ['198.18.0.2'], { STRAIT_IPTABLES: name }), [...podLines('-A', name, '198.18.0.2'), nftPod('add', '198.18.0.2')]);
  });

  it('pod-add.sh prints the three capture rules of each address, IPv6 ones for ip6tables in lower case', () => {
    assert.deepEqual(dryRun('pod-add.sh', ['198.18.0.2']), [...podLines('-A', 'iptables', '198.18.0.2'), nftPod('add', '198.18.0.2')]);
    assert.deepEqual(dryRun('pod-add.sh', ['198.18.0.2', '198.18.3.40', '2001:DB8::7']), [
      ...podLines('-A', 'iptables', '198.18.0.2'), nftPod('add', '198.18.0.2'),
      ...podLines('-A', 'iptables', '198.18.3.40'), nftPod('add', '198.18.3.40'),
      ...podLines('-A', 'ip6tables', '2001:db8::7'),
    ]);
    const ports = { outbound: 16001, inbound: 16006, hbone: 16008 };
    const env = { STRAIT_OUTBOUND_PORT: '16001', STRAIT_INBOUND_PORT: '16006', STRAIT_HBONE_PORT: '16008' };
    assert.deepEqual(dryRun('pod-add.sh', ['198.18.0.2'], env), [...podLines('-A', 'iptables', '198.18.0.2', ports), nftPod('add', '198.18.0.2')]);
  });

  it('pod-del.sh prints the deletion of the rules pod-add.sh makes, by rule, the set element first', () => {
    assert.deepEqual(dryRun('pod-del.sh', ['198.18.0.2', '::ffff:198.18.0.9']), [
      nftPod('delete', '198.18.0.2'), ...podLines('-D', 'iptables', '198.18.0.2'),
      ...podLines('-D', 'ip6tables', '::ffff:198.18.0.9'),
    ]);
  });

  it('node-teardown.sh prints the removal of both jumps, all four chains, the nftables table and its policy routing', () => {
    const chains = ['STRAIT_PREROUTING', 'STRAIT_OUTPUT', 'STRAIT_OUTBOUND', 'STRAIT_INBOUND'];
    assert.deepEqual(dryRun('node-teardown.sh'), [
      v4('-D PREROUTING -j STRAIT_PREROUTING'),
      v4('-D OUTPUT -j STRAIT_OUTPUT'),
      ...chains.map((c) => v4(`-F ${c}`)),
      ...chains.map((c) => v4(`-X ${c}`)),
      "nft 'delete table ip strait'",
      'ip -4 rule del fwmark 0x111/0xfff lookup 133',
      'ip -4 route flush table 133',
    ]);
  });

  it('finds lib.sh next to the script whatever the working directory, and says so when it is missing', () => {
    const expected = [...podLines('-A', 'iptables', '198.18.0.2'), nftPod('add', '198.18.0.2')];
    assert.deepEqual(run(join(SCRIPTS_DIR, 'pod-add.sh'), ['--dry-run', '198.18.0.2'], {}, '/').lines, expected);
    assert.deepEqual(run('pod-add.sh', ['--dry-run', '198.18.0.2'], {}, SCRIPTS_DIR).lines, expected);
    const alone = join(work, 'alone');
    mkdirSync(alone, { recursive: true });
    copyFileSync(join(SCRIPTS_DIR, 'pod-add.sh'), join(alone, 'pod-add.sh'));
    const r = run(join(alone, 'pod-add.sh'), ['--dry-run', '198.18.0.2']);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /lib\.sh not found: keep the scripts of scripts\/iptables together/);
  });
});

describe('capture scripts: refusals', () => {
  const invalid = [
    '198.18.0.256', '198.18.0.0/24', '198.18.0', '198.18.0.2.', '.198.18.0.2', '198.018.0.2', '', 'pod-a', '198.18.0.2;reboot',
    '198.18.0.2 ', '--dry-run', '2001:db8::/64', ':::1', '2001:db8::1::2', '1:2:3:4:5:6:7:8:9', '12345::1', '::ffff:1.2.3.256', 'fe80::1%eth0',
  ];

  for (const script of ['pod-add.sh', 'pod-del.sh']) {
    it(`${script} refuses anything but single addresses with exit 1 and a message, before printing or changing anything`, () => {
      for (const bad of invalid) {
        for (const args of [['--dry-run', '198.18.0.2', bad], ['198.18.0.2', bad]]) {
          const r = run(script, args);
          assert.equal(r.status, 1, `${script} ${JSON.stringify(args)}: status ${r.status}, stdout ${r.stdout}`);
          assert.equal(r.stdout, '', `${script} ${JSON.stringify(args)} printed commands`);
          assert.equal(r.stderr, `strait ${script.replace('.sh', '')}: invalid pod address '${bad}': expected one IPv4 or IPv6 address (no prefix length)\n`);
        }
      }
      const none = run(script, ['--dry-run']);
      assert.equal(none.status, 1);
      assert.match(none.stderr, new RegExp(`usage: ${script.replace('.', '\\.')} \\[--dry-run\\] POD_IP \\[POD_IP\\.\\.\\.\\]`));
    });
  }

  it('refuses bad ports, marks and arguments, naming the variable', () => {
    const cases: [string, string[], Record<string, string>, RegExp][] = [
      ['pod-add.sh', ['198.18.0.2'], { STRAIT_HBONE_PORT: '15o08' }, /invalid port '15o08' in STRAIT_HBONE_PORT: expected a number from 1 to 65535/],
      ['pod-add.sh', ['198.18.0.2'], { STRAIT_INBOUND_PORT: '70000' }, /invalid port '70000' in STRAIT_INBOUND_PORT/],
      ['pod-del.sh', ['198.18.0.2'], { STRAIT_OUTBOUND_PORT: '0' }, /invalid port '0' in STRAIT_OUTBOUND_PORT/],
      ['node-setup.sh', [], { STRAIT_HBONE_PORT: '-1' }, /invalid port '-1' in STRAIT_HBONE_PORT/],
      ['node-setup.sh', [], { STRAIT_CAPTURE_MARK: '0xz' }, /invalid STRAIT_CAPTURE_MARK '0xz': expected a 32-bit number/],
      ['node-setup.sh', [], { STRAIT_CAPTURE_MASK: '4294967296' }, /invalid STRAIT_CAPTURE_MASK '4294967296'/],
      ['node-setup.sh', ['--force'], {}, /usage: node-setup\.sh \[--dry-run\]/],
      ['node-setup.sh', [], { STRAIT_TPROXY_MARK: '0x1000' }, /invalid STRAIT_TPROXY_MARK 0x1000: it must be non-zero and inside STRAIT_CAPTURE_MASK 0xfff/],
      ['node-setup.sh', [], { STRAIT_TPROXY_MARK: '0x539' }, /STRAIT_TPROXY_MARK 0x539 equals STRAIT_CAPTURE_MARK 0x539 under the mask 0xfff: give them different values/],
      ['pod-add.sh', ['198.18.0.2'], { STRAIT_ROUTE_TABLE: '253' }, /invalid STRAIT_ROUTE_TABLE '253': expected a routing table number from 1 to 252/],
      ['node-teardown.sh', ['now'], {}, /usage: node-teardown\.sh \[--dry-run\]/],
    ];
    for (const [script, args, env, message] of cases) {
      const r = run(script, ['--dry-run', ...args], env);
      assert.equal(r.status, 1, `${script} ${args.join(' ')} ${JSON.stringify(env)}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, message);
    }
  });

  it('without --dry-run and without iptables every script fails with exit 1 and the command that installs it', () => {
    for (const script of [...SCRIPTS, 'pod-list.sh']) {
      const args = script.startsWith('pod-') && script !== 'pod-list.sh' ? ['198.18.0.2'] : [];
      const r = run(script, args);
      assert.equal(r.status, 1, script);
      assert.equal(r.stdout, '', script);
      assert.equal(r.stderr, `strait ${script.replace('.sh', '')}: iptables not found: apt-get install -y iptables\n`);
      const forced = run(script, args, { STRAIT_IPTABLES: 'strait-test-no-such-iptables' });
      assert.equal(forced.status, 1, script);
      assert.match(forced.stderr, /strait-test-no-such-iptables not found \(STRAIT_IPTABLES=strait-test-no-such-iptables\): apt-get install -y iptables, or set STRAIT_IPTABLES to an iptables binary/);
    }
    const v6 = run('pod-add.sh', ['2001:db8::7'], { STRAIT_IP6TABLES: 'strait-test-no-such-ip6tables' });
    assert.equal(v6.status, 1);
    assert.match(v6.stderr, /\(STRAIT_IP6TABLES=strait-test-no-such-ip6tables\): apt-get install -y iptables, or set STRAIT_IP6TABLES/);
  });
});
