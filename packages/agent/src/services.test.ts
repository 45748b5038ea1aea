import assert from 'node:assert/strict';
import type { Resource, ServiceSpec } from '@weft/resources';
import { exportRecord, parseServiceRecord, serviceView, type ServiceView } from '@weft/schema';
import { EndpointIndex, resolveService, stableSlots } from './services.js';
import type { EndpointRecord } from '@weft/schema';

function svc(annotations: Record<string, string> = {}, spec: Partial<ServiceSpec> = {}): Resource<ServiceSpec> {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'echo', namespace: 'shop', labels: {}, annotations },
    spec: { type: 'ClusterIP', clusterIP: '10.96.0.20', selector: { app: 'echo' }, ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }], ...spec },
  };
}

function ep(ip: string, labels: Record<string, string> = { app: 'echo' }, namespace = 'shop'): EndpointRecord {
  return { ip, identity: 70000, node: 'n1', nodeIp: '10.99.1.11', namespace, pod: `p-${ip}`, labels };
}

function view(annotations: Record<string, string> = {}): ServiceView {
  const v = serviceView(svc(annotations));
  assert.equal(typeof v, 'object');
  return v as ServiceView;
}

const west = { namespace: 'shop', name: 'echo', selector: { app: 'echo' }, ports: [{ name: 'http', protocol: 'TCP' as const, port: 80, targetPort: 9090 }] };

