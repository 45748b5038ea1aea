/**
 * PolicyEngine: keeps every local endpoint's policy map equal to what the
 * cluster's policies say, live. Inputs: the policy resources (watched), the
 * identities (the allocator's cache and the remote clusters') and the local
 * endpoints. A change touches only what it can, and a recompute (debounced)
 * writes only the differences:
 *  - an identity change reaches the selector cache (@weft/policy
 *    selector-cache.ts), whose selectors tell the endpoints that use them what
 *    their selection gained and lost (Cilium's IdentitySelectionUpdated); each
 *    endpoint keeps its policy by rule (@weft/policy endpoint-rules.ts), so
 *    that diff changes only the entries of the rules using those selectors,
 *    and the datapath is given those entries alone (updateEndpointPolicy);
 *  - a policy change marks the endpoints it selected and those it selects now,
 *    which are resolved in full (the resync path, also taken by an endpoint
 *    whose policy is not in force);
 *  - a change of the policy CIDRs (node-local identities) marks every endpoint
 *    for a full resolution, and so does a change of pods' named ports for the
 *    endpoints with egress rules to a named port: CIDR identities and named
 *    ports are read when an endpoint is resolved, not tracked by selectors.
 * Bumping the endpoint's policy revision makes the datapath re-check
 * established connections against the new rules.
 *
 * The datapath applies each endpoint's policy as a whole or fails the
 * endpoint closed (see policy-map-writer.ts); what it could not do is kept
 * per endpoint (state and error, shown by `weft endpoint list` and `weft
 * status`), never stops the recompute of the other endpoints, and is retried
 * by the next recompute: one comes RETRY_MS after any failure.
 */
import { Coalescer, type Logger } from '@weft/common';
import type { IdentityAllocator } from '@weft/identity';
import { EndpointRules, parsePolicy, policyCidrs, selects, SelectorCache, type CachedSelector, type CidrIdentityView, type EndpointView, type EntryChanges, type NamedPort, type Policy, type PolicyEntry, type SelectionUser } from '@weft/policy';
import type { IdentityChange, LabelSet } from '@weft/identity';
import type { Resource, ResourceSource, ResourceWatch } from '@weft/resources';
import type { AgentConfig } from './config.js';
import type { Datapath, EndpointPolicyOutcome, EndpointPolicyState as DatapathPolicyState, EndpointProgram, PolicyMapEntry } from './datapath-port.js';
import { CidrIdentities } from './cidr-identities.js';
import { endpointLabels, type Endpoint } from './endpoint-manager.js';

const POLICY_KINDS = ['NetworkPolicy', 'WeftNetworkPolicy', 'WeftClusterwideNetworkPolicy'] as const;
/** A recompute this long after an endpoint's policy could not be (all) written. */
export const RETRY_MS = 5000;

export interface EndpointPolicyState {
  rev: number;
  /** The endpoint's own identity, programmed with its policy: a regenerated endpoint is written again. */
  identity: number;
  ingressEnforced: boolean;
  egressEnforced: boolean;
  audit: boolean;
  policies: string[];
  entries: number;
  /**
   * What the datapath has in force: the datapath's outcome, or `error` when programming the
   * endpoint failed outright (what is in force is then whatever was before).
   */
  state: DatapathPolicyState | 'error';
  /** Why it is not `ok`. */
  error?: string;
  /** When it last left `ok`. */
  since?: string;
}

/**
 * One endpoint's resolved policy and the selectors it reads: a selection diff goes to its rules
 * (entries change at the next recompute), or marks it for a full resolution if it has none yet.
 */
class EndpointSelections implements SelectionUser {
  selectors = new Set<CachedSelector>();
  rules: EndpointRules | undefined;
  constructor(readonly epId: number, private readonly changed: (epId: number, incremental: boolean) => void) {}
  selectionUpdated(sel: CachedSelector, added: readonly number[], removed: readonly number[]): void {
    this.changed(this.epId, this.rules?.selectionUpdated(sel, added, removed) === true);
  }
}

