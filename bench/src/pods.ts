/**
 * `npm run bench -- pods` (root): Weft on real kubelets and containerd (`weft lab up --kubernetes`,
 * one cluster of two nodes).
 *
 * - `helm install` of the chart to every agent Ready, and to the first pod networked (Running with
 *   an address from Weft's CNI), on nodes that have the images (the lab imports them; a registry
 *   pull is not part of it).
 * - Pod start to Ready, p50 and p99 over 50 pods created at once (a Deployment scale-up), with
 *   Weft's CNI, then on the same kubelets with Debian's bridge CNI plugin (containernetworking-
 *   plugins, host-local IPAM on the node's pod CIDR): the baseline a user would otherwise have.
 *   A pod's time runs from just before its create request to the first poll (every 100 ms) that
 *   sees it Ready.
 * - Memory of the whole lab: the proportional set size (PSS) of every process of it (control
 *   planes, kubelets, containerd, the chart's pods, forwarders), with and without the 50 pods.
 *
 * Rounds: WEFT_BENCH_ROUNDS (default 5), each a fresh lab; every round is reported, with the worst
 * and median of each figure.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from '@weft/common';
import { CHART, KubeApi, labChartValues, labDown, labHelmEnv, labUp, kubeTool, WEFT_IMAGE, type ClusterLayout, type LabState } from '@weft/lab';
import { finish, percentile, progress, round } from './report.js';

const PODS = 50;
const NAMESPACE = 'bench';
const DEBIAN_CNI = '/usr/lib/cni';
const WEFT_CLI = join(__dirname, '..', '..', 'packages', 'cli', 'bin', 'weft.js');

interface Pod {
  metadata: { name: string; uid?: string };
  status?: { phase?: string; podIP?: string; conditions?: { type: string; status: string }[] };
}

const ready = (p: Pod): boolean => Boolean(p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));

function helm(c: ClusterLayout, args: string[]): void {
  const r = spawnSync(kubeTool('helm'), args, { encoding: 'utf8', timeout: 300_000, env: labHelmEnv(c) });
  if (r.status !== 0) throw new Error(`helm ${args.slice(0, 2).join(' ')} failed: ${r.stderr}`);
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 300_000): Promise<number> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await sleep(100);
  }
  return Date.now() - t0;
}

async function listPods(api: KubeApi, namespace: string, selector?: string): Promise<Pod[]> {
  const q = selector ? `?labelSelector=${encodeURIComponent(selector)}` : '';
  return (await api.expect<{ items: Pod[] }>([200], 'GET', `/api/v1/namespaces/${namespace}/pods${q}`)).body!.items;
}

function workload(name: string, node: string): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NAMESPACE, labels: { app: 'bench' } },
    spec: {
      nodeName: node,
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'echo', image: `${WEFT_IMAGE}:0.1.0`, imagePullPolicy: 'Never', command: ['weft', 'echo-server', '--tcp', '8080'] }],
    },
  };
}

/** Creates PODS pods at once, alternating nodes; returns each one's create-to-Ready time (ms), sorted. */
async function podStarts(api: KubeApi, c: ClusterLayout, tag: string): Promise<{ ms: number[]; allMs: number; addresses: string[] }> {
  const created = new Map<string, number>();
  const readyAt = new Map<string, number>();
  const t0 = Date.now();
  await Promise.all(Array.from({ length: PODS }, async (_, i) => {
    const name = `${tag}-${i}`;
    created.set(name, Date.now());
    await api.expect([201], 'POST', `/api/v1/namespaces/${NAMESPACE}/pods`, workload(name, c.nodes[i % c.nodes.length]!.name));
  }));
  let addresses: string[] = [];
  await until(`${PODS} ${tag} pods Ready`, async () => {
    const pods = await listPods(api, NAMESPACE);
    const now = Date.now();
    for (const p of pods) if (ready(p) && !readyAt.has(p.metadata.name)) readyAt.set(p.metadata.name, now);
    addresses = pods.map((p) => p.status?.podIP ?? '');
    return readyAt.size === PODS;
  });
  const allMs = Date.now() - t0;
  return { ms: [...readyAt].map(([name, at]) => at - created.get(name)!).sort((a, b) => a - b), allMs, addresses };
}

