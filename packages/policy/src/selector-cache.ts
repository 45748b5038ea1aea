/**
 * SelectorCache: each identity selector of the node's policies, with the identities it selects,
 * kept up to date as identities come and go. Cilium's SelectorCache is the model: a selector is
 * matched against every identity once, when it first appears; after that an identity change is
 * matched against the selectors only, and each selector whose selection changed tells its users
 * what was added and removed (Cilium's IdentitySelectionUpdated). Resolving an endpoint's policy
 * then reads selections instead of scanning every identity for every rule, and an identity change
 * reaches only the endpoints whose selectors it changed.
 *
 * Identity-dependent peers are cached: pods (by pod and namespace labels, in a cluster) and the
 * `cluster` entity (every identity of the policy's cluster). Other peers (world, host, CIDRs) name
 * fixed or node-local identities and are resolved where they are used.
 */
import { CLUSTER_LABEL, NAMESPACE_LABEL, NAMESPACE_LABELS_PREFIX, type LabelSet } from '@weft/identity';
import { matches, matchesWith, selectorKeys } from './selector.js';
import type { Peer } from './types.js';

export type EndpointsPeer = Extract<Peer, { kind: 'endpoints' }>;

/** The peers whose selection depends on the identities the node knows. */
export type IdentityPeer = EndpointsPeer | { kind: 'entity'; entity: 'cluster' };

export interface IdentityLabels {
  id: number;
  labels: LabelSet;
}

export function isIdentityPeer(peer: Peer): peer is IdentityPeer {
  return peer.kind === 'endpoints' || (peer.kind === 'entity' && peer.entity === 'cluster');
}

function namespaceLabel(labels: LabelSet, key: string): string | undefined {
  if (key === 'kubernetes.io/metadata.name') return labels.get(NAMESPACE_LABEL);
  return labels.get(NAMESPACE_LABELS_PREFIX + key);
}

/**
 * Whether a policy of `policyCluster` selects the identity with `labels` through `peer`. A pod
 * selector without `weft.io/cluster` matches only the policy's own cluster; reserved identities
 * (no cluster label) are never pods.
 */
export function selectsIdentity(peer: IdentityPeer, policyCluster: string, labels: LabelSet): boolean {
  const cluster = labels.get(CLUSTER_LABEL);
  if (cluster === undefined) return false;
  if (peer.kind === 'entity') return cluster === policyCluster;
  if (cluster !== policyCluster && !selectorKeys(peer.pods).includes(CLUSTER_LABEL)) return false;
  if (peer.namespace !== undefined && labels.get(NAMESPACE_LABEL) !== peer.namespace) return false;
  if (peer.namespaces !== undefined && !matchesWith(peer.namespaces, (k) => namespaceLabel(labels, k))) return false;
  return matches(peer.pods, labels);
}

/** Who is told when a selector's selection changes. */
export interface SelectionUser {
  selectionUpdated(selector: CachedSelector, added: readonly number[], removed: readonly number[]): void;
}

export class CachedSelector {
  readonly selected = new Set<number>();
  readonly users = new Set<SelectionUser>();

  constructor(
    readonly key: string,
    readonly peer: IdentityPeer,
    readonly cluster: string,
  ) {}

  selects(labels: LabelSet): boolean {
    return selectsIdentity(this.peer, this.cluster, labels);
  }
}

/** The cache key of a peer in a policy of `cluster`: equal peers share one selector. */
export function selectorKey(peer: IdentityPeer, cluster: string): string {
  if (peer.kind === 'entity') return `${cluster}|entity:cluster`;
  const canon = (s: EndpointsPeer['pods'] | undefined): unknown =>
    s && [Object.entries(s.matchLabels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)), s.matchExpressions.map((e) => [e.key, e.operator, [...e.values].sort()]).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1))];
  return `${cluster}|${JSON.stringify([canon(peer.pods), canon(peer.namespaces), peer.namespace ?? null])}`;
}

export class SelectorCache {
  private readonly identities = new Map<number, LabelSet>();
  private readonly selectors = new Map<string, CachedSelector>();

  constructor(identities: Iterable<IdentityLabels> = []) {
    for (const { id, labels } of identities) this.identities.set(id, labels);
  }

  get size(): number {
    return this.selectors.size;
  }

  get identityCount(): number {
    return this.identities.size;
  }

  /**
   * The selector for `peer` in a policy of `cluster`, with `user` registered. A selector seen for
   * the first time is matched against every known identity (the only full scan it ever makes).
   */
  addSelector(peer: IdentityPeer, cluster: string, user: SelectionUser): CachedSelector {
    const key = selectorKey(peer, cluster);
    let sel = this.selectors.get(key);
    if (!sel) {
      sel = new CachedSelector(key, peer, cluster);
      for (const [id, labels] of this.identities) if (sel.selects(labels)) sel.selected.add(id);
      this.selectors.set(key, sel);
    }
    sel.users.add(user);
    return sel;
  }

  /** Unregisters `user`; a selector nobody uses is forgotten. */
  removeSelector(sel: CachedSelector, user: SelectionUser): void {
    sel.users.delete(user);
    if (sel.users.size === 0 && this.selectors.get(sel.key) === sel) this.selectors.delete(sel.key);
  }

  /**
   * Identities added (or whose labels changed: give them in `upserted`) and removed. Every
   * selector is matched against the changed identities only; each selector whose selection
   * changed tells its users once, with everything that changed for it.
   */
  updateIdentities(upserted: readonly IdentityLabels[], removed: readonly number[]): void {
    const changes = new Map<CachedSelector, { added: number[]; removed: number[] }>();
    const note = (sel: CachedSelector, id: number, added: boolean): void => {
      let c = changes.get(sel);
      if (!c) changes.set(sel, (c = { added: [], removed: [] }));
      (added ? c.added : c.removed).push(id);
    };
    for (const id of removed) {
      if (!this.identities.delete(id)) continue;
      for (const sel of this.selectors.values()) if (sel.selected.delete(id)) note(sel, id, false);
    }
    for (const { id, labels } of upserted) {
      this.identities.set(id, labels);
      for (const sel of this.selectors.values()) {
        const now = sel.selects(labels);
        const was = sel.selected.has(id);
        if (now === was) continue;
        if (now) sel.selected.add(id);
        else sel.selected.delete(id);
        note(sel, id, now);
      }
    }
    for (const [sel, c] of changes) for (const user of sel.users) user.selectionUpdated(sel, c.added, c.removed);
  }
}
