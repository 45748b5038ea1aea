/**
 * Benchmark `endpoint`: from kubelet's CNI ADD to the pod's identity and
 * policy enforced in the datapath. A one-node lab; a policy selecting the
 * benchmark pods; for each of 200 pods: create its network namespace, exec the
 * real CNI plugin binary with ADD exactly as kubelet does, and time until it
 * returns; the agent answers only after the endpoint, its identity and its
 * policy are in the BPF maps, which is then verified through the agent's API.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { AgentClient } from '@weft/agent';
import { agentSocket, labEtcdClient, labDown, labUp } from '@weft/lab';
import { ResourceStore, validateResource } from '@weft/resources';
import { finish, percentile, progress, round, type Target } from './report.js';

const REPO = join(__dirname, '..', '..');
const PODS = Number(process.env.WEFT_BENCH_PODS ?? 200);
const NS = 'bench';

export async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('Cannot run the endpoint benchmark: it needs root (the lab)');
  const state = await labUp({ clusters: [{ name: 'c1', id: 1 }], nodes: 1, routing: 'vxlan' }, (s) => progress(s));
  const c = state.clusters[0]!;
  const node = c.nodes[0]!;
  const kv = labEtcdClient(c);
  const agent = new AgentClient(agentSocket(node));
  const latencies: number[] = [];
  let verified = 0;
  try {
    const docs: unknown[] = [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
      { apiVersion: 'weft.io/v1', kind: 'WeftNetworkPolicy', metadata: { name: 'bench-in', namespace: NS }, spec: { endpointSelector: { matchLabels: { app: 'bench' } }, ingress: [{ fromEndpoints: [{ matchLabels: { app: 'bench' } }], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }] }] }] } },
    ];
    // Pods scheduled nowhere: the lab's pod runtime leaves them alone, the benchmark plays kubelet.
    for (let i = 0; i < PODS; i++) docs.push({ apiVersion: 'v1', kind: 'Pod', metadata: { name: `p${i}`, namespace: NS, labels: { app: 'bench', shard: `s${i % 20}` } }, spec: { nodeName: 'unscheduled', containers: [{ name: 'c', command: ['sleep', '1'] }] } });
    await new ResourceStore(kv).apply(docs.map((d, i) => validateResource(d, `bench #${i}`, c.name)));
    await new Promise((r) => setTimeout(r, 300));
    const plugin = join(REPO, 'packages', 'cni', 'bin', 'weft-cni.js');
    const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'weft', type: 'weft-cni', agentSocket: agentSocket(node) });
    for (let i = 0; i < PODS; i++) {
      const netns = `weft-bench-p${i}`;
      execFileSync('ip', ['netns', 'add', netns]);
      const env = { ...process.env, CNI_COMMAND: 'ADD', CNI_CONTAINERID: `bench${i}`, CNI_NETNS: `/var/run/netns/${netns}`, CNI_IFNAME: 'eth0', CNI_ARGS: `K8S_POD_NAMESPACE=${NS};K8S_POD_NAME=p${i}`, CNI_PATH: join(plugin, '..') };
      const t0 = performance.now();
      const r = spawnSync(process.execPath, [plugin], { input: conf, env, encoding: 'utf8' });
      latencies.push(performance.now() - t0);
      if (r.status !== 0) throw new Error(`CNI ADD for p${i} failed: ${r.stdout}`);
      const bpf = await agent.policyMap(`${NS}/p${i}`);
      if (bpf.entries.length > 0) verified++;
      if ((i + 1) % 50 === 0) progress(`${i + 1}/${PODS} pods added`);
    }
  } finally {
    kv.close();
    await labDown(() => undefined);
  }
  const sorted = [...latencies].sort((a, b) => a - b);
  const p50 = round(percentile(sorted, 50), 1);
  const p99 = round(percentile(sorted, 99), 1);
  const targets: Target[] = [
    { name: 'CNI ADD to identity and policy enforced, p99 ms', value: p99, goal: '< 250', met: p99 < 250 },
    { name: 'pods whose policy was in the BPF map when ADD returned', value: verified, goal: `== ${PODS}`, met: verified === PODS },
  ];
  finish('endpoint', { pods: PODS, p50Ms: p50, p99Ms: p99, maxMs: round(sorted[sorted.length - 1]!, 1), includes: 'exec of the CNI plugin (a Node process), etcd identity allocation, veth setup, BPF map updates' }, targets);
}
