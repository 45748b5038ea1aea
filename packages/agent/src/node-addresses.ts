/**
 * The addresses other nodes send tunnel packets from, for the datapath's
 * weft_nodes map (bpf/lib/trust.h): each node's node IP and, with
 * encryption, its router IP (VXLAN through WireGuard or IPsec leaves from
 * there), both naming the node (its node IP, router IP and cluster id).
 * from_overlay believes a VNI only from such an address, of the node's own
 * cluster, for an inner source the ipcache places on that node.
 *
 * A node's clear tunnel traffic is refused (NODE_ADDR_F_ENCRYPTED_ONLY) when
 * it must come encrypted: from every router IP (only ever used inside
 * encryption), and from the node IP of a peer reached encrypted or of any
 * node under strict encryption.
 *
 * An address two nodes claim belongs to neither (one of them lies, and a
 * packet from it cannot be told apart): it is left out and reported. This
 * node is left out too: nothing tunnelled comes from itself.
 */
import { NODE_ADDR_F_ENCRYPTED_ONLY } from '@weft/datapath';
import { routerIp } from './config.js';
import type { EncryptionMode } from './config.js';
import type { NodeAddressUpsert } from './datapath-port.js';
import type { NodeRecord } from '@weft/schema';

export interface NodeAddressInput {
  cluster: string;
  /** The node's cluster id; 0 when not known (its tunnel packets then match no VNI and are dropped). */
  clusterId: number;
  record: NodeRecord;
}

export interface NodeAddressOptions {
  /** This node, as `cluster/node`: left out. */
  me: string;
  encryption: EncryptionMode;
  strict: boolean;
  /** `cluster/node` of the nodes reached encrypted (peers with keys and routes). */
  encrypted: ReadonlySet<string>;
}

export interface NodeAddressResult {
  entries: NodeAddressUpsert[];
  /** Addresses claimed by more than one node, with who claims them. */
  conflicts: Array<{ addr: string; nodes: string[] }>;
}

export function nodeAddresses(nodes: readonly NodeAddressInput[], o: NodeAddressOptions): NodeAddressResult {
  const byAddr = new Map<string, { owners: string[]; entry: NodeAddressUpsert }>();
  const add = (owner: string, entry: NodeAddressUpsert): void => {
    const have = byAddr.get(entry.addr);
    if (have) have.owners.push(owner);
    else byAddr.set(entry.addr, { owners: [owner], entry });
  };
  for (const n of nodes) {
    const id = `${n.cluster}/${n.record.name}`;
    // This node's own addresses take part, so no other node can claim them.
    const router = o.encryption === 'off' ? undefined : routerIp(n.record.podCidr);
    const base = { nodeIp: n.record.ip, clusterId: n.clusterId, ...(router ? { routerIp: router } : {}) };
    const clearRefused = o.encryption !== 'off' && (o.strict || o.encrypted.has(id));
    add(id, { addr: n.record.ip, ...base, flags: clearRefused ? NODE_ADDR_F_ENCRYPTED_ONLY : 0 });
    if (router) add(id, { addr: router, ...base, flags: NODE_ADDR_F_ENCRYPTED_ONLY });
  }
  const entries: NodeAddressUpsert[] = [];
  const conflicts: NodeAddressResult['conflicts'] = [];
  for (const [addr, { owners, entry }] of byAddr) {
    if (new Set(owners).size > 1) conflicts.push({ addr, nodes: [...new Set(owners)].sort() });
    else if (owners[0] !== o.me) entries.push(entry);
  }
  return { entries, conflicts };
}
