/**
 * Validation of clustermesh configuration. A remote is rejected, with the
 * reason, when its id is 0 or out of range, equals ours or another remote's,
 * or its name is ours, a duplicate, or not a valid cluster name.
 */
import { readFileSync } from 'node:fs';
import { MeshConfigError } from './errors.js';
import type { MeshConfig, RemoteConfig } from './types.js';

const NAME = /^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/;

export interface RemoteProblem {
  remote: string;
  reason: string;
}

/** Problems of each remote; an empty list means every remote is acceptable. */
export function checkRemotes(cluster: string, clusterId: number, remotes: readonly Pick<RemoteConfig, 'name' | 'id'>[]): RemoteProblem[] {
  const problems: RemoteProblem[] = [];
  const names = new Set<string>();
  const ids = new Map<number, string>();
  for (const r of remotes) {
    const label = typeof r.name === 'string' ? r.name : JSON.stringify(r.name);
    if (typeof r.name !== 'string' || !NAME.test(r.name)) problems.push({ remote: label, reason: `name ${JSON.stringify(r.name)} is not a valid cluster name` });
    else if (r.name === cluster) problems.push({ remote: label, reason: `name ${r.name} is this cluster's own name` });
    else if (names.has(r.name)) problems.push({ remote: label, reason: `name ${r.name} is configured twice` });
    if (!Number.isInteger(r.id) || r.id < 1 || r.id > 255) problems.push({ remote: label, reason: `cluster id ${JSON.stringify(r.id)} is out of range 1-255` });
    else if (r.id === clusterId) problems.push({ remote: label, reason: `cluster id ${r.id} is this cluster's own id` });
    else if (ids.has(r.id)) problems.push({ remote: label, reason: `cluster id ${r.id} is already used by remote ${ids.get(r.id)}` });
    names.add(r.name);
    if (Number.isInteger(r.id)) ids.set(r.id, label);
  }
  return problems;
}

export function loadMeshConfig(path: string): MeshConfig {
  let raw: MeshConfig;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8')) as MeshConfig;
  } catch (err) {
    throw new MeshConfigError(`${path}: ${(err as Error).message}`);
  }
  for (const f of ['cluster', 'listen', 'ca', 'cert', 'key'] as const) {
    if (typeof raw[f] !== 'string' || raw[f] === '') throw new MeshConfigError(`${path}: ${f} must be a non-empty string`);
  }
  if (!Array.isArray(raw.etcd) || raw.etcd.length === 0) throw new MeshConfigError(`${path}: etcd must list endpoints`);
  if (!Array.isArray(raw.remotes)) throw new MeshConfigError(`${path}: remotes must be a list`);
  for (const f of ['staleAfterSeconds', 'etcdMaxTxnOps'] as const) {
    const v = raw[f];
    if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 1)) throw new MeshConfigError(`${path}: ${f} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return raw;
}
