/**
 * Benchmark `scale`, three parts in one run:
 *
 * 1. Global-service ingestion (Cilium's anchor: 78.8 ms for a 10k-backend
 *    global service): a remote cluster's service record and its 10k endpoints
 *    are resolved into backends and written to real, freshly created BPF
 *    service maps, as the agent's ServiceManager does. Then one backend leaves
 *    and the update is timed too.
 * 2. Agent memory per 10k remote endpoints: a two-cluster lab (one node each);
 *    the resident memory of c2's agent before and after c1 exports 10k, 20k
 *    and 40k more endpoints (all imported and in the BPF ipcache).
 * 3. Control plane at 32 clusters: 32 etcds and 32 clustermesh-apiservers on
 *    loopback, each with its own CA, every apiserver importing from the 31
 *    others (992 mTLS links). Each cluster exports 500 endpoints, 50
 *    identities, a node and 5 global services. Measured: time from starting
 *    the apiservers until every link is synced, change propagation from one
 *    cluster to all 31 others, and memory per apiserver.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { BpfDatapath } from '@weft/agent/bpf-datapath';
import { serviceView, type ServiceView } from '@weft/schema';
import { resolveService } from '@weft/agent';
import { endpointKey, type EndpointRecord } from '@weft/schema';
import { createCa, issue, MESH_STATUS_PREFIX, type MeshConfig, type MeshStatus, type Pem } from '@weft/clustermesh';
import { silentLogger } from '@weft/common';
import { EtcdProcess, freePort, KvClient, op } from '@weft/kvstore';
import { labEtcdClient, labDown, labUp, pidInNetns } from '@weft/lab';
import { addBenchNodes, allowBenchRange, benchEndpoint, restartApiserver } from './mesh-range.js';
import { finish, percentile, progress, round, type Target } from './report.js';

const REPO = join(__dirname, '..', '..');
const WEFT = join(REPO, 'packages', 'cli', 'bin', 'weft.js');
const CILIUM_10K_BACKEND_INGEST_MS = 78.8;

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Resident memory of a process and its descendants (etcd runs under a small shell guard). */
function treeRssMb(pid: number): number {
  let total = rssMb(pid);
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean)) total += treeRssMb(Number(child));
  }
  return total;
}

