import assert from 'node:assert/strict';
import { cidrContains, formatCidr, formatIpv4, ipv4ToInt, parseCidr, parseIpv4, prefixMask } from './ipv4.js';

describe('IPv4 arithmetic', () => {
  it('gives every address one spelling and round-trips it', () => {
    assert.equal(parseIpv4('10.1.2.3'), 0x0a010203);
    assert.equal(formatIpv4(0xffffffff), '255.255.255.255');
    for (const bad of ['10.01.2.3', '256.0.0.1', '1.2.3', '1.2.3.4 ', '1.2.3.4\n', '']) assert.equal(parseIpv4(bad), undefined, JSON.stringify(bad));
    assert.throws(() => ipv4ToInt('10.0.0.x'), (e: unknown) => e instanceof RangeError && e.message === 'Invalid IPv4 address "10.0.0.x"');
  });

  it('parses prefixes by their network address only, and tells containment', () => {
    assert.deepEqual(parseCidr('10.96.0.0/16'), { addr: 0x0a600000, bits: 16 });
    assert.equal(parseCidr('10.96.0.1/16'), '"10.96.0.1/16" has host bits set (network is 10.96.0.0/16)');
    assert.equal(parseCidr('10.0.0.0/33'), '"10.0.0.0/33" is not an IPv4 CIDR (a.b.c.d/0-32)');
    assert.equal(prefixMask(0), 0);
    assert.equal(prefixMask(24), 0xffffff00);
    const net = parseCidr('10.0.0.0/8') as { addr: number; bits: number };
    assert.equal(cidrContains(net, parseCidr('10.9.0.0/16') as typeof net), true);
    assert.equal(cidrContains(parseCidr('10.9.0.0/16') as typeof net, net), false);
    assert.equal(formatCidr(net), '10.0.0.0/8');
  });
});
