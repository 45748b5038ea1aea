/**
 * The policy advisor's view of a flow's endpoints: each side of a connection becomes a workload (a
 * cluster, a namespace and the pod labels that stay the same across its replicas), the world (by
 * address), or an entity (the host, a remote node). Also the parts of a policy that follow from a
 * workload alone: its selector and its policy's name.
 *
 * A workload is its stable labels, never its pods: the labels of a flow's side are its identity's,
 * already without most per-pod keys (the identity's LabelFilter), and what is left of those keys
 * (pod-template-hash and friends, @weft/identity DEFAULT_EXCLUDED_KEYS) is dropped here too, so two
 * replicas are one workload whatever label filter their cluster runs. The namespace, the cluster
 * and the namespace's own labels are identity labels but not pod labels: they place the workload
 * (namespaceSelector, `weft.io/cluster`), they are not part of its pod selector.
 */
import { createHash } from 'node:crypto';
import { parseIpv4 } from '@weft/common';
import { CLUSTER_LABEL, DEFAULT_EXCLUDED_KEYS, InvalidLabelError, makeLabel, NAMESPACE_LABEL, NAMESPACE_LABELS_PREFIX, reservedName } from '@weft/identity';
import type { FlowEndpoint } from './types.js';

export interface Workload {
  readonly cluster: string;
  readonly namespace: string;
  /** The stable pod labels, sorted by key. */
  readonly labels: ReadonlyArray<readonly [string, string]>;
  /** `cluster/namespace/k=v,k=v`: equal workloads, equal keys. */
  readonly key: string;
}

/** What one side of a connection is, as a policy can name it. */
export type Side =
  | { kind: 'workload'; workload: Workload }
  | { kind: 'world'; ip: string }
  | { kind: 'entity'; entity: 'host' | 'remote-node' }
  | { kind: 'unknown'; why: string };

const WORLD_NAMES = new Set(['world', 'world-ipv4', 'world-ipv6']);
const ENTITY_NAMES = new Set(['host', 'remote-node']);
/** Node-local CIDR identities: cluster bits 0, numbers from 256 (@weft/agent cidr-identities.ts). */
const CIDR_IDENTITY_MIN = 256;

/** Not pod labels, or not the same across a workload's replicas. */
function isPodLabel(key: string): boolean {
  if (key === CLUSTER_LABEL || key === NAMESPACE_LABEL || key.startsWith(NAMESPACE_LABELS_PREFIX)) return false;
  return !DEFAULT_EXCLUDED_KEYS.some((re) => re.test(key));
}

/**
 * Workloads by key, so a workload seen in many flows is one object; `side` reads a flow's endpoint
 * into a Side with workloads from here.
 */
export class WorkloadRegistry {
  private readonly byKey = new Map<string, Workload>();

  get size(): number {
    return this.byKey.size;
  }

  /** Every workload seen, in key order. */
  all(): Workload[] {
    return [...this.byKey.values()].sort((a, b) => compare(a.key, b.key));
  }

  side(ep: FlowEndpoint): Side {
    let reserved: string | undefined;
    let cidr = false;
    const k8s: Array<[string, string]> = [];
    for (const text of ep.labels) {
      const colon = text.indexOf(':');
      const source = colon < 0 ? 'k8s' : text.slice(0, colon);
      const rest = colon < 0 ? text : text.slice(colon + 1);
      const eq = rest.indexOf('=');
      const key = eq < 0 ? rest : rest.slice(0, eq);
      if (source === 'reserved') reserved ??= key;
      else if (source === 'cidr') cidr = true;
      else if (source === 'k8s') k8s.push([key, eq < 0 ? '' : rest.slice(eq + 1)]);
    }
    // No labels: the node knew the number only. Reserved numbers name themselves; a node-local CIDR
    // identity (what a world address gets once a policy names it) is the world.
    if (reserved === undefined && !cidr && k8s.length === 0) {
      reserved = reservedName(ep.identity);
      cidr = reserved === undefined && ep.identity >>> 16 === 0 && ep.identity >= CIDR_IDENTITY_MIN;
    }
    if (reserved !== undefined) {
      if (WORLD_NAMES.has(reserved)) return world(ep.ip);
      if (ENTITY_NAMES.has(reserved)) return { kind: 'entity', entity: reserved as 'host' | 'remote-node' };
      return { kind: 'unknown', why: `reserved identity ${reserved} has no policy entity that names it alone` };
    }
    if (cidr) return world(ep.ip);
    const get = (k: string): string | undefined => k8s.find(([key]) => key === k)?.[1];
    const cluster = get(CLUSTER_LABEL) ?? ep.cluster;
    const namespace = get(NAMESPACE_LABEL) ?? ep.namespace;
    if (!cluster || !namespace) return { kind: 'unknown', why: `identity ${ep.identity} has no labels that place it (the node that saw it did not know it)` };
    const labels = k8s.filter(([k]) => isPodLabel(k)).sort(([a], [b]) => compare(a, b));
    try {
      // What a selector will say must be a valid label; identities always are, so this guards against
      // a malformed flow only.
      for (const [k, v] of labels) makeLabel('k8s', k, v);
      makeLabel('k8s', NAMESPACE_LABEL, namespace);
      makeLabel('k8s', CLUSTER_LABEL, cluster);
    } catch (err) {
      if (err instanceof InvalidLabelError) return { kind: 'unknown', why: err.message };
      throw err;
    }
    const key = `${cluster}/${namespace}/${labels.map(([k, v]) => `${k}=${v}`).join(',')}`;
    let w = this.byKey.get(key);
    if (!w) {
      w = Object.freeze({ cluster, namespace, labels: Object.freeze(labels.map((l) => Object.freeze(l))), key });
      this.byKey.set(key, w);
    }
    return { kind: 'workload', workload: w };
  }
}

