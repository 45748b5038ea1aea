/**
 * Validation of clustermesh configuration. A remote is rejected, with the
 * reason, when its id is 0 or out of range, equals ours or another remote's,
 * or its name is ours, a duplicate, or not a valid cluster name. Remotes from
 * `remotesDir` (written by `weft clustermesh connect`) are merged with the
 * configured ones; one that clashes with a configured remote is rejected and
 * the configured one stays.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readEtcdTlsFiles } from '@weft/kvstore';
import { CidrSet, parseCidr, type Cidr } from '@weft/policy';
import { CLUSTER_NAME_RE } from '@weft/schema';
import { parseListen } from '@weft/metrics/listen';
import { MeshConfigError } from './errors.js';
import { LIMIT_KEYS, type MeshConfig, type RemoteConfig } from './types.js';


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
    if (typeof r.name !== 'string' || !CLUSTER_NAME_RE.test(r.name)) problems.push({ remote: label, reason: `name ${JSON.stringify(r.name)} is not a valid cluster name` });
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

/** Why `value` is not a list of IPv4 CIDRs, or undefined. */
function cidrListProblem(value: unknown): string | undefined {
  if (!Array.isArray(value) || value.length > 256) return 'must be a list of at most 256 IPv4 CIDRs';
  for (const [i, v] of value.entries()) {
    const c = typeof v === 'string' ? parseCidr(v) : `${JSON.stringify(v)} is not a string`;
    if (typeof c === 'string') return `[${i}]: ${c}`;
  }
  return undefined;
}

/** Why `value` is not a set of per-kind caps, or undefined. */
function limitsProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return `must be an object of caps (${LIMIT_KEYS.join(', ')})`;
  for (const [k, v] of Object.entries(value)) {
    if (!(LIMIT_KEYS as readonly string[]).includes(k)) return `.${k} is not a cap (${LIMIT_KEYS.join(', ')})`;
    const max = k === 'bytes' ? 2 ** 40 : 10_000_000;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) return `.${k} must be an integer 0-${max}, got ${JSON.stringify(v)}`;
  }
  return undefined;
}

/**
 * Problems of remotes' allow-lists and caps: a malformed one, or an allowed range that overlaps
 * one of ours (configured pod, underlay or service ranges) or another remote's allowed range.
 */
export function checkRemoteRanges(config: Pick<MeshConfig, 'podCidrs' | 'underlayCidrs' | 'serviceCidrs'>, remotes: readonly Pick<RemoteConfig, 'name' | 'podCidrs' | 'limits'>[]): RemoteProblem[] {
  const problems: RemoteProblem[] = [];
  const taken = new CidrSet<string>();
  for (const [field, list] of [['podCidrs', config.podCidrs], ['underlayCidrs', config.underlayCidrs], ['serviceCidrs', config.serviceCidrs]] as const) {
    for (const c of list ?? []) {
      const parsed = parseCidr(c);
      if (typeof parsed !== 'string') taken.add(parsed, `our ${field} entry ${c}`);
    }
  }
  for (const r of remotes) {
    if (r.limits !== undefined) {
      const bad = limitsProblem(r.limits);
      if (bad) problems.push({ remote: r.name, reason: `limits${bad.startsWith('.') ? bad : ` ${bad}`}` });
    }
    if (r.podCidrs === undefined) continue;
    const bad = cidrListProblem(r.podCidrs);
    if (bad) {
      problems.push({ remote: r.name, reason: `podCidrs${bad.startsWith('[') ? bad : ` ${bad}`}` });
      continue;
    }
    const mine: Array<[Cidr, string]> = [];
    for (const c of r.podCidrs) {
      const parsed = parseCidr(c) as Cidr;
      const hit = taken.overlapping(parsed);
      if (hit) problems.push({ remote: r.name, reason: `podCidrs entry ${c} overlaps ${hit.value}` });
      mine.push([parsed, `remote ${r.name}'s podCidrs entry ${c}`]);
    }
    for (const [c, what] of mine) taken.add(c, what);
  }
  return problems;
}

/**
 * The remotes to run: the configured ones and those of `remotesDir`, with the problems of each.
 * A file of `remotesDir` that is unreadable, malformed, not named after its remote, or names a
 * configured remote or id is rejected here (the configured remote is kept); then every remote goes
 * through checkRemotes.
 */
export function resolveRemotes(config: MeshConfig): { remotes: RemoteConfig[]; problems: RemoteProblem[] } {
  const remotes = [...config.remotes];
  const problems: RemoteProblem[] = [];
  for (const { file, remote, problem } of config.remotesDir === undefined ? [] : readRemotesDir(config.remotesDir)) {
    const clash = remote && config.remotes.find((r) => r.name === remote.name || r.id === remote.id);
    if (problem || !remote) problems.push({ remote: file, reason: problem ?? 'unreadable' });
    else if (clash) problems.push({ remote: file, reason: `${clash.name === remote.name ? `name ${remote.name}` : `cluster id ${remote.id}`} is already configured in remotes (remote ${clash.name}, chart value clustermesh.remotes); this file is ignored: remove one of the two` });
    else remotes.push(remote);
  }
  problems.push(...checkRemotes(config.cluster, config.clusterId, remotes));
  problems.push(...checkRemoteRanges(config, remotes));
  return { remotes, problems };
}