export class PolicyEngine {
  private readonly policies = new Map<string, Policy>();
  /** What each identity selector selects, kept current by a diff of the identities the node knows. */
  private readonly selectors = new SelectorCache();
  /** This cluster's identity changes not yet given to the selector cache (the allocator cache's events). */
  private localChanges: IdentityChange[] | 'all' = 'all';
  /** Remote clusters' identities the selector cache has (id -> canonical labels). */
  private readonly knownRemote = new Map<number, string>();
  /** Remote identities changed since the last sync (ClusterState's events); 'all' until the first sync. */
  private remoteChanges: Set<number> | 'all' = 'all';
  private readonly selections = new Map<number, EndpointSelections>();
  /** Endpoints to resolve at the next recompute; 'all' after a change that touches every one. */
  private dirty: Set<number> | 'all' = 'all';
  /** Endpoints whose rules took a selection diff: their changed entries are written at the next recompute. */
  private updated = new Set<number>();
  private recomputing = false;
  private readonly ruleIds = new Map<string, number>();
  private readonly ruleNames: string[] = [''];
  private readonly state = new Map<number, EndpointPolicyState>();
  private watchers: ResourceWatch[] = [];
  private readonly recompute: Coalescer;
  /** Node-local identities of the CIDRs the policies name, stable while named (the agent gives it a state file). */
  cidrs = new CidrIdentities();
  private cidrIds: CidrIdentityView[] = [];
  /** CIDR -> how many policies name it: kept by policy events, so no recompute scans every policy. */
  private readonly cidrRefs = new Map<string, number>();
  /** A CIDR came or went from cidrRefs since `cidrs` was last given them. */
  private cidrsNamedChanged = true;
  /** The CidrIdentities last given cidrRefs (the agent replaces it with one backed by a state file). */
  private cidrsGiven: CidrIdentities | undefined;
  /** The CIDR identities changed and weft_policy_cidrs does not hold them exactly yet. */
  private cidrsUnwritten = true;
  private retry: NodeJS.Timeout | undefined;
  /** The numbers pods of an identity give a port name (egress rules with a named port); the agent gives ClusterState's index. */
  namedPorts: (identity: number, name: string) => Iterable<NamedPort> = () => [];
  /** Endpoints whose policy has an egress rule with a named port: resolved again when named ports change. */
  private readonly namedEgressUsers = new Set<number>();
  /** Told when the CIDR identities change (they belong in the ipcache). */
  onCidrsChanged: () => void = () => undefined;
  /**
   * Told after every regeneration: an endpoint's policy written to the datapath, in full (`full`:
   * resolved again) or by the entries a selection changed (`incremental`), with its outcome (the
   * datapath's state, or `error` when programming threw) and how long it took (metrics).
   */
  onRegenerated: (scope: 'full' | 'incremental', outcome: DatapathPolicyState | 'error', seconds: number) => void = () => undefined;
  /**
   * The next policy revision: node-wide and monotonic across restarts in the agent (revisions.ts),
   * so no endpoint ever sees a revision a conntrack entry of an older policy carries.
   */
  nextRevision: () => number = (() => {
    let rev = 0;
    return () => ++rev;
  })();
  readonly invalid = new Map<string, string>();

  constructor(
    private readonly config: AgentConfig,
    private readonly resources: ResourceSource,
    private readonly allocator: IdentityAllocator,
    private readonly datapath: Datapath,
    private readonly endpoints: () => Endpoint[],
    private readonly log: Logger,
    /** Identities of remote clusters (from the clustermesh cache). */
    private readonly remoteIdentities: () => ReadonlyMap<number, LabelSet> = () => new Map(),
  ) {
    this.recompute = new Coalescer(() => this.recomputeChanged(), 20, (err) => this.log.error({ err: err.message }, 'policy recompute failed'));
  }

