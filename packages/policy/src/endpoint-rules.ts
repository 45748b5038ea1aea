/**
 * EndpointRules: one endpoint's resolved policy, kept by rule so that a selector's selection diff
 * (SelectorCache's `selectionUpdated(added, removed)`) changes only the entries it touches.
 * Building one is a full resolution (the resync path); `resolveEndpoint` (resolve.ts) is the
 * reference it must always equal, entry for entry, rule attribution included.
 *
 * Invariants:
 *  - the map entries are a function of groups: one group per (direction, remote identity) holds
 *    the rules that give that identity, and its entries come from those rules alone. Deduplication
 *    (an earlier rule names the entry; a deny replaces an allow) and deny precedence (no allow that
 *    a deny of the same identity covers: bpf/lib/policy.h relies on it) never look outside a group,
 *    exactly as in resolveEndpoint; so an identity added or removed recomputes one group per
 *    direction, from the few rules giving it;
 *  - a rule gives an identity while at least one of its sources (a selector, a fixed list) does:
 *    `sources` counts them, so an identity two peers of a rule select stays until both drop it;
 *  - `flushed` is what the last flush() returned and the caller wrote: a full resolution
 *    compares against it (changesSince), never against groups not flushed yet.
 *
 * The fixed sources (entities, CIDR identities, the endpoint's own named ports) are read once: a
 * change of the CIDR identities or of the endpoint itself is a new resolution. Egress rules with a
 * named port read the peer's ports when their group is recomputed, so a new identity gets the
 * numbers its pods give the name; a change of some pods' named ports is a new resolution too (the
 * engine tracks who has such rules).
 */
import type { NamedPort, EndpointView, PolicyEntry, PolicyUniverse, PortEntry } from './resolve.js';
import { covers, entryKey, parseCidrIdentities, portEntries, selects, staticIdentities, trackedPeer } from './resolve.js';
import type { IdentityPeer } from './selector-cache.js';
import type { Policy, PortRule } from './types.js';

/** What a selector selects now (a CachedSelector); its identity is what selection diffs name. */
export interface Selection {
  readonly selected: ReadonlySet<number>;
}

export interface RulesUniverse extends Omit<PolicyUniverse, 'identities' | 'selections'> {
  /** The selector of an identity-dependent peer of `policy`; the caller registers for its diffs. */
  selector: (peer: IdentityPeer, policy: Policy) => Selection;
}

/** Entries to write (new, or changed in deny or rule) and to delete, by direction, identity, protocol and port. */
export interface EntryChanges {
  upsert: PolicyEntry[];
  remove: PolicyEntry[];
}

interface ResolvedRule {
  /** Precedence among the endpoint's rules: policy order, then rule order (resolveEndpoint's). */
  readonly rank: number;
  readonly name: string;
  readonly egress: boolean;
  readonly deny: boolean;
  /** Undefined when the ports depend on the peer (egress to a named port). */
  readonly ports: readonly PortEntry[] | undefined;
  readonly portRules: readonly PortRule[];
  /** Identity -> how many of the rule's sources give it. */
  readonly sources: Map<number, number>;
}

const groupOf = (egress: boolean, identity: number): number => identity * 2 + (egress ? 1 : 0);
const byRank = (a: ResolvedRule, b: ResolvedRule): number => a.rank - b.rank;
const NONE: ReadonlyMap<string, PolicyEntry> = new Map();

export class EndpointRules {
  ingressEnforced = false;
  egressEnforced = false;
  audit = false;
  /** Ids of the policies selecting the endpoint. */
  readonly policies: string[] = [];
  /** Whether a rule reads the peers' named ports (egress to a named port). */
  namedEgress = false;
  private readonly bySelector = new Map<Selection, ResolvedRule[]>();
  /** Group -> the rules giving its identity in its direction. */
  private readonly groups = new Map<number, Set<ResolvedRule>>();
  /** Group -> its entries by key, as last flushed. */
  private readonly flushed = new Map<number, Map<string, PolicyEntry>>();
  private readonly dirty = new Set<number>();
  private entryCount = 0;

  private constructor(private readonly namedPorts: PolicyUniverse['namedPorts']) {}

  /** A full resolution of `ep` (equal to resolveEndpoint's), already flushed. */
  static resolve(ep: EndpointView, policies: readonly Policy[], u: RulesUniverse): EndpointRules {
    const out = new EndpointRules(u.namedPorts);
    const cidrs = parseCidrIdentities(u.cidrIdentities);
    let rank = 0;
    for (const policy of policies) {
      if (!selects(policy, ep, u.cluster)) continue;
      out.policies.push(policy.id);
      if (policy.enforces.includes('ingress')) out.ingressEnforced = true;
      if (policy.enforces.includes('egress')) out.egressEnforced = true;
      if (policy.audit) out.audit = true;
      policy.rules.forEach((rule, index) => {
        const named = rule.ports.some((p) => p.name !== undefined);
        const mine = (name: string): NamedPort[] => (ep.namedPorts ?? []).filter((n) => n.name === name);
        const egress = rule.direction === 'egress';
        if (egress && named) out.namedEgress = true;
        const r: ResolvedRule = {
          rank: rank++,
          name: `${policy.id}#${rule.direction}#${index}`,
          egress,
          deny: rule.action === 'deny',
          ports: !egress || !named ? portEntries(rule.ports, mine) : undefined,
          portRules: rule.ports,
          sources: new Map(),
        };
        if (rule.peers.length === 0) out.give(r, 0);
        for (const peer of rule.peers) {
          for (const id of staticIdentities(peer, cidrs)) out.give(r, id);
          const tracked = trackedPeer(peer);
          if (!tracked) continue;
          const sel = u.selector(tracked, policy);
          const users = out.bySelector.get(sel);
          if (users) users.push(r);
          else out.bySelector.set(sel, [r]);
          for (const id of sel.selected) out.give(r, id);
        }
      });
    }
    out.flush();
    return out;
  }

