import assert from 'node:assert/strict';
import { decodeEndpoint, decodeFlowEvent, decodeFlowEventsLost, decodeIpcache, decodePolicy, encodeEndpointInfo, encodeEndpointKey, encodeIpcacheKey, encodeIpcacheValue, encodeNodeConfig, encodePolicyKey, encodePolicyValue, intToIpv4, ipv4ToInt, policyPrefixLen } from './codec.js';
import { FLOW_EVENT, IPCACHE_KEY, IPCACHE_VALUE, NODE_CONFIG, NODE_F_STRICT_INGRESS, POLICY_KEY, POLICY_VALUE } from './layout.js';

describe('map codecs', () => {
  it('round-trips ipcache entries with the address in network order', () => {
    const k = Buffer.alloc(IPCACHE_KEY.size);
    const v = Buffer.alloc(IPCACHE_VALUE.size);
    encodeIpcacheKey(k, 0, ipv4ToInt('10.1.2.3'), 32);
    encodeIpcacheValue(v, 0, { identity: 65_792, tunnelIp: ipv4ToInt('192.168.77.2'), flags: 1, clusterId: 1 });
    assert.deepEqual([...k.subarray(4)], [10, 1, 2, 3]);
    assert.deepEqual(decodeIpcache(k, v), { prefixlen: 32, ip: ipv4ToInt('10.1.2.3'), identity: 65_792, tunnelIp: ipv4ToInt('192.168.77.2'), flags: 1, clusterId: 1 });
    assert.equal(intToIpv4(ipv4ToInt('255.0.10.1')), '255.0.10.1');
    assert.throws(() => ipv4ToInt('10.1.2'), /Invalid IPv4 address "10.1.2"/);
    assert.throws(() => ipv4ToInt('10.1.2.256'), /Invalid IPv4/);
  });

  it('round-trips endpoints and rejects bad MACs', () => {
    const e = { ip: ipv4ToInt('10.1.0.5'), ifindex: 42, epId: 7, flags: 3, identity: 65_800, policyRev: 9, mac: '02:00:0a:01:00:05', nodeMac: 'aa:bb:cc:dd:ee:ff' };
    assert.deepEqual(decodeEndpoint(encodeEndpointKey(e.ip), encodeEndpointInfo(e)), e);
    assert.throws(() => encodeEndpointInfo({ ...e, mac: '02:00:0a' }), /Invalid endpoint MAC address "02:00:0a"/);
  });

  it('encodes policy prefixes that wildcard the trailing fields', () => {
    assert.equal(policyPrefixLen({ epId: 1, egress: false, identity: 0, protocol: 0 }), 64);
    assert.equal(policyPrefixLen({ epId: 1, egress: false, identity: 0, protocol: 6 }), 80);
    assert.equal(policyPrefixLen({ epId: 1, egress: false, identity: 0, protocol: 6, port: 80 }), 96);
    assert.equal(policyPrefixLen({ epId: 1, egress: false, identity: 0, protocol: 6, port: 8080, portBits: 14 }), 94);
    const k = Buffer.alloc(POLICY_KEY.size);
    const v = Buffer.alloc(POLICY_VALUE.size);
    encodePolicyKey(k, 0, { epId: 3, egress: true, identity: 65_793, protocol: 6, port: 8080, portBits: 14, gen: 1 });
    encodePolicyValue(v, 0, true, 12);
    assert.deepEqual([...k.subarray(14)], [0x1f, 0x90], 'port in network order');
    assert.equal(k[POLICY_KEY.offsets.gen!], 1, 'the generation, inside the 64 bits every entry matches');
    const d = decodePolicy(k, v);
    assert.deepEqual({ ...d, packets: Number(d.packets), bytes: Number(d.bytes) }, { prefixlen: 94, epId: 3, egress: true, gen: 1, identity: 65_793, protocol: 6, port: 8080, portBits: 14, deny: true, ruleId: 12, packets: 0, bytes: 0 });
    encodePolicyKey(k, 0, { epId: 3, egress: false, identity: 0, protocol: 0 });
    assert.equal(decodePolicy(k, v).gen, 0, 'generation 0 unless given');
  });

  it('encodes the node config with the node IP and tunnel port in network order', () => {
    const b = encodeNodeConfig({ nodeIp: ipv4ToInt('10.99.1.11'), tunnelIfindex: 5, routingMode: 0, clusterId: 1, flags: NODE_F_STRICT_INGRESS, tunnelPort: 8472 });
    assert.equal(b.length, NODE_CONFIG.size);
    assert.deepEqual([...b.subarray(0, 4)], [10, 99, 1, 11]);
    assert.equal(b.readUInt32LE(NODE_CONFIG.offsets.flags!), 0x2);
    assert.deepEqual([...b.subarray(NODE_CONFIG.offsets.tunnel_port!, NODE_CONFIG.offsets.tunnel_port! + 2)], [0x21, 0x18], '8472 in network order');
    assert.equal(encodeNodeConfig({ nodeIp: 0, tunnelIfindex: 0, routingMode: 1, clusterId: 1, flags: 0 }).readUInt16BE(NODE_CONFIG.offsets.tunnel_port!), 0, 'no tunnel port in direct routing');
  });

  it('decodes flow events and refuses short ones', () => {
    const b = Buffer.alloc(FLOW_EVENT.size);
    b.writeUInt32LE(65_792, 8);
    b.writeUInt32BE(ipv4ToInt('10.1.0.5'), 16);
    b.writeUInt16BE(8080, 26);
    b.writeUInt8(2, 29);
    b.writeUInt8(1, 30);
    const f = decodeFlowEvent(b);
    assert.equal(f.srcIdentity, 65_792);
    assert.equal(intToIpv4(f.saddr), '10.1.0.5');
    assert.equal(f.dport, 8080);
    assert.equal(f.verdict, 2);
    assert.equal(f.dropReason, 1);
    assert.deepEqual([f.tcpFlags, f.serviceAddr, f.servicePort], [0, 0, 0], 'no TCP flags, no Service');
    b.writeUInt8(0x12, FLOW_EVENT.offsets.tcp_flags!);
    b.writeUInt32BE(ipv4ToInt('10.96.0.10'), FLOW_EVENT.offsets.svc_addr!);
    b.writeUInt16BE(443, FLOW_EVENT.offsets.svc_port!);
    const s = decodeFlowEvent(b);
    assert.equal(s.tcpFlags, 0x12);
    assert.equal(intToIpv4(s.serviceAddr), '10.96.0.10', 'network order, as saddr');
    assert.equal(s.servicePort, 443);
    assert.throws(() => decodeFlowEvent(Buffer.alloc(10)), /Flow event of 10 bytes, expected 56/);
  });

  it('sums the lost flow events over every CPU', () => {
    const v = Buffer.alloc(4 * 8);
    v.writeBigUInt64LE(3n, 0);
    v.writeBigUInt64LE(2n ** 40n, 24);
    assert.equal(decodeFlowEventsLost(v), 3n + 2n ** 40n);
    assert.equal(decodeFlowEventsLost(Buffer.alloc(8)), 0n);
  });

  it('takes no Service address from an event without a Service port (a program of the previous layout never wrote it)', () => {
    const b = Buffer.alloc(FLOW_EVENT.size);
    b.writeUInt32BE(ipv4ToInt('10.96.0.10'), FLOW_EVENT.offsets.svc_addr!);
    const f = decodeFlowEvent(b);
    assert.deepEqual([f.serviceAddr, f.servicePort], [0, 0]);
  });
});
