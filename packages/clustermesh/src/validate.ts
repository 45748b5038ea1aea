/**
 * What a remote cluster sends is data, never trusted: each record is checked
 * against what that remote may claim (its own cluster id and name, no address
 * inside our pod CIDRs, bounded size) before anything is written locally.
 */
import { CLUSTER_LABEL, LabelSet, clusterIdOf, inCluster, parseIdentity } from '@weft/identity';
import { parseEndpointRecord, parseNodeRecord } from '@weft/agent/dist/state.js';
import { parseServiceRecord } from '@weft/agent/dist/services.js';
import { cidrContains, parseCidr, parseIpv4, type Cidr } from '@weft/policy';
import type { MeshKind } from './types.js';

export const MAX_RECORD_BYTES = 16 * 1024;

export interface RemoteIdentity {
  name: string;
  id: number;
}

/** Returns a reason when the record must be rejected, undefined when it is acceptable. */
export function checkRecord(kind: MeshKind, key: string, value: string, remote: RemoteIdentity, localPodCidrs: readonly Cidr[]): string | undefined {
  if (value.length > MAX_RECORD_BYTES) return `record of ${value.length} bytes exceeds ${MAX_RECORD_BYTES}`;
  if (key.length === 0 || key.length > 256 || key.includes('/')) return `key ${JSON.stringify(key.slice(0, 64))} is not a valid record key`;
  switch (kind) {
    case 'identities': {
      const id = parseIdentity(key);
      if (id === undefined || !inCluster(id, remote.id)) return `identity ${JSON.stringify(key)} is outside cluster ${remote.name}'s range (cluster id ${remote.id}${id !== undefined ? `, got ${clusterIdOf(id)}` : ''})`;
      let labels: LabelSet;
      try {
        labels = LabelSet.fromCanonical(value);
      } catch (err) {
        return (err as Error).message;
      }
      if (labels.get(CLUSTER_LABEL) !== remote.name) return `identity ${id} carries ${CLUSTER_LABEL}=${labels.get(CLUSTER_LABEL) ?? '(none)'}, not ${remote.name}`;
      return undefined;
    }
    case 'nodes': {
      const r = parseNodeRecord(Buffer.from(value), remote.name);
      if (typeof r === 'string') return r;
      if (r.name !== key) return `node record ${r.name} stored under ${key}`;
      const podCidr = parseCidr(r.podCidr);
      if (typeof podCidr !== 'string' && localPodCidrs.some((l) => cidrContains(l, podCidr) || cidrContains(podCidr, l))) return `node ${r.name} claims pod CIDR ${r.podCidr}, which overlaps ours`;
      return undefined;
    }
    case 'endpoints': {
      const r = parseEndpointRecord(Buffer.from(value), remote.id);
      if (typeof r === 'string') return r;
      if (r.ip !== key) return `endpoint ${r.ip} stored under ${key}`;
      if (r.identity > 255 && clusterIdOf(r.identity) !== remote.id) return `endpoint ${r.ip} has identity ${r.identity} of another cluster`;
      const ip = parseIpv4(r.ip)!;
      if (localPodCidrs.some((c) => cidrContains(c, { addr: ip, bits: 32 }))) return `endpoint ${r.ip} claims an address in our pod CIDRs`;
      return undefined;
    }
    case 'services': {
      const r = parseServiceRecord(key, value);
      return typeof r === 'string' ? r : undefined;
    }
  }
}
