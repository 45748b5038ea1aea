/**
 * Benchmarks `propagation` and `coldsync` on a real two-cluster lab.
 *
 * propagation: endpoints appear in cluster c1 (records as c1's agents write
 *   them) at a steady 100/s while as many disappear; for each, the time until
 *   it is in the BPF ipcache of a c2 node (read straight from the pinned map).
 *   Path: c1 etcd -> c1 apiserver -> gRPC/mTLS -> c2 apiserver -> c2 etcd ->
 *   c2 agent -> BPF map.
 * coldsync: 100k endpoints, 10k identities and 1k global services (100
 *   backends each) in c1, the same 1k global services defined in c2; then
 *   c2's apiserver (re)connects. Times: until c2 has the complete snapshot
 *   (every kind synced), and until c2's node has every service's 100 remote
 *   backends in its BPF service map.
 */
import { pidCpuSeconds as cpuSeconds } from './proc.js';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { MESH_STATUS_PREFIX, type MeshStatus } from '@weft/clustermesh';
import { BpfMap, decodeLb, encodeIpcacheKey, encodeLbKey, ipv4ToInt, IPCACHE_KEY, IPPROTO_TCP } from '@weft/datapath';
import { endpointKey } from '@weft/schema';
import { op } from '@weft/kvstore';
import { apiserverPid, labEtcdClient, labDown, labUp, pidInNetns, type ClusterLayout } from '@weft/lab';
import { addBenchNodes, allowBenchRange, benchEndpoint, inRangeEndpoint } from './mesh-range.js';
import { finish, percentile, progress, round, type Target } from './report.js';

const REPO = join(__dirname, '..', '..');
const WEFT = join(REPO, 'packages', 'cli', 'bin', 'weft.js');

async function lab(): Promise<{ c1: ClusterLayout; c2: ClusterLayout }> {
  const encryption = process.env.WEFT_BENCH_ENCRYPTION === 'off' ? 'off' : 'wireguard';
  const state = await labUp({ clusters: [{ name: 'c1', id: 1 }, { name: 'c2', id: 2 }], nodes: 1, routing: 'vxlan', encryption }, (s) => progress(s));
  return { c1: state.clusters[0]!, c2: state.clusters[1]! };
}


/**
 * Waits until each process has used under 5% of a core over a second: what was loaded into the
 * clusters has been taken in, so the measured run shares the cores only with its own work.
 */
async function quiesce(what: string, pids: number[]): Promise<void> {
  const t0 = performance.now();
  for (;;) {
    const before = pids.map(cpuSeconds);
    await new Promise((r) => setTimeout(r, 1000));
    const busy = pids.filter((p, i) => cpuSeconds(p) - before[i]! >= 0.05);
    if (busy.length === 0) return progress(`${what}: quiet after ${round((performance.now() - t0) / 1000, 1)} s`);
    if (performance.now() - t0 > 180_000) throw new Error(`${what}: processes ${busy.join(', ')} still busy after 180 s`);
  }
}

/** The agents of both clusters and c1's clustermesh-apiserver. */
function settledPids(c1: ClusterLayout, c2: ClusterLayout): number[] {
  const agents = [...c1.nodes, ...c2.nodes].map((n) => pidInNetns(n.netns, join(n.stateDir, 'agent.json')));
  const pids = [...agents, apiserverPid(c1)];
  if (pids.some((p) => p === undefined)) throw new Error('coldsync: an agent or c1\'s clustermesh-apiserver is not running');
  return pids as number[];
}

/** Endpoint i of the propagation run, on a bench node inside c1's pod range (mesh-range.ts). */
function record(i: number): { ip: string; key: string; value: string } {
  const { ip, node, nodeIp } = inRangeEndpoint(i);
  return { ip, key: endpointKey(node, ip), value: JSON.stringify({ ip, identity: (1 << 16) | 300, node, nodeIp, namespace: 'bench', pod: `p${i}`, labels: { app: 'bench' } }) };
}

