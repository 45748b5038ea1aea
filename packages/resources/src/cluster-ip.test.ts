import assert from 'node:assert/strict';
import { clusterIPProblem, formatIPv4, parseIPv4, pickFreeClusterIP, SERVICE_CIDR, SERVICE_IP_COUNT } from './cluster-ip.js';

describe('service clusterIP range', () => {
  it('parses dotted decimal with one spelling per address', () => {
    assert.equal(parseIPv4('10.96.1.2'), ((10 * 256 + 96) * 256 + 1) * 256 + 2);
    assert.equal(formatIPv4(parseIPv4('255.255.255.255')!), '255.255.255.255');
    for (const bad of ['10.96.01.2', '10.96.1', '10.96.1.256', '10.96.1.2.3', ' 10.96.1.2', '10.96.1.x', '']) assert.equal(parseIPv4(bad), undefined, bad);
  });

  it('accepts the usable addresses of 10.96.0.0/16 only', () => {
    assert.equal(SERVICE_CIDR, '10.96.0.0/16');
    assert.equal(SERVICE_IP_COUNT, 65534);
    for (const ok of ['10.96.0.1', '10.96.0.255', '10.96.1.0', '10.96.255.254']) assert.equal(clusterIPProblem(ok), undefined, ok);
    assert.match(clusterIPProblem('10.97.0.1')!, /"10\.97\.0\.1" is not in the service range 10\.96\.0\.0\/16/);
    assert.match(clusterIPProblem('10.95.255.255')!, /is not in the service range/);
    assert.match(clusterIPProblem('10.96.0.0')!, /is the network address/);
    assert.match(clusterIPProblem('10.96.255.255')!, /is the broadcast address/);
    assert.match(clusterIPProblem('10.096.0.1')!, /is not an IPv4 address/);
  });

  it('picks at random among free addresses, never the network or broadcast address', () => {
    assert.equal(pickFreeClusterIP(new Set(), () => 0), '10.96.0.1');
    assert.equal(pickFreeClusterIP(new Set(), () => 0.999999999), '10.96.255.254');
    const picks = new Set(Array.from({ length: 50 }, () => pickFreeClusterIP(new Set())));
    assert.ok(picks.size > 45, `50 picks from an empty range gave only ${picks.size} different addresses`);
    // The random probe lands on taken addresses; the pick moves on to a free one.
    assert.equal(pickFreeClusterIP(new Set(['10.96.0.1', '10.96.0.2']), () => 0), '10.96.0.3');
  });

  it('finds the last free address of a full range, and none when there is none', () => {
    const used = new Set<string>();
    const first = parseIPv4('10.96.0.1')!;
    for (let i = 0; i < SERVICE_IP_COUNT; i++) used.add(formatIPv4(first + i));
    assert.equal(pickFreeClusterIP(used), undefined);
    used.delete('10.96.200.7');
    assert.equal(pickFreeClusterIP(used), '10.96.200.7');
  });
});
