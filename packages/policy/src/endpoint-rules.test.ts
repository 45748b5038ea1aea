import assert from 'node:assert/strict';
import { seededRandom as rng } from '@weft/common';
import { workloadLabels, type LabelSet } from '@weft/identity';
import { EndpointRules, type EntryChanges, type RulesUniverse } from './endpoint-rules.js';
import { entryKey, resolveEndpoint, type CidrIdentityView, type EndpointView, type NamedPort, type PolicyEntry } from './resolve.js';
import { SelectorCache, type CachedSelector, type SelectionUser } from './selector-cache.js';
import type { Peer, Policy, PortRule, Rule, Selector } from './types.js';


const CLUSTER = 'east';
const CIDRS: CidrIdentityView[] = [
  { id: 16_777_217, cidr: '192.0.2.0/24' },
  { id: 16_777_218, cidr: '192.0.2.128/25' },
  { id: 16_777_219, cidr: '0.0.0.0/0' },
];
const sel = (matchLabels: Record<string, string> = {}, matchExpressions: Selector['matchExpressions'] = []): Selector => ({ matchLabels, matchExpressions });

/** Peers' named ports: a pod of identity i gives `http` port 8000 + i % 3 (TCP), and `dns` 53 (UDP) when i is even. */
const namedPorts = (identity: number, name: string): NamedPort[] => {
  if (name === 'http') return [{ name, protocol: 'TCP', port: 8000 + (identity % 3) }];
  if (name === 'dns' && identity % 2 === 0) return [{ name, protocol: 'UDP', port: 53 }];
  return [];
};

/** A random world of policies and identities, with one endpoint they are resolved for. */
class World {
  readonly identities = new Map<number, LabelSet>();
  readonly policies = new Map<string, Policy>();
  readonly cache = new SelectorCache();
  readonly ep: EndpointView = {
    epId: 1,
    namespace: 'ns-0',
    labels: workloadLabels({ cluster: CLUSTER, namespace: 'ns-0', labels: { app: 'a0', tier: 't0' } }),
    namedPorts: [{ name: 'http', protocol: 'TCP', port: 8080 }],
  };
  rules!: EndpointRules;
  /** The map as the writer would hold it: every flush's and resync's changes applied. */
  readonly map = new Map<string, PolicyEntry>();
  written = 0;
  private nextId = 70_000;
  private nextPolicy = 0;
  private readonly user: SelectionUser = {
    selectionUpdated: (s: CachedSelector, added, removed) => {
      this.rules.selectionUpdated(s, added, removed);
    },
  };