export async function propagation(): Promise<void> {
  const { c1, c2 } = await lab();
  const kv = labEtcdClient(c1);
  const ipcache = BpfMap.openPinned(join(c2.nodes[0]!.pinRoot, 'weft_ipcache'));
  const latencies: number[] = [];
  const RATE = 100;
  const SECONDS = Number(process.env.WEFT_BENCH_SECONDS ?? 10);
  try {
    // The identity must exist in c1 for c2 to accept endpoints that carry it.
    await kv.put('weft/identities/v1/id/65836', 'k8s:app=bench;k8s:weft.io/cluster=c1');
    // And a node whose pod CIDR holds them (endpoints are imported only inside their node's).
    await addBenchNodes(kv);
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
      const r = record(i);
      const key = Buffer.alloc(IPCACHE_KEY.size);
      encodeIpcacheKey(key, 0, ipv4ToInt(r.ip), 32);
      const t0 = performance.now();
      pending.set(i, { key, t0 });
      const ops = [op.put(r.key, r.value)];
      if (i >= 200) ops.push(op.delete(record(i - 200).key)); // churn: 100/s go away too
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

/** ClusterIP of benchmark service j (10.96.0.1 onwards). */
function vip(j: number): string {
  return `10.96.${(j + 1) >> 8}.${(j + 1) & 255}`;
}

export async function coldsync(): Promise<void> {
  const ENDPOINTS = Number(process.env.WEFT_BENCH_ENDPOINTS ?? 100_000);
  const IDENTITIES = Number(process.env.WEFT_BENCH_IDENTITIES ?? 10_000);
  const SERVICES = Number(process.env.WEFT_BENCH_SERVICES ?? 1000);
  const service = (j: number) => JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${j}`, namespace: 'bench', labels: {}, annotations: { 'weft.io/global': 'true' } }, spec: { type: 'ClusterIP', clusterIP: vip(j), selector: { app: `svc-${j}` }, ports: [{ protocol: 'TCP', port: 80, targetPort: 8080 }] } });
  const { c1, c2 } = await lab();
  const kv1 = labEtcdClient(c1);
  const kv2 = labEtcdClient(c2);
  try {
    process.kill(apiserverPid(c2)!, 'SIGKILL');
    progress(`coldsync: loading ${IDENTITIES} identities, ${ENDPOINTS} endpoints and ${SERVICES} global services into c1; the services into c2`);
    for (let i = 0; i < SERVICES; i += 500) {
      const ops = [];
      for (let j = i; j < Math.min(SERVICES, i + 500); j++) ops.push(op.put(`weft/resources/v1/Service/bench/svc-${j}`, service(j)));
      await kv1.txn('bench load services', { compare: [], success: ops });
      await kv2.txn('bench load services', { compare: [], success: ops });
    }
    for (let i = 0; i < IDENTITIES; i += 1000) {
      const ops = [];
      for (let j = i; j < Math.min(IDENTITIES, i + 1000); j++) ops.push(op.put(`weft/identities/v1/id/${(1 << 16) | (300 + j)}`, `k8s:app=svc-${j};k8s:weft.io/cluster=c1`));
      await kv1.txn('bench load identities', { compare: [], success: ops });
    }
    for (let i = 0; i < ENDPOINTS; i += 1000) {
      const ops = [];
      for (let j = i; j < Math.min(ENDPOINTS, i + 1000); j++) {
        const { ip, node, nodeIp } = benchEndpoint(j);
        ops.push(op.put(endpointKey(node, ip), JSON.stringify({ ip, identity: (1 << 16) | (300 + (j % IDENTITIES)), node, nodeIp, namespace: 'bench', pod: `p${j}`, labels: { app: `svc-${j % SERVICES}` } })));
      }
      await kv1.txn('bench load endpoints', { compare: [], success: ops });
    }
    await kv2.delete(`${MESH_STATUS_PREFIX}c2`);
    // The endpoints' nodes (beyond c1's pod range, which c2 then accepts from c1: mesh-range.ts).
    await addBenchNodes(kv1);
    allowBenchRange(c2);
    // c1's agent takes in its cluster's 100k endpoints and 1,000 services, c1's exporter caches
    // them, c2's agent its 1,000 services: all before c2 connects, as in a cluster that has been
    // running (it used to be a fixed 2 s, and c1's agent spent 1.9 s of CPU inside the measured run).
    await quiesce('coldsync: c1 and c2 take in what was loaded', settledPids(c1, c2));
    progress('coldsync: c2 connects');
    const t0 = performance.now();
    const child = spawn('ip', ['netns', 'exec', c2.cpNetns, process.execPath, WEFT, 'clustermesh-apiserver', '--config', `/var/run/weft/lab/c2/clustermesh/config.json`], { detached: true, stdio: 'ignore' });
    child.unref();
    const lb = BpfMap.openPinned(join(c2.nodes[0]!.pinRoot, 'weft_lb_services'));
    const perService = Math.floor(ENDPOINTS / SERVICES);
    let programmedMs: number | undefined;
    const allProgrammed = (): boolean => {
      for (let j = 0; j < SERVICES; j++) {
        const key = encodeLbKey({ vip: ipv4ToInt(vip(j)), port: 80, protocol: IPPROTO_TCP }, 0);
        const v = lb.lookup(key);
        if (!v || decodeLb(key, v).count < perService) return false;
      }
      return true;
    };
    let status: MeshStatus | undefined;
    for (;;) {
      const kvs = await kv2.get(`${MESH_STATUS_PREFIX}c2`);
      status = kvs ? (JSON.parse(kvs.value.toString()) as MeshStatus) : undefined;
      if (status?.remotes[0]?.state === 'synced') break;
      if (performance.now() - t0 > 120_000) throw new Error('coldsync: not synced within 120 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    while (programmedMs === undefined) {
      if (allProgrammed()) programmedMs = performance.now() - t0;
      else if (performance.now() - t0 > 180_000) throw new Error("coldsync: c2's node did not program every service within 180 s");
      else await new Promise((r) => setTimeout(r, 50));
    }
    lb.close();
    const wall = round((performance.now() - t0) / 1000, 2);
    const r = status!.remotes[0]!;
    const syncSeconds = round((r.syncMs ?? NaN) / 1000, 2);
    const programmedSeconds = round(programmedMs / 1000, 2);
    finish('coldsync', { endpoints: ENDPOINTS, identities: IDENTITIES, globalServices: SERVICES, backendsPerService: perService, syncSeconds, wallSecondsIncludingProcessStart: wall, programmedInBpfSecondsIncludingProcessStart: programmedSeconds, imported: r.counts }, [
      { name: 'fresh connection to synced, seconds (100k endpoints + 10k identities + 1k global services)', value: syncSeconds, goal: '< 5', met: syncSeconds < 5 },
      { name: "until every global service's remote backends are in a c2 node's BPF map, seconds (informational)", value: programmedSeconds, goal: 'report', met: true },
    ]);
  } finally {
    kv1.close();
    kv2.close();
    await labDown(() => undefined);
  }
}
