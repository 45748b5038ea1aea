import assert from 'node:assert/strict';
import { AgentConfigError } from './errors.js';
import { encryptionSamples, FlowCounters } from './agent-metrics.js';
import { validateAgentConfig } from './config.js';
import type { EncryptionStatus } from './encryption.js';
import type { FlowSample } from './datapath-port.js';

const base = { cluster: 'c1', clusterId: 1, node: 'c1-node1', etcd: ['10.99.1.2:2379'], nodeIp: '10.99.1.11', podCidr: '10.101.1.0/24', bpfDir: '/x' };
const flow: FlowSample = { timestampNs: 1n, srcIdentity: 65_800, dstIdentity: 2, saddr: '10.101.1.2', daddr: '10.99.255.250', sport: 40000, dport: 8081, protocol: 6, verdict: 2, dropReason: 1, point: 1, epId: 1, flags: 2, length: 60, ruleId: 0, tcpFlags: 0x02, servicePort: 0 };
const asObject = (samples: Iterable<readonly [Record<string, string | number>, number]>): Record<string, number> => Object.fromEntries([...samples].map(([l, v]) => [Object.values(l).join(' '), v]));

describe('agent metrics: configuration', () => {
  it('serves metrics only when asked, on IPv4:port', () => {
    assert.equal(validateAgentConfig(base).metrics, undefined);
    assert.deepEqual(validateAgentConfig({ ...base, metrics: { listen: '0.0.0.0:9962' } }).metrics, { listen: '0.0.0.0:9962' });
    const refuses = (metrics: unknown, message: RegExp): void => assert.throws(() => validateAgentConfig({ ...base, metrics }), (err: Error) => err instanceof AgentConfigError && message.test(err.message));
    refuses({ listen: 'node:9962' }, /metrics\.listen: "node:9962" must be IPv4:port/);
    refuses({ listen: '0.0.0.0:99620' }, /metrics\.listen: .*out of range/);
    refuses({ port: 9962 }, /metrics\.port: is not a key of metrics/);
    refuses('0.0.0.0:9962', /metrics: must be an object/);
  });
});

describe('agent metrics: flow counters', () => {
  it('counts drops by reason and packet direction, flows by verdict, policy decisions by connection direction and match', () => {
    const c = new FlowCounters();
    c.add(flow); // POLICY_DENIED leaving an endpoint, a new connection: egress, default deny
    c.add({ ...flow, point: 2, dropReason: 2, ruleId: 7 }); // POLICY_DENY_RULE arriving: ingress, a rule
    c.add({ ...flow, point: 2, dropReason: 2, ruleId: 7, flags: 0x1 }); // a reply arriving, dropped by a rule: the connection was egress
    c.add({ ...flow, point: 4, dropReason: 13, length: 100 }); // UNENCRYPTED_INGRESS on the underlay: not policy's
    c.add({ ...flow, verdict: 1, dropReason: 0, ruleId: 3 }); // a new connection allowed by a rule
    c.add({ ...flow, verdict: 1, dropReason: 0, flags: 0x10 }); // a related ICMP error: forwarded, no policy decision
    c.add({ ...flow, verdict: 3, dropReason: 1, point: 2 }); // audit
    assert.deepEqual(asObject(c.drops('count')), { 'POLICY_DENIED EGRESS': 1, 'POLICY_DENY_RULE INGRESS': 2, 'UNENCRYPTED_INGRESS INGRESS': 1 });
    assert.deepEqual(asObject(c.drops('bytes')), { 'POLICY_DENIED EGRESS': 60, 'POLICY_DENY_RULE INGRESS': 120, 'UNENCRYPTED_INGRESS INGRESS': 100 });
    assert.deepEqual(asObject(c.flows()), { 'FORWARDED INGRESS': 0, 'FORWARDED EGRESS': 2, 'DROPPED INGRESS': 3, 'DROPPED EGRESS': 1, 'AUDIT INGRESS': 1, 'AUDIT EGRESS': 0 });
    const verdicts = asObject(c.policyVerdicts());
    assert.equal(Object.keys(verdicts).length, 3 * 2 * 2, 'every action, direction and match, zeros included');
    assert.deepEqual(Object.fromEntries(Object.entries(verdicts).filter(([, n]) => n > 0)), { 'EGRESS default deny': 1, 'INGRESS rule deny': 1, 'EGRESS rule deny': 1, 'EGRESS rule allow': 1, 'INGRESS default audit': 1 });
  });

  it('keeps what the registries do not name: unknown points and verdicts, reasons beyond the list', () => {
    const c = new FlowCounters();
    c.add({ ...flow, point: 9, dropReason: 200 });
    c.add({ ...flow, verdict: 9 });
    assert.deepEqual(asObject(c.drops('count')), { 'UNKNOWN_200 UNKNOWN': 1 });
    assert.equal(asObject(c.flows())['UNKNOWN EGRESS'], 1);
  });
});

