/**
 * ConntrackTable on the real maps of bpf/build/bpf_lxc.o, loaded with a
 * throwaway pin root (removed after each test). Needs root (bpf(2), bpffs);
 * attaches nothing and sends no packet (hack/bpf-selftest.sh runs packets).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BpfObject, CT_EGRESS, CT_INGRESS, CT_KEY, CT_SERVICE, CT_VALUE, decodeCt, encodeCtKey, encodeCtValue, ensureBpffs, ipv4ToInt, MapName, type BpfMap } from '@weft/datapath';
import { ConntrackTable, monotonicNs } from './conntrack.js';

const IS_ROOT = process.getuid?.() === 0;
const LXC = join(__dirname, '..', '..', '..', 'bpf', 'build', 'bpf_lxc.o');
const SEC = 1_000_000_000n;

interface Entry {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  dir?: number;
  ep: number;
  /** Seconds from now; negative: expired. */
  ttl: number;
}

describe('conntrack table from the agent: sweep, recount, flush (root)', function () {
  this.timeout(60_000);
  let pinRoot = '';
  let obj: BpfObject | undefined;
  let ct: BpfMap;
  let count: BpfMap;
  let table: ConntrackTable;

  before(function () {
    if (!IS_ROOT || !existsSync(LXC)) {
      console.log('    (skipped: needs root and bpf/build/bpf_lxc.o from npm run build)');
      this.skip();
    }
    ensureBpffs();
  });

  beforeEach(() => {
    pinRoot = `/sys/fs/bpf/wtct-${randomBytes(4).toString('hex')}`;
    obj = BpfObject.open(LXC, { pinRoot, programs: [] });
    obj.load();
    ct = obj.map(MapName.ct);
    count = obj.map(MapName.ctCount);
    table = new ConntrackTable({ ct, count, stats: obj.map(MapName.ctStats) });
  });

  afterEach(() => {
    obj?.close();
    obj = undefined;
    if (pinRoot) rmSync(pinRoot, { recursive: true, force: true });
  });

  function put(entries: Entry[]): void {
    const now = monotonicNs();
    const keys = Buffer.alloc(entries.length * CT_KEY.size);
    const values = Buffer.alloc(entries.length * CT_VALUE.size);
    entries.forEach((e, i) => {
      encodeCtKey(keys, i * CT_KEY.size, { saddr: ipv4ToInt(e.src), daddr: ipv4ToInt(e.dst), sport: e.sport, dport: e.dport, protocol: 17, dir: e.dir ?? CT_EGRESS });
      encodeCtValue(values, i * CT_VALUE.size, { expires: now + BigInt(e.ttl) * SEC, packets: 1n, bytes: 64n, policyRev: 1, remoteIdentity: 2, epId: e.ep, flags: 0, ruleId: 0, natAddr: 0, natPort: 0 });
    });
    ct.updateBatch(keys, values, entries.length);
  }

  function setCount(ep: number, n: number): void {
    const k = Buffer.alloc(4);
    k.writeUInt32LE(ep);
    const v = Buffer.alloc(4);
    v.writeInt32LE(n);
    count.update(k, v);
  }

  function left(): Array<{ src: string; dst: string; ep: number }> {
    return ct.entries().map(([k, v]) => decodeCt(k, v)).map((e) => ({ src: `${e.saddr >>> 24}.${(e.saddr >>> 16) & 255}.${(e.saddr >>> 8) & 255}.${e.saddr & 255}`, dst: `${e.daddr >>> 24}.${(e.daddr >>> 16) & 255}.${(e.daddr >>> 8) & 255}.${e.daddr & 255}`, ep: e.epId }));
  }

  it('deletes the expired entries, keeps the live ones, and rewrites drifted counts', async () => {
    put([
      { src: '10.101.1.5', dst: '8.8.8.8', sport: 1000, dport: 53, ep: 5, ttl: 60 },
      { src: '10.101.1.5', dst: '8.8.8.8', sport: 1001, dport: 53, ep: 5, ttl: -1 },
      { src: '10.101.1.5', dst: '8.8.4.4', sport: 1002, dport: 53, ep: 5, ttl: 3600 },
      { src: '10.101.1.6', dst: '8.8.8.8', sport: 1003, dport: 53, ep: 6, ttl: -100 },
    ]);
    setCount(5, 999); // drifted up: the pod would be refused for nothing
    setCount(6, 1);
    setCount(9, -3); // drifted below zero
    const r = await table.sweep();
    assert.equal(r.scanned, 4);
    assert.equal(r.expired, 2);
    assert.equal(r.flushed, 0);
    assert.deepEqual([...r.live], [[5, 2]]);
    assert.equal(r.recounted, 3);
    assert.equal(left().length, 2);
    assert.deepEqual([...table.counts()], [[5, 2]], 'every count is what the table holds');
    const again = await table.sweep();
    assert.equal(again.expired + again.recounted, 0, 'a second sweep finds nothing to do');
  });

  it('flushes an endpoint: its entries, and other endpoints\' entries with its address', async () => {
    put([
      { src: '10.101.1.5', dst: '10.101.1.6', sport: 1000, dport: 80, ep: 5, ttl: 60 }, // 5 opened to 6
      { src: '10.101.1.5', dst: '10.101.1.6', sport: 1000, dport: 80, dir: CT_INGRESS, ep: 6, ttl: 60 }, // 6 accepted it
      { src: '10.101.1.7', dst: '10.101.1.5', sport: 2000, dport: 443, dir: CT_INGRESS, ep: 5, ttl: 60 },
      { src: '10.101.1.5', dst: '10.96.0.10', sport: 3000, dport: 80, dir: CT_SERVICE, ep: 5, ttl: 60 },
      { src: '10.101.1.6', dst: '8.8.8.8', sport: 4000, dport: 53, ep: 6, ttl: 60 },
      { src: '10.101.1.7', dst: '8.8.8.8', sport: 4001, dport: 53, ep: 7, ttl: -5 },
    ]);
    setCount(5, 3);
    setCount(6, 2);
    setCount(7, 1);
    const r = await table.flushEndpoint('10.101.1.5', 5);
    assert.equal(r.flushed, 4, 'its three entries, and 6\'s entry of the connection from 5');
    assert.equal(r.expired, 1, 'the sweep comes along');
    assert.deepEqual(left(), [{ src: '10.101.1.6', dst: '8.8.8.8', ep: 6 }]);
    assert.deepEqual([...table.counts()], [[6, 1]]);
  });

  it('sweeps a full table in batches, one sweep at a time', async () => {
    const n = ct.maxEntries;
    assert.equal(n, 256 * 1024);
    const entries: Entry[] = [];
    for (let i = 0; i < n; i++) entries.push({ src: `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, dst: '8.8.8.8', sport: 1000, dport: 53, ep: 1 + (i % 4), ttl: i % 2 === 0 ? -1 : 600 });
    put(entries);
    const [a, b] = await Promise.all([table.sweep(), table.sweep()]);
    assert.equal(a.scanned, n);
    assert.equal(a.expired, n / 2);
    assert.equal(b.scanned, n / 2, 'the second sweep ran after the first, not over it');
    assert.equal(b.expired, 0);
    assert.deepEqual([...table.counts()].sort((x, y) => x[0] - y[0]), [[1, 0], [2, n / 4], [3, 0], [4, n / 4]].filter(([, c]) => c > 0));
  });

  it('carries the live connections of the previous layout over on an upgrade', async () => {
    // A table laid out as weft_ct_v2 (same sizes, `last_seen` first): another object's, in its own pin root.
    const oldRoot = `${pinRoot}-v2`;
    const old = BpfObject.open(LXC, { pinRoot: oldRoot, programs: [] });
    try {
      old.load();
      const legacy = old.map(MapName.ct);
      const now = monotonicNs();
      const rows: Array<[string, number, bigint, number]> = [
        ['10.101.1.5', 6, now - 10n * SEC, 5], // TCP, 10 s idle: kept, as established
        ['10.101.1.6', 17, now - 120n * SEC, 6], // UDP idle past its 60 s: left behind
        ['10.101.1.7', 17, now - 5n * SEC, 7], // UDP, 5 s idle: kept
      ];
      const keys = Buffer.alloc(rows.length * CT_KEY.size);
      const values = Buffer.alloc(rows.length * CT_VALUE.size);
      rows.forEach(([src, protocol, lastSeen, ep], i) => {
        encodeCtKey(keys, i * CT_KEY.size, { saddr: ipv4ToInt(src), daddr: ipv4ToInt('8.8.8.8'), sport: 1000, dport: 53, protocol, dir: CT_EGRESS });
        encodeCtValue(values, i * CT_VALUE.size, { expires: lastSeen, packets: 3n, bytes: 300n, policyRev: 9, remoteIdentity: 2, epId: ep, flags: 1, ruleId: 4, natAddr: ipv4ToInt('10.96.0.10'), natPort: 80 });
      });
      legacy.updateBatch(keys, values, rows.length);
      const lifetime = (p: number): bigint => (p === 6 ? 21_600n : 60n) * SEC;
      assert.equal(await table.migrateLegacy(legacy, lifetime), 2);
      const got = ct.entries().map(([k, v]) => decodeCt(k, v)).sort((a, b) => a.epId - b.epId);
      assert.deepEqual(got.map((e) => [e.epId, e.expires]), [[5, now - 10n * SEC + 21_600n * SEC], [7, now - 5n * SEC + 60n * SEC]]);
      assert.deepEqual([got[0]!.packets, got[0]!.policyRev, got[0]!.flags, got[0]!.ruleId, got[0]!.natPort], [3n, 9, 1, 4, 80], 'the rest of the entry as it was');
      assert.deepEqual([...table.counts()].sort(), [[5, 1], [7, 1]], 'and counted');
    } finally {
      old.close();
      rmSync(oldRoot, { recursive: true, force: true });
    }
  });

  it('reads the datapath\'s drop counters, summed over CPUs', () => {
    const stats = obj!.map(MapName.ctStats);
    const v = Buffer.alloc(stats.valueBufferSize);
    const cpus = stats.valueBufferSize / 16;
    for (let c = 0; c < cpus; c++) {
      v.writeBigUInt64LE(BigInt(c + 1), c * 16);
      v.writeBigUInt64LE(10n, c * 16 + 8);
    }
    stats.update(Buffer.alloc(4), v);
    assert.deepEqual(table.stats(), { dropsFull: BigInt((cpus * (cpus + 1)) / 2), dropsQuota: 10n * BigInt(cpus) });
  });
});
