/**
 * Where a command talks to: a lab cluster (from the lab's state) or explicit
 * endpoints. `--cluster NAME` picks a lab cluster (default: the first);
 * `--etcd` and `--agent` override.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AgentClient } from '@weft/agent';
import { ObserverClient } from '@weft/observer';
import { KvClient } from '@weft/kvstore';
import { agentSocket, relaySocket, labEtcdClient, LAB_ETCD_MAX_TXN_OPS, readLabState, type ClusterLayout, type NodeLayout } from '@weft/lab';
import { UsageError } from './output.js';

export interface Target {
  cluster: ClusterLayout;
  etcd: string;
}

export function labCluster(name: string | undefined): ClusterLayout {
  const state = readLabState();
  if (!state) throw new UsageError('No lab is running (start one with `weft lab up`), and no --etcd/--agent was given');
  if (name === undefined) return state.clusters[0]!;
  const c = state.clusters.find((x) => x.name === name);
  if (!c) throw new UsageError(`Unknown cluster ${JSON.stringify(name)}: the lab has ${state.clusters.map((x) => x.name).join(', ')}`);
  return c;
}

/** `maxTxnOps`: what the etcd is known to accept per transaction (a lab's; unknown for --etcd). */
export function kvFor(options: { cluster?: string | undefined; etcd?: string | undefined }): { kv: KvClient; clusterName: string; maxTxnOps?: number } {
  if (options.etcd) return { kv: new KvClient({ endpoints: [options.etcd], retry: { maxAttempts: 3, initialMs: 100, maxMs: 500 } }), clusterName: options.cluster ?? 'c1' };
  const c = labCluster(options.cluster);
  // The lab's etcd admits only certificates of its CA: commands act as its admin (weft-admin).
  return { kv: labEtcdClient(c, { retry: { maxAttempts: 3, initialMs: 100, maxMs: 500 } }), clusterName: c.name, maxTxnOps: LAB_ETCD_MAX_TXN_OPS };
}

/** The agents to ask: one node (`--node`), or every node of the cluster. */
export function agentsFor(options: { cluster?: string | undefined; node?: string | undefined; agent?: string | undefined }): Array<{ node: string; client: AgentClient }> {
  if (options.agent) return [{ node: options.node ?? 'agent', client: new AgentClient(options.agent) }];
  const c = labCluster(options.cluster);
  const nodes: NodeLayout[] = options.node ? c.nodes.filter((n) => n.name === options.node) : c.nodes;
  if (nodes.length === 0) throw new UsageError(`Unknown node ${JSON.stringify(options.node)} in cluster ${c.name}: nodes are ${c.nodes.map((n) => n.name).join(', ')}`);
  return nodes.map((n) => ({ node: n.name, client: new AgentClient(agentSocket(n)) }));
}

/** `[cluster/]namespace/name` -> parts (cluster defaults to the lab's first). */
export function parsePodRef(ref: string | undefined): { cluster?: string; namespace: string; name: string } {
  const parts = (ref ?? '').split('/');
  if (parts.length === 2 && parts.every(Boolean)) return { namespace: parts[0]!, name: parts[1]! };
  if (parts.length === 3 && parts.every(Boolean)) return { cluster: parts[0]!, namespace: parts[1]!, name: parts[2]! };
  throw new UsageError(`Invalid pod ${JSON.stringify(ref ?? '')}: use [cluster/]namespace/name`);
}

/**
 * Where `weft observe` and its kin read flows: `--server` (unix:///path), else the lab cluster's
 * relay, else (or with `direct`) its agents, each at its node's observer socket (only the nodes
 * named, when `nodes` names some).
 */
export function observersFor(options: { cluster?: string | undefined; server?: string | undefined; nodes?: readonly string[]; direct?: boolean }): Array<{ name: string; client: ObserverClient }> {
  if (options.server) {
    if (!options.server.startsWith('unix://')) throw new UsageError(`Invalid --server ${JSON.stringify(options.server)}: use unix:///path/to/observer.sock`);
    return [{ name: options.server, client: new ObserverClient(options.server) }];
  }
  const c = labCluster(options.cluster);
  const exact = (options.nodes ?? []).filter((n) => !n.endsWith('*'));
  // The relay: every node of the cluster and of connected clusters, merged (nodes named exactly are asked directly).
  if (!options.direct && (exact.length === 0 || exact.length !== options.nodes!.length) && existsSync(relaySocket(c))) return [{ name: `${c.name}/relay`, client: new ObserverClient(`unix://${relaySocket(c)}`) }];
  const nodes = exact.length > 0 && exact.length === options.nodes!.length ? c.nodes.filter((n) => exact.includes(n.name)) : c.nodes;
  if (nodes.length === 0) throw new UsageError(`Unknown node ${JSON.stringify(options.nodes!.join(','))} in cluster ${c.name}: nodes are ${c.nodes.map((n) => n.name).join(', ')}`);
  return nodes.map((n) => ({ name: n.name, client: new ObserverClient(`unix://${join(n.stateDir, 'observer.sock')}`) }));
}