async function deletePods(api: KubeApi): Promise<void> {
  await api.expect([200], 'DELETE', `/api/v1/namespaces/${NAMESPACE}/pods`);
  await until('the bench pods to be gone', async () => (await listPods(api, NAMESPACE)).length === 0);
}

/** Every process of the lab: in its network namespaces, in its nodes' cgroups, or marked WEFT_LAB. */
function labPids(): number[] {
  const pids = new Set<number>();
  for (const ns of execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith('weft-'))) {
    for (const p of execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean)) pids.add(Number(p));
  }
  const walk = (dir: string): void => {
    for (const p of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) pids.add(Number(p));
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name));
  };
  if (existsSync('/sys/fs/cgroup/memory/weft-lab')) walk('/sys/fs/cgroup/memory/weft-lab');
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (readFileSync(`/proc/${p}/environ`, 'utf8').split('\0').includes('WEFT_LAB=1')) pids.add(Number(p));
    } catch {
      // gone
    }
  }
  pids.delete(process.pid);
  return [...pids];
}

/** Sum of the lab's processes' PSS, in MiB. */
function labMemory(): { pssMiB: number; processes: number } {
  let kb = 0;
  let processes = 0;
  for (const pid of labPids()) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      if (m) {
        kb += Number(m[1]);
        processes++;
      }
    } catch {
      // gone
    }
  }
  return { pssMiB: round(kb / 1024, 1), processes };
}

/**
 * Replaces Weft's CNI on every node (`weft cni uninstall`: helm uninstall without cni.uninstall
 * leaves it) with Debian's bridge plugin and host-local IPAM on the node's pod CIDR.
 */
function installBridgeCni(c: ClusterLayout): void {
  for (const n of c.nodes) {
    const root = join(n.stateDir, 'root');
    execFileSync(process.execPath, [WEFT_CLI, 'cni', 'uninstall', '--bin-dir', join(root, 'opt', 'cni', 'bin'), '--conf-dir', join(root, 'etc', 'cni', 'net.d')], { stdio: 'ignore' });
    for (const plugin of ['bridge', 'host-local']) copyFileSync(join(DEBIAN_CNI, plugin), join(root, 'opt', 'cni', 'bin', plugin));
    const conf = { cniVersion: '1.0.0', name: 'bench-bridge', plugins: [{ type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet: n.podCidr }]], dataDir: '/var/lib/cni/networks' } }] };
    writeFileSync(join(root, 'etc', 'cni', 'net.d', '10-bench-bridge.conflist'), JSON.stringify(conf));
  }
}

interface Round {
  helmToAgentsReadyS: number;
  helmToFirstPodNetworkedS: number;
  weft: { p50: number; p99: number; max: number; allReadyS: number };
  bridge: { p50: number; p99: number; max: number; allReadyS: number };
  memory: { idle: { pssMiB: number; processes: number }; with50Pods: { pssMiB: number; processes: number } };
}

