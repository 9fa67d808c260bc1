import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_REASON_CHARS,
  formatAuthority,
  formatForwarded,
  parseAuthority,
  parseForwardedFor,
  sanitizeReason,
} from '../../src/hbone/wire.js';

describe('HBONE :authority', () => {
  it('accepts ip:port and [ipv6]:port', () => {
    assert.deepEqual(parseAuthority('10.0.0.5:8080'), { host: '10.0.0.5', port: 8080 });
    assert.deepEqual(parseAuthority('[fd00::5]:80'), { host: 'fd00::5', port: 80 });
    assert.deepEqual(parseAuthority('[::ffff:10.0.0.1]:443'), { host: '::ffff:10.0.0.1', port: 443 });
    assert.deepEqual(parseAuthority('1.2.3.4:65535'), { host: '1.2.3.4', port: 65535 });
  });

  it('rejects host names, bad addresses, missing or out-of-range ports', () => {
    for (const bad of [
      '', 'web:80', 'web.shop.svc.cluster.local:80', '10.0.0.5', '10.0.0.5:', '10.0.0.5:0', '10.0.0.5:65536',
      '10.0.0.5:123456', '256.0.0.1:80', '10.0.0:80', 'fd00::5:80', '[fd00::5]', '[10.0.0.5]:80', '[fd00::zz]:80',
      '[fe80::1%eth0]:80', ' 10.0.0.5:80', '10.0.0.5:80/x', '10.0.0.5:-1',
    ]) {
      assert.equal(parseAuthority(bad), undefined, `"${bad}" should be rejected`);
    }
  });

  it('formats IPv6 targets with brackets', () => {
    assert.equal(formatAuthority('10.0.0.5', 80), '10.0.0.5:80');
    assert.equal(formatAuthority('fd00::5', 80), '[fd00::5]:80');
  });
});

describe('HBONE forwarded header', () => {
  it('formats the source address as Istio does (IPv6 quoted with brackets)', () => {
    assert.equal(formatForwarded('10.0.0.1'), 'for="10.0.0.1"');
    assert.equal(formatForwarded('fd00::1'), 'for="[fd00::1]"');
  });

  it('reads the first element\'s for= address, bare', () => {
    assert.equal(parseForwardedFor('for="10.0.0.1"'), '10.0.0.1');
    assert.equal(parseForwardedFor('for=10.0.0.1'), '10.0.0.1');
    assert.equal(parseForwardedFor('for="[fd00::1]"'), 'fd00::1');
    assert.equal(parseForwardedFor('for="[fd00::1]:4711"'), 'fd00::1');
    assert.equal(parseForwardedFor('for="10.0.0.1:4711"'), '10.0.0.1');
    assert.equal(parseForwardedFor('proto=http;For="10.0.0.2";by=10.0.0.9'), '10.0.0.2');
    assert.equal(parseForwardedFor('for=10.0.0.3, for=10.0.0.4'), '10.0.0.3');
    assert.equal(parseForwardedFor(['for=10.0.0.5', 'for=10.0.0.6']), '10.0.0.5');
  });

  it('gives undefined when there is no usable address', () => {
    for (const v of [undefined, '', 'by=10.0.0.1', 'for=unknown', 'for="_hidden"', 'for="[10.0.0.1]"', 'for=web']) {
      assert.equal(parseForwardedFor(v), undefined, `${String(v)}`);
    }
  });
});

describe('HBONE refusal reason', () => {
  it('keeps printable ASCII, replaces the rest and cuts long reasons', () => {
    assert.equal(sanitizeReason('denied by policy x'), 'denied by policy x');
    assert.equal(sanitizeReason('bad\r\nheader\tinjection'), 'bad  header injection');
    assert.equal(sanitizeReason('naïve'), 'na ve');
    const long = sanitizeReason('x'.repeat(5000));
    assert.equal(long.length, MAX_REASON_CHARS);
    assert.ok(long.endsWith('...'));
  });
});
