/**
 * What a remote cluster sends is data, never trusted. This module checks each
 * record on its own: bounded size, a well-formed key, a record that parses,
 * identities of the remote's own cluster range (never a reserved one) labelled
 * with its name. Whether a record fits with the rest (an endpoint inside its
 * node's pod CIDR, a pod CIDR that overlaps nothing local or another remote's)
 * is the importer's part, by the rules of @weft/schema's mesh-admission.
 */
import { CLUSTER_LABEL, LabelSet, clusterIdOf, inCluster, parseIdentity } from '@weft/identity';
import { parseEndpointRecord, parseNodeRecord, parseServiceRecord, type EndpointRecord, type NodeRecord } from '@weft/schema';
import type { MeshKind } from './types.js';

export const MAX_RECORD_BYTES = 16 * 1024;

export interface RemoteIdentity {
  name: string;
  id: number;
}

/** A record that passed the checks of its own: nodes and endpoints parsed, for the checks against the rest. */
export type ParsedRecord = { kind: 'nodes'; node: NodeRecord } | { kind: 'endpoints'; endpoint: EndpointRecord } | { kind: 'identities' | 'services' };

/** Parses and checks one record; returns the reason when it must be rejected. */
export function parseRecord(kind: MeshKind, key: string, value: string, remote: RemoteIdentity): ParsedRecord | string {
  if (typeof value !== 'string') return 'value is not a string';
  if (value.length > MAX_RECORD_BYTES) return `record of ${value.length} bytes exceeds ${MAX_RECORD_BYTES}`;
  if (typeof key !== 'string' || key.length === 0 || key.length > 256 || key.includes('/')) return `key ${JSON.stringify(String(key).slice(0, 64))} is not a valid record key`;
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
      return { kind };
    }
    case 'nodes': {
      const r = parseNodeRecord(Buffer.from(value), remote.name);
      if (typeof r === 'string') return r;
      if (r.name !== key) return `node record ${r.name} stored under ${key}`;
      return { kind, node: r };
    }
    case 'endpoints': {
      const r = parseEndpointRecord(Buffer.from(value), remote.id);
      if (typeof r === 'string') return r;
      if (r.ip !== key) return `endpoint ${r.ip} stored under ${key}`;
      // parseEndpointRecord lets a cluster's own endpoints be reserved (its nodes' health
      // endpoints); a remote's never are: they would pass for this cluster's host or world.
      if (!inCluster(r.identity, remote.id)) return `endpoint ${r.ip} has identity ${r.identity}, not one of cluster ${remote.name}'s (cluster id ${remote.id}; remotes cannot send reserved identities)`;
      return { kind, endpoint: r };
    }
    case 'services': {
      const r = parseServiceRecord(key, value);
      return typeof r === 'string' ? r : { kind };
    }
  }
}

/** Returns a reason when the record must be rejected on its own, undefined when it may go on to the importer's checks. */
export function checkRecord(kind: MeshKind, key: string, value: string, remote: RemoteIdentity): string | undefined {
  const r = parseRecord(kind, key, value, remote);
  return typeof r === 'string' ? r : undefined;
}
