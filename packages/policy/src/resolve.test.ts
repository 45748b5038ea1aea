import assert from 'node:assert/strict';
import { LabelSet, workloadLabels } from '@weft/identity';
import { parsePolicy } from './parse.js';
import { resolveEndpoint, type IdentityView, type PolicyEntry, type PolicyUniverse } from './resolve.js';
import type { Policy } from './types.js';

/** A small world: identities of pods in two namespaces and two clusters. */
const ids: Record<string, IdentityView> = {};
function ident(name: string, id: number, cluster: string, namespace: string, labels: Record<string, string>, nsLabels: Record<string, string> = {}): void {
  ids[name] = { id, labels: workloadLabels({ cluster, namespace, labels, namespaceLabels: nsLabels }) };
}
ident('web', 65_792, 'east', 'shop', { app: 'web' });
ident('api', 65_793, 'east', 'shop', { app: 'api' });
ident('db', 65_794, 'east', 'shop', { app: 'db' });
ident('ops', 65_795, 'east', 'tools', { app: 'probe' }, { team: 'ops' });
ident('westApi', 131_328, 'west', 'shop', { app: 'api' });

const universe: PolicyUniverse = {
  cluster: 'east',
  identities: Object.values(ids),
  cidrIdentities: [
    { id: 300, cidr: '192.0.2.0/24' },
    { id: 301, cidr: '192.0.2.128/25' },
  ],
};
const dbEndpoint = { epId: 7, namespace: 'shop', labels: ids.db!.labels };

const np = (spec: unknown, ns = 'shop') => parsePolicy({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'p', namespace: ns }, spec }, 'east');
const wp = (spec: unknown, ns = 'shop') => parsePolicy({ apiVersion: 'weft.io/v1', kind: 'WeftNetworkPolicy', metadata: { name: 'w', namespace: ns }, spec }, 'east');

function summary(entries: PolicyEntry[]): string[] {
  return entries.map((e) => `${e.egress ? 'egress' : 'ingress'} ${e.deny ? 'deny' : 'allow'} id=${e.identity} proto=${e.protocol}${e.port ? ` port=${e.port.port}/${e.port.bits}` : ''}`).sort();
}

