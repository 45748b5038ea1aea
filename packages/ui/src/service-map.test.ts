// The service map's model, pure: flows in, nodes and edges out.
import assert from 'node:assert/strict';
import { makeFlow, type Flow, type FlowEndpoint } from '@weft/observer';
import { ServiceMap, VERDICT_COLOURS } from './service-map.js';

const T0 = 1_700_000_000;
const pod = (cluster: string, namespace: string, name: string, labels: Record<string, string>, port = 0): Partial<FlowEndpoint> => ({
  cluster, namespace, pod: name, port, identity: 70000,
  labels: [...Object.entries(labels).map(([k, v]) => `k8s:${k}=${v}`), `k8s:io.kubernetes.pod.namespace=${namespace}`, `k8s:weft.io/cluster=${cluster}`],
});
const client = (cluster = 'c1'): Partial<FlowEndpoint> => pod(cluster, 'demo', 'client', { app: 'client' }, 40000);
const echo = (n: number, port = 8081, cluster = 'c1'): Partial<FlowEndpoint> => pod(cluster, 'demo', `echo-${n}`, { app: 'echo' }, port);
const world: Partial<FlowEndpoint> = { ip: '10.99.255.250', port: 8081, identity: 2, labels: ['reserved:world'] };
const at = (s: number): Flow['time'] => ({ seconds: T0 + s, nanos: 0 });

