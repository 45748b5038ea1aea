/**
 * The lab's kubelet, one per lab node, with the node's own credential (`system:node:<name>`, held
 * to its node by the Node authorizer and NodeRestriction as a kubelet is): it registers the Node
 * with its pod CIDR and address, renews the node's Lease and posts Ready status every 10 s, as
 * kubelet does, so the node lifecycle controller keeps the node schedulable and the scheduler
 * binds pods to it. It runs the pods bound to the node (pods.ts) and, for the node's host
 * network, the Services' ClusterIPs (service-proxy.ts). Its loops run together; one that fails for
 * a reason other than the API server's answer stops the others, and the kubelet exits with it.
 */
import { cpus, totalmem } from 'node:os';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AbortedError, sleep, type Logger } from '@weft/common';
import { run } from '@weft/net';
import { PodRunner } from './pods.js';
import { KubeApi, KubeApiError, kubeTime } from './api.js';
import { applyServiceRules, serviceRules, type EndpointSliceView, type KubeServiceView } from './service-proxy.js';
import { KUBE_VERSION } from './tools.js';

export interface KubeletOptions {
  kubeconfig: string;
  node: string;
  nodeIp: string;
  podCidr: string;
  log: Logger;
  signal: AbortSignal;
  heartbeatMs?: number;
  /**
   * Services' ClusterIPs for the node's host network (service-proxy.ts): its network namespace, and
   * kube-proxy's credential (system:kube-proxy; a node's own may not list EndpointSlices).
   */
  proxy?: { netns: string; kubeconfig: string };
  /** Run the Weft pods bound to the node (pods.ts): the node's own root for hostPaths, and where pods' directories go. */
  pods?: { netns: string; nodeRoot: string; podsDir: string };
  serviceSyncMs?: number;
}

/** RFC 3339 with microseconds, the format of a Lease's MicroTime fields. */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

const LEASES = '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases';

export async function runKubelet(o: KubeletOptions): Promise<void> {
  const api = KubeApi.fromKubeconfig(o.kubeconfig);
  const started = kubeTime();
  const resources = { cpu: String(cpus().length), memory: `${Math.floor(totalmem() / 1024)}Ki`, pods: '110' };
  try {
    const node = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: o.node, labels: { 'kubernetes.io/hostname': o.node, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' } },
      spec: { podCIDR: o.podCidr, podCIDRs: [o.podCidr] },
    };
    const created = await api.expect([201, 409], 'POST', '/api/v1/nodes', node);
    o.log.info({ node: o.node, podCidr: o.podCidr, created: created.status === 201 }, 'node registered');
    // One loop's failure stops them all: none is left running unawaited.
    const stop = new AbortController();
    const stopOnAbort = (): void => stop.abort();
    o.signal.addEventListener('abort', stopOnAbort);
    const loop = { log: o.log, signal: stop.signal };
    const together = (p: Promise<void>): Promise<void> => p.catch((err: unknown) => {
      stop.abort();
      throw err;
    });
    const heartbeat = every(o.heartbeatMs ?? 10_000, loop, 'node heartbeat', async () => {
      await renewLease(api, o.node);
      const now = kubeTime();
      await api.expect([200], 'PATCH', `/api/v1/nodes/${o.node}/status`, {
        status: {
          conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'the Weft lab kubelet is posting ready status', lastHeartbeatTime: now, lastTransitionTime: started }],
          addresses: [{ type: 'InternalIP', address: o.nodeIp }, { type: 'Hostname', address: o.node }],
          // Every lab node shares the machine, as kind's nodes do, and says so: the scheduler places pods by it.
          capacity: resources,
          allocatable: resources,
          nodeInfo: { kubeletVersion: KUBE_VERSION, operatingSystem: 'linux', architecture: 'amd64', containerRuntimeVersion: 'weft-lab://0.1.0' },
        },
      }, 'application/merge-patch+json');
    });
    try {
      await Promise.all([together(heartbeat), ...(o.proxy ? [together(syncServices(o.proxy, loop, o.serviceSyncMs))] : []), ...(o.pods ? [together(runPods(api, o.pods, o, loop))] : [])]);
    } finally {
      o.signal.removeEventListener('abort', stopOnAbort);
    }
  } finally {
    api.close();
  }
}

async function renewLease(api: KubeApi, node: string): Promise<void> {
  const spec = { holderIdentity: node, leaseDurationSeconds: 40, renewTime: microTime(new Date()) };
  const current = await api.expect<{ metadata: Record<string, unknown> }>([200, 404], 'GET', `${LEASES}/${node}`);
  if (current.status === 404) {
    await api.expect([201], 'POST', LEASES, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: node, namespace: 'kube-node-lease' }, spec });
    return;
  }
  await api.expect([200], 'PUT', `${LEASES}/${node}`, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: current.body!.metadata, spec });
}

/**
 * Keeps the node's Service rules in step with the cluster's Services and EndpointSlices, as
 * kube-proxy does for the node's host network (`weft lab kube-proxy` beside a real kubelet).
 */
export async function syncServices(proxy: { netns: string; kubeconfig: string }, o: Loop, ms = 2_000): Promise<void> {
  const api = KubeApi.fromKubeconfig(proxy.kubeconfig);
  const { netns } = proxy;
  let last = '';
  await every(ms, o, 'service sync', async () => {
    const svcs = await api.expect<{ items: KubeServiceView[] }>([200], 'GET', '/api/v1/services');
    const slices = await api.expect<{ items: EndpointSliceView[] }>([200], 'GET', '/apis/discovery.k8s.io/v1/endpointslices');
    const rules = serviceRules(svcs.body!.items, slices.body!.items);
    const text = JSON.stringify(rules);
    if (text === last) return;
    await applyServiceRules(netns, rules);
    last = text;
    o.log.info({ services: rules.length }, 'service rules applied');
  }).finally(() => api.close());
}

export type Loop = Pick<KubeletOptions, 'log' | 'signal'>;

/** Runs `step` every `ms` until aborted; a refusal or silence of the API server is logged and retried. */
async function every(ms: number, o: Loop, what: string, step: () => Promise<void>): Promise<void> {
  while (!o.signal.aborted) {
    try {
      await step();
    } catch (err) {
      if (!(err instanceof KubeApiError)) throw err;
      o.log.warn({ err: err.message, status: err.status }, `${what} failed; retrying`);
    }
    try {
      await sleep(ms, o.signal);
    } catch (err) {
      // Stopped: the loop ends.
      if (!(err instanceof AbortedError)) throw err;
    }
  }
}

async function runPods(api: KubeApi, p: { netns: string; nodeRoot: string; podsDir: string }, o: KubeletOptions, loop: Loop): Promise<void> {
  // The node's own bpffs, as each node of a real cluster has one: pins of one node's agent are not another's.
  const bpf = join(p.nodeRoot, 'sys', 'fs', 'bpf');
  mkdirSync(bpf, { recursive: true });
  if (!readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === bpf)) await run(['mount', '-t', 'bpf', 'bpf', bpf]);
  const runner = new PodRunner({ api, node: o.node, nodeIp: o.nodeIp, netns: p.netns, nodeRoot: p.nodeRoot, podsDir: p.podsDir, log: o.log });
  try {
    // Each second, as kubelet's pod lifecycle relists its containers.
    await every(1_000, loop, 'pod sync', () => runner.sync());
  } finally {
    runner.stopAll();
  }
}