async function waitFor(what: string, cond: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`scale: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---- 1. global service ingestion -------------------------------------------------

async function ingestion(): Promise<Record<string, number>> {
  const BACKENDS = 10_000;
  const pinRoot = mkdtempSync('/sys/fs/bpf/weft-bench-scale-');
  const stateDir = mkdtempSync(join(tmpdir(), 'weft-bench-scale-'));
  const dp = new BpfDatapath({
    cluster: 'c1', clusterId: 1, node: 'bench', etcd: [], nodeIp: '10.99.1.11', podCidr: '10.101.1.0/24', routing: 'direct',
    bpfDir: join(REPO, 'bpf', 'build'), pinRoot, stateDir, tunnelDevice: 'weft_bench', vxlanPort: 8472, underlayMtu: 1500, audit: false, podRuntime: false, encryption: 'off', encryptionStrict: false, wireguardDevice: 'weft_bench_wg', wireguardPort: 51871, wireguardImplementation: 'auto', ipsecKeyFile: '', keyRotationIntervalSec: 0, keyRotationTimeoutSec: 60,
  }, silentLogger(), { underlay: false }); // maps only: nothing is attached in the machine's own namespace
  try {
    await dp.start();
    const view = serviceView({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'big', namespace: 'bench', labels: {}, annotations: { 'weft.io/global': 'true' } }, spec: { type: 'ClusterIP', clusterIP: '10.96.0.100', selector: { app: 'big' }, ports: [{ protocol: 'TCP', port: 80, targetPort: 8080 }] } }) as ServiceView;
    const endpoints: EndpointRecord[] = [];
    for (let i = 0; i < BACKENDS; i++) endpoints.push({ ip: `10.102.${i >> 8}.${i & 255}`, identity: (2 << 16) | 300, node: 'c2-node1', nodeIp: '10.99.2.11', namespace: 'bench', pod: `p${i}`, labels: { app: 'big' } });
    const record = { namespace: 'bench', name: 'big', selector: { app: 'big' }, ports: [{ protocol: 'TCP' as const, port: 80, targetPort: 8080 }] };
    const program = async (v: ServiceView, eps: EndpointRecord[]): Promise<{ total: number; resolve: number; bpf: number }> => {
      const t0 = performance.now();
      const s = resolveService(v, 'c1', [], [{ cluster: 'c2', record, endpoints: eps }]);
      const t1 = performance.now();
      await dp.syncServices(s.frontends.map((f) => ({ vip: f.vip, port: f.port, protocol: f.protocol, backends: f.backends })));
      const t2 = performance.now();
      return { total: t2 - t0, resolve: t1 - t0, bpf: t2 - t1 };
    };
    // The agent is a long-running process: one warm-up ingestion (then removed) before the measured one.
    await program({ ...view, clusterIP: '10.96.0.99' }, endpoints);
    await dp.syncServices([]);
    const cold = await program(view, endpoints);
    const [programmed] = await dp.dumpServices();
    if (programmed?.backends.length !== BACKENDS) throw new Error(`scale: ${programmed?.backends.length} backends programmed, want ${BACKENDS}`);
    const update = await program(view, endpoints.slice(1));
    return { backends: BACKENDS, ingestMs: round(cold.total, 1), resolveMs: round(cold.resolve, 1), bpfWriteMs: round(cold.bpf, 1), oneBackendRemovedMs: round(update.total, 1), ciliumAnchorMs: CILIUM_10K_BACKEND_INGEST_MS, ratioVsCilium: round(cold.total / CILIUM_10K_BACKEND_INGEST_MS, 2) };
  } finally {
    await dp.stop();
    rmSync(pinRoot, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  }
}

// ---- 2. agent memory per 10k remote endpoints -------------------------------------

async function agentMemory(): Promise<Record<string, unknown>> {
  const state = await labUp({ clusters: [{ name: 'c1', id: 1 }, { name: 'c2', id: 2 }], nodes: 1, routing: 'vxlan' }, (s) => progress(s));
  const [c1, c2] = [state.clusters[0]!, state.clusters[1]!];
  const kv1 = labEtcdClient(c1);
  const agent = pidInNetns(c2.nodes[0]!.netns, 'agent');
  try {
    if (!agent) throw new Error("scale: cannot find c2's agent");
    await kv1.txn('bench identities', { compare: [], success: Array.from({ length: 100 }, (_, j) => op.put(`weft/identities/v1/id/${(1 << 16) | (300 + j)}`, `k8s:app=m${j};k8s:weft.io/cluster=c1`)) });
    const status = async (): Promise<{ remoteEndpoints: number; memory: { heapUsed: number } }> => JSON.parse(spawnSync(process.execPath, [WEFT, 'status', '--cluster', 'c2', '-o', 'json'], { encoding: 'utf8' }).stdout)[0];
    // The endpoints' nodes, beyond c1's pod range, which c2 then accepts from c1 (mesh-range.ts).
    await addBenchNodes(kv1);
    restartApiserver(c2, allowBenchRange(c2));
    const kv2 = labEtcdClient(c2);
    await kv2.delete(`${MESH_STATUS_PREFIX}c2`);
    await waitFor("c2's apiserver to sync again", async () => {
      const kvs = await kv2.get(`${MESH_STATUS_PREFIX}c2`);
      return kvs !== undefined && (JSON.parse(kvs.value.toString()) as MeshStatus).remotes[0]?.state === 'synced';
    }, 60_000).finally(() => kv2.close());
    const base = (await status()).remoteEndpoints;
    await new Promise((r) => setTimeout(r, 3000));
    const samples: Array<{ remoteEndpoints: number; rssMb: number; heapUsedMb: number }> = [{ remoteEndpoints: 0, rssMb: round(rssMb(agent), 1), heapUsedMb: (await status()).memory.heapUsed }];
    let loaded = 0;
    for (const target of [10_000, 20_000, 40_000]) {
      progress(`scale: c1 exports ${target} endpoints; measuring c2's agent`);
      for (; loaded < target; loaded += 1000) {
        const ops = [];
        for (let j = loaded; j < loaded + 1000; j++) {
          const { ip, node, nodeIp } = benchEndpoint(j);
          ops.push(op.put(endpointKey(node, ip), JSON.stringify({ ip, identity: (1 << 16) | (300 + (j % 100)), node, nodeIp, namespace: 'bench', pod: `p${j}`, labels: { app: `m${j % 100}` } })));
        }
        await kv1.txn('bench endpoints', { compare: [], success: ops });
      }
      await waitFor(`c2's agent to hold ${target} remote endpoints`, async () => (await status()).remoteEndpoints >= base + target, 120_000);
      await new Promise((r) => setTimeout(r, 3000)); // let the heap settle after the burst
      samples.push({ remoteEndpoints: target, rssMb: round(rssMb(agent), 1), heapUsedMb: (await status()).memory.heapUsed });
    }
    const last = samples[samples.length - 1]!;
    const per10k = (f: (s: (typeof samples)[number]) => number): number => round(((f(last) - f(samples[0]!)) / last.remoteEndpoints) * 10_000, 2);
    return { samples, rssMbPer10kRemoteEndpoints: per10k((s) => s.rssMb), heapUsedMbPer10kRemoteEndpoints: per10k((s) => s.heapUsedMb) };
  } finally {
    kv1.close();
    await labDown(() => undefined);
  }
}