describe('agent metrics: encryption', () => {
  const now = Date.parse('2030-01-01T00:10:00Z');
  const ago = (s: number): string => new Date(now - s * 1000).toISOString();
  const peer = { cluster: 'c1', encrypted: true, endpoint: '10.99.1.12:51871', allowedIps: ['10.101.2.0/24'], rxBytes: 0, txBytes: 0 };

  it('reads WireGuard peers, handshakes, epoch, key ages and a rotation from `weft encrypt status`', () => {
    const s: EncryptionStatus = {
      mode: 'wireguard',
      strict: true,
      epoch: 7,
      lanes: [0, 1].map((lane) => ({ lane: lane as 0 | 1, device: `weft_wg${lane ? 'b' : ''}`, implementation: 'kernel' as const, publicKey: 'k', port: 51871 + lane, keyCreated: ago(3600 * (lane + 1)) })),
      rotation: { lane: 1, phase: 'drain', startedAt: ago(5), waitingFor: ['c1/n3', 'c2/n1'] },
      peers: [{ ...peer, node: 'n2', lastHandshake: ago(30) }, { ...peer, node: 'n3', lastHandshake: ago(400) }, { ...peer, node: 'n4' }],
      refused: [{ node: 'n5', cluster: 'c1', reason: 'no key' }],
    };
    const m = encryptionSamples(s, now);
    const one = (name: string) => asObject(m.get(name) ?? []);
    assert.deepEqual(one('weft_encryption_mode'), { wireguard: 1 });
    assert.deepEqual([one('weft_encryption_strict'), one('weft_encryption_peers'), one('weft_encryption_refused_peers'), one('weft_encryption_rotation_waiting_peers')], [{ '': 1 }, { '': 3 }, { '': 1 }, { '': 2 }]);
    assert.deepEqual(one('weft_wireguard_peers'), { live: 1, stale: 1, none: 1 });
    assert.deepEqual(one('weft_wireguard_handshake_age_max_seconds'), { '': 400 });
    assert.deepEqual(one('weft_wireguard_epoch'), { '': 7 });
    assert.deepEqual(one('weft_wireguard_key_age_seconds'), { 0: 3600, 1: 7200 });
    assert.deepEqual(one('weft_wireguard_rotation_in_progress'), { '': 1 });
    assert.equal(m.get('weft_ipsec_key_id'), undefined, 'no IPsec series under WireGuard');
  });

  it('reads IPsec key ids and SAs, and says off when off', () => {
    const sa = (direction: 'in' | 'out', keyId: number) => ({ direction, spi: '0x1', keyId, packets: 1, bytes: 1, integrityFailures: direction === 'in' ? 2 : 0, replayDrops: 1 });
    const s: EncryptionStatus = {
      mode: 'ipsec',
      strict: true,
      ipsec: { keyIds: [1, 2], sendKeyId: 1, keyFile: '/k', waitingFor: ['c1/n2 (to accept key 2)'] },
      peers: [{ ...peer, node: 'n2', keyIds: [1], sendKeyId: 1, sas: [sa('in', 1), sa('out', 1), sa('in', 2)] }],
      refused: [],
    };
    const m = encryptionSamples(s, now);
    const one = (name: string) => asObject(m.get(name) ?? []);
    assert.deepEqual([one('weft_ipsec_key_id'), one('weft_ipsec_keys'), one('weft_encryption_rotation_waiting_peers')], [{ '': 1 }, { '': 2 }, { '': 1 }]);
    assert.deepEqual(one('weft_ipsec_xfrm_states'), { in: 2, out: 1 });
    assert.deepEqual(one('weft_ipsec_sa_errors'), { integrity: 4, replay: 3 });
    assert.equal(m.get('weft_wireguard_peers'), undefined);
    const off = encryptionSamples({ mode: 'off', strict: false, peers: [], refused: [] }, now);
    assert.deepEqual([asObject(off.get('weft_encryption_mode')!), asObject(off.get('weft_encryption_peers')!)], [{ off: 1 }, { '': 0 }]);
  });
});
