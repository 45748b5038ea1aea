/**
 * The lab's kubelet, one per lab node, with the node's own credential (`system:node:<name>`, held
 * to its node by the Node authorizer and NodeRestriction as a kubelet is): it registers the Node
 * with its pod CIDR and address, renews the node's Lease and posts Ready status every 10 s, as
 * kubelet does, so the node lifecycle controller keeps the node schedulable and the scheduler
 * binds pods to it. Running the pods bound to the node is the next part (issue 14; until then
 * they stay Pending on their node).
 */
import { cpus, totalmem } from 'node:os';
import type { Logger } from '@weft/common';
import { KubeApi, KubeApiError } from './api.js';
import { KUBE_VERSION } from './tools.js';

export interface KubeletOptions {
  kubeconfig: string;
  node: string;
  nodeIp: string;
  podCidr: string;
  log: Logger;
  signal: AbortSignal;
  heartbeatMs?: number;
}

/** RFC 3339 with microseconds, the format of a Lease's MicroTime fields. */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

const LEASES = '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases';

export async function runKubelet(o: KubeletOptions): Promise<void> {
  const api = KubeApi.fromKubeconfig(o.kubeconfig);
  const started = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
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
    while (!o.signal.aborted) {
      try {
        await renewLease(api, o.node);
        const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
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
      } catch (err) {
        if (!(err instanceof KubeApiError)) throw err;
        o.log.warn({ err: err.message, status: err.status }, 'node heartbeat failed; retrying');
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, o.heartbeatMs ?? 10_000);
        o.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
      });
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
