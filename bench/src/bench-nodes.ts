/**
 * Synthetic nodes for benchmarks that load a cluster's etcd with endpoints by the thousand.
 * Readers accept an endpoint only inside its node's podCidr (packages/agent/src/endpoint-ownership.ts),
 * so bulk endpoints are published under node records of their own: `<cluster>-bench<k>` owning
 * 10.<first + k>.0.0/16, at the address of the cluster's first real node (traffic to them, if any,
 * goes where it went before). Written without a lease: they go with the lab or the test etcd.
 */
import { op, type KvClient } from '@weft/kvstore';
import { endpointKey, nodeKey } from '@weft/agent';

export interface BenchNodes {
  /** The node that owns `ip` (one of 10.<first>.0.0/16 ... ). */
  nodeOf(ip: string): string;
  /** The endpoint record's key for `ip`. */
  key(ip: string): string;
}

export async function benchNodes(kv: KvClient, cluster: string, nodeIp: string, first: number, count: number): Promise<BenchNodes> {
  const name = (k: number): string => `${cluster}-bench${k}`;
  const ops = Array.from({ length: count }, (_, k) => op.put(nodeKey(name(k)), JSON.stringify({ name: name(k), cluster, ip: nodeIp, podCidr: `10.${first + k}.0.0/16`, routing: 'vxlan' })));
  await kv.txn('bench nodes', { compare: [], success: ops });
  const nodeOf = (ip: string): string => name(Number(ip.split('.')[1]) - first);
  return { nodeOf, key: (ip) => endpointKey(nodeOf(ip), ip) };
}
