/**
 * Benchmark `mapupdate`: how fast the agent writes the BPF ipcache (the map
 * every endpoint change in the cluster, and later the mesh, lands in).
 * Single: one bpf(2) update per entry from JS. Batched: the agent's path,
 * BpfMap.updateBatch over a packed buffer, one BPF_MAP_UPDATE_BATCH syscall.
 * Real kernel LPM trie, pinned in a private bpffs directory removed afterwards.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { BpfObject, ensureBpffs, encodeIpcacheKey, encodeIpcacheValue, IPCACHE_KEY, IPCACHE_VALUE, type BpfMap } from '@weft/datapath';
import { finish, progress, round, type Target } from './report.js';

const BPF = join(__dirname, '..', '..', 'bpf', 'build', 'bpf_lxc.o');

function packed(n: number, base: number): { keys: Buffer; values: Buffer } {
  const keys = Buffer.alloc(n * IPCACHE_KEY.size);
  const values = Buffer.alloc(n * IPCACHE_VALUE.size);
  for (let i = 0; i < n; i++) {
    encodeIpcacheKey(keys, i * IPCACHE_KEY.size, (base + i) >>> 0, 32);
    encodeIpcacheValue(values, i * IPCACHE_VALUE.size, { identity: 65_792 + (i % 60_000), tunnelIp: 0x0a63010b, flags: 0, clusterId: 1 });
  }
  return { keys, values };
}

function rate(map: BpfMap, n: number, batched: boolean, base: number, rounds: number): number {
  const { keys, values } = packed(n, base);
  let best = 0;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    if (batched) map.updateBatch(keys, values, n);
    else for (let i = 0; i < n; i++) map.update(keys.subarray(i * 8, i * 8 + 8), values.subarray(i * 16, i * 16 + 16));
    best = Math.max(best, n / ((performance.now() - t0) / 1000));
  }
  return Math.round(best);
}

export async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('Cannot run the mapupdate benchmark: it needs root (BPF maps)');
  ensureBpffs();
  const pinRoot = `/sys/fs/bpf/wtbench-${randomBytes(3).toString('hex')}`;
  const obj = BpfObject.open(BPF, { pinRoot });
  const results: Record<string, unknown> = {};
  const targets: Target[] = [];
  try {
    obj.load();
    const ipcache = obj.map('weft_ipcache');
    for (const n of [10_000, 100_000]) {
      progress(`ipcache: ${n} entries, single updates`);
      const single = rate(ipcache, n, false, 0x0b000000, 3);
      progress(`ipcache: ${n} entries, batched updates`);
      const batched = rate(ipcache, n, true, 0x0c000000, 3);
      results[`n${n}`] = { singlePerSec: single, batchedPerSec: batched };
      progress(`n=${n}: single ${single}/s, batched ${batched}/s`);
    }
    const big = (results.n100000 as { batchedPerSec: number }).batchedPerSec;
    targets.push({ name: 'ipcache updates per second, batched (100k entries)', value: big, goal: '>= 1000000', met: big >= 1_000_000 });
    results.note = 'batched = one BPF_MAP_UPDATE_BATCH syscall for all entries; the kernel LPM trie insert (one allocation per entry) is the limit';
  } finally {
    obj.close();
    rmSync(pinRoot, { recursive: true, force: true });
  }
  finish('mapupdate', { ...results, rounds: 3, unit: 'entries/s, best of 3' }, targets.map((t) => ({ ...t, value: round(t.value, 0) })));
}