  /** The selectors this resolution reads: their diffs go to selectionUpdated. */
  selectors(): IterableIterator<Selection> {
    return this.bySelector.keys();
  }

  /** Entries as last flushed. */
  get size(): number {
    return this.entryCount;
  }

  /** Whether changes wait for a flush. */
  get pending(): boolean {
    return this.dirty.size > 0;
  }

  /**
   * A selector's selection changed: the rules using it give the `added` identities and stop giving
   * the `removed` ones (unless another source of the rule still gives them). Returns whether this
   * endpoint reads the selector. The entries change at the next flush().
   */
  selectionUpdated(sel: Selection, added: readonly number[], removed: readonly number[]): boolean {
    const rules = this.bySelector.get(sel);
    if (!rules) return false;
    // Removed first: the cache reports an identity whose labels changed as removed and added again.
    for (const r of rules) for (const id of removed) this.take(r, id);
    for (const r of rules) for (const id of added) this.give(r, id);
    return true;
  }

  /** Recomputes the groups changed since the last flush and returns what the map must change. */
  flush(): EntryChanges {
    const out: EntryChanges = { upsert: [], remove: [] };
    for (const g of this.dirty) {
      const next = this.groupEntries(g);
      const prev = this.flushed.get(g) ?? NONE;
      diffInto(prev, next, out);
      this.entryCount += next.size - prev.size;
      if (next.size > 0) this.flushed.set(g, next);
      else this.flushed.delete(g);
    }
    this.dirty.clear();
    return out;
  }

  /** Every entry, as last flushed. */
  entries(): PolicyEntry[] {
    const out: PolicyEntry[] = [];
    for (const g of this.flushed.values()) for (const e of g.values()) out.push(e);
    return out;
  }

  /** What the map must change to go from `before`'s flushed entries to these (flushed too). */
  changesSince(before: EndpointRules | undefined): EntryChanges {
    const out: EntryChanges = { upsert: [], remove: [] };
    const old = before?.flushed ?? new Map<number, Map<string, PolicyEntry>>();
    for (const [g, next] of this.flushed) diffInto(old.get(g) ?? NONE, next, out);
    for (const [g, prev] of old) if (!this.flushed.has(g)) diffInto(prev, NONE, out);
    return out;
  }

  private give(r: ResolvedRule, id: number): void {
    const n = r.sources.get(id) ?? 0;
    r.sources.set(id, n + 1);
    if (n > 0) return;
    const g = groupOf(r.egress, id);
    let rules = this.groups.get(g);
    if (!rules) this.groups.set(g, (rules = new Set()));
    rules.add(r);
    this.dirty.add(g);
  }

  private take(r: ResolvedRule, id: number): void {
    const n = r.sources.get(id);
    if (n === undefined) return; // a diff of something this rule never got: nothing to undo
    if (n > 1) {
      r.sources.set(id, n - 1);
      return;
    }
    r.sources.delete(id);
    const g = groupOf(r.egress, id);
    const rules = this.groups.get(g)!;
    rules.delete(r);
    if (rules.size === 0) this.groups.delete(g);
    this.dirty.add(g);
  }

  /** A group's entries, as resolveEndpoint makes them for its identity and direction. */
  private groupEntries(g: number): Map<string, PolicyEntry> {
    const byKey = new Map<string, PolicyEntry>();
    const rules = this.groups.get(g);
    if (!rules) return byKey;
    const identity = Math.floor(g / 2);
    const egress = g % 2 === 1;
    let denies = false;
    for (const r of [...rules].sort(byRank)) {
      const ports = r.ports ?? portEntries(r.portRules, (name) => this.namedPorts?.(identity, name) ?? []);
      for (const p of ports) {
        const entry: PolicyEntry = { egress, identity, protocol: p.protocol, deny: r.deny, rule: r.name };
        if (p.port) entry.port = p.port;
        const key = entryKey(entry);
        const prev = byKey.get(key);
        if (!prev || (entry.deny && !prev.deny)) byKey.set(key, entry);
        denies ||= entry.deny;
      }
    }
    if (!denies) return byKey;
    // Deny beats allow: no allow that a deny of this identity covers (the LPM lookup would pick the longer allow).
    const deny = [...byKey.values()].filter((e) => e.deny);
    for (const [k, e] of [...byKey]) if (!e.deny && deny.some((d) => covers(d, e))) byKey.delete(k);
    return byKey;
  }
}

function diffInto(prev: ReadonlyMap<string, PolicyEntry>, next: ReadonlyMap<string, PolicyEntry>, out: EntryChanges): void {
  for (const [k, e] of next) {
    const p = prev.get(k);
    if (!p || p.deny !== e.deny || p.rule !== e.rule) out.upsert.push(e);
  }
  for (const [k, e] of prev) if (!next.has(k)) out.remove.push(e);
}