function world(ip: string): Side {
  return parseIpv4(ip) === undefined ? { kind: 'unknown', why: `world address ${JSON.stringify(ip)} is not an IPv4 address` } : { kind: 'world', ip };
}

/** Plain code-unit order: the same on every machine, whatever its locale. */
export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A Kubernetes label selector as a document writes it: empty parts left out, `{}` for everything. */
export interface LabelSelectorDoc {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: 'DoesNotExist' }>;
}

/**
 * The selector of `w` among the workloads of its cluster and namespace (`group`): every stable
 * label, and, for each workload whose labels include all of w's and more, one of its extra keys as
 * DoesNotExist, so the selector matches w's pods and none of the others observed. (The smallest set
 * of labels that tells w apart would change as other workloads come and go, and select new pods
 * that merely share a label; all of them means "pods like these".) `extra` adds keys that place w
 * (namespace, cluster) for Weft selectors.
 */
export function selectorOf(w: Workload, group: readonly Workload[], extra: Record<string, string> = {}): LabelSelectorDoc {
  const own = new Map(w.labels);
  const absent = new Set<string>();
  for (const o of group) {
    if (o === w || o.labels.length <= own.size) continue;
    if (!w.labels.every(([k, v]) => o.labels.some(([ok, ov]) => ok === k && ov === v))) continue;
    if (o.labels.some(([k]) => absent.has(k))) continue; // already excluded
    absent.add(o.labels.map(([k]) => k).filter((k) => !own.has(k)).sort(compare)[0]!);
  }
  const matchLabels: Record<string, string> = {};
  for (const [k, v] of [...w.labels, ...Object.entries(extra)].sort(([a], [b]) => compare(a, b))) matchLabels[k] = v;
  const out: LabelSelectorDoc = {};
  if (Object.keys(matchLabels).length > 0) out.matchLabels = matchLabels;
  if (absent.size > 0) out.matchExpressions = [...absent].sort(compare).map((key) => ({ key, operator: 'DoesNotExist' as const }));
  return out;
}

export const NAME_PREFIX = 'weft-suggested-';
/** A DNS label: what every Kubernetes object name may be. */
const MAX_NAME = 63;

/**
 * The policy names of workloads, by key: `weft-suggested-` and the workload's label values in key
 * order (`app=web,tier=front` -> weft-suggested-web-front). A name that two workloads of one
 * namespace would share, or that had to be shortened, ends in 8 hex digits of a hash of the
 * workload instead, so it stays unique and the same from run to run.
 */
export function policyNames(workloads: readonly Workload[]): Map<string, string> {
  const base = new Map<string, { name: string; cut: boolean }>();
  const uses = new Map<string, number>();
  for (const w of workloads) {
    const raw = w.labels.map(([, v]) => v).join('-').toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/-+/g, '-').replace(/^-|-$/g, '') || 'unlabeled';
    const room = MAX_NAME - NAME_PREFIX.length;
    const b = { name: raw.length > room ? raw.slice(0, room - 9).replace(/-$/, '') : raw, cut: raw.length > room };
    base.set(w.key, b);
    const scope = `${w.cluster}/${w.namespace}/${b.name}`;
    uses.set(scope, (uses.get(scope) ?? 0) + 1);
  }
  const out = new Map<string, string>();
  for (const w of workloads) {
    const b = base.get(w.key)!;
    const shared = uses.get(`${w.cluster}/${w.namespace}/${b.name}`)! > 1;
    const hash = createHash('sha256').update(w.key).digest('hex').slice(0, 8);
    out.set(w.key, NAME_PREFIX + (b.cut || shared ? `${b.name}-${hash}` : b.name));
  }
  return out;
}