// ---- 3. 32 clusters, control plane only ------------------------------------------

interface Member {
  name: string;
  id: number;
  etcd: EtcdProcess;
  kv: KvClient;
  port: number;
  ca: Pem;
  server: Pem;
  proc?: ChildProcess;
}

async function controlPlane(): Promise<Record<string, unknown>> {
  const CLUSTERS = Number(process.env.WEFT_BENCH_CLUSTERS ?? 32);
  const ENDPOINTS = 500;
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-32-'));
  const members: Member[] = [];
  try {
    progress(`scale: starting ${CLUSTERS} etcds and making ${CLUSTERS} CAs`);
    for (let i = 1; i <= CLUSTERS; i++) {
      const etcd = await EtcdProcess.start({ name: `scale-c${i}` });
      const ca = await createCa(`c${i}`);
      members.push({ name: `c${i}`, id: i, etcd, kv: new KvClient({ endpoints: [etcd.endpoint] }), port: 0, ca, server: await issue(ca, `clustermesh-c${i}`, { ips: ['127.0.0.1'] }) });
    }
    // Ports for the apiservers only once every etcd holds its own (a free port chosen earlier could go to a later etcd).
    const taken = new Set<number>();
    for (const m of members) {
      do m.port = await freePort();
      while (taken.has(m.port));
      taken.add(m.port);
    }
    progress(`scale: seeding each cluster (${ENDPOINTS} endpoints, 50 identities, 1 node, 5 global services)`);
    for (const m of members) {
      const ops = [op.put(`weft/state/v1/nodes/${m.name}-node1`, JSON.stringify({ name: `${m.name}-node1`, cluster: m.name, ip: `10.99.${m.id}.11`, podCidr: `10.${100 + m.id}.0.0/16`, routing: 'vxlan' }))];
      for (let j = 0; j < 50; j++) ops.push(op.put(`weft/identities/v1/id/${(m.id << 16) | (300 + j)}`, `k8s:app=a${j};k8s:weft.io/cluster=${m.name}`));
      for (let j = 0; j < 5; j++) ops.push(op.put(`weft/resources/v1/Service/shop/s${j}`, JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: `s${j}`, namespace: 'shop', labels: {}, annotations: { 'weft.io/global': 'true' } }, spec: { type: 'ClusterIP', clusterIP: `10.96.0.${10 + j}`, selector: { app: `a${j}` }, ports: [{ protocol: 'TCP', port: 80, targetPort: 8080 }] } })));
      await m.kv.txn('seed', { compare: [], success: ops });
      for (let j = 0; j < ENDPOINTS; j += 100) {
        const eps = [];
        for (let k = j; k < j + 100; k++) {
          const ip = `10.${100 + m.id}.${1 + Math.floor(k / 250)}.${k % 250}`;
          eps.push(op.put(`weft/state/v1/endpoints/${m.name}-node1/${ip}`, JSON.stringify({ ip, identity: (m.id << 16) | (300 + (k % 50)), node: `${m.name}-node1`, nodeIp: `10.99.${m.id}.11`, namespace: 'shop', pod: `p${k}`, labels: { app: `a${k % 50}` } })));
        }
        await m.kv.txn('seed endpoints', { compare: [], success: eps });
      }
    }
    progress(`scale: issuing ${CLUSTERS * (CLUSTERS - 1)} client certificates (one per link, from the exporting cluster's CA)`);
    for (const m of members) {
      const config: MeshConfig = {
        cluster: m.name, clusterId: m.id, etcd: [m.etcd.endpoint], listen: `127.0.0.1:${m.port}`, ca: m.ca.cert, cert: m.server.cert, key: m.server.key, staleAfterSeconds: 600,
        remotes: await Promise.all(members.filter((r) => r !== m).map(async (r) => {
          const client = await issue(r.ca, m.name);
          return { name: r.name, id: r.id, address: `127.0.0.1:${r.port}`, ca: r.ca.cert, cert: client.cert, key: client.key };
        })),
      };
      writeFileSync(join(dir, `${m.name}.json`), JSON.stringify(config));
    }
    progress(`scale: starting ${CLUSTERS} clustermesh-apiservers (${CLUSTERS * (CLUSTERS - 1)} links)`);
    const t0 = performance.now();
    for (const m of members) {
      m.proc = spawn(process.execPath, [WEFT, 'clustermesh-apiserver', '--config', join(dir, `${m.name}.json`)], { stdio: 'ignore', env: { ...process.env, WEFT_LOG_LEVEL: 'warn' } });
    }
    const syncedLinks = async (): Promise<number> => {
      let n = 0;
      for (const m of members) {
        const kv = await m.kv.get(`${MESH_STATUS_PREFIX}${m.name}`);
        const s = kv ? (JSON.parse(kv.value.toString()) as MeshStatus) : undefined;
        n += s?.remotes.filter((r) => r.state === 'synced').length ?? 0;
      }
      return n;
    };
    const links = CLUSTERS * (CLUSTERS - 1);
    let lastReport = 0;
    await waitFor('every link to sync', async () => {
      const n = await syncedLinks();
      if (performance.now() - lastReport > 5000) {
        progress(`scale: ${n}/${links} links synced`);
        lastReport = performance.now();
      }
      return n === links;
    }, 600_000);
    const convergeSeconds = round((performance.now() - t0) / 1000, 2);
    // Everything imported everywhere?
    const imported = await members[0]!.kv.count('weft/mesh/v1/');
    progress('scale: change propagation from c1 to all other clusters');
    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      const ip = `10.101.9.${i}`;
      const key = `weft/mesh/v1/c1/endpoints/${ip}`;
      const start = performance.now();
      await members[0]!.kv.put(`weft/state/v1/endpoints/c1-node1/${ip}`, JSON.stringify({ ip, identity: (1 << 16) | 300, node: 'c1-node1', nodeIp: '10.99.1.11', namespace: 'shop', pod: `new${i}`, labels: { app: 'a0' } }));
      const pending = new Set(members.slice(1));
      while (pending.size > 0) {
        for (const m of [...pending]) if (await m.kv.get(key)) pending.delete(m);
        if (performance.now() - start > 30_000) throw new Error('scale: a change did not reach every cluster within 30 s');
      }
      latencies.push(performance.now() - start);
    }
    latencies.sort((a, b) => a - b);
    const rss = members.map((m) => rssMb(m.proc!.pid!));
    const etcdRss = members.map((m) => treeRssMb(m.etcd.pid!));
    return {
      clusters: CLUSTERS,
      links,
      perClusterExport: { endpoints: ENDPOINTS, identities: 50, nodes: 1, globalServices: 5 },
      keysImportedByC1: imported,
      convergeSeconds,
      propagationToAllP50Ms: round(percentile(latencies, 50), 1),
      propagationToAllP99Ms: round(percentile(latencies, 99), 1),
      apiserverRssMb: { mean: round(rss.reduce((a, b) => a + b, 0) / rss.length, 1), max: round(Math.max(...rss), 1) },
      etcdRssMb: { mean: round(etcdRss.reduce((a, b) => a + b, 0) / etcdRss.length, 1), max: round(Math.max(...etcdRss), 1) },
    };
  } finally {
    for (const m of members) m.proc?.kill('SIGKILL');
    for (const m of members) {
      m.kv.close();
      await m.etcd.stop().catch(() => undefined);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** WEFT_BENCH_PARTS=1,3 runs only those parts (default: all three). */
export async function scale(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('Cannot run the scale benchmark: it needs root (BPF maps and the lab)');
  const parts = new Set((process.env.WEFT_BENCH_PARTS ?? '1,2,3').split(',').map(Number));
  const results: Record<string, unknown> = {};
  const targets: Target[] = [];
  if (parts.has(1)) {
    progress('scale 1/3: a 10k-backend global service into BPF maps');
    const ingest = await ingestion();
    progress(`scale 1/3: ${JSON.stringify(ingest)}`);
    results.ingestion = ingest;
    targets.push({ name: '10k-backend global service ingested into BPF, ms (Cilium anchor 78.8)', value: ingest.ingestMs!, goal: '< 78.8', met: ingest.ingestMs! < CILIUM_10K_BACKEND_INGEST_MS });
  }
  if (parts.has(2)) {
    progress('scale 2/3: agent memory per 10k remote endpoints');
    const memory = await agentMemory();
    progress(`scale 2/3: ${JSON.stringify(memory)}`);
    results.agentMemory = memory;
    const perTenK = memory.rssMbPer10kRemoteEndpoints as number;
    targets.push({ name: 'agent resident memory per 10k remote endpoints, MB', value: perTenK, goal: '< 25', met: perTenK < 25 });
  }
  if (parts.has(3)) {
    progress('scale 3/3: 32 clusters, control plane only');
    const cp = await controlPlane();
    results.controlPlane = cp;
    targets.push(
      { name: `${cp.clusters} clusters fully meshed (every link synced), seconds`, value: cp.convergeSeconds as number, goal: '< 60', met: (cp.convergeSeconds as number) < 60 },
      { name: `a change in one cluster reaches all ${(cp.clusters as number) - 1} others, p99 ms`, value: cp.propagationToAllP99Ms as number, goal: '< 1000', met: (cp.propagationToAllP99Ms as number) < 1000 },
    );
  }
  finish('scale', results, targets);
}
