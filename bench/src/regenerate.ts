/**
 * Benchmark `regenerate`: a label change until its new policy is in the BPF maps of every node.
 *
 * A two-node lab (VXLAN, WireGuard as by default) runs 100 pods in namespace `regen` (the lab's
 * pod runtime starts them, half on each node) and a server pod on each node in `regen-srv`, whose
 * policy admits pods labelled `round` (any value) and every pod of a namespace labelled `batch`.
 *   pod relabel: one pod gets `round=rN` (a label set never seen, so a new identity); timed from
 *     the write of the Pod until every node's BPF ipcache maps the pod's address to its new
 *     identity and both servers' BPF policy admits it.
 *   namespace relabel: `regen` gets `batch=rN`, so all 100 pods change identity (10 label sets
 *     among them); timed until every node's ipcache has all 100 new identities and both servers'
 *     policy admits each.
 * Resources are written straight to the lab's etcd (what `weft apply` does, minus its process).
 */
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { AgentClient } from '@weft/agent';
import { BpfMap, decodeIpcache, encodeIpcacheKey, ipv4ToInt, IPCACHE_KEY } from '@weft/datapath';
import { agentSocket, applyAndWait, labEtcdClient, labDown, labUp, type ClusterLayout } from '@weft/lab';
import { ResourceStore, validateResource, type Resource } from '@weft/resources';
import { finish, percentile, progress, round, type Target } from './report.js';

const PODS = Number(process.env.WEFT_BENCH_PODS ?? 100);
const POD_ROUNDS = Number(process.env.WEFT_BENCH_ROUNDS ?? 30);
const NS_ROUNDS = Number(process.env.WEFT_BENCH_NS_ROUNDS ?? 5);
const NS = 'regen';
const SRV_NS = 'regen-srv';

function pod(c: ClusterLayout, i: number, extra: Record<string, string> = {}): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `p${i}`, namespace: NS, labels: { app: 'bench', shard: `s${i % 10}`, ...extra } },
    spec: { nodeName: c.nodes[i % c.nodes.length]!.name, containers: [{ name: 'idle', command: ['sleep', 'infinity'] }] },
  };
}

