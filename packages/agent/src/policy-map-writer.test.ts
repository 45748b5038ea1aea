import assert from 'node:assert/strict';
import { silentLogger } from '@weft/common';
import { BpfSyscallError, decodeEndpoint, decodePolicy, EP_F_POLICY_GEN, type BpfMap } from '@weft/datapath';
import type { PolicyMapEntry } from './datapath-port.js';
import { PolicyMapWriter, type EndpointSlot } from './policy-map-writer.js';

/** A hash map in memory with the kernel's behaviour when full (E2BIG for a new key), logging each change. */
class FakeMap {
  readonly data = new Map<string, Buffer>();
  readonly ops: string[] = [];
  constructor(
    readonly name: string,
    public maxEntries: number,
    private readonly describe: (k: Buffer, v: Buffer | undefined) => string,
  ) {}
  update(key: Buffer, value: Buffer): void {
    const k = key.toString('hex');
    if (!this.data.has(k) && this.data.size >= this.maxEntries) throw new BpfSyscallError(`update map ${this.name}`, 7);
    this.data.set(k, Buffer.from(value));
    this.ops.push(`+${this.describe(key, value)}`);
  }
  delete(key: Buffer): boolean {
    const k = key.toString('hex');
    const v = this.data.get(k);
    if (v) this.ops.push(`-${this.describe(key, v)}`);
    return this.data.delete(k);
  }
  updateBatch(keys: Buffer, values: Buffer, count: number): void {
    const ks = keys.length / count;
    const vs = values.length / count;
    for (let i = 0; i < count; i++) this.update(keys.subarray(i * ks, (i + 1) * ks), values.subarray(i * vs, (i + 1) * vs));
  }
  deleteBatch(keys: Buffer, count: number): number {
    const ks = keys.length / count;
    let n = 0;
    for (let i = 0; i < count; i++) if (this.delete(keys.subarray(i * ks, (i + 1) * ks))) n++;
    return n;
  }
  entries(): Array<[Buffer, Buffer]> {
    return [...this.data].map(([k, v]) => [Buffer.from(k, 'hex'), v]);
  }
}

const slot: EndpointSlot = { epId: 3, ip: 0x0a000003, ifindex: 1, identity: 70_000, mac: '02:00:00:00:00:01', nodeMac: '02:00:00:00:00:02', ingressEnforced: true, egressEnforced: false, audit: false };
const allow = (identity: number, port?: number): PolicyMapEntry => ({ egress: false, identity, protocol: port === undefined ? 0 : 6, ...(port === undefined ? {} : { port: { port, bits: 16 } }), deny: false, ruleId: 1 });
const deny = (identity: number, port?: number): PolicyMapEntry => ({ ...allow(identity, port), deny: true, ruleId: 2 });

function writer(maxEntries = 100) {
  const policy = new FakeMap('weft_policy_v2', maxEntries, (k, v) => {
    const p = decodePolicy(k, v!);
    return `${p.deny ? 'deny' : 'allow'} ${p.identity}${p.protocol ? `/${p.port}` : ''} gen${p.gen}`;
  });
  const endpoints = new FakeMap('weft_endpoints', 10, (k, v) => (v ? `ep rev ${decodeEndpoint(k, v).policyRev}` : 'ep'));
  const w = new PolicyMapWriter({ policy: policy as unknown as BpfMap, endpoints: endpoints as unknown as BpfMap }, silentLogger());
  const inForce = (): string[] => {
    const gen = w.generation(slot.epId);
    return policy.entries().map(([k, v]) => decodePolicy(k, v)).filter((p) => p.gen === gen).map((p) => `${p.deny ? 'deny' : 'allow'} ${p.identity}${p.protocol ? `/${p.port}` : ''}`).sort();
  };
  const endpoint = () => decodeEndpoint(...endpoints.entries()[0]!);
  return { w, policy, endpoints, inForce, endpoint };
}

