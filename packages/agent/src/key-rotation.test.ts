import assert from 'node:assert/strict';
import { ackFor, blockedLanes, chooseSendLane, pickRotationLane, rotationStep, type RotationState } from './key-rotation.js';
import type { Lane, WireGuardRecord } from '@weft/schema';
import { parseNodeRecord } from '@weft/schema';

const KEY = (n: number): string => Buffer.alloc(32, n).toString('base64');

describe('key rotation', () => {
  it('keeps a lane in use until a rotation blocks it, then moves only onto a live lane', () => {
    const live = (l: Lane): boolean => l === 1;
    assert.equal(chooseSendLane(0, new Set(), live), 0, 'sticky');
    assert.equal(chooseSendLane(0, new Set([0]), live), 1, 'moves to the live lane');
    assert.equal(chooseSendLane(0, new Set([0]), () => false), 1, 'nothing live: nothing to lose by moving');
    assert.equal(chooseSendLane(0, new Set([0]), (l) => l === 0), 0, 'the other lane has no session yet: wait on the old one');
    assert.equal(chooseSendLane(1, new Set([0, 1]), live), 1, 'both blocked: stay');
    assert.equal(chooseSendLane(undefined, new Set(), live), 1, 'new peer: a live lane first');
    assert.equal(chooseSendLane(undefined, new Set([1]), () => false), 0);
  });

  it('confirms a rotating peer only once nothing is sent on its lane', () => {
    const peer: WireGuardRecord = { lanes: [{ publicKey: KEY(1), port: 1 }, { publicKey: KEY(2), port: 2 }], epoch: 7, rotation: { lane: 0, phase: 'drain' } };
    assert.equal(ackFor(peer, 0), undefined);
    assert.equal(ackFor(peer, 1), 7);
    assert.equal(ackFor({ ...peer, rotation: undefined } as WireGuardRecord, 1), undefined, 'nothing to confirm to a peer that does not rotate');
    assert.deepEqual([...blockedLanes({ lane: 1, phase: 'drain', startedAtMs: 0 }, peer)].sort(), [0, 1]);
  });

  it('rotates the lane peers already rotate, else the older key, and refuses when peers rotate both', () => {
    const rec = (rotation?: WireGuardRecord['rotation']): WireGuardRecord => ({ lanes: [{ publicKey: KEY(1), port: 1 }, { publicKey: KEY(2), port: 2 }], epoch: 1, ...(rotation ? { rotation } : {}) });
    assert.equal(pickRotationLane([], [100, 50]), 1);
    assert.equal(pickRotationLane([{ id: 'c/a', wireguard: rec({ lane: 0, phase: 'rekey' }) }], [100, 50]), 0);
    assert.throws(() => pickRotationLane([{ id: 'c/a', wireguard: rec({ lane: 0, phase: 'drain' }) }, { id: 'c/b', wireguard: rec({ lane: 1, phase: 'drain' }) }], [1, 2]), /c\/a \(lane 0\) and c\/b \(lane 1\)/);
  });

  it('waits for every peer and its own routes, gives a drain up on timeout or conflict, never a rekey', () => {
    const rot: RotationState = { lane: 0, phase: 'drain', startedAtMs: 0 };
    const peer = (id: string, acks: Record<string, number>, rotation?: WireGuardRecord['rotation']) => ({ id, wireguard: { lanes: [{ publicKey: KEY(1), port: 1 }, { publicKey: KEY(2), port: 2 }], epoch: 1, acks, ...(rotation ? { rotation } : {}) } as WireGuardRecord });
    const base = { me: 'c/m', rotation: rot, epoch: 5, sendLanes: [1 as Lane], nowMs: 1000, drainTimeoutMs: 60_000 };
    assert.deepEqual(rotationStep({ ...base, peers: [peer('c/a', { 'c/m': 5 }), peer('c/b', { 'c/m': 4 })] }), { kind: 'wait', waitingFor: ['c/b'] });
    assert.deepEqual(rotationStep({ ...base, peers: [peer('c/a', { 'c/m': 5 })], sendLanes: [0] }).kind, 'wait', 'own traffic still on the lane');
    assert.deepEqual(rotationStep({ ...base, peers: [peer('c/a', { 'c/m': 5 })] }), { kind: 'next' });
    assert.equal(rotationStep({ ...base, peers: [peer('c/b', {})], nowMs: 61_000 }).kind, 'abort');
    assert.equal(rotationStep({ ...base, rotation: { ...rot, phase: 'rekey' }, peers: [peer('c/b', {})], nowMs: 600_000 }).kind, 'wait', 'a rekey waits however long it takes');
    assert.equal(rotationStep({ ...base, peers: [peer('c/a', { 'c/m': 5 }, { lane: 1, phase: 'drain' })] }).kind, 'abort', 'the smaller name wins a conflict');
    assert.equal(rotationStep({ ...base, me: 'c/0', peers: [peer('c/a', { 'c/0': 5 }, { lane: 1, phase: 'drain' })] }).kind, 'next');
    assert.equal(rotationStep({ ...base, me: 'c/0', peers: [peer('c/a', {}, { lane: 1, phase: 'rekey' })] }).kind, 'abort', 'a peer already rekeying wins');
  });

  it('never sends on a lane whose keys the two ends do not share, whatever the order records arrive in (model)', () => {
    // Nodes exchange records through delayed, coalescing deliveries (like
    // etcd watches across clusters) and run the protocol's decisions; keys
    // are versions. Invariant after every step: a node sending to a peer on
    // lane l holds the peer's current lane-l key and the peer holds its own.
    for (let seed = 1; seed <= 40; seed++) {
      let s = seed;
      const rnd = (n: number): number => {
        s = (s * 1103515245 + 12345) % 2 ** 31;
        return s % n;
      };
      const names = ['c1/a', 'c1/b', 'c2/c', 'c2/d'];
      interface Sim {
        id: string;
        keys: [number, number];
        epoch: number;
        rotation: RotationState | undefined;
        acks: Map<string, number>;
        view: Map<string, WireGuardRecord>;
        send: Map<string, Lane>;
        rotations: number;
      }
      const nodes = names.map((id, i): Sim => ({ id, keys: [i * 100, i * 100 + 50], epoch: 0, rotation: undefined, acks: new Map(), view: new Map(), send: new Map(), rotations: 0 }));
      const record = (n: Sim): WireGuardRecord => ({ lanes: [{ publicKey: String(n.keys[0]), port: 1 }, { publicKey: String(n.keys[1]), port: 2 }], epoch: n.epoch, ...(n.rotation ? { rotation: { lane: n.rotation.lane, phase: n.rotation.phase } } : {}), acks: Object.fromEntries(n.acks) });
      const byId = new Map(nodes.map((n) => [n.id, n]));
      for (const n of nodes) for (const m of nodes) if (m !== n) n.view.set(m.id, record(m));
      const pending = new Set<string>();
      const changed = (n: Sim): void => {
        for (const m of nodes) if (m !== n) pending.add(`${n.id}>${m.id}`);
      };
      const holds = (n: Sim, peer: Sim, lane: Lane): boolean => n.view.get(peer.id)!.lanes[lane].publicKey === String(peer.keys[lane]);
      const sync = (n: Sim): void => {
        const acks = new Map<string, number>();
        for (const [pid, rec] of n.view) {
          const peer = byId.get(pid)!;
          const lane = chooseSendLane(n.send.get(pid), blockedLanes(n.rotation, rec), (l) => holds(n, peer, l) && holds(peer, n, l));
          n.send.set(pid, lane);
          const ack = ackFor(rec, lane);
          if (ack !== undefined) acks.set(pid, ack);
        }
        if (JSON.stringify([...acks]) !== JSON.stringify([...n.acks])) {
          n.acks = acks;
          changed(n);
        }
      };
      const advance = (n: Sim): void => {
        if (!n.rotation) return;
        const step = rotationStep({ me: n.id, rotation: n.rotation, epoch: n.epoch, peers: [...n.view].map(([id, wireguard]) => ({ id, wireguard })), sendLanes: n.send.values(), nowMs: 0, drainTimeoutMs: 1 });
        if (step.kind === 'wait') return;
        n.epoch++;
        if (step.kind === 'next' && n.rotation.phase === 'drain') {
          n.keys[n.rotation.lane] += 1;
          n.rotation = { ...n.rotation, phase: 'rekey' };
        } else {
          if (step.kind === 'next') n.rotations++;
          n.rotation = undefined;
        }
        changed(n);
      };
      const check = (): void => {
        for (const n of nodes) {
          for (const [pid, lane] of n.send) {
            const peer = byId.get(pid)!;
            assert.ok(holds(n, peer, lane) && holds(peer, n, lane), `seed ${seed}: ${n.id} sends to ${pid} on lane ${lane} without shared keys`);
          }
        }
      };
      for (const n of nodes) sync(n);
      let started = 0;
      for (let step = 0; step < 4000; step++) {
        const r = rnd(10);
        const n = nodes[rnd(nodes.length)]!;
        if (r === 0 && started < 12 && !n.rotation) {
          try {
            const lane = pickRotationLane([...n.view].map(([id, wireguard]) => ({ id, wireguard })), [n.keys[0], n.keys[1]]);
            n.rotation = { lane, phase: 'drain', startedAtMs: 0 };
            n.epoch++;
            started++;
            changed(n);
          } catch {
            // peers rotate both lanes: try later
          }
        } else if (r < 7 && pending.size > 0) {
          const d = [...pending][rnd(pending.size)]!;
          pending.delete(d);
          const [from, to] = d.split('>') as [string, string];
          byId.get(to)!.view.set(from, record(byId.get(from)!));
        } else {
          sync(n);
          check();
          advance(n);
        }
        check();
      }
      // Let everything settle: every rotation ends (done, or given up on a conflict).
      for (let i = 0; i < 200; i++) {
        for (const d of pending) {
          const [from, to] = d.split('>') as [string, string];
          byId.get(to)!.view.set(from, record(byId.get(from)!));
        }
        pending.clear();
        for (const n of nodes) {
          sync(n);
          advance(n);
        }
        check();
      }
      assert.ok(nodes.every((n) => !n.rotation), `seed ${seed}: rotations left hanging: ${nodes.filter((n) => n.rotation).map((n) => n.id)}`);
      assert.ok(nodes.reduce((a, n) => a + n.rotations, 0) > 0, `seed ${seed}: no rotation finished`);
    }
  });

  it('rejects hostile WireGuard parts of node records', () => {
    const rec = (wireguard: unknown): Buffer => Buffer.from(JSON.stringify({ name: 'n', cluster: 'c', ip: '10.0.0.1', podCidr: '10.1.0.0/24', routing: 'vxlan', wireguard }));
    const lanes = [{ publicKey: KEY(1), port: 1 }, { publicKey: KEY(2), port: 2 }];
    assert.equal(typeof parseNodeRecord(rec({ lanes, epoch: 3, rotation: { lane: 1, phase: 'rekey' }, acks: { 'c/x': 2 } }), 'c'), 'object');
    for (const [bad, reason] of [
      [{ lanes: [lanes[0]], epoch: 1 }, /exactly two lanes/],
      [{ lanes: [lanes[0], lanes[0]], epoch: 1 }, /different keys/],
      [{ lanes: [lanes[0], { publicKey: 'short', port: 2 }], epoch: 1 }, /lanes\[1\]\.publicKey/],
      [{ lanes: [lanes[0], { publicKey: KEY(3), port: 70000 }], epoch: 1 }, /lanes\[1\]\.port/],
      [{ lanes, epoch: -1 }, /epoch/],
      [{ lanes, epoch: 1, rotation: { lane: 2, phase: 'drain' } }, /rotation/],
      [{ lanes, epoch: 1, acks: { 'c/x': 'soon' } }, /acks/],
      [{ lanes, epoch: 1, acks: Object.fromEntries(Array.from({ length: 10_001 }, (_, i) => [`c/n${i}`, 1])) }, /10001 entries/],
    ] as const) {
      const r = parseNodeRecord(rec(bad), 'c');
      assert.equal(typeof r, 'string', JSON.stringify(bad).slice(0, 80));
      assert.match(r as string, reason);
    }
  });
});