export async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('Cannot run the regenerate benchmark: it needs root (the lab)');
  const state = await labUp({ clusters: [{ name: 'c1', id: 1 }], nodes: 2, routing: 'vxlan' }, (s) => progress(s));
  const c = state.clusters[0]!;
  const kv = labEtcdClient(c);
  const store = new ResourceStore(kv);
  const write = (docs: unknown[]): Promise<unknown> => store.apply(docs.map((d, i) => validateResource(d, `regenerate #${i}`, c.name)));
  const agents = c.nodes.map((n) => new AgentClient(agentSocket(n)));
  const ipcaches = c.nodes.map((n) => BpfMap.openPinned(join(n.pinRoot, 'weft_ipcache')));
  try {
    const docs: unknown[] = [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: SRV_NS } },
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'srv', namespace: SRV_NS },
        spec: {
          podSelector: { matchLabels: { app: 'srv' } },
          ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchExpressions: [{ key: 'round', operator: 'Exists' }] } }, { namespaceSelector: { matchExpressions: [{ key: 'batch', operator: 'Exists' }] } }] }],
        },
      },
      ...c.nodes.map((n, k) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: `srv-${k + 1}`, namespace: SRV_NS, labels: { app: 'srv' } }, spec: { nodeName: n.name, containers: [{ name: 'idle', command: ['sleep', 'infinity'] }] } })),
      ...Array.from({ length: PODS }, (_, i) => pod(c, i)),
    ];
    progress(`starting ${PODS} pods and ${c.nodes.length} servers`);
    await applyAndWait(c, docs.map((d, i) => validateResource(d, `regenerate #${i}`, c.name)) as Resource[], 180_000);
    const ipOf = new Map<string, string>();
    for (const a of agents) for (const e of await a.endpoints()) ipOf.set(`${e.namespace}/${e.pod}`, e.ip);
    const keys = Array.from({ length: PODS }, (_, i) => {
      const key = Buffer.alloc(IPCACHE_KEY.size);
      encodeIpcacheKey(key, 0, ipv4ToInt(ipOf.get(`${NS}/p${i}`)!), 32);
      return key;
    });
    /** The identity each node's BPF ipcache gives pod i. */
    const identityOn = (node: number, i: number): number | undefined => {
      const v = ipcaches[node]!.lookup(keys[i]!);
      return v ? decodeIpcache(keys[i]!, v).identity : undefined;
    };
    /** The identities each server's policy admits, as its BPF policy map has them now. */
    const admitted = async (): Promise<Array<Set<number>>> =>
      Promise.all(
        c.nodes.map(async (_, k) => {
          const { entries } = await agents[k]!.policyMap(`${SRV_NS}/srv-${k + 1}`);
          return new Set(entries.filter((e) => !e.egress && !e.deny).map((e) => e.identity));
        }),
      );
    /** Waits until every pod in `pods` has a new identity on every node and both servers admit it; ms since t0. */
    const settle = async (pods: number[], before: number[][], t0: number): Promise<number> => {
      for (;;) {
        const now: number[][] = c.nodes.map((_, n) => pods.map((i) => identityOn(n, i) ?? 0));
        const moved = now.every((row, n) => row.every((id, j) => id !== 0 && id !== before[n]![j]));
        // Every node agrees on each pod's identity.
        if (moved && now.every((row) => row.every((id, j) => id === now[0]![j]))) {
          const sets = await admitted();
          if (now[0]!.every((id) => sets.every((s) => s.has(id)))) return performance.now() - t0;
        }
        if (performance.now() - t0 > 30_000) throw new Error(`Cannot finish the regenerate benchmark: pods ${pods.slice(0, 5).join(', ')} were not regenerated everywhere within 30 s`);
        await new Promise((r) => setTimeout(r, 1));
      }
    };
    const snapshot = (pods: number[]): number[][] => c.nodes.map((_, n) => pods.map((i) => identityOn(n, i) ?? 0));

    const single: number[] = [];
    progress(`${POD_ROUNDS} pod relabels`);
    for (let r = 0; r < POD_ROUNDS; r++) {
      const i = (r * 7) % PODS;
      const before = snapshot([i]);
      const t0 = performance.now();
      await write([pod(c, i, { round: `r${r}` })]);
      single.push(await settle([i], before, t0));
    }
    const all = Array.from({ length: PODS }, (_, i) => i);
    const namespace: number[] = [];
    progress(`${NS_ROUNDS} namespace relabels (${PODS} pods each)`);
    for (let r = 0; r < NS_ROUNDS; r++) {
      const before = snapshot(all);
      const t0 = performance.now();
      await write([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { batch: `r${r}` } } }]);
      namespace.push(await settle(all, before, t0));
      progress(`namespace relabel ${r + 1}: ${round(namespace[r]!, 1)} ms`);
    }
    const stats = (xs: number[]): { p50Ms: number; p99Ms: number; maxMs: number } => {
      const s = [...xs].sort((a, b) => a - b);
      return { p50Ms: round(percentile(s, 50), 1), p99Ms: round(percentile(s, 99), 1), maxMs: round(s[s.length - 1]!, 1) };
    };
    const one = stats(single);
    const hundred = stats(namespace);
    const targets: Target[] = [
      { name: 'pod relabel -> new policy in every node\'s BPF maps, p99 ms', value: one.p99Ms, goal: '< 100', met: one.p99Ms < 100 },
      { name: `namespace relabel (${PODS} pods) -> every node's BPF maps, p99 ms`, value: hundred.p99Ms, goal: '< 1000', met: hundred.p99Ms < 1000 },
    ];
    finish('regenerate', { nodes: c.nodes.length, pods: PODS, podRelabel: { rounds: POD_ROUNDS, ...one }, namespaceRelabel: { rounds: NS_ROUNDS, pods: PODS, ...hundred } }, targets);
  } finally {
    for (const m of ipcaches) m.close();
    kv.close();
    // WEFT_BENCH_LOGS=DIR keeps the agents' logs (each regeneration logs its own time).
    if (process.env.WEFT_BENCH_LOGS) for (const n of c.nodes) cpSync(join(n.stateDir, 'agent.log'), join(process.env.WEFT_BENCH_LOGS, `${n.name}.log`));
    await labDown(() => undefined);
  }
}