  constructor(readonly r: () => number) {}

  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.r() * xs.length)]!;
  }

  labels(): LabelSet {
    const cluster = this.r() < 0.85 ? CLUSTER : 'west';
    const namespace = this.pick(['ns-0', 'ns-1', 'ns-2']);
    return workloadLabels({ cluster, namespace, labels: { app: this.pick(['a0', 'a1', 'a2', 'a3']), tier: this.pick(['t0', 't1', 't2']) }, namespaceLabels: { team: namespace === 'ns-2' ? 'ops' : 'dev' } });
  }

  peer(ns: string | undefined): Peer {
    const x = this.r();
    if (x < 0.6) {
      const pods = this.pick([sel({ app: this.pick(['a0', 'a1', 'a2', 'a3']) }), sel({ tier: this.pick(['t0', 't1', 't2']) }), sel({}, [{ key: 'app', operator: 'In', values: ['a1', 'a2'] }]), sel({ 'weft.io/cluster': 'west' })]);
      const y = this.r();
      if (y < 0.5 && ns) return { kind: 'endpoints', pods, namespace: ns };
      if (y < 0.8) return { kind: 'endpoints', pods, namespaces: sel({ team: this.pick(['ops', 'dev']) }) };
      return { kind: 'endpoints', pods, namespaces: sel() };
    }
    if (x < 0.85) return { kind: 'entity', entity: this.pick(['cluster', 'world', 'all', 'host', 'remote-node'] as const) };
    return this.pick<Peer>([
      { kind: 'cidr', cidr: '192.0.2.0/24', except: ['192.0.2.128/25'] },
      { kind: 'cidr', cidr: '192.0.2.0/24', except: [] },
      { kind: 'cidr', cidr: '0.0.0.0/0', except: [] },
    ]);
  }

  ports(direction: 'ingress' | 'egress'): PortRule[] {
    const all: PortRule[] = [
      { protocol: 'TCP', port: 80 },
      { protocol: 'TCP' },
      { protocol: 'UDP', port: 1000, endPort: 1003 },
      { protocol: 'ANY', port: 53 },
      { protocol: 'ANY' },
      { protocol: 'TCP', port: 8000, endPort: 8015 },
      { protocol: 'ANY', port: 0, name: 'http' },
      { protocol: 'UDP', port: 0, name: 'dns' },
    ];
    const n = Math.floor(this.r() * 3);
    const out: PortRule[] = [];
    for (let i = 0; i < n; i++) {
      const p = { ...this.pick(all) };
      if (p.name === undefined) delete p.name;
      else delete p.port;
      if (p.name !== undefined && direction === 'ingress' && this.r() < 0.5) continue;
      out.push(p);
    }
    return out;
  }

  policy(): Policy {
    const clusterwide = this.r() < 0.2;
    const ns = clusterwide ? undefined : this.pick(['ns-0', 'ns-0', 'ns-1']);
    const rules: Rule[] = [];
    const n = 1 + Math.floor(this.r() * 4);
    for (let i = 0; i < n; i++) {
      const direction = this.r() < 0.6 ? 'ingress' : 'egress';
      const peers = Array.from({ length: Math.floor(this.r() * 3) }, () => this.peer(ns));
      rules.push({ direction, action: this.r() < 0.3 ? 'deny' : 'allow', peers, ports: this.ports(direction) });
    }
    const id = `WeftNetworkPolicy/${ns ?? '-'}/p${this.nextPolicy++}`;
    return {
      id,
      kind: clusterwide ? 'WeftClusterwideNetworkPolicy' : 'WeftNetworkPolicy',
      name: id,
      ...(ns ? { namespace: ns } : {}),
      cluster: CLUSTER,
      subject: this.pick([sel(), sel({ app: 'a0' }), sel({ tier: 't0' }), sel({ app: 'a1' })]),
      enforces: this.pick([['ingress'], ['egress'], ['ingress', 'egress'], []] as Policy['enforces'][]),
      rules,
      audit: this.r() < 0.1,
    };
  }

  universe(): RulesUniverse {
    return { cluster: CLUSTER, cidrIdentities: CIDRS, namedPorts, selector: (peer, policy) => this.cache.addSelector(peer, policy.cluster, this.user) };
  }

  /** A full resolution (what the engine does for a policy change), written as a diff of the map. */
  resync(): EntryChanges {
    const before = this.rules;
    this.rules = EndpointRules.resolve(this.ep, [...this.policies.values()], this.universe());
    const used = new Set(this.rules.selectors());
    if (before) for (const s of before.selectors()) if (!used.has(s)) this.cache.removeSelector(s as CachedSelector, this.user);
    const changes = this.rules.changesSince(before);
    this.write(changes);
    return changes;
  }

  write(c: EntryChanges): void {
    for (const e of c.remove) assert.ok(this.map.delete(entryKey(e)), `removes ${entryKey(e)}, which is in the map`);
    for (const e of c.upsert) this.map.set(entryKey(e), e);
    this.written += c.upsert.length + c.remove.length;
  }

  addIdentity(): number {
    const id = this.nextId++;
    this.identities.set(id, this.labels());
    return id;
  }

  /** The reference: resolveEndpoint over every identity, keyed. */
  oracle(): Map<string, PolicyEntry> {
    const r = resolveEndpoint(this.ep, [...this.policies.values()], { cluster: CLUSTER, identities: [...this.identities].map(([id, labels]) => ({ id, labels })), cidrIdentities: CIDRS, namedPorts });
    return new Map(r.entries.map((e) => [entryKey(e), e]));
  }
}

const show = (m: ReadonlyMap<string, PolicyEntry>): string[] => [...m].map(([k, e]) => `${k} ${e.deny ? 'deny' : 'allow'} ${e.rule}`).sort();