  async start(): Promise<void> {
    const synced: Array<Promise<void>> = [];
    for (const kind of POLICY_KINDS) {
      let resolveSynced!: () => void;
      synced.push(new Promise((r) => (resolveSynced = r)));
      this.watchers.push(
        this.resources.watch(kind, {
          onChange: (type, key, res) => this.onPolicy(type, key, res),
          onSynced: () => resolveSynced(),
          onInvalid: (key, err) => this.invalid.set(key, err.message),
        }, this.log),
      );
    }
    this.allocator.cache.on('change', (c: IdentityChange) => {
      if (this.localChanges !== 'all') this.localChanges.push(c);
      this.schedule();
    });
    await Promise.all(synced);
  }

  async stop(): Promise<void> {
    await Promise.all(this.watchers.map((w) => w.stop()));
    clearTimeout(this.retry);
    await this.recompute.stop();
  }

  get policyCount(): number {
    return this.policies.size;
  }

  listPolicies(): Policy[] {
    return [...this.policies.values()];
  }

  endpointState(epId: number): EndpointPolicyState | undefined {
    return this.state.get(epId);
  }

  ruleName(id: number): string | undefined {
    return this.ruleNames[id];
  }

  cidrIdentities(): CidrIdentityView[] {
    return this.cidrIds;
  }

  private onPolicy(type: 'upsert' | 'delete', key: string, res: Resource | undefined): void {
    const before = this.policies.get(key);
    this.applyPolicyEvent(type, key, res);
    const after = this.policies.get(key);
    if (before !== after) {
      this.countCidrs(before, -1);
      this.countCidrs(after, 1);
    }
    this.markPolicyChange(before, after);
    this.schedule();
  }

  private applyPolicyEvent(type: 'upsert' | 'delete', key: string, res: Resource | undefined): void {
    if (type === 'delete') {
      this.policies.delete(key);
      this.invalid.delete(key);
    } else {
      try {
        this.policies.set(key, parsePolicy(res, this.config.cluster));
        this.invalid.delete(key);
      } catch (err) {
        // Validated on apply; reaching here means someone wrote etcd by hand.
        this.policies.delete(key);
        this.invalid.set(key, (err as Error).message);
        this.log.warn({ key, err: (err as Error).message }, 'ignoring invalid policy');
      }
    }
  }

  /** The endpoints a policy selected (by their last resolution) and those it selects now. */
  private markPolicyChange(before: Policy | undefined, after: Policy | undefined): void {
    if (this.dirty === 'all' || before === after) return;
    for (const ep of this.endpoints()) {
      if (before && this.selections.get(ep.epId)?.rules?.policies.includes(before.id)) this.dirty.add(ep.epId);
      else if (after && selects(after, this.viewOf(ep), this.config.cluster)) this.dirty.add(ep.epId);
    }
  }

  private viewOf(ep: Endpoint): EndpointView {
    return { epId: ep.epId, namespace: ep.namespace, labels: endpointLabels(this.config.cluster, ep), ...(ep.namedPorts ? { namedPorts: ep.namedPorts } : {}) };
  }

  /** Recompute soon; changes arriving together are applied together. */
  schedule(): void {
    this.recompute.schedule();
  }

  /** Recomputes every endpoint now. */
  async recomputeAll(): Promise<void> {
    this.dirty = 'all';
    await this.recomputeChanged();
  }

  /**
   * Resolves the endpoints a change since the last run can touch, those never resolved and those
   * whose policy is not in force; one endpoint's failure is recorded and the others go on.
   */
  async recomputeChanged(): Promise<void> {
    this.refreshCidrIdentities();
    // A CIDR reaches weft_policy_cidrs before any policy names its identity, and leaves it only
    // after none does: in between, a pod address inside a denied ipBlock is never let through.
    const cidrs = this.cidrsUnwritten ? this.cidrIds : undefined;
    if (cidrs) await this.datapath.syncPolicyCidrs(cidrs, 'add');
    this.syncIdentities();
    const dirty = this.dirty;
    this.dirty = new Set();
    this.recomputing = true;
    try {
      await this.resolveMarked(dirty);
    } finally {
      this.recomputing = false;
    }
    if (cidrs) {
      await this.datapath.syncPolicyCidrs(cidrs, 'exact');
      if (cidrs === this.cidrIds) this.cidrsUnwritten = false;
    }
  }

