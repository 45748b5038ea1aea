/**
 * Benchmark `policyscale`: what one change costs the policy engine of a node holding 10,000
 * identities, 1,000 policies and 200 local endpoints. Identities and policies live in a real etcd
 * (the allocator's cache and the resource store's watches feed the engine as in the agent); the
 * datapath is the in-memory one, which counts the policy map entries each endpoint's program
 * changes. Measured side by side in one run:
 *   - a full recompute: every endpoint resolved again and its map rewritten (its state forgotten);
 *   - one identity added and removed again, one policy added, one policy removed: from the etcd write until the
 *     engine is idle again, the engine's own time (its jobs, not the watch's latency), the
 *     endpoints it resolved and the map entries it wrote.
 * Issue 13's target: work proportional to what changed, at least 50x less than a full recompute.
 *
 * "datapathMs" is the part of the engine's time spent in the in-memory datapath and in counting its
 * writes (JSON of every entry a full program hands over): fullOverChangeWithoutDatapath leaves it
 * out on both sides.
 *
 * The engine's work is observed by wrapping its public entry points (`recomputeChanged`,
 * `recomputeAll`, `apply`): the same instance methods its coalescer and the agent call.
 */
import { performance } from 'node:perf_hooks';
import { silentLogger } from '@weft/common';
import { IdentityAllocator, IdentityLayout, workloadLabels } from '@weft/identity';
import { EtcdProcess, KvClient } from '@weft/kvstore';
import { MemoryDatapath, PolicyEngine, validateAgentConfig, type Endpoint } from '@weft/agent';
import { ResourceStore, type Resource } from '@weft/resources';
import { finish, progress, round, type Target } from './report.js';

const IDENTITIES = Number(process.env.WEFT_BENCH_IDENTITIES ?? 10_000);
const POLICIES = Number(process.env.WEFT_BENCH_POLICIES ?? 1_000);
const ENDPOINTS = Number(process.env.WEFT_BENCH_ENDPOINTS ?? 200);
const NAMESPACES = 50;
const CLUSTER = 'bench';

/** Identity i: one of 1,000 apps, 20 tiers and 4 roles, in one of 50 namespaces. */
function identityLabels(i: number): { namespace: string; labels: Record<string, string> } {
  return { namespace: `ns-${i % NAMESPACES}`, labels: { app: `app-${i % 1000}`, tier: `t-${i % 20}`, role: `r-${i % 4}`, n: String(i) } };
}

/** Policy k selects app-k in its namespace and admits two groups of its namespace's identities. */
function policy(k: number, ns = `ns-${k % NAMESPACES}`, port = 80): Resource {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: `p-${k}`, namespace: ns, labels: {}, annotations: {} },
    spec: {
      podSelector: { matchLabels: { app: `app-${k % 1000}` } },
      policyTypes: ['Ingress'],
      ingress: [
        { from: [{ podSelector: { matchLabels: { tier: `t-${k % 20}` } } }], ports: [{ protocol: 'TCP', port }] },
        { from: [{ podSelector: { matchLabels: { role: `r-${k % 4}` } } }], ports: [{ protocol: 'TCP', port: 8080 }] },
      ],
    },
  } as unknown as Resource;
}

interface Work {
  ms: number;
  engineMs: number;
  /** Of engineMs, the time inside the in-memory datapath and the bench's counting of its writes. */
  datapathMs: number;
  /** Endpoints resolved in full. */
  resolved: number;
  /** Endpoints given only the entries a selection diff changed. */
  updated: number;
  writes: number;
}