/** Entries that differ between two maps (new, gone, or changed in deny or rule): what a minimal writer writes. */
function distance(a: ReadonlyMap<string, PolicyEntry>, b: ReadonlyMap<string, PolicyEntry>): number {
  let n = 0;
  for (const [k, e] of b) {
    const p = a.get(k);
    if (!p || p.deny !== e.deny || p.rule !== e.rule) n++;
  }
  for (const k of a.keys()) if (!b.has(k)) n++;
  return n;
}

describe('endpoint rules: per-rule updates from selection diffs', () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]) {
    it(`equals a full resolution after random identity and policy changes (seed ${seed})`, () => {
      const w = new World(rng(seed));
      for (let i = 0; i < 40; i++) w.addIdentity();
      w.cache.updateIdentities([...w.identities].map(([id, labels]) => ({ id, labels })), []);
      for (let i = 0; i < 6; i++) {
        const p = w.policy();
        w.policies.set(p.id, p);
      }
      w.resync();
      assert.deepEqual(show(w.map), show(w.oracle()), 'first resolution');
      for (let step = 0; step < 250; step++) {
        const before = w.oracle();
        const x = w.r();
        let what: string;
        if (x < 0.85) {
          // A batch of identity changes, as one sync of the selector cache gives them.
          const upserted: Array<{ id: number; labels: LabelSet }> = [];
          const removed: number[] = [];
          const n = 1 + Math.floor(w.r() * 3);
          for (let i = 0; i < n; i++) {
            const y = w.r();
            const ids = [...w.identities.keys()].filter((id) => !removed.includes(id) && !upserted.some((u) => u.id === id));
            if (y < 0.4 || ids.length === 0) {
              const id = w.addIdentity();
              upserted.push({ id, labels: w.identities.get(id)! });
            } else if (y < 0.75) {
              const id = w.pick(ids);
              w.identities.delete(id);
              removed.push(id);
            } else {
              const id = w.pick(ids);
              w.identities.set(id, w.labels()); // relabelled: some selectors drop it, others take it
              upserted.push({ id, labels: w.identities.get(id)! });
            }
          }
          what = `identities +${upserted.map((u) => u.id).join(',')} -${removed.join(',')}`;
          w.cache.updateIdentities(upserted, removed);
          const written = w.written;
          w.write(w.rules.flush());
          const after = w.oracle();
          assert.equal(w.written - written, distance(before, after), `seed ${seed} step ${step} (${what}): writes exactly what changed`);
        } else {
          const ids = [...w.policies.keys()];
          const y = w.r();
          if (y < 0.4 && ids.length > 0) w.policies.delete(w.pick(ids));
          else if (y < 0.7 && ids.length > 0) {
            const id = w.pick(ids);
            w.policies.set(id, { ...w.policy(), id });
          } else {
            const p = w.policy();
            w.policies.set(p.id, p);
          }
          what = 'a policy changed';
          const written = w.written;
          w.resync();
          assert.equal(w.written - written, distance(before, w.oracle()), `seed ${seed} step ${step} (${what}): a resync writes the difference only`);
        }
        const want = w.oracle();
        assert.deepEqual(show(w.map), show(want), `seed ${seed} step ${step} (${what})`);
        assert.deepEqual(show(new Map(w.rules.entries().map((e) => [entryKey(e), e]))), show(want), `seed ${seed} step ${step}: entries()`);
        assert.equal(w.rules.size, want.size);
        assert.equal(w.rules.pending, false);
      }
    });
  }

  /** One hand-made world: a rule's selectors, a deny and the entries each change writes. */
  function small(policies: Policy[]) {
    const cache = new SelectorCache();
    let rules: EndpointRules;
    const user: SelectionUser = { selectionUpdated: (s, a, r) => void rules.selectionUpdated(s, a, r) };
    const ep: EndpointView = { epId: 1, namespace: 'ns-0', labels: workloadLabels({ cluster: CLUSTER, namespace: 'ns-0', labels: { app: 'db' } }) };
    rules = EndpointRules.resolve(ep, policies, { cluster: CLUSTER, cidrIdentities: [], selector: (peer, p) => cache.addSelector(peer, p.cluster, user) });
    const pod = (labels: Record<string, string>): LabelSet => workloadLabels({ cluster: CLUSTER, namespace: 'ns-0', labels });
    const summary = (c: EntryChanges): string[] => [...c.upsert.map((e) => `+${e.deny ? 'deny' : 'allow'} ${e.identity} ${e.protocol}${e.port ? `/${e.port.port}` : ''}`), ...c.remove.map((e) => `-${e.deny ? 'deny' : 'allow'} ${e.identity} ${e.protocol}${e.port ? `/${e.port.port}` : ''}`)].sort();
    return {
      set(id: number, labels: Record<string, string>): string[] {
        cache.updateIdentities([{ id, labels: pod(labels) }], []);
        return summary(rules.flush());
      },
      remove(id: number): string[] {
        cache.updateIdentities([], [id]);
        return summary(rules.flush());
      },
      get rules() {
        return rules;
      },
    };
  }
  const weft = (name: string, rules: Rule[]): Policy => ({ id: `WeftNetworkPolicy/ns-0/${name}`, kind: 'WeftNetworkPolicy', name, namespace: 'ns-0', cluster: CLUSTER, subject: sel(), enforces: ['ingress'], rules, audit: false });
  const from = (labels: Record<string, string>): Peer => ({ kind: 'endpoints', pods: sel(labels), namespace: 'ns-0' });

  it('writes identity x ports of the rules using the selector, and nothing for an identity no selector takes', () => {
    const w = small([weft('web', [{ direction: 'ingress', action: 'allow', peers: [from({ app: 'web' })], ports: [{ protocol: 'TCP', port: 80 }, { protocol: 'TCP', port: 443 }, { protocol: 'UDP', port: 1000, endPort: 1001 }] }])]);
    assert.deepEqual(w.set(70_001, { app: 'web' }), ['+allow 70001 17/1000', '+allow 70001 6/443', '+allow 70001 6/80']);
    assert.deepEqual(w.set(70_002, { app: 'other' }), []);
    assert.deepEqual(w.remove(70_001), ['-allow 70001 17/1000', '-allow 70001 6/443', '-allow 70001 6/80']);
    assert.equal(w.rules.size, 0);
  });

  it('keeps an entry while another rule or peer still gives it', () => {
    const w = small([
      weft('a', [{ direction: 'ingress', action: 'allow', peers: [from({ app: 'web' }), from({ tier: 'front' })], ports: [{ protocol: 'TCP', port: 80 }] }]),
      weft('b', [{ direction: 'ingress', action: 'allow', peers: [from({ role: 'x' })], ports: [{ protocol: 'TCP', port: 80 }] }]),
    ]);
    assert.deepEqual(w.set(70_001, { app: 'web', tier: 'front', role: 'x' }), ['+allow 70001 6/80']);
    assert.deepEqual(w.set(70_001, { tier: 'front', role: 'x' }), [], 'the second peer of the rule still selects it');
    // Rule a no longer gives it; rule b (later) does: the same entry, now attributed to b.
    assert.deepEqual(w.set(70_001, { role: 'x' }), ['+allow 70001 6/80']);
    assert.equal(w.rules.entries()[0]!.rule, 'WeftNetworkPolicy/ns-0/b#ingress#0');
    assert.deepEqual(w.set(70_001, {}), ['-allow 70001 6/80']);
  });

  it('lets a deny win: no allow a deny of the same identity covers, and the allow back once the deny goes', () => {
    const w = small([
      weft('allow', [{ direction: 'ingress', action: 'allow', peers: [from({ app: 'web' })], ports: [{ protocol: 'TCP', port: 80 }, { protocol: 'UDP', port: 53 }] }]),
      weft('deny', [{ direction: 'ingress', action: 'deny', peers: [from({ bad: 'yes' })], ports: [{ protocol: 'TCP' }] }]),
    ]);
    assert.deepEqual(w.set(70_001, { app: 'web' }), ['+allow 70001 17/53', '+allow 70001 6/80']);
    // Now also denied on TCP: the TCP/80 allow (longer than the deny) must go, UDP/53 stays.
    assert.deepEqual(w.set(70_001, { app: 'web', bad: 'yes' }), ['+deny 70001 6', '-allow 70001 6/80']);
    assert.deepEqual(w.set(70_001, { app: 'web' }), ['+allow 70001 6/80', '-deny 70001 6']);
    // A new identity denied and allowed at once: the covered allow is never written.
    assert.deepEqual(w.set(70_002, { app: 'web', bad: 'yes' }), ['+allow 70002 17/53', '+deny 70002 6']);
  });
});