  private async resolveMarked(dirty: Set<number> | 'all'): Promise<void> {
    const updated = this.updated;
    this.updated = new Set();
    for (const ep of this.endpoints()) {
      const s = this.state.get(ep.epId);
      const rules = this.selections.get(ep.epId)?.rules;
      const full = dirty === 'all' || dirty.has(ep.epId) || !s || s.state !== 'ok' || !rules;
      if (!full && !updated.has(ep.epId)) continue;
      try {
        if (full) await this.apply(ep);
        else await this.update(ep, s, rules);
      } catch (err) {
        const prev = this.state.get(ep.epId);
        const message = (err as Error).message;
        if (prev?.error !== message) this.log.error({ endpoint: `${ep.namespace}/${ep.pod}`, err: message }, 'cannot program endpoint policy');
        if (prev) this.state.set(ep.epId, { ...prev, state: 'error', error: message, since: prev.state === 'ok' ? new Date().toISOString() : prev.since ?? new Date().toISOString() });
        this.retryLater();
      }
    }
  }

  /** Endpoints whose policy is not (all) in force. */
  failing(): Array<{ epId: number } & EndpointPolicyState> {
    return [...this.state].filter(([, s]) => s.state !== 'ok').map(([epId, s]) => ({ epId, ...s }));
  }