async function oneRound(k: number): Promise<Round> {
  progress(`round ${k}: lab up --kubernetes (1 cluster, 2 nodes)`);
  const state: LabState = await labUp({ clusters: [{ name: 'c1', id: 1 }], nodes: 2, routing: 'vxlan', kubernetes: true, connect: false }, (s) => progress(`round ${k}: ${s}`));
  const c = state.clusters[0]!;
  const api = KubeApi.fromKubeconfig(state.kubernetes!.c1!.kubeconfig);
  try {
    const memoryIdle = labMemory();
    // Installed again from nothing, on nodes that hold the images: helm install to agents Ready.
    progress(`round ${k}: helm uninstall, then install again, timed`);
    helm(c, ['uninstall', 'weft', '--namespace', 'kube-system', '--wait', '--timeout', '5m']);
    await until('the chart\'s pods to be gone', async () => (await listPods(api, 'kube-system')).length === 0);
    await api.expect([201, 409], 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });
    const t0 = Date.now();
    helm(c, ['install', 'weft', CHART, '--namespace', 'kube-system', ...labChartValues(c, 1)]);
    // The first pod, created with the release, is networked once an agent has installed the CNI plugin.
    await api.expect([201], 'POST', `/api/v1/namespaces/${NAMESPACE}/pods`, workload('first', c.nodes[0]!.name));
    let agentsMs = 0;
    let firstMs = 0;
    await until('the agents Ready and the first pod networked', async () => {
      const agents = await listPods(api, 'kube-system', 'app.kubernetes.io/component=agent');
      if (!agentsMs && agents.length === c.nodes.length && agents.every(ready)) agentsMs = Date.now() - t0;
      const first = (await listPods(api, NAMESPACE))[0];
      if (!firstMs && first?.status?.podIP && first.status.phase === 'Running') firstMs = Date.now() - t0;
      return Boolean(agentsMs && firstMs);
    });
    await until('the chart\'s pods Ready', async () => (await listPods(api, 'kube-system')).every(ready));
    await deletePods(api);

    progress(`round ${k}: ${PODS} pods with Weft's CNI`);
    const weft = await podStarts(api, c, 'weft');
    if (weft.addresses.some((a) => !a.startsWith('10.101.'))) throw new Error(`a Weft pod has an address outside the pod range: ${weft.addresses.join(' ')}`);
    const memoryLoaded = labMemory();
    await deletePods(api);

    progress(`round ${k}: ${PODS} pods with Debian's bridge CNI plugin (Weft uninstalled)`);
    helm(c, ['uninstall', 'weft', '--namespace', 'kube-system', '--wait', '--timeout', '5m']);
    await until('the chart\'s pods to be gone', async () => (await listPods(api, 'kube-system')).length === 0);
    installBridgeCni(c);
    const bridge = await podStarts(api, c, 'bridge');
    await deletePods(api);
    const stats = (r: { ms: number[]; allMs: number }): Round['weft'] => ({ p50: percentile(r.ms, 50), p99: percentile(r.ms, 99), max: r.ms.at(-1)!, allReadyS: round(r.allMs / 1000, 1) });
    const out: Round = {
      helmToAgentsReadyS: round(agentsMs / 1000, 1),
      helmToFirstPodNetworkedS: round(firstMs / 1000, 1),
      weft: stats(weft),
      bridge: stats(bridge),
      memory: { idle: memoryIdle, with50Pods: memoryLoaded },
    };
    progress(`round ${k}: ${JSON.stringify(out)}`);
    return out;
  } finally {
    api.close();
    await labDown(() => undefined);
  }
}

export async function main(): Promise<void> {
  const rounds = Number(process.env.WEFT_BENCH_ROUNDS ?? 5);
  if (!existsSync(join(DEBIAN_CNI, 'bridge'))) throw new Error(`Debian's CNI plugins are not installed at ${DEBIAN_CNI} (containernetworking-plugins; hack/install.sh installs it)`);
  const all: Round[] = [];
  for (let k = 1; k <= rounds; k++) all.push(await oneRound(k));
  const med = (xs: number[]): number => percentile([...xs].sort((a, b) => a - b), 50);
  const worst = (xs: number[]): number => Math.max(...xs);
  const figure = (get: (r: Round) => number): { runs: number[]; worst: number; median: number } => {
    const runs = all.map(get);
    return { runs, worst: worst(runs), median: med(runs) };
  };
  finish('pods', {
    pods: PODS,
    nodes: 2,
    helmToAgentsReadyS: figure((r) => r.helmToAgentsReadyS),
    helmToFirstPodNetworkedS: figure((r) => r.helmToFirstPodNetworkedS),
    weftP50Ms: figure((r) => r.weft.p50),
    weftP99Ms: figure((r) => r.weft.p99),
    bridgeP50Ms: figure((r) => r.bridge.p50),
    bridgeP99Ms: figure((r) => r.bridge.p99),
    p50Ratio: figure((r) => round(r.weft.p50 / r.bridge.p50)),
    p99Ratio: figure((r) => round(r.weft.p99 / r.bridge.p99)),
    weftAllReadyS: figure((r) => r.weft.allReadyS),
    bridgeAllReadyS: figure((r) => r.bridge.allReadyS),
    labPssMiBIdle: figure((r) => r.memory.idle.pssMiB),
    labPssMiBWith50Pods: figure((r) => r.memory.with50Pods.pssMiB),
    rounds: all,
  }, []);
}