describe('policy resolution', () => {
  it('leaves an endpoint default-allow until a policy selects it', () => {
    const r = resolveEndpoint(dbEndpoint, [np({ podSelector: { matchLabels: { app: 'web' } }, ingress: [] })], universe);
    assert.deepEqual(r, { ingressEnforced: false, egressEnforced: false, audit: false, policies: [], entries: [] });
  });

  it('turns a NetworkPolicy into exact map entries, in its namespace and cluster only', () => {
    const r = resolveEndpoint(dbEndpoint, [np({ podSelector: { matchLabels: { app: 'db' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'api' } } }], ports: [{ port: 5432 }] }] })], universe);
    assert.equal(r.ingressEnforced, true);
    assert.equal(r.egressEnforced, false);
    // west's api pod is not selected: no weft.io/cluster in the selector.
    assert.deepEqual(summary(r.entries), ['ingress allow id=65793 proto=6 port=5432/16']);
    assert.equal(r.entries[0]!.rule, 'NetworkPolicy/shop/p#ingress#0');
  });

  it('selects pods of another cluster only when the selector names it', () => {
    const r = resolveEndpoint(dbEndpoint, [wp({ endpointSelector: { matchLabels: { app: 'db' } }, ingress: [{ fromEndpoints: [{ matchLabels: { app: 'api', 'weft.io/cluster': 'west' } }] }] })], universe);
    assert.deepEqual(summary(r.entries), ['ingress allow id=131328 proto=0']);
  });

  it('matches namespaces by their labels', () => {
    const r = resolveEndpoint(dbEndpoint, [np({ podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'ops' } } }] }] })], universe);
    assert.deepEqual(summary(r.entries), ['ingress allow id=65795 proto=0']);
    const byName = resolveEndpoint(dbEndpoint, [np({ podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'tools' } } }] }] })], universe);
    assert.deepEqual(summary(byName.entries), ['ingress allow id=65795 proto=0']);
  });

  it('lets deny beat allow whatever the specificity', () => {
    const r = resolveEndpoint(dbEndpoint, [
      wp({ endpointSelector: {}, ingress: [{ fromEndpoints: [{ matchLabels: { app: 'api' } }], toPorts: [{ ports: [{ port: '5432', protocol: 'TCP' }] }] }] }),
      wp({ endpointSelector: { matchLabels: { app: 'db' } }, ingressDeny: [{ fromEndpoints: [{ matchLabels: { app: 'api' } }] }] }),
    ], universe);
    assert.deepEqual(summary(r.entries), ['ingress deny id=65793 proto=0'], 'the port-80 allow is dropped: the LPM would prefer it');
  });

  it('keeps a narrower deny inside a broader allow', () => {
    const r = resolveEndpoint(dbEndpoint, [wp({ endpointSelector: {}, ingress: [{ fromEndpoints: [{ matchLabels: { app: 'api' } }] }], ingressDeny: [{ fromEndpoints: [{ matchLabels: { app: 'api' } }], toPorts: [{ ports: [{ port: '22', protocol: 'TCP' }] }] }] })], universe);
    assert.deepEqual(summary(r.entries), ['ingress allow id=65793 proto=0', 'ingress deny id=65793 proto=6 port=22/16']);
  });

  it('expands entities and CIDRs', () => {
    const world = resolveEndpoint(dbEndpoint, [wp({ endpointSelector: {}, egress: [{ toEntities: ['world'] }] })], universe);
    assert.deepEqual(world.entries.map((e) => e.identity).sort((a, b) => a - b), [2, 9, 10, 300, 301]);
    const cluster = resolveEndpoint(dbEndpoint, [wp({ endpointSelector: {}, egress: [{ toEntities: ['cluster'] }] })], universe);
    assert.deepEqual(cluster.entries.map((e) => e.identity).sort((a, b) => a - b), [1, 4, 5, 6, 65_792, 65_793, 65_794, 65_795]);
    const all = resolveEndpoint(dbEndpoint, [wp({ endpointSelector: {}, egress: [{ toEntities: ['all'] }] })], universe);
    assert.deepEqual(summary(all.entries), ['egress allow id=0 proto=0']);
    const cidr = resolveEndpoint(dbEndpoint, [np({ podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '192.0.2.0/24', except: ['192.0.2.128/25'] } }] }] })], universe);
    assert.deepEqual(summary(cidr.entries), ['egress allow id=300 proto=0']);
  });

  it('expands port ranges and the ANY protocol', () => {
    const r = resolveEndpoint(dbEndpoint, [wp({ endpointSelector: {}, ingress: [{ toPorts: [{ ports: [{ port: '8080', endPort: 8083 }] }] }] })], universe);
    assert.deepEqual(summary(r.entries), ['ingress allow id=0 proto=132 port=8080/14', 'ingress allow id=0 proto=17 port=8080/14', 'ingress allow id=0 proto=6 port=8080/14']);
  });

  it('resolves a named port per destination pod: ingress from the endpoint\'s own ports, egress from the peer\'s', () => {
    const db = { ...dbEndpoint, namedPorts: [{ name: 'pg', protocol: 'TCP' as const, port: 5432 }, { name: 'metrics', protocol: 'TCP' as const, port: 9187 }] };
    const ingress = np({ podSelector: { matchLabels: { app: 'db' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'api' } } }], ports: [{ port: 'pg' }, { port: 'metrics', protocol: 'UDP' }, { port: 'nope' }] }] });
    // 'metrics' is TCP on db, the rule asks for UDP; 'nope' is no port of db: neither allows anything.
    assert.deepEqual(summary(resolveEndpoint(db, [ingress], universe).entries), ['ingress allow id=65793 proto=6 port=5432/16']);
    assert.deepEqual(resolveEndpoint(dbEndpoint, [ingress], universe).entries, [], 'an endpoint without the name: nothing');

    // Egress: the api pods call the port "http" 8080, west's api pods 9090; the name resolves per peer.
    const peers = new Map([[65_793, [{ name: 'http', protocol: 'TCP' as const, port: 8080 }]], [131_328, [{ name: 'http', protocol: 'TCP' as const, port: 9090 }]]]);
    const u = { ...universe, namedPorts: (id: number, name: string) => (id === 0 ? [...peers.values()].flat() : peers.get(id) ?? []).filter((n) => n.name === name) };
    const egress = np({ podSelector: { matchLabels: { app: 'db' } }, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'api' } } }, { ipBlock: { cidr: '192.0.2.0/24' } }], ports: [{ port: 'http' }] }] });
    const r = resolveEndpoint(dbEndpoint, [egress], u);
    assert.deepEqual(summary(r.entries), ['egress allow id=65793 proto=6 port=8080/16'], 'each peer its own number; a CIDR has no named ports');
    const westToo = np({ podSelector: { matchLabels: { app: 'db' } }, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'api', 'weft.io/cluster': 'west' } } }], ports: [{ port: 'http' }] }] });
    assert.deepEqual(summary(resolveEndpoint(dbEndpoint, [westToo], u).entries), ['egress allow id=131328 proto=6 port=9090/16']);
    // No peers named (to: anyone): every number any pod gives the name.
    const anyone = np({ podSelector: { matchLabels: { app: 'db' } }, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'http' }] }] });
    assert.deepEqual(summary(resolveEndpoint(dbEndpoint, [anyone], u).entries), ['egress allow id=0 proto=6 port=8080/16', 'egress allow id=0 proto=6 port=9090/16']);
  });

  it('applies clusterwide policies in every namespace, and audit mode', () => {
    const cw: Policy = parsePolicy({ apiVersion: 'weft.io/v1', kind: 'WeftClusterwideNetworkPolicy', metadata: { name: 'lockdown' }, spec: { endpointSelector: {}, ingress: [{ fromEntities: ['host'] }], audit: true } }, 'east');
    const r = resolveEndpoint({ epId: 9, namespace: 'tools', labels: ids.ops!.labels }, [cw], universe);
    assert.deepEqual(r.policies, ['WeftClusterwideNetworkPolicy/lockdown']);
    assert.equal(r.audit, true);
    assert.deepEqual(summary(r.entries), ['ingress allow id=1 proto=0']);
    const elsewhere = parsePolicy({ apiVersion: 'weft.io/v1', kind: 'WeftClusterwideNetworkPolicy', metadata: { name: 'x' }, spec: { endpointSelector: {}, ingress: [] } }, 'west');
    assert.equal(resolveEndpoint(dbEndpoint, [elsewhere], universe).ingressEnforced, false, 'a policy of another cluster never applies here');
  });

  it('never lets a reserved identity match a pod selector', () => {
    const withReserved: PolicyUniverse = { ...universe, identities: [...universe.identities, { id: 1, labels: LabelSet.reserved('host') }] };
    const r = resolveEndpoint(dbEndpoint, [wp({ endpointSelector: {}, ingress: [{ fromEndpoints: [{}] }] })], withReserved);
    assert.ok(!r.entries.some((e) => e.identity === 1));
    assert.deepEqual(r.entries.map((e) => e.identity).sort(), [65_792, 65_793, 65_794].sort(), 'an empty selector means every pod of the namespace');
  });
});
