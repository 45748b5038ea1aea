/**
 * Benchmarks `propagation` and `coldsync` on a real two-cluster lab.
 *
 * propagation: endpoints appear in cluster c1 (records as c1's agents write
 *   them) at a steady 100/s while as many disappear; for each, the time until
 *   it is in the BPF ipcache of a c2 node (read straight from the pinned map).
 *   Path: c1 etcd -> c1 apiserver -> gRPC/mTLS -> c2 apiserver -> c2 etcd ->
 *   c2 agent -> BPF map.
 * coldsync: 100k endpoints and 10k identities in c1, then c2's apiserver
 *   (re)connects; time until c2 has the complete snapshot (every kind synced).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { MESH_STATUS_PREFIX, type MeshStatus } from '@weft/clustermesh';
import { BpfMap, encodeIpcacheKey, ipv4ToInt, IPCACHE_KEY } from '@weft/datapath';
import { KvClient, op } from '@weft/kvstore';
import { apiserverPid, etcdEndpoint, labDown, labUp, type ClusterLayout } from '@weft/lab';
import { finish, percentile, progress, round, type Target } from './report.js';

const REPO = join(__dirname, '..', '..');
const WEFT = join(REPO, 'packages', 'cli', 'bin', 'weft.js');

async function lab(): Promise<{ c1: ClusterLayout; c2: ClusterLayout }> {
  const state = await labUp({ clusters: [{ name: 'c1', id: 1 }, { name: 'c2', id: 2 }], nodes: 1, routing: 'vxlan' }, (s) => progress(s));
  return { c1: state.clusters[0]!, c2: state.clusters[1]! };
}

function record(i: number, c1: ClusterLayout): { ip: string; value: string } {
  const ip = `10.101.${128 + ((i >> 8) & 127)}.${i & 255}`;
  const n = c1.nodes[0]!;
  return { ip, value: JSON.stringify({ ip, identity: (1 << 16) | 300, node: n.name, nodeIp: n.ip, namespace: 'bench', pod: `p${i}`, labels: { app: 'bench' } }) };
}

export async function propagation(): Promise<void> {
  const { c1, c2 } = await lab();
  const kv = new KvClient({ endpoints: [etcdEndpoint(c1)] });
  const ipcache = BpfMap.openPinned(join(c2.nodes[0]!.pinRoot, 'weft_ipcache'));
  const latencies: number[] = [];
  const RATE = 100;
  const SECONDS = Number(process.env.WEFT_BENCH_SECONDS ?? 10);
  try {
    // The identity must exist in c1 for c2 to accept endpoints that carry it.
    await kv.put('weft/identities/v1/id/65836', 'k8s:app=bench;k8s:weft.io/cluster=c1');
    const pending = new Map<number, { key: Buffer; t0: number }>();
    const poll = setInterval(() => {
      for (const [i, p] of pending) {
        if (ipcache.lookup(p.key)) {
          latencies.push(performance.now() - p.t0);
          pending.delete(i);
        }
      }
    }, 1);
    progress(`propagation: ${RATE} endpoints/s created in c1 (and as many deleted) for ${SECONDS}s`);
    const total = RATE * SECONDS;
    const start = performance.now();
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const r = record(i, c1);
      const key = Buffer.alloc(IPCACHE_KEY.size);
      encodeIpcacheKey(key, 0, ipv4ToInt(r.ip), 32);
      const t0 = performance.now();
      pending.set(i, { key, t0 });
      const ops = [op.put(`weft/state/v1/endpoints/${r.ip}`, r.value)];
      if (i >= 200) ops.push(op.delete(`weft/state/v1/endpoints/${record(i - 200, c1).ip}`)); // churn: 100/s go away too
      void kv.txn('bench endpoint churn', { compare: [], success: ops });
    }
    const deadline = performance.now() + 10_000;
    while (pending.size > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    clearInterval(poll);
    const sorted = [...latencies].sort((a, b) => a - b);
    const p50 = round(percentile(sorted, 50), 1);
    const p99 = round(percentile(sorted, 99), 1);
    const targets: Target[] = [
      { name: 'endpoint in c1 -> c2 node BPF ipcache, p99 ms', value: p99, goal: '< 100', met: p99 < 100 },
      { name: 'endpoints that never arrived', value: pending.size, goal: '== 0', met: pending.size === 0 },
    ];
    finish('propagation', { endpoints: total, ratePerSec: RATE, p50Ms: p50, p99Ms: p99, maxMs: round(sorted[sorted.length - 1] ?? NaN, 1), lost: pending.size }, targets);
  } finally {
    ipcache.close();
    kv.close();
    await labDown(() => undefined);
  }
}

export async function coldsync(): Promise<void> {
  const ENDPOINTS = Number(process.env.WEFT_BENCH_ENDPOINTS ?? 100_000);
  const IDENTITIES = Number(process.env.WEFT_BENCH_IDENTITIES ?? 10_000);
  const { c1, c2 } = await lab();
  const kv1 = new KvClient({ endpoints: [etcdEndpoint(c1)] });
  const kv2 = new KvClient({ endpoints: [etcdEndpoint(c2)] });
  try {
    process.kill(apiserverPid(c2)!, 'SIGKILL');
    progress(`coldsync: loading ${IDENTITIES} identities and ${ENDPOINTS} endpoints into c1`);
    for (let i = 0; i < IDENTITIES; i += 1000) {
      const ops = [];
      for (let j = i; j < Math.min(IDENTITIES, i + 1000); j++) ops.push(op.put(`weft/identities/v1/id/${(1 << 16) | (300 + j)}`, `k8s:app=svc-${j};k8s:weft.io/cluster=c1`));
      await kv1.txn('bench load identities', { compare: [], success: ops });
    }
    for (let i = 0; i < ENDPOINTS; i += 1000) {
      const ops = [];
      for (let j = i; j < Math.min(ENDPOINTS, i + 1000); j++) {
        const ip = `10.${140 + (j >> 16)}.${(j >> 8) & 255}.${j & 255}`;
        ops.push(op.put(`weft/state/v1/endpoints/${ip}`, JSON.stringify({ ip, identity: (1 << 16) | (300 + (j % IDENTITIES)), node: 'c1-node1', nodeIp: c1.nodes[0]!.ip, namespace: 'bench', pod: `p${j}`, labels: {} })));
      }
      await kv1.txn('bench load endpoints', { compare: [], success: ops });
    }
    await new Promise((r) => setTimeout(r, 2000)); // c1's exporter catches up with its own etcd
    await kv2.delete(`${MESH_STATUS_PREFIX}c2`);
    progress('coldsync: c2 connects');
    const t0 = performance.now();
    const child = spawn('ip', ['netns', 'exec', c2.cpNetns, process.execPath, WEFT, 'clustermesh-apiserver', '--config', `/var/run/weft/lab/c2/clustermesh/config.json`], { detached: true, stdio: 'ignore' });
    child.unref();
    let status: MeshStatus | undefined;
    for (;;) {
      const kvs = await kv2.get(`${MESH_STATUS_PREFIX}c2`);
      status = kvs ? (JSON.parse(kvs.value.toString()) as MeshStatus) : undefined;
      if (status?.remotes[0]?.state === 'synced') break;
      if (performance.now() - t0 > 120_000) throw new Error('coldsync: not synced within 120 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    const wall = round((performance.now() - t0) / 1000, 2);
    const r = status!.remotes[0]!;
    const syncSeconds = round((r.syncMs ?? NaN) / 1000, 2);
    finish('coldsync', { endpoints: ENDPOINTS, identities: IDENTITIES, services: 'not yet implemented (issue 4: global services)', syncSeconds, wallSecondsIncludingProcessStart: wall, imported: r.counts }, [
      { name: 'fresh connection to synced, seconds (100k endpoints + 10k identities)', value: syncSeconds, goal: '< 5', met: syncSeconds < 5 },
    ]);
  } finally {
    kv1.close();
    kv2.close();
    await labDown(() => undefined);
  }
}