describe('policy map writer: updates by difference', () => {
  it('writes only the entries of an identity added or removed, in place, with the new revision', () => {
    const { w, policy, inForce, endpoint } = writer();
    assert.equal(w.program(slot, [allow(10, 80), allow(11, 80), allow(12)], 1).state, 'ok');
    const gen = w.generation(slot.epId);
    policy.ops.length = 0;
    assert.deepEqual(w.update(slot, { upsert: [allow(13, 80), allow(13, 443)], remove: [] }, 2), { state: 'ok', changes: 2, gen });
    assert.deepEqual(policy.ops, [`+allow 13/80 gen${gen}`, `+allow 13/443 gen${gen}`]);
    assert.equal(endpoint().policyRev, 2);
    policy.ops.length = 0;
    // Taking access away by deleting allows needs no room: in place too.
    assert.deepEqual(w.update(slot, { upsert: [], remove: [allow(11, 80), allow(12)] }, 3), { state: 'ok', changes: 2, gen });
    assert.deepEqual(policy.ops, [`-allow 11/80 gen${gen}`, `-allow 12 gen${gen}`]);
    assert.deepEqual(inForce(), ['allow 10/80', 'allow 13/443', 'allow 13/80']);
    assert.equal(endpoint().policyRev, 3);
    assert.equal(w.entryCount, 3);
  });

  it('revokes before it grants: no state in between is more open than the old policy or the new one', () => {
    const { w, policy } = writer();
    w.program(slot, [allow(10), deny(11, 22), allow(12, 80)], 1);
    const gen = w.generation(slot.epId);
    policy.ops.length = 0;
    // 10's allow becomes a deny, 11's deny goes, 12's allow goes, 14 is allowed.
    w.update(slot, { upsert: [deny(10), allow(14)], remove: [deny(11, 22), allow(12, 80)] }, 2);
    assert.deepEqual(policy.ops, [`-allow 12/80 gen${gen}`, `+deny 10 gen${gen}`, `-deny 11/22 gen${gen}`, `+allow 14 gen${gen}`]);
  });

  it('takes the flip for a new deny (it needs room): the whole policy under the other generation', () => {
    const { w, inForce, endpoint } = writer();
    w.program(slot, [allow(10, 80), allow(11)], 1);
    const gen = w.generation(slot.epId)!;
    assert.deepEqual(w.update(slot, { upsert: [deny(11, 22)], remove: [] }, 2).gen, 1 - gen);
    assert.equal(endpoint().flags & EP_F_POLICY_GEN ? 1 : 0, 1 - gen);
    assert.deepEqual(inForce(), ['allow 10/80', 'allow 11', 'deny 11/22']);
  });

  it('leaves the endpoint stale when new allows do not fit, with the revocations done', () => {
    const { w, inForce } = writer(3);
    w.program(slot, [allow(10), allow(11), allow(12)], 1);
    const out = w.update(slot, { upsert: [allow(13), allow(14)], remove: [allow(10)] }, 2);
    assert.equal(out.state, 'stale');
    assert.match(out.error!, /weft_policy_v2 is full/);
    assert.deepEqual(inForce(), ['allow 11', 'allow 12'], 'the removed allow is gone, the new ones that did not all fit are not half there');
  });

  it('ends where program() with the whole policy ends', () => {
    const a = writer();
    const b = writer();
    const start = [allow(10, 80), deny(11, 22), allow(11, 80), allow(12)];
    a.w.program(slot, start, 1);
    b.w.program(slot, start, 1);
    a.w.update(slot, { upsert: [allow(13, 80), deny(12)], remove: [allow(10, 80)] }, 2);
    b.w.program(slot, [deny(11, 22), allow(11, 80), deny(12), allow(13, 80)], 2);
    assert.deepEqual(a.inForce(), b.inForce());
    assert.equal(a.w.entryCount, b.w.entryCount);
  });
});
