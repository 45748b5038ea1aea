/**
 * Benchmark `identity`: new-identity allocation against one real etcd with 1, 4
 * and 16 concurrent allocators, side by side with the raw etcd transaction
 * rate measured in the same run on the same etcd with the same concurrency
 * (that rate is the ceiling: one allocation is one transaction when nothing
 * races). Also cached lookups, and a duplicate check after every run.
 */
import { performance } from 'node:perf_hooks';
import { silentLogger } from '@weft/common';
import { EtcdProcess, KvClient, cmp, op } from '@weft/kvstore';
import { IdentityAllocator, IdentityLayout, LabelSet } from '@weft/identity';
import { finish, percentile, progress, round, type Target } from './report.js';

const TOTAL = Number(process.env.WEFT_BENCH_IDENTITIES ?? 10_000);
const CONCURRENCY = [1, 4, 16];

interface RateResult {
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

/** Runs `total` operations over `workers` sequential loops; returns rate and latency. */
async function measure(workers: number, total: number, opFor: (worker: number, i: number) => Promise<unknown>): Promise<RateResult> {
  const latencies: number[] = [];
  const per = Math.ceil(total / workers);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let i = w * per; i < Math.min(total, (w + 1) * per); i++) {
        const s = performance.now();
        await opFor(w, i);
        latencies.push(performance.now() - s);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return { opsPerSec: round(total / seconds, 1), p50Ms: round(percentile(latencies, 50), 3), p99Ms: round(percentile(latencies, 99), 3) };
}

export async function main(): Promise<void> {
  progress(`starting etcd; ${TOTAL} identities per run, allocators: ${CONCURRENCY.join(', ')}`);
  const etcd = await EtcdProcess.start({ name: 'bench-identity', extraArgs: ['--quota-backend-bytes', String(4 * 1024 ** 3)] });
  const results: Record<string, unknown> = { etcd: '3.4 (Debian etcd-server), fsync on, one member', identities: TOTAL };
  const targets: Target[] = [];
  try {
    for (const c of CONCURRENCY) {
      const clients = Array.from({ length: c }, () => new KvClient({ endpoints: [etcd.endpoint] }));
      // Raw: the same kind of transaction the allocator's create makes, minus the allocator.
      progress(`c=${c}: raw etcd create-if-absent transactions`);
      const raw = await measure(c, TOTAL, (w, i) =>
        clients[w]!.txn('raw', { compare: [cmp.absent(`raw/${c}/m/${i}`), cmp.absent(`raw/${c}/l/${i}`)], success: [op.put(`raw/${c}/m/${i}`, 'x'), op.put(`raw/${c}/l/${i}`, 'x'), op.put(`raw/${c}/r/${i}`, 'x')] }),
      );
      progress(`c=${c}: raw ${raw.opsPerSec} txn/s; allocating ${TOTAL} new identities`);
      const layout = new IdentityLayout(`bench/c${c}/`);
      const allocators = await Promise.all(
        clients.map((client, w) => new IdentityAllocator({ client, layout, clusterId: 1, clusterName: 'bench', node: `node-${w}`, logger: silentLogger() }).start()),
      );
      const sets = Array.from({ length: TOTAL }, (_, i) => LabelSet.fromMap({ app: `app-${i}`, 'weft.io/cluster': 'bench' }));
      const alloc = await measure(c, TOTAL, (w, i) => allocators[w]!.allocate(sets[i]!));
      // Duplicate check on what etcd holds.
      const masters = (await clients[0]!.list(layout.mastersPrefix)).items;
      const labels = new Set(masters.map((m) => m.value.toString()));
      const duplicates = masters.length - labels.size + (TOTAL - masters.length);
      const ratio = round(alloc.opsPerSec / raw.opsPerSec, 3);
      progress(`c=${c}: ${alloc.opsPerSec} allocations/s (p50 ${alloc.p50Ms} ms, p99 ${alloc.p99Ms} ms), ${round(ratio * 100, 1)}% of raw; duplicates ${duplicates}`);
      results[`c${c}`] = { raw, allocate: alloc, ratio, duplicates };
      targets.push({ name: `allocation rate / raw txn rate, ${c} allocator(s)`, value: ratio, goal: '>= 0.5', met: ratio >= 0.5 });
      targets.push({ name: `duplicate ids, ${c} allocator(s)`, value: duplicates, goal: '== 0', met: duplicates === 0 });

      if (c === CONCURRENCY[CONCURRENCY.length - 1]) {
        progress('cached lookups');
        const a = allocators[0]!;
        await waitFor(() => a.cache.size >= TOTAL);
        const keys = sets.map((s) => a.normalize(s).key);
        const ids = keys.map((k) => a.cache.lookupByLabels(k)!);
        const byLabels = loopRate(() => {
          let hit = 0;
          for (let i = 0; i < keys.length; i++) if (a.cache.lookupByLabels(keys[i]!) !== undefined) hit++;
          return hit;
        }, keys.length);
        const byId = loopRate(() => {
          let hit = 0;
          for (let i = 0; i < ids.length; i++) if (a.cache.lookupById(ids[i]!) !== undefined) hit++;
          return hit;
        }, ids.length);
        // Re-allocating a held label set: the local reference count path (no etcd).
        const held = sets.slice(0, Math.ceil(TOTAL / c));
        const t0 = performance.now();
        const rounds = 20;
        for (let r = 0; r < rounds; r++) for (const s of held) await a.allocate(s);
        const heldRate = round((rounds * held.length) / ((performance.now() - t0) / 1000), 0);
        results.cached = { lookupByLabelsPerSec: byLabels, lookupByIdPerSec: byId, allocateHeldPerSec: heldRate };
        targets.push({ name: 'cached lookups by labels per second', value: byLabels, goal: '>= 1000000', met: byLabels >= 1_000_000 });
        targets.push({ name: 'cached lookups by id per second', value: byId, goal: '>= 1000000', met: byId >= 1_000_000 });
        progress(`cached: ${byLabels}/s by labels, ${byId}/s by id, ${heldRate}/s allocate() of held labels`);
      }
      await Promise.all(allocators.map((a) => a.stop()));
      clients.forEach((cl) => cl.close());
    }
  } finally {
    await etcd.stop();
  }
  finish('identity', results, targets);
}

function loopRate(fn: () => number, perCall: number): number {
  let ops = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 1000) {
    if (fn() !== perCall) throw new Error('cached lookup missed');
    ops += perCall;
  }
  return Math.round(ops / ((performance.now() - t0) / 1000));
}

async function waitFor(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('Timed out waiting for the cache to catch up');
    await new Promise((r) => setTimeout(r, 20));
  }
}