/** Every `*.json` file of `dir` (a Secret volume: its `..data` entries are skipped), parsed and shape-checked. */
function readRemotesDir(dir: string): Array<{ file: string; remote?: RemoteConfig; problem?: string }> {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.json') && !f.startsWith('.')).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new MeshConfigError(`remotesDir ${dir}: ${(err as Error).message}`);
  }
  return files.map((f) => {
    const file = join(dir, f);
    try {
      const r = JSON.parse(readFileSync(file, 'utf8')) as RemoteConfig;
      const bad = (['name', 'address', 'ca', 'cert', 'key'] as const).find((k) => typeof r[k] !== 'string' || r[k] === '');
      if (bad) return { file, problem: `${bad} must be a non-empty string` };
      if (f !== `${r.name}.json`) return { file, problem: `holds remote ${r.name}: the file must be named ${r.name}.json` };
      return { file, remote: { name: r.name, id: r.id, address: r.address, ca: r.ca, cert: r.cert, key: r.key, ...(r.podCidrs !== undefined ? { podCidrs: r.podCidrs } : {}), ...(r.limits !== undefined ? { limits: r.limits } : {}) } };
    } catch (err) {
      return { file, problem: (err as Error).message };
    }
  });
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
  if (raw.etcdTls !== undefined) {
    const t = raw.etcdTls as unknown as Record<string, unknown>;
    if (typeof t !== 'object' || t === null || Array.isArray(t)) throw new MeshConfigError(`${path}: etcdTls must be an object {ca, cert, key} of file paths`);
    for (const k of ['ca', 'cert', 'key']) if (typeof t[k] !== 'string' || t[k] === '') throw new MeshConfigError(`${path}: etcdTls.${k} must be a non-empty file path (PEM)`);
  }
  if (!Array.isArray(raw.remotes)) throw new MeshConfigError(`${path}: remotes must be a list`);
  for (const f of ['podCidrs', 'underlayCidrs', 'serviceCidrs'] as const) {
    const bad = raw[f] === undefined ? undefined : cidrListProblem(raw[f]);
    if (bad) throw new MeshConfigError(`${path}: ${f}${bad.startsWith('[') ? bad : ` ${bad}`}`);
  }
  if (raw.minPodCidrBits !== undefined && (typeof raw.minPodCidrBits !== 'number' || !Number.isInteger(raw.minPodCidrBits) || raw.minPodCidrBits < 0 || raw.minPodCidrBits > 32)) throw new MeshConfigError(`${path}: minPodCidrBits must be an integer 0-32, got ${JSON.stringify(raw.minPodCidrBits)}`);
  if (raw.limits !== undefined) {
    const bad = limitsProblem(raw.limits);
    if (bad) throw new MeshConfigError(`${path}: limits${bad.startsWith('.') ? bad : ` ${bad}`}`);
  }
  for (const f of ['staleAfterSeconds', 'etcdMaxTxnOps', 'exportStallSeconds'] as const) {
    const v = raw[f];
    if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 1)) throw new MeshConfigError(`${path}: ${f} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  if (raw.source !== undefined && raw.source !== 'standalone' && raw.source !== 'kubernetes') throw new MeshConfigError(`${path}: source ${JSON.stringify(raw.source)} is not standalone or kubernetes`);
  if (raw.kubeconfig !== undefined && (typeof raw.kubeconfig !== 'string' || raw.kubeconfig === '')) throw new MeshConfigError(`${path}: kubeconfig must be a file path`);
  if (raw.remotesDir !== undefined && (typeof raw.remotesDir !== 'string' || raw.remotesDir === '')) throw new MeshConfigError(`${path}: remotesDir must be a directory path`);
  if (raw.observer !== undefined) {
    const o = (raw.observer ?? {}) as { relay?: unknown; tls?: Record<string, unknown>; serverName?: unknown };
    const unix = typeof o.relay === 'string' && /^unix:\/\/\/\S+$/.test(o.relay);
    if (typeof o.relay !== 'string' || !(unix || /^(\$\{[A-Z_][A-Z0-9_]*\}|[A-Za-z0-9.-]+):\d{1,5}$/.test(o.relay))) throw new MeshConfigError(`${path}: observer.relay must be the relay's unix socket (unix:///path) or host:port, got ${JSON.stringify(o.relay)}`);
    if (!unix) {
      if (typeof o.tls !== 'object' || o.tls === null) throw new MeshConfigError(`${path}: observer.tls is needed for a relay at host:port (mutual TLS: ca, cert, key file paths)`);
      for (const k of ['ca', 'cert', 'key']) if (typeof o.tls[k] !== 'string' || !(o.tls[k] as string).startsWith('/')) throw new MeshConfigError(`${path}: observer.tls.${k} must be an absolute file path`);
    }
    if (o.serverName !== undefined && (typeof o.serverName !== 'string' || !/^[A-Za-z0-9.-]+$/.test(o.serverName))) throw new MeshConfigError(`${path}: observer.serverName must be a DNS name, got ${JSON.stringify(o.serverName)}`);
  }
  if (raw.metrics !== undefined) {
    const m = raw.metrics as unknown;
    if (typeof m !== 'object' || m === null || Array.isArray(m) || Object.keys(m).some((k) => k !== 'listen')) throw new MeshConfigError(`${path}: metrics must be an object {listen}`);
    const listen = parseListen((m as { listen?: unknown }).listen);
    if (typeof listen === 'string') throw new MeshConfigError(`${path}: metrics.listen ${JSON.stringify((m as { listen?: unknown }).listen)} ${listen}`);
  }
  return raw;
}

/**
 * Reads the etcd TLS files of `config`, for KvClient; undefined without etcdTls. Read once, at
 * start: a renewed certificate takes effect when the apiserver restarts.
 */
export function readEtcdTls(config: Pick<MeshConfig, 'etcdTls'>): { ca: Buffer; cert: Buffer; key: Buffer } | undefined {
  return config.etcdTls && readEtcdTlsFiles(config.etcdTls, (field, reason) => new MeshConfigError(`etcdTls.${field}: ${reason}`));
}