  private retryLater(): void {
    if (this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.schedule();
    }, RETRY_MS).unref();
  }

  /** Resolves and programs one endpoint in full (also used when it is added): the resync path. */
  async apply(ep: Endpoint): Promise<void> {
    const started = performance.now();
    const policies = [...this.policies.values()];
    if (!this.recomputing) this.syncIdentities(); // (a recompute did, once for all its endpoints)
    const view = this.viewOf(ep);
    const user = this.selections.get(ep.epId) ?? new EndpointSelections(ep.epId, (id, incremental) => this.selectionChanged(id, incremental));
    this.selections.set(ep.epId, user);
    const before = user.rules;
    const rules = EndpointRules.resolve(view, policies, {
      cluster: this.config.cluster,
      cidrIdentities: this.cidrIds,
      namedPorts: this.namedPorts,
      selector: (peer, policy) => this.selectors.addSelector(peer, policy.cluster, user),
    });
    // The selectors this resolution reads replace the endpoint's old ones in the cache.
    const used = new Set(rules.selectors() as IterableIterator<CachedSelector>);
    for (const sel of user.selectors) if (!used.has(sel)) this.selectors.removeSelector(sel, user);
    user.selectors = used;
    user.rules = rules;
    if (rules.namedEgress) this.namedEgressUsers.add(ep.epId);
    else this.namedEgressUsers.delete(ep.epId);
    const audit = rules.audit || this.config.audit;
    const prev = this.state.get(ep.epId);
    // What is not in force yet is written again, even unchanged.
    if (prev && prev.state === 'ok' && prev.identity === ep.identity && prev.ingressEnforced === rules.ingressEnforced && prev.egressEnforced === rules.egressEnforced && prev.audit === audit && unchanged(rules.changesSince(before))) {
      prev.policies = rules.policies;
      return;
    }
    const entries = rules.entries().map((e) => this.mapEntry(e));
    const rev = this.nextRevision();
    const program = this.programOf(ep, rules, audit);
    const outcome = await this.regeneration('full', started, () => this.datapath.programEndpoint(program, entries, rev));
    this.settle(ep, prev, { rev, identity: ep.identity, ingressEnforced: rules.ingressEnforced, egressEnforced: rules.egressEnforced, audit, policies: rules.policies, entries: entries.length, state: outcome.state }, outcome, {});
  }

  /**
   * Writes what the selection diffs changed in an endpoint's rules since the last recompute: the
   * entries of the rules using the changed selectors, nothing else. Only for an endpoint whose
   * policy is in force (else the datapath's entries are not the rules' last flush).
   */
  private async update(ep: Endpoint, prev: EndpointPolicyState, rules: EndpointRules): Promise<void> {
    const started = performance.now();
    const changes = rules.flush();
    if (unchanged(changes)) return;
    const rev = this.nextRevision();
    const outcome = await this.regeneration('incremental', started, () => this.datapath.updateEndpointPolicy(this.programOf(ep, rules, prev.audit), { upsert: changes.upsert.map((e) => this.mapEntry(e)), remove: changes.remove.map((e) => this.mapEntry(e)) }, rev));
    this.settle(ep, prev, { ...prev, rev, entries: rules.size, state: outcome.state }, outcome, { written: changes.upsert.length, deleted: changes.remove.length });
  }

  /** Writes an endpoint's policy with `write`, and tells onRegenerated how it went and how long it took from `started`. */
  private async regeneration(scope: 'full' | 'incremental', started: number, write: () => Promise<EndpointPolicyOutcome>): Promise<EndpointPolicyOutcome> {
    let outcome: EndpointPolicyOutcome;
    try {
      outcome = await write();
    } catch (err) {
      this.onRegenerated(scope, 'error', (performance.now() - started) / 1000);
      throw err;
    }
    this.onRegenerated(scope, outcome.state, (performance.now() - started) / 1000);
    return outcome;
  }

  private programOf(ep: Endpoint, rules: EndpointRules, audit: boolean): EndpointProgram {
    return { epId: ep.epId, ip: ep.ip, ifname: ep.hostIf, identity: ep.identity, mac: ep.mac, nodeMac: ep.nodeMac, ingressEnforced: rules.ingressEnforced, egressEnforced: rules.egressEnforced, audit };
  }

  private mapEntry(e: PolicyEntry): PolicyMapEntry {
    const { rule, ...rest } = e;
    return { ...rest, ruleId: this.ruleId(rule) };
  }

  /** Records what the datapath did with an endpoint's policy, and logs a change of state once. */
  private settle(ep: Endpoint, prev: EndpointPolicyState | undefined, next: EndpointPolicyState, outcome: EndpointPolicyOutcome, extra: Record<string, number>): void {
    delete next.error;
    delete next.since;
    const log = { endpoint: `${ep.namespace}/${ep.pod}`, rev: next.rev, entries: next.entries, ...extra, ingress: next.ingressEnforced, egress: next.egressEnforced, state: outcome.state };
    if (outcome.state === 'ok') {
      this.state.set(ep.epId, next);
      if (prev && prev.state !== 'ok') this.log.warn(log, 'endpoint policy in force again');
      else this.log.info(log, 'endpoint policy updated');
      return;
    }
    next.error = outcome.error!;
    next.since = prev && prev.state !== 'ok' && prev.since ? prev.since : new Date().toISOString();
    this.state.set(ep.epId, next);
    // Once per change of state or cause, not at every retry.
    if (prev?.state !== next.state || prev.error !== next.error) {
      this.log.error({ ...log, err: outcome.error }, outcome.state === 'fail-closed' ? 'endpoint policy cannot be written: endpoint fails closed' : 'endpoint policy only partly written: the old one stays in force');
    }
    this.retryLater();
  }

  /** A remote cluster's identity came, changed or went (ClusterState): matched against the selectors at the next sync. */
  remoteIdentityChanged(id: number): void {
    if (this.remoteChanges !== 'all') this.remoteChanges.add(id);
    this.schedule();
  }

  /** Pods' named ports changed somewhere: the endpoints with named egress ports are resolved again. */
  namedPortsChanged(): void {
    if (this.namedEgressUsers.size === 0) return;
    if (this.dirty !== 'all') for (const id of this.namedEgressUsers) this.dirty.add(id);
    this.schedule();
  }

  forget(epId: number): void {
    this.state.delete(epId);
    this.namedEgressUsers.delete(epId);
    const user = this.selections.get(epId);
    if (user) for (const sel of user.selectors) this.selectors.removeSelector(sel, user);
    this.selections.delete(epId);
    if (this.dirty !== 'all') this.dirty.delete(epId);
    this.updated.delete(epId);
  }

  private selectionChanged(epId: number, incremental: boolean): void {
    if (incremental) this.updated.add(epId);
    else if (this.dirty !== 'all') this.dirty.add(epId);
  }

  /**
   * Brings the selector cache to the identities the node knows now: this cluster's by the
   * allocator cache's events, remote clusters' by ClusterState's; only changed identities are
   * matched against the selectors.
   */
  private syncIdentities(): void {
    const upserted: Array<{ id: number; labels: LabelSet }> = [];
    const removed: number[] = [];
    if (this.localChanges === 'all') {
      for (const [id, labels] of this.allocator.cache.entries()) upserted.push({ id, labels });
    } else {
      // The last event of each identity: the cache takes removals before upserts, so an identity
      // created and deleted within one batch would otherwise stay.
      const last = new Map<number, IdentityChange>();
      for (const c of this.localChanges) last.set(c.id, c);
      for (const c of last.values()) {
        if (c.type === 'upsert') upserted.push({ id: c.id, labels: c.labels });
        else removed.push(c.id);
      }
    }
    this.localChanges = [];
    // Remote identities: those ClusterState said changed (all of them the first time).
    const remote = this.remoteIdentities();
    const changed = this.remoteChanges === 'all' ? new Set([...remote.keys(), ...this.knownRemote.keys()]) : this.remoteChanges;
    this.remoteChanges = new Set();
    for (const id of changed) {
      const labels = remote.get(id);
      if (labels) {
        if (this.knownRemote.get(id) === labels.key) continue;
        this.knownRemote.set(id, labels.key);
        upserted.push({ id, labels });
      } else if (this.knownRemote.delete(id)) removed.push(id);
    }
    if (upserted.length > 0 || removed.length > 0) this.selectors.updateIdentities(upserted, removed);
  }


  private ruleId(name: string): number {
    let id = this.ruleIds.get(name);
    if (id === undefined) {
      id = this.ruleNames.length;
      this.ruleNames.push(name);
      this.ruleIds.set(name, id);
    }
    return id;
  }

  private countCidrs(policy: Policy | undefined, delta: 1 | -1): void {
    if (!policy) return;
    for (const cidr of policyCidrs([policy])) {
      const n = (this.cidrRefs.get(cidr) ?? 0) + delta;
      if (n > 0) this.cidrRefs.set(cidr, n);
      else this.cidrRefs.delete(cidr);
      if (n === 0 || n === delta) this.cidrsNamedChanged = true;
    }
  }

  private refreshCidrIdentities(): void {
    let named = false;
    if (this.cidrsNamedChanged || this.cidrsGiven !== this.cidrs) {
      named = this.cidrs.update(this.cidrRefs.keys()); // (if it throws, the next recompute tries again)
      this.cidrsNamedChanged = false;
      this.cidrsGiven = this.cidrs;
    }
    if (named || this.cidrIds !== this.cidrs.list()) {
      this.cidrIds = this.cidrs.list();
      this.cidrsUnwritten = true;
      this.dirty = 'all'; // world, CIDR and deny entries of any endpoint may name them
      this.onCidrsChanged();
    }
  }
}

function unchanged(c: EntryChanges): boolean {
  return c.upsert.length === 0 && c.remove.length === 0;
}
