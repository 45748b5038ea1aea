import assert from 'node:assert/strict';
import { workloadLabels } from '@weft/identity';
import { parsePolicy } from './parse.js';
import { resolveEndpoint, type IdentityView } from './resolve.js';
import { SelectorCache, isIdentityPeer, selectorKey, type CachedSelector, type IdentityPeer, type SelectionUser } from './selector-cache.js';
import type { Policy } from './types.js';

const ident = (id: number, cluster: string, namespace: string, labels: Record<string, string>, nsLabels: Record<string, string> = {}): IdentityView => ({ id, labels: workloadLabels({ cluster, namespace, labels, namespaceLabels: nsLabels }) });

const np = (name: string, spec: unknown, ns = 'shop'): Policy => parsePolicy({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: ns }, spec }, 'east');
const wp = (name: string, spec: unknown, ns = 'shop'): Policy => parsePolicy({ apiVersion: 'weft.io/v1', kind: 'WeftNetworkPolicy', metadata: { name, namespace: ns }, spec }, 'east');

/** Records what each selector told it. */
class Recorder implements SelectionUser {
  readonly updates: string[] = [];
  selectionUpdated(sel: CachedSelector, added: readonly number[], removed: readonly number[]): void {
    this.updates.push(`${sel.peer.kind} +${[...added].sort().join(',')} -${[...removed].sort().join(',')}`);
  }
}

const peersOf = (p: Policy): IdentityPeer[] => p.rules.flatMap((r) => r.peers.filter(isIdentityPeer));

describe('selector cache', () => {
  const world: IdentityView[] = [];
  for (let i = 0; i < 300; i++) world.push(ident(70_000 + i, i % 7 === 0 ? 'west' : 'east', `ns-${i % 5}`, { app: `app-${i % 11}`, tier: `t-${i % 3}` }, { team: `team-${i % 4}` }));
  const policies = [
    np('tier', { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { tier: 't-1' } } }] }] }, 'ns-1'),
    np('ns', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'team-2' } }, podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['app-3', 'app-4'] }] } }] }] }, 'ns-2'),
    wp('cluster', { endpointSelector: {}, ingress: [{ fromEntities: ['cluster'] }] }, 'ns-3'),
    wp('west', { endpointSelector: {}, egress: [{ toEndpoints: [{ matchLabels: { 'weft.io/cluster': 'west', tier: 't-0' } }] }] }, 'ns-0'),
  ];

  it('selects what a scan of every identity selects, and shares a selector between equal peers', () => {
    const cache = new SelectorCache(world);
    const user = new Recorder();
    for (const p of policies) {
      for (const peer of peersOf(p)) {
        const sel = cache.addSelector(peer, p.cluster, user);
        const scanned = world.filter((i) => sel.selects(i.labels)).map((i) => i.id);
        assert.ok(scanned.length > 0, `${p.id} selects something in this world`);
        assert.deepEqual([...sel.selected].sort(), scanned.sort(), p.id);
      }
    }
    const a = cache.addSelector({ kind: 'endpoints', pods: { matchLabels: { b: '2', a: '1' }, matchExpressions: [] }, namespace: 'x' }, 'east', user);
    const b = cache.addSelector({ kind: 'endpoints', pods: { matchLabels: { a: '1', b: '2' }, matchExpressions: [] }, namespace: 'x' }, 'east', new Recorder());
    assert.equal(a, b);
    assert.equal(a.users.size, 2);
    assert.notEqual(selectorKey({ kind: 'endpoints', pods: { matchLabels: { a: '1' }, matchExpressions: [] }, namespace: 'x' }, 'east'), selectorKey({ kind: 'endpoints', pods: { matchLabels: { a: '1' }, matchExpressions: [] }, namespace: 'y' }, 'east'));
  });

  it('tells only the selectors an identity change touches, once each, with everything that changed', () => {
    const cache = new SelectorCache(world);
    const [tier, other] = [new Recorder(), new Recorder()];
    const t1 = cache.addSelector(peersOf(policies[0]!)[0]!, 'east', tier);
    cache.addSelector(peersOf(policies[3]!)[0]!, 'east', other);
    const before = new Set(t1.selected);

    // Two new pods of tier t-1 in ns-1, one of tier t-2: one update of the tier selector, nothing for the other.
    cache.updateIdentities([ident(80_001, 'east', 'ns-1', { tier: 't-1' }), ident(80_002, 'east', 'ns-1', { tier: 't-1' }), ident(80_003, 'east', 'ns-1', { tier: 't-2' })], []);
    assert.deepEqual(tier.updates, ['endpoints +80001,80002 -']);
    assert.deepEqual(other.updates, []);
    assert.deepEqual([...t1.selected].filter((id) => !before.has(id)).sort(), [80_001, 80_002]);

    // Relabelled (same id, new labels): it leaves the selection; removed: it is gone; unknown ids are ignored.
    cache.updateIdentities([ident(80_001, 'east', 'ns-1', { tier: 't-2' })], [80_002, 99_999]);
    assert.deepEqual(tier.updates.slice(1), ['endpoints + -80001,80002']);
    assert.deepEqual([...t1.selected].sort(), [...before].sort());
    assert.equal(cache.identityCount, world.length + 2); // 80001 and 80003
  });

  it('forgets a selector nobody uses, and matches a new one against every known identity', () => {
    const cache = new SelectorCache(world);
    const [u1, u2] = [new Recorder(), new Recorder()];
    const peer = peersOf(policies[1]!)[0]!;
    const sel = cache.addSelector(peer, 'east', u1);
    cache.addSelector(peer, 'east', u2);
    cache.removeSelector(sel, u1);
    assert.equal(cache.size, 1);
    cache.removeSelector(sel, u2);
    assert.equal(cache.size, 0);
    cache.updateIdentities([ident(80_010, 'east', 'ns-2', { app: 'app-3' }, { team: 'team-2' })], []);
    assert.deepEqual(u1.updates, [], 'a removed user is not told');
    const again = cache.addSelector(peer, 'east', u1);
    assert.notEqual(again, sel);
    assert.ok(again.selected.has(80_010));
  });

  it('gives resolveEndpoint the same entries as a scan', () => {
    const cache = new SelectorCache(world);
    const user = new Recorder();
    const selections = (peer: IdentityPeer, policy: Policy): Iterable<number> => cache.addSelector(peer, policy.cluster, user).selected;
    for (const p of policies) {
      const ns = p.namespace!;
      const ep = { epId: 1, namespace: ns, labels: workloadLabels({ cluster: 'east', namespace: ns, labels: { app: 'app-1' } }) };
      const scan = resolveEndpoint(ep, [p], { cluster: 'east', identities: world, cidrIdentities: [] });
      const cached = resolveEndpoint(ep, [p], { cluster: 'east', identities: [], cidrIdentities: [], selections });
      assert.ok(scan.entries.length > 0, p.id);
      assert.deepEqual(cached, scan, p.id);
    }
  });
});