describe('services', () => {
  it('selects endpoints by namespace and labels, on the target port', () => {
    const s = resolveService(view(), 'east', [ep('10.101.0.2'), ep('10.101.0.3', { app: 'other' }), ep('10.101.0.4', { app: 'echo' }, 'other-ns')], []);
    assert.deepEqual(s.frontends, [{ vip: '10.96.0.20', port: 80, protocol: 'TCP', backends: [{ ip: '10.101.0.2', port: 8080, cluster: 'east', pod: 'shop/p-10.101.0.2' }] }]);
  });

  it('an empty selector selects nothing', () => {
    const v = serviceView(svc({}, { selector: {} })) as ServiceView;
    assert.deepEqual(resolveService(v, 'east', [ep('10.101.0.2')], []).frontends[0]!.backends, []);
  });

  it('a global service gets remote backends on their own target port; a local one never does', () => {
    const remotes = [{ cluster: 'west', record: west, endpoints: [ep('10.102.0.2'), ep('10.102.0.3', { app: 'db' })] }];
    const global = resolveService(view({ 'weft.io/global': 'true' }), 'east', [ep('10.101.0.2')], remotes);
    assert.deepEqual(global.frontends[0]!.backends.map((b) => `${b.cluster}:${b.ip}:${b.port}`), ['east:10.101.0.2:8080', 'west:10.102.0.2:9090']);
    assert.deepEqual(global.available, { east: ['10.101.0.2'], west: ['10.102.0.2'] });
    const local = resolveService(view(), 'east', [ep('10.101.0.2')], remotes);
    assert.deepEqual(local.frontends[0]!.backends.map((b) => b.cluster), ['east']);
  });

  it('affinity prefers one side and falls back to the other when it has none', () => {
    const remotes = [{ cluster: 'west', record: west, endpoints: [ep('10.102.0.2')] }];
    const ips = (a: string, locals: EndpointRecord[]) => resolveService(view({ 'weft.io/global': 'true', 'weft.io/affinity': a }), 'east', locals, remotes).frontends[0]!.backends.map((b) => b.ip);
    assert.deepEqual(ips('local', [ep('10.101.0.2')]), ['10.101.0.2']);
    assert.deepEqual(ips('local', []), ['10.102.0.2']);
    assert.deepEqual(ips('remote', [ep('10.101.0.2')]), ['10.102.0.2']);
    assert.deepEqual(ips('none', [ep('10.101.0.2')]), ['10.101.0.2', '10.102.0.2']);
    const noRemote = resolveService(view({ 'weft.io/global': 'true', 'weft.io/affinity': 'remote' }), 'east', [ep('10.101.0.2')], [{ ...remotes[0]!, endpoints: [] }]);
    assert.deepEqual(noRemote.frontends[0]!.backends.map((b) => b.ip), ['10.101.0.2']);
  });

  it('exports only global, shared services', () => {
    assert.equal(exportRecord(view()), undefined);
    assert.equal(exportRecord(view({ 'weft.io/global': 'true', 'weft.io/shared': 'false' })), undefined);
    assert.deepEqual(exportRecord(view({ 'weft.io/global': 'true' })), { namespace: 'shop', name: 'echo', selector: { app: 'echo' }, ports: svc().spec.ports });
  });

  it('rejects bad annotations with the reason', () => {
    assert.match(serviceView(svc({ 'weft.io/global': 'yes' })) as string, /weft.io\/global: "yes" is not "true" or "false"/);
    assert.match(serviceView(svc({ 'weft.io/affinity': 'nearest' })) as string, /weft.io\/affinity: "nearest" is not local, remote or none/);
    assert.match(serviceView(svc({}, { clusterIP: undefined as unknown as string })) as string, /no clusterIP/);
  });

  it('refuses hostile remote records', () => {
    const good = JSON.stringify(west);
    assert.equal(typeof parseServiceRecord('shop.echo', good), 'object');
    assert.match(parseServiceRecord('shop.other', good) as string, /stored under shop.other/);
    assert.match(parseServiceRecord('x', '{') as string, /not JSON/);
    assert.match(parseServiceRecord('Shop.echo', JSON.stringify({ ...west, namespace: 'Shop' })) as string, /not a DNS label/);
    assert.match(parseServiceRecord('shop.echo', JSON.stringify({ ...west, ports: [{ protocol: 'SCTP', port: 1, targetPort: 1 }] })) as string, /ports\[0\]/);
    assert.match(parseServiceRecord('shop.echo', JSON.stringify({ ...west, ports: [{ protocol: 'TCP', port: 70000, targetPort: 1 }] })) as string, /ports\[0\]/);
    assert.match(parseServiceRecord('shop.echo', JSON.stringify({ ...west, selector: { app: 1 } })) as string, /selector/);
  });

  it('keeps backends in their slots, filling holes with newcomers or the last backend', () => {
    assert.deepEqual(stableSlots([], ['a', 'b']), ['a', 'b']);
    assert.deepEqual(stableSlots(['a', 'b', 'c', 'd'], ['a', 'c', 'd']), ['a', 'd', 'c'], 'the last moves into the hole');
    assert.deepEqual(stableSlots(['a', 'b', 'c'], ['a', 'c', 'x']), ['a', 'x', 'c'], 'a newcomer takes the hole');
    assert.deepEqual(stableSlots(['a', 'b', 'c'], ['c']), ['c']);
    assert.deepEqual(stableSlots(['a', 'b'], []), []);
    assert.deepEqual(stableSlots(['a', 'b', 'c', 'd'], ['b', 'd', 'e', 'f']), ['e', 'b', 'f', 'd']);
    const big = Array.from({ length: 1000 }, (_, i) => `b${i}`);
    const after = stableSlots(big, big.slice(1));
    assert.equal(after.filter((b, i) => b !== big[i]).length, 1, 'one backend leaving moves one other');
  });

  it('indexes endpoints by namespace and label for selectors', () => {
    const idx = new EndpointIndex([ep('10.0.0.1', { app: 'a', tier: 'web' }), ep('10.0.0.2', { app: 'a', tier: 'db' }), ep('10.0.0.3', { app: 'a', tier: 'web' }, 'other'), ep('10.0.0.4', { app: 'b' })]);
    assert.deepEqual(idx.select('shop', { app: 'a' }).map((e) => e.ip), ['10.0.0.1', '10.0.0.2']);
    assert.deepEqual(idx.select('shop', { app: 'a', tier: 'web' }).map((e) => e.ip), ['10.0.0.1']);
    assert.deepEqual(idx.select('other', { tier: 'web' }).map((e) => e.ip), ['10.0.0.3']);
    assert.deepEqual(idx.select('shop', { app: 'c' }), []);
    assert.deepEqual(idx.select('shop', {}), [], 'an empty selector selects nothing');
  });
});
