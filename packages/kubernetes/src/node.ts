/**
 * This node as Kubernetes knows it: its pod CIDR (Node.spec.podCIDRs, the
 * IPv4 one, assigned by the controller manager's node IPAM) and its uid (the
 * owner of its WeftNode, so the WeftNode goes when the Node goes).
 */
import { Backoff, sleep, type Logger } from '@weft/common';
import type { KubeClient } from './client.js';
import { KubernetesApiError } from './errors.js';
import { objectPath, type KubeObject } from './types.js';

export interface NodeInfo {
  name: string;
  uid: string;
  podCidr: string;
}

/** Reads the Node until it has an IPv4 pod CIDR (a node may register before node IPAM gives it one). */
export async function waitForNode(client: KubeClient, name: string, options: { log: Logger; signal?: AbortSignal; backoff?: Backoff }): Promise<NodeInfo> {
  const backoff = options.backoff ?? new Backoff({ initialMs: 500, maxMs: 10_000 });
  for (;;) {
    try {
      const node = await client.request<KubeObject>(`read Node ${name}`, 'GET', objectPath('Node', name), options.signal ? { signal: options.signal } : {});
      const podCidr = ipv4PodCidr(node);
      if (podCidr) return { name, uid: node.metadata?.uid ?? '', podCidr };
      options.log.warn({ node: name }, 'Node has no IPv4 spec.podCIDR yet (is node IPAM, --allocate-node-cidrs, on?); waiting');
    } catch (err) {
      if (options.signal?.aborted) throw err;
      options.log.warn({ node: name, err: (err as Error).message, code: (err as KubernetesApiError).code }, 'cannot read this node\'s Node object yet; retrying');
    }
    await sleep(backoff.next(), options.signal, `Wait for Node ${name}`);
  }
}

function ipv4PodCidr(node: KubeObject): string | undefined {
  const spec = (node.spec ?? {}) as { podCIDR?: unknown; podCIDRs?: unknown };
  const all = [...(Array.isArray(spec.podCIDRs) ? spec.podCIDRs : []), spec.podCIDR];
  return all.find((c): c is string => typeof c === 'string' && /^\d+\.\d+\.\d+\.\d+\/\d+$/.test(c));
}