export async function main(): Promise<void> {
  progress(`starting etcd; ${IDENTITIES} identities, ${POLICIES} policies, ${ENDPOINTS} endpoints`);
  const etcd = await EtcdProcess.start({ name: 'bench-policyscale' });
  const kv = new KvClient({ endpoints: [etcd.endpoint] });
  const cleanups: Array<() => Promise<unknown> | void> = [];
  try {
    const allocator = await new IdentityAllocator({ client: kv, clusterId: 1, clusterName: CLUSTER, node: 'n1', logger: silentLogger() }).start();
    cleanups.push(() => allocator.stop({ release: false }));
    const ids: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < IDENTITIES; i += 64) {
      const batch = Array.from({ length: Math.min(64, IDENTITIES - i) }, (_, j) => identityLabels(i + j));
      ids.push(...(await Promise.all(batch.map(async (x) => (await allocator.allocate(workloadLabels({ cluster: CLUSTER, ...x }))).id))));
      if ((i / 64) % 40 === 0) progress(`identities: ${ids.length}/${IDENTITIES}`);
    }
    progress(`identities allocated in ${round((performance.now() - t0) / 1000, 1)} s; applying ${POLICIES} policies`);
    const store = new ResourceStore(kv);
    for (let k = 0; k < POLICIES; k += 100) await store.apply(Array.from({ length: Math.min(100, POLICIES - k) }, (_, j) => policy(k + j)));

    // Endpoint j is identity j*5: app-(5j), selected by policy 5j (and every 1,000th after it).
    const endpoints: Endpoint[] = Array.from({ length: ENDPOINTS }, (_, j) => {
      const { namespace, labels } = identityLabels(j * 5);
      return { epId: j + 1, containerId: `c${j}`, namespace, pod: `pod-${j}`, ip: `10.200.${j >> 8}.${j & 255}`, hostIf: `lxc${j}`, podIf: 'eth0', netns: '-', identity: ids[j * 5]!, labels, namespaceLabels: {}, mac: '02:00:00:00:00:01', nodeMac: '02:00:00:00:00:02' };
    });

    const datapath = new MemoryDatapath();
    let writes = 0;
    const program = datapath.programEndpoint.bind(datapath);
    // Time inside the in-memory datapath and this counting: a test double's, not the engine's own.
    let datapathMs = 0;
    datapath.programEndpoint = async (ep, entries, rev) => {
      const s = performance.now();
      const before = new Set((datapath.policies.get(ep.epId) ?? []).map((e) => JSON.stringify(e)));
      const after = new Set(entries.map((e) => JSON.stringify(e)));
      for (const e of after) if (!before.has(e)) writes++;
      for (const e of before) if (!after.has(e)) writes++;
      const out = program(ep, entries, rev);
      datapathMs += performance.now() - s;
      return out;
    };
    // Per-rule updates hand over only the changed entries: each is one write.
    let updated = 0;
    const update = datapath.updateEndpointPolicy.bind(datapath);
    datapath.updateEndpointPolicy = async (ep, changes, rev) => {
      const s = performance.now();
      updated++;
      writes += changes.upsert.length + changes.remove.length;
      const out = update(ep, changes, rev);
      datapathMs += performance.now() - s;
      return out;
    };
    const config = validateAgentConfig({ cluster: CLUSTER, clusterId: 1, node: 'n1', etcd: [etcd.endpoint], nodeIp: '192.0.2.1', podCidr: '10.200.0.0/16', bpfDir: '/nonexistent/weft-policyscale' });
    const engine = new PolicyEngine(config, store, allocator, datapath, () => endpoints, silentLogger());
    cleanups.push(() => engine.stop());

    // The engine's work: time inside its jobs, endpoints resolved, and when it last finished.
    let resolved = 0;
    let engineMs = 0;
    let busy = 0;
    let lastDone = performance.now();
    const wrap = <A extends unknown[]>(fn: (...a: A) => Promise<void>, counts: boolean): ((...a: A) => Promise<void>) => async (...a: A) => {
      if (counts) resolved++;
      const top = busy++ === 0;
      const s = performance.now();
      try {
        await fn(...a);
      } finally {
        busy--;
        if (top) {
          lastDone = performance.now();
          engineMs += lastDone - s;
        }
      }
    };
    engine.recomputeAll = wrap(engine.recomputeAll.bind(engine), false);
    // What the engine's coalescer runs since the selector cache (before it, recomputeAll).
    const e = engine as unknown as { recomputeChanged?: () => Promise<void> };
    if (e.recomputeChanged) e.recomputeChanged = wrap(e.recomputeChanged.bind(engine), false);
    engine.apply = wrap(engine.apply.bind(engine), true);

    /** Resets the counters, runs `change`, and waits until the engine has been idle for 300 ms. */
    const measure = async (change: () => Promise<unknown>): Promise<Work> => {
      resolved = 0;
      updated = 0;
      engineMs = 0;
      datapathMs = 0;
      writes = 0;
      const s = performance.now();
      lastDone = s;
      await change();
      const started = performance.now();
      for (;;) {
        await new Promise((r) => setTimeout(r, 50));
        const now = performance.now();
        if (busy === 0 && lastDone > started && now - lastDone > 300) break;
        // Nothing to do at all. Long: today's coalescer waits as long as its last run took (seconds here).
        if (busy === 0 && lastDone <= started && now - started > 15_000) break;
      }
      return { ms: round(lastDone - s, 2), engineMs: round(engineMs, 2), datapathMs: round(datapathMs, 2), resolved, updated, writes };
    };

    progress('engine: first sync');
    const initial = await measure(async () => {
      await engine.start();
      engine.schedule();
    });
    const entries = [...datapath.policies.values()].reduce((n, e) => n + e.length, 0);
    progress(`first sync: ${initial.engineMs} ms, ${entries} policy map entries over ${ENDPOINTS} endpoints`);

    const full = await measure(async () => {
      for (const ep of endpoints) {
        engine.forget(ep.epId);
        datapath.policies.delete(ep.epId); // so every entry counts as written, as a rewrite writes it
      }
      await engine.recomputeAll();
    });
    progress(`full recompute: ${full.engineMs} ms (${full.datapathMs} ms in the datapath double), ${full.resolved} endpoints, ${full.writes} writes`);
    // Every endpoint resolved again, nothing written: what any change costs today.
    const unchanged = await measure(() => engine.recomputeAll());
    progress(`recompute with nothing changed: ${unchanged.engineMs} ms, ${unchanged.resolved} endpoints`);

    const extra = identityLabels(IDENTITIES); // a new identity of ns-0, tier t-0, role r-0
    let extraId = 0;
    const identityAdded = await measure(async () => (extraId = (await allocator.allocate(workloadLabels({ cluster: CLUSTER, ...extra }))).id));
    progress(`identity added: ${identityAdded.engineMs} ms, ${identityAdded.resolved} endpoints resolved, ${identityAdded.updated} updated, ${identityAdded.writes} writes`);
    // The same identity gone, as the garbage collector deletes it once unused (its master key).
    await allocator.release(workloadLabels({ cluster: CLUSTER, ...extra }));
    const identityRemoved = await measure(() => kv.delete(`${new IdentityLayout().mastersPrefix}${extraId}`));
    progress(`identity removed: ${identityRemoved.engineMs} ms, ${identityRemoved.resolved} endpoints resolved, ${identityRemoved.updated} updated, ${identityRemoved.writes} writes`);
    const added = policy(POLICIES * 7 + 5, 'ns-5', 9090); // selects app-5 in ns-5 (endpoint 2), a port no other policy opens
    const policyAdded = await measure(() => store.apply([added]));
    progress(`policy added: ${policyAdded.engineMs} ms, ${policyAdded.resolved} endpoints, ${policyAdded.writes} writes`);
    const policyRemoved = await measure(() => store.delete([{ kind: 'NetworkPolicy', metadata: { name: added.metadata.name, namespace: 'ns-5' } }]));
    progress(`policy removed: ${policyRemoved.engineMs} ms, ${policyRemoved.resolved} endpoints, ${policyRemoved.writes} writes`);

    const ratio = (w: Work): number => round(full.engineMs / Math.max(w.engineMs, 0.001), 1);
    // The same without the datapath double on either side (its full rewrite costs JSON of every entry).
    const own = (w: Work): number => Math.max(w.engineMs - w.datapathMs, 0.001);
    const ownRatio = (w: Work): number => round(own(full) / own(w), 1);
    const results = { identities: IDENTITIES, policies: POLICIES, endpoints: ENDPOINTS, policyMapEntries: entries, initial, fullRecompute: full, recomputeUnchanged: unchanged, identityAdded, identityRemoved, policyAdded, policyRemoved, fullOverChange: { identityAdded: ratio(identityAdded), identityRemoved: ratio(identityRemoved), policyAdded: ratio(policyAdded), policyRemoved: ratio(policyRemoved) }, fullOverChangeWithoutDatapath: { identityAdded: ownRatio(identityAdded), identityRemoved: ownRatio(identityRemoved), policyAdded: ownRatio(policyAdded), policyRemoved: ownRatio(policyRemoved) } };
    const targets: Target[] = (['identityAdded', 'identityRemoved', 'policyAdded', 'policyRemoved'] as const).map((k) => ({ name: `${k}: full recompute / this change (engine time)`, value: results.fullOverChange[k], goal: '>= 50', met: results.fullOverChange[k] >= 50 }));
    finish('policyscale', results, targets);
  } finally {
    for (const c of cleanups.reverse()) await c();
    kv.close();
    await etcd.stop();
  }
}
