import assert from 'node:assert/strict';
import { InvalidPolicyError } from './errors.js';
import { parsePolicy } from './parse.js';

const np = (spec: unknown, meta: Record<string, unknown> = { name: 'p', namespace: 'shop' }) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: meta, spec });
const wp = (spec: unknown, meta: Record<string, unknown> = { name: 'p', namespace: 'shop' }) => ({ apiVersion: 'weft.io/v1', kind: 'WeftNetworkPolicy', metadata: meta, spec });

function rejects(doc: unknown, path: string, problem: RegExp): void {
  assert.throws(() => parsePolicy(doc, 'east'), (err: unknown) => {
    assert.ok(err instanceof InvalidPolicyError, String(err));
    assert.equal(err.code, 'WEFT_ERR_POLICY_INVALID');
    assert.equal(err.path, path, err.message);
    assert.match(err.message, problem);
    return true;
  });
}

describe('policy parsing', () => {
  it('reads a Kubernetes NetworkPolicy, defaulting policyTypes and protocol', () => {
    const p = parsePolicy(np({
      podSelector: { matchLabels: { app: 'db' } },
      ingress: [{ from: [{ podSelector: { matchLabels: { app: 'api' } } }, { namespaceSelector: { matchLabels: { team: 'ops' } } }, { ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }], ports: [{ port: 5432 }, { port: 6000, endPort: 6010, protocol: 'UDP' }] }],
    }), 'east');
    assert.equal(p.id, 'NetworkPolicy/shop/p');
    assert.deepEqual(p.enforces, ['ingress']);
    assert.deepEqual(p.rules[0]!.peers[0], { kind: 'endpoints', pods: { matchLabels: { app: 'api' }, matchExpressions: [] }, namespace: 'shop' });
    assert.equal(p.rules[0]!.peers[1]!.kind, 'endpoints');
    assert.deepEqual(p.rules[0]!.peers[2], { kind: 'cidr', cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] });
    assert.deepEqual(p.rules[0]!.ports, [{ protocol: 'TCP', port: 5432 }, { protocol: 'UDP', port: 6000, endPort: 6010 }]);
    assert.deepEqual(parsePolicy(np({ podSelector: {}, policyTypes: ['Egress'] }), 'east').enforces, ['egress']);
  });

  it('defaults policyTypes as the API server does: Ingress, and Egress only when there are egress rules', () => {
    const enforces = (spec: Record<string, unknown>) => parsePolicy(np({ podSelector: {}, ...spec }), 'east').enforces;
    assert.deepEqual(enforces({ egress: [{ to: [{ podSelector: {} }] }] }), ['ingress', 'egress']);
    // An empty egress list is no egress rule: the pods' egress stays open (a cluster stores policyTypes [Ingress]).
    assert.deepEqual(enforces({ egress: [] }), ['ingress']);
    // An empty policyTypes list is defaulted like an absent one, not read as "enforce nothing".
    assert.deepEqual(enforces({ policyTypes: [] }), ['ingress']);
    assert.deepEqual(enforces({ policyTypes: [], egress: [{}] }), ['ingress', 'egress']);
    assert.deepEqual(enforces({ policyTypes: ['Ingress', 'Egress'], egress: [] }), ['ingress', 'egress']);
  });

  it('reads a Weft policy with entities, CIDRs, deny rules and ranges', () => {
    const p = parsePolicy(wp({
      endpointSelector: { matchLabels: { 'k8s:app': 'web' } },
      ingress: [{ fromEntities: ['world'], toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }] }],
      ingressDeny: [{ fromCIDRSet: [{ cidr: '192.0.2.0/24' }] }],
      egress: [{ toEndpoints: [{ matchLabels: { app: 'db', 'weft.io/cluster': 'west' } }], toPorts: [{ ports: [{ port: '5432' }] }] }],
      audit: true,
    }), 'east');
    assert.equal(p.kind, 'WeftNetworkPolicy');
    assert.deepEqual(p.subject.matchLabels, { app: 'web' });
    assert.deepEqual(p.enforces.sort(), ['egress', 'ingress']);
    assert.equal(p.rules.length, 3);
    assert.equal(p.rules[1]!.action, 'deny');
    assert.deepEqual(p.rules[2]!.ports, [{ protocol: 'ANY', port: 5432 }]);
    assert.equal(p.audit, true);
    const cw = parsePolicy({ apiVersion: 'weft.io/v1', kind: 'WeftClusterwideNetworkPolicy', metadata: { name: 'all-dns' }, spec: { endpointSelector: {}, egress: [{ toEndpoints: [{ matchLabels: { 'k8s-app': 'kube-dns' } }] }] } }, 'east');
    assert.equal(cw.id, 'WeftClusterwideNetworkPolicy/all-dns');
    assert.equal(cw.namespace, undefined);
    assert.ok(cw.rules[0]!.peers[0]!.kind === 'endpoints' && cw.rules[0]!.peers[0]!.namespaces !== undefined, 'clusterwide selectors span namespaces');
  });

  it('names the field of every mistake', () => {
    rejects(np({}), 'spec.podSelector', /is required/);
    rejects(np({ podSelector: {}, ingress: [{ ports: [{ port: 70000 }] }] }), 'spec.ingress[0].ports[0].port', /must be a port number 1-65535, got number 70000/);
    rejects(np({ podSelector: {}, ingress: [{ ports: [{ port: 'no_such' }] }] }), 'spec.ingress[0].ports[0].port', /"no_such" is neither a port number nor a valid port name/);
    rejects(np({ podSelector: {}, ingress: [{ ports: [{ port: 'web', endPort: 90 }] }] }), 'spec.ingress[0].ports[0].endPort', /needs a numeric port, not the named port "web"/);
    rejects(wp({ endpointSelector: {}, ingress: [{ toPorts: [{ ports: [{ port: 'http' }] }] }] }), 'spec.ingress[0].toPorts[0].ports[0].port', /named port "http" is not supported here \(NetworkPolicy takes names\)/);
    rejects(np({ podSelector: {}, ingress: [{ ports: [{ port: 90, endPort: 80 }] }] }), 'spec.ingress[0].ports[0].endPort', /80 is below port 90/);
    rejects(np({ podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '10.0.0.1/8' } }] }] }), 'spec.egress[0].to[0].ipBlock.cidr', /host bits set \(network is 10\.0\.0\.0\/8\)/);
    rejects(np({ podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['11.0.0.0/16'] } }] }] }), 'spec.egress[0].to[0].ipBlock.except[0]', /11\.0\.0\.0\/16 is not within 10\.0\.0\.0\/8/);
    rejects(np({ podSelector: { matchExpressions: [{ key: 'app', operator: 'Near', values: ['x'] }] } }), 'spec.podSelector.matchExpressions[0].operator', /"Near" is not one of In, NotIn, Exists, DoesNotExist/);
    rejects(np({ podSelector: { matchExpressions: [{ key: 'app', operator: 'In' }] } }), 'spec.podSelector.matchExpressions[0].values', /must not be empty/);
    rejects(np({ podSelector: {}, ingres: [] }), 'spec.ingres', /unknown field/);
    rejects(wp({ endpointSelector: {}, ingress: [{ fromEntities: ['moon'] }] }), 'spec.ingress[0].fromEntities[0]', /"moon" is not one of world, cluster, host, remote-node, all/);
    rejects(wp({ endpointSelector: {}, ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'QUIC' }] }] }] }), 'spec.ingress[0].toPorts[0].ports[0].protocol', /"QUIC" is not one of/);
    rejects(wp({ endpointSelector: {} }, { name: 'Bad_Name', namespace: 'shop' }), 'metadata.name', /must be a DNS subdomain/);
    rejects(wp({ endpointSelector: { matchLabels: { app: 'has space' } } }), 'spec.endpointSelector.matchLabels.app', /not a valid label value/);
    rejects({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' } }, 'apiVersion/kind', /v1\/Pod is not a policy/);
  });
});