describe('ServiceMap', () => {
  it('makes a flow an edge between two workload nodes, keyed source->destination:port/protocol', () => {
    const map = new ServiceMap();
    map.add(makeFlow({ source: client(), destination: echo(1) }));
    const g = map.snapshot();
    assert.deepEqual(g.nodes.map((n) => [n.id, n.kind, n.cluster, n.namespace, n.name]).sort(), [
      ['c1/demo/client', 'workload', 'c1', 'demo', 'client'],
      ['c1/demo/echo', 'workload', 'c1', 'demo', 'echo'],
    ]);
    assert.equal(g.edges.length, 1);
    const e = g.edges[0]!;
    assert.equal(e.id, 'c1/demo/client->c1/demo/echo:8081/TCP');
    assert.deepEqual([e.source, e.destination, e.port, e.protocol, e.verdict], ['c1/demo/client', 'c1/demo/echo', 8081, 'TCP', 'FORWARDED']);
    assert.deepEqual(e.counts, { FORWARDED: 1, DROPPED: 0, AUDIT: 0 });
    assert.deepEqual(g.nodes.find((n) => n.name === 'echo')!.labels, ['app=echo'], 'no namespace or cluster label');
  });

  it('collapses replicas into one workload (pod-template-hash and other per-pod labels left out), keeps pods without labels apart', () => {
    const map = new ServiceMap();
    const replica = (name: string, hash: string): Partial<FlowEndpoint> => pod('c1', 'shop', name, { app: 'web', 'pod-template-hash': hash, 'statefulset.kubernetes.io/pod-name': name }, 80);
    map.add(makeFlow({ source: client(), destination: replica('web-7d4f-a', '7d4f') }));
    map.add(makeFlow({ source: client(), destination: replica('web-9c2e-b', '9c2e') }));
    map.add(makeFlow({ source: client(), destination: echo(1) }));
    map.add(makeFlow({ source: client(), destination: echo(2) }));
    map.add(makeFlow({ source: client(), destination: { cluster: 'c1', namespace: 'shop', pod: 'lonely', port: 80, identity: 70001, labels: ['k8s:io.kubernetes.pod.namespace=shop', 'k8s:weft.io/cluster=c1'] } }));
    const g = map.snapshot();
    const web = g.nodes.find((n) => n.id === 'c1/shop/web')!;
    assert.deepEqual([web.kind, web.labels, web.pods, web.podCount], ['workload', ['app=web'], ['web-7d4f-a', 'web-9c2e-b'], 2]);
    assert.equal(g.nodes.find((n) => n.id === 'c1/demo/echo')!.podCount, 2);
    assert.equal(g.nodes.find((n) => n.id === 'c1/shop/lonely')!.kind, 'pod');
    assert.deepEqual(g.edges.map((e) => e.id).sort(), ['c1/demo/client->c1/demo/echo:8081/TCP', 'c1/demo/client->c1/shop/lonely:80/TCP', 'c1/demo/client->c1/shop/web:80/TCP']);
    assert.equal(g.edges.find((e) => e.destination === 'c1/demo/echo')!.counts.FORWARDED, 2);
  });

  it('names a workload by app.kubernetes.io/name, k8s-app, app or name, else by all its labels', () => {
    const map = new ServiceMap();
    map.add(makeFlow({ source: pod('c1', 'a', 'p1', { 'app.kubernetes.io/name': 'db', app: 'other' }), destination: pod('c1', 'a', 'p2', { tier: 'cache', zone: 'x' }, 6379) }));
    assert.deepEqual(map.snapshot().nodes.map((n) => n.id).sort(), ['c1/a/db', 'c1/a/tier=cache,zone=x']);
  });

  it('puts each end in its own cluster, and the world, hosts and remote nodes in the cluster that saw them', () => {
    const map = new ServiceMap();
    map.add(makeFlow({ cluster: 'c1', source: client('c1'), destination: echo(1, 8081, 'c2') }));
    map.add(makeFlow({ cluster: 'c1', source: client('c1'), destination: world }));
    map.add(makeFlow({ cluster: 'c2', source: { labels: ['reserved:host'], identity: 1, ip: '10.99.0.2' }, destination: echo(1, 8081, 'c2') }));
    map.add(makeFlow({ cluster: 'c2', source: { labels: ['reserved:remote-node'], identity: 6 }, destination: echo(2, 8081, 'c2') }));
    map.add(makeFlow({ cluster: 'c1', source: client('c1'), destination: { labels: ['cidr:10.99.255.0/24', 'reserved:world'], identity: 16777217, ip: '10.99.255.1', port: 53 }, protocol: 'UDP' }));
    const g = map.snapshot();
    assert.deepEqual(g.nodes.map((n) => `${n.id} ${n.kind}`).sort(), ['c1/demo/client workload', 'c1/world world', 'c2/demo/echo workload', 'c2/host host', 'c2/remote-node remote-node']);
    assert.deepEqual(g.facets, { clusters: ['c1', 'c2'], namespaces: ['demo'] });
    assert.ok(g.edges.some((e) => e.id === 'c1/demo/client->c2/demo/echo:8081/TCP'));
    assert.ok(g.edges.some((e) => e.id === 'c1/demo/client->c1/world:53/UDP'));
  });

  it('draws a flow to a Service as client -> Service -> backend, the Service a node of its own', () => {
    const map = new ServiceMap();
    map.add(makeFlow({ source: client(), destination: echo(2), destinationService: { namespace: 'demo', name: 'echo', ip: '10.96.0.20', port: 80 } }));
    const g = map.snapshot();
    const svc = g.nodes.find((n) => n.kind === 'service')!;
    assert.deepEqual([svc.id, svc.name, svc.address, svc.namespace], ['svc:c1/demo/echo', 'echo', '10.96.0.20:80', 'demo']);
    assert.deepEqual(g.edges.map((e) => e.id).sort(), ['c1/demo/client->svc:c1/demo/echo:80/TCP', 'svc:c1/demo/echo->c1/demo/echo:8081/TCP']);
  });

  it('keeps a connection to a Service on the Service\'s path when the backend\'s node sees it (without the Service)', () => {
    const map = new ServiceMap();
    const c = { ...client(), ip: '10.101.1.3', port: 59594 };
    const e = { ...echo(2), ip: '10.101.2.2' };
    map.add(makeFlow({ point: 'from-endpoint', source: c, destination: e, destinationService: { namespace: 'demo', name: 'echo', ip: '10.96.0.20', port: 80 } }));
    map.add(makeFlow({ node: 'c1-node2', point: 'to-endpoint', source: c, destination: e }));
    map.add(makeFlow({ node: 'c1-node2', point: 'to-endpoint', source: e, destination: c, isReply: true }));
    // Another connection to the same backend, straight to its address: a direct edge.
    map.add(makeFlow({ node: 'c1-node2', point: 'to-endpoint', source: { ...c, port: 40000 }, destination: e }));
    const g = map.snapshot();
    assert.deepEqual(g.edges.map((x) => `${x.id} ${x.counts.FORWARDED}`).sort(), [
      'c1/demo/client->c1/demo/echo:8081/TCP 1',
      'c1/demo/client->svc:c1/demo/echo:80/TCP 3',
      'svc:c1/demo/echo->c1/demo/echo:8081/TCP 3',
    ]);
  });

  it('leaves out a flow that names no address (a frame that is not IP)', () => {
    const map = new ServiceMap();
    map.add(makeFlow({ verdict: 'DROPPED', dropReason: 'UNSUPPORTED_L3', protocol: '0', source: { ip: '0.0.0.0' }, destination: { ip: '0.0.0.0' } }));
    map.add(makeFlow({ verdict: 'DROPPED', dropReason: 'UNSUPPORTED_L3', protocol: '0', source: { ip: '' }, destination: { ip: '' } }));
    assert.deepEqual([map.stats().edges, map.stats().flows, map.stats().ignoredFlows], [0, 0, 2]);
  });

  it('folds a reply into its connection\'s edge, and ICMP into one edge per pair', () => {
    const map = new ServiceMap();
    map.add(makeFlow({ source: client(), destination: echo(1) }));
    map.add(makeFlow({ source: echo(1), destination: client(), isReply: true }));
    map.add(makeFlow({ source: { ...client(), port: 0 }, destination: { ...echo(1), port: 0 }, protocol: 'ICMP' }));
    const g = map.snapshot();
    assert.deepEqual(g.edges.map((e) => `${e.id} ${e.counts.FORWARDED}`).sort(), ['c1/demo/client->c1/demo/echo:0/ICMP 1', 'c1/demo/client->c1/demo/echo:8081/TCP 2']);
  });

  it('colours an edge by its last verdict (green, red, orange) and keeps counts, drop reasons and the deciding rule', () => {
    const map = new ServiceMap();
    assert.deepEqual(VERDICT_COLOURS, { FORWARDED: '#2f9e44', DROPPED: '#e03131', AUDIT: '#f08c00' });
    map.add(makeFlow({ time: at(1), source: client(), destination: echo(1) }));
    let e = map.snapshot().edges[0]!;
    assert.deepEqual([e.verdict, e.colour], ['FORWARDED', '#2f9e44']);
    map.add(makeFlow({ time: at(2), verdict: 'DROPPED', dropReason: 'POLICY_DENIED', dropReasonCode: 133, policy: 'WeftNetworkPolicy/demo/only-8080#ingress#0', source: client(), destination: echo(1) }));
    map.add(makeFlow({ time: at(3), verdict: 'DROPPED', dropReason: 'POLICY_DENIED', source: client(), destination: echo(2) }));
    e = map.snapshot().edges[0]!;
    assert.deepEqual([e.verdict, e.colour, e.lastDropReason, e.policy], ['DROPPED', '#e03131', 'POLICY_DENIED', 'WeftNetworkPolicy/demo/only-8080#ingress#0']);
    assert.deepEqual(e.counts, { FORWARDED: 1, DROPPED: 2, AUDIT: 0 });
    assert.deepEqual(e.dropReasons, { POLICY_DENIED: 2 });
    // A late flow (an older time) counts, but does not decide the colour.
    map.add(makeFlow({ time: at(0), source: client(), destination: echo(1) }));
    e = map.snapshot().edges[0]!;
    assert.deepEqual([e.verdict, e.counts.FORWARDED, e.lastSeenMs], ['DROPPED', 2, (T0 + 3) * 1000]);
    map.add(makeFlow({ time: at(4), verdict: 'AUDIT', dropReason: 'POLICY_DENIED', source: world, destination: echo(1) }));
    const audit = map.snapshot().edges.find((x) => x.source === 'c1/world')!;
    assert.deepEqual([audit.verdict, audit.colour, audit.lastDropReason], ['AUDIT', '#f08c00', 'POLICY_DENIED']);
    map.add(makeFlow({ verdict: 'VERDICT_UNKNOWN', source: client(), destination: echo(1) }));
    assert.deepEqual([map.stats().flows, map.stats().ignoredFlows], [5, 1]);
  });

  it('filters by cluster and namespace: an edge shows when either end is in them, with both its ends', () => {
    const map = new ServiceMap();
    map.add(makeFlow({ source: client('c1'), destination: echo(1, 8081, 'c2') }));
    map.add(makeFlow({ source: pod('c1', 'shop', 'web', { app: 'web' }), destination: pod('c1', 'shop', 'db', { app: 'db' }, 5432) }));
    map.add(makeFlow({ source: world, destination: pod('c2', 'shop', 'web', { app: 'web' }, 80) }));
    const ids = (clusters: string[], namespaces: string[]): string[] => map.snapshot({ clusters, namespaces }).edges.map((e) => e.id).sort();
    assert.deepEqual(ids([], []).length, 3);
    assert.deepEqual(ids(['c2'], []), ['c1/demo/client->c2/demo/echo:8081/TCP', 'c1/world->c2/shop/web:80/TCP']);
    assert.deepEqual(ids([], ['shop']), ['c1/shop/web->c1/shop/db:5432/TCP', 'c1/world->c2/shop/web:80/TCP']);
    assert.deepEqual(ids(['c1'], ['shop']), ['c1/shop/web->c1/shop/db:5432/TCP']);
    assert.deepEqual(ids(['c3'], []), []);
    const g = map.snapshot({ clusters: ['c2'], namespaces: ['demo'] });
    assert.deepEqual(g.nodes.map((n) => n.id).sort(), ['c1/demo/client', 'c2/demo/echo']);
    assert.deepEqual(g.facets, { clusters: ['c1', 'c2'], namespaces: ['demo', 'shop'] }, 'facets are the whole map\'s');
  });

  it('hands out deltas: upserts with both ends of each edge, removals, nothing when nothing changed; a viewer\'s part by its filter', () => {
    const map = new ServiceMap({ expireMs: 60_000 });
    assert.equal(map.takeDelta(), undefined);
    map.add(makeFlow({ time: at(0), source: client(), destination: echo(1) }));
    let d = map.takeDelta()!;
    assert.deepEqual([d.nodes.length, d.edges.length, d.removedNodes, d.removedEdges], [2, 1, [], []]);
    assert.equal(map.takeDelta(), undefined);
    map.add(makeFlow({ time: at(30), source: pod('c2', 'shop', 'web', { app: 'web' }), destination: echo(1) }));
    d = map.takeDelta()!;
    assert.deepEqual(d.edges.map((e) => e.id), ['c2/shop/web->c1/demo/echo:8081/TCP']);
    assert.deepEqual(d.nodes.map((n) => n.id).sort(), ['c1/demo/echo', 'c2/shop/web']);
    const mine = map.filterDelta(d, { clusters: ['c2'], namespaces: [] });
    assert.deepEqual(mine.nodes.map((n) => n.id).sort(), ['c1/demo/echo', 'c2/shop/web'], 'the other end too, which this viewer may not have');
    assert.deepEqual(map.filterDelta(d, { clusters: [], namespaces: ['kube-system'] }).edges, []);
    assert.equal(map.expire((T0 + 61) * 1000), 1);
    d = map.takeDelta()!;
    assert.deepEqual([d.removedEdges, d.removedNodes, d.edges, d.nodes], [['c1/demo/client->c1/demo/echo:8081/TCP'], ['c1/demo/client'], [], []]);
  });

  it('ages out edges not seen for expireMs, and with them the nodes only they used', () => {
    const map = new ServiceMap({ expireMs: 10_000 });
    map.add(makeFlow({ time: at(0), source: client(), destination: echo(1) }));
    map.add(makeFlow({ time: at(8), source: world, destination: echo(1) }));
    map.add(makeFlow({ time: at(2), source: client(), destination: echo(1) }));
    assert.equal(map.expire((T0 + 11) * 1000), 0, 'the edge was seen at 2 s');
    assert.equal(map.expire((T0 + 13) * 1000), 1);
    assert.deepEqual(map.snapshot().nodes.map((n) => n.id).sort(), ['c1/demo/echo', 'c1/world']);
    assert.deepEqual(map.snapshot().facets.namespaces, ['demo']);
    assert.equal(map.expire((T0 + 30) * 1000), 1);
    assert.deepEqual([map.stats().nodes, map.stats().edges, map.stats().expiredEdges], [0, 0, 2]);
    assert.deepEqual(map.facets(), { clusters: [], namespaces: [] });
  });

  it('stays within its caps, letting the least recently seen edges go first', () => {
    const map = new ServiceMap({ maxEdges: 3, maxNodes: 100 });
    for (let i = 0; i < 5; i++) map.add(makeFlow({ time: at(i), source: client(), destination: echo(1, 8000 + i) }));
    // Seen again: it moves to the back.
    map.add(makeFlow({ time: at(9), source: client(), destination: echo(1, 8002) }));
    map.add(makeFlow({ time: at(10), source: client(), destination: echo(1, 9000) }));
    assert.deepEqual(map.snapshot().edges.map((e) => e.port).sort(), [8002, 8004, 9000]);
    assert.equal(map.stats().evictedEdges, 3);

    const small = new ServiceMap({ maxEdges: 100, maxNodes: 4 });
    for (let i = 0; i < 10; i++) small.add(makeFlow({ time: at(i), source: client(), destination: pod('c1', 'demo', `p${i}`, { app: `a${i}` }, 80) }));
    const s = small.stats();
    assert.ok(s.nodes <= 4, `${s.nodes} nodes`);
    assert.deepEqual(small.snapshot().nodes.map((n) => n.id).sort(), ['c1/demo/a7', 'c1/demo/a8', 'c1/demo/a9', 'c1/demo/client']);
    assert.deepEqual(small.snapshot().edges.length, 3);
  });

  it('keeps a node small: a few pod names, pods counted up to 512', () => {
    const map = new ServiceMap();
    for (let i = 0; i < 600; i++) map.add(makeFlow({ source: client(), destination: pod('c1', 'demo', `echo-${i}`, { app: 'echo' }, 8081) }));
    const echoNode = map.snapshot().nodes.find((n) => n.name === 'echo')!;
    assert.equal(echoNode.pods.length, 8);
    assert.equal(echoNode.podCount, 512);
  });
});
