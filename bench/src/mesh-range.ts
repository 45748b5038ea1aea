/**
 * Room for benchmark endpoints. Benchmarks load up to 100k endpoints into lab cluster c1, more
 * than a lab node's /24 holds, and a remote's endpoints are admitted only inside the pod CIDR of
 * their node, whose range the lab restricts to the remote's pod range (10.101.0.0/16 for c1;
 * docs/clustermesh.md, "What a remote may claim"). So benchmarks give c1 node records of their
 * own (records only: no agent runs for them) and, for ranges beyond c1's, let c2 accept them.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MeshConfig } from '@weft/clustermesh';
import { op, type KvClient } from '@weft/kvstore';
import { nodeKey } from '@weft/schema';
import { apiserverPid, LAB_STATE_DIR, type ClusterLayout } from '@weft/lab';

const REPO = join(__dirname, '..', '..');
const WEFT = join(REPO, 'packages', 'cli', 'bin', 'weft.js');

/** Two /16 nodes beyond c1's pod range: 131,072 addresses. */
export const BENCH_RANGE = '10.140.0.0/15';
const NODES = [
  { name: 'bench-a', cluster: 'c1', ip: '10.99.1.251', podCidr: '10.140.0.0/16', routing: 'vxlan' },
  { name: 'bench-b', cluster: 'c1', ip: '10.99.1.252', podCidr: '10.141.0.0/16', routing: 'vxlan' },
];
/** A node inside c1's own pod range, for benchmarks that need a few thousand addresses. */
const IN_RANGE = { name: 'bench-p', cluster: 'c1', ip: '10.99.1.250', podCidr: '10.101.128.0/17', routing: 'vxlan' };

/** Where benchmark endpoint j lives: an address of a bench node's pod CIDR, the node and its IP. */
export function benchEndpoint(j: number): { ip: string; node: string; nodeIp: string } {
  const n = NODES[j >> 16]!;
  return { ip: `10.${140 + (j >> 16)}.${(j >> 8) & 255}.${j & 255}`, node: n.name, nodeIp: n.ip };
}

/** Like benchEndpoint, inside c1's own pod range (32,768 addresses): no change to c2 needed. */
export function inRangeEndpoint(j: number): { ip: string; node: string; nodeIp: string } {
  return { ip: `10.101.${128 + ((j >> 8) & 127)}.${j & 255}`, node: IN_RANGE.name, nodeIp: IN_RANGE.ip };
}

/** Writes the bench nodes' records into c1's etcd. */
export async function addBenchNodes(kv1: KvClient): Promise<void> {
  await kv1.txn('bench nodes', { compare: [], success: [...NODES, IN_RANGE].map((n) => op.put(nodeKey(n.name), JSON.stringify(n))) });
}

/** Lets c2's apiserver accept BENCH_RANGE from c1 (its configuration; takes effect at its next start). */
export function allowBenchRange(c2: ClusterLayout): string {
  const file = join(LAB_STATE_DIR, c2.name, 'clustermesh', 'config.json');
  const config = JSON.parse(readFileSync(file, 'utf8')) as MeshConfig;
  for (const r of config.remotes) if (r.name === 'c1' && !r.podCidrs?.includes(BENCH_RANGE)) r.podCidrs = [...(r.podCidrs ?? []), BENCH_RANGE];
  writeFileSync(file, JSON.stringify(config, null, 1));
  return file;
}

/** Starts c2's clustermesh-apiserver in its control-plane namespace with its (changed) configuration, after killing the running one. */
export function restartApiserver(c2: ClusterLayout, config: string): void {
  const pid = apiserverPid(c2);
  if (pid) process.kill(pid, 'SIGKILL');
  const child = spawn('ip', ['netns', 'exec', c2.cpNetns, process.execPath, WEFT, 'clustermesh-apiserver', '--config', config], { detached: true, stdio: 'ignore' });
  child.unref();
}
